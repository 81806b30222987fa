import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** A file the dashboard serves, read once at start. */
export interface Asset {
  readonly body: Buffer;
  readonly type: string;
  /** Strong validator for If-None-Match. */
  readonly etag: string;
  readonly cacheControl: string;
}

/** The page's own files sit next to this folder (`src/analytics/web`, copied to `dist/analytics/web`). */
const WEB_DIR = new URL('../web/', import.meta.url);

/** Revalidated on every load: they change with iotdr's version, and an old app.js against a new stream would break. */
const OWN = 'no-cache';
/** uPlot's files change only when the package does; a day is a fair trade. */
const VENDOR = 'public, max-age=86400';

/** Every file GET /assets/:file may answer; anything else is 404. */
export const ASSET_FILES = ['app.js', 'app.css', 'uPlot.iife.min.js', 'uPlot.min.css'] as const;
export type AssetFile = (typeof ASSET_FILES)[number];

function asset(body: Buffer, type: string, cacheControl: string): Asset {
  return { body, type, cacheControl, etag: `"${createHash('sha256').update(body).digest('base64url')}"` };
}

/** Reads the page, the dashboard's script and style, and uPlot from node_modules (never copied into the repo). */
export async function loadAssets(): Promise<{ page: Asset; files: Map<string, Asset> }> {
  const require = createRequire(import.meta.url);
  const uplotJs = require.resolve('uplot/dist/uPlot.iife.min.js');
  const uplotCss = require.resolve('uplot/dist/uPlot.min.css');
  const own = (name: string) => readFile(fileURLToPath(new URL(name, WEB_DIR)));
  const [page, appJs, appCss, vendorJs, vendorCss] = await Promise.all([
    own('index.html'),
    own('app.js'),
    own('app.css'),
    readFile(uplotJs),
    readFile(uplotCss),
  ]);
  const files = new Map<string, Asset>([
    ['app.js', asset(appJs, 'text/javascript; charset=utf-8', OWN)],
    ['app.css', asset(appCss, 'text/css; charset=utf-8', OWN)],
    ['uPlot.iife.min.js', asset(vendorJs, 'text/javascript; charset=utf-8', VENDOR)],
    ['uPlot.min.css', asset(vendorCss, 'text/css; charset=utf-8', VENDOR)],
  ]);
  return { page: asset(page, 'text/html; charset=utf-8', 'no-cache'), files };
}

/**
 * The page's policy: only its own origin, no inline script or style, no frames. The live stream and
 * the routing controls are same-origin requests, so `connect-src 'self'` covers them.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
