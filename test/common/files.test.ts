/**
 * Finding a binary: a directory of PATH first, then the fallback directories in order; a file this
 * process may not execute is passed over.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findExecutable, isExecutable } from '../../src/common/index.js';

describe('findExecutable', () => {
  let dir: string;
  let path: string | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iotdr-files-'));
    path = process.env.PATH;
    for (const sub of ['on-path', 'plain', 'first', 'second']) await mkdir(join(dir, sub));
  });

  afterEach(async () => {
    process.env.PATH = path;
    await rm(dir, { recursive: true, force: true });
  });

  async function binary(sub: string, mode: number): Promise<string> {
    const file = join(dir, sub, 'tool');
    await writeFile(file, '#!/bin/sh\n');
    await chmod(file, mode);
    return file;
  }

  it('takes PATH first, then the fallbacks in order, passing over a file it may not execute', async () => {
    const plain = await binary('plain', 0o644);
    const second = await binary('second', 0o755);
    expect(isExecutable(plain)).toBe(false);
    expect(isExecutable(second)).toBe(true);
    process.env.PATH = [join(dir, 'plain'), join(dir, 'on-path')].join(delimiter);
    expect(findExecutable('tool')).toBeUndefined();
    expect(findExecutable('tool', [join(dir, 'first'), join(dir, 'second')])).toBe(second);
    const first = await binary('first', 0o755);
    expect(findExecutable('tool', [join(dir, 'first'), join(dir, 'second')])).toBe(first);
    const onPath = await binary('on-path', 0o755);
    expect(findExecutable('tool', [join(dir, 'first')])).toBe(onPath);
  });
});
