/**
 * The repository documents itself: its design is docs/architecture.md, and no tracked file points
 * at a design document outside the repository, which a reader of the repository cannot open.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Built from pieces, so this file does not name what it looks for. */
const FORBIDDEN = ['DESIGN' + '.md', '..' + '/shared', 'shared' + '/DESIGN'];

/** Folders of generated or installed files, not the repository's own text. */
const SKIPPED_DIRS = ['dist/', 'node_modules/'];

/** Git's own test for binary content: a NUL byte in the first 8,000 bytes. */
function isBinary(content: Buffer): boolean {
  return content.subarray(0, 8000).includes(0);
}

function trackedFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '-z'], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
  return out
    .toString('utf8')
    .split('\0')
    .filter((path) => path !== '' && !SKIPPED_DIRS.some((dir) => path.startsWith(dir)));
}

describe('the repository is self-contained', () => {
  it('has its own design document', () => {
    expect(existsSync(join(root, 'docs', 'architecture.md'))).toBe(true);
  });

  it('mentions no design file outside the repository in any tracked file', () => {
    const files = trackedFiles();
    expect(files.length).toBeGreaterThan(0);
    const found: string[] = [];
    for (const path of files) {
      const full = join(root, path);
      // A file deleted or moved in the working tree but not yet in the index has nothing to read.
      if (!existsSync(full) || !statSync(full).isFile()) continue;
      const content = readFileSync(full);
      if (isBinary(content)) continue;
      const lines = content.toString('utf8').split('\n');
      lines.forEach((line, index) => {
        const hit = FORBIDDEN.find((pattern) => line.includes(pattern));
        if (hit !== undefined) found.push(`${path}:${index + 1}: ${hit} in "${line.trim()}"`);
      });
    }
    expect(found, `files citing a design file outside the repository:\n${found.join('\n')}`).toEqual([]);
  });
});
