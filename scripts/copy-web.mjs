// The dashboard's page is plain HTML, JS and CSS (no build step): the compiled code reads it from
// dist/analytics/web, next to itself, as the sources read it from src/analytics/web.
import { cpSync, rmSync } from 'node:fs';

rmSync('dist/analytics/web', { recursive: true, force: true });
cpSync('src/analytics/web', 'dist/analytics/web', { recursive: true });
