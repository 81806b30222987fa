/**
 * Debian's Chromium driven by playwright-core, for tests of the dashboard in a real browser.
 * Like pdns.ts: when the binary is missing the caller skips with the returned reason; with CI=true
 * that is an error instead, so CI can never go green by skipping.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { type Browser, chromium } from 'playwright-core';
import { executable, skipReason } from './binaries.js';

export const CHROMIUM = process.env.IOTDR_CHROMIUM ?? '/usr/bin/chromium';
const NOT_FOUND = `Chromium not found at ${CHROMIUM}: apt-get install chromium (or set IOTDR_CHROMIUM)`;

/** Why browser tests cannot run here, or undefined when they can; throws instead with CI=true. */
export function chromiumSkipReason(): string | undefined {
  return skipReason(executable(CHROMIUM), NOT_FOUND);
}

export interface ChromiumOptions {
  /**
   * CA certificates (PEM) the browser trusts besides the system's, as an operator who imported the
   * platform's `pki/ca.pem` would. Default none.
   */
  trustCas?: readonly string[];
}

/** The base64 SHA-256 of a certificate's public key (SubjectPublicKeyInfo), as Chromium names keys. */
function spkiHash(pem: string): string {
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** Launches headless Chromium; the caller closes it. */
export function launchChromium(options: ChromiumOptions = {}): Promise<Browser> {
  const trusted = (options.trustCas ?? []).map(spkiHash);
  const args = [
    // Chromium refuses to run as root with its sandbox (containers, CI).
    ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
    // /dev/shm is tiny in containers; without this, pages crash under load.
    '--disable-dev-shm-usage',
    // Chromium takes no CA file. With this switch (honoured because playwright gives it a profile
    // of its own) it overlooks certificate errors of a server whose chain holds one of these keys,
    // the server's name included; a chain from any other CA is still refused.
    ...(trusted.length === 0 ? [] : [`--ignore-certificate-errors-spki-list=${trusted.join(',')}`]),
  ];
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}
