/**
 * Debian's Chromium driven by playwright-core, for tests of the dashboard in a real browser.
 * Like pdns.ts: when the binary is missing the caller skips with the returned reason; with CI=true
 * that is an error instead, so CI can never go green by skipping.
 */
import { type Browser, chromium } from 'playwright-core';
import { executable, skipReason } from './binaries.js';

export const CHROMIUM = process.env.IOTDR_CHROMIUM ?? '/usr/bin/chromium';
const NOT_FOUND = `Chromium not found at ${CHROMIUM}: apt-get install chromium (or set IOTDR_CHROMIUM)`;

/** Why browser tests cannot run here, or undefined when they can; throws instead with CI=true. */
export function chromiumSkipReason(): string | undefined {
  return skipReason(executable(CHROMIUM), NOT_FOUND);
}

/** Launches headless Chromium; the caller closes it. */
export function launchChromium(): Promise<Browser> {
  const args = [
    // Chromium refuses to run as root with its sandbox (containers, CI).
    ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
    // /dev/shm is tiny in containers; without this, pages crash under load.
    '--disable-dev-shm-usage',
  ];
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}
