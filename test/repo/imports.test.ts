/**
 * The shape of src/, checked on its import graph so it holds after whoever changes it next: the
 * package's front door is the only file at the top, components import each other only through
 * their front doors (`<component>/index.ts`), no chain of imports between components comes back
 * to where it started, and no component imports a composition root (src/processes): only the CLI
 * and the package's front door do.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');
/** Those that may import the composition roots. */
const ABOVE_PROCESSES = new Set(['cli', 'processes']);

interface Import {
  /** The importing file, relative to src/. */
  file: string;
  /** The imported file, relative to src/ (`.js` as written). */
  target: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative import and re-export of src/, static or dynamic, resolved against src/. */
function importsOf(files: string[]): Import[] {
  const found: Import[] = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)'(\.{1,2}\/[^']+)'/gm;
  for (const path of files) {
    const text = readFileSync(path, 'utf8');
    for (const match of text.matchAll(pattern)) {
      const spec = match[1] as string;
      const target = relative(SRC, normalize(join(dirname(path), spec)));
      found.push({ file: relative(SRC, path), target });
    }
  }
  return found;
}

/** The component a path of src/ belongs to: its first folder; '' for a file at the top. */
function componentOf(path: string): string {
  const parts = path.split(sep);
  return parts.length > 1 ? (parts[0] as string) : '';
}

/** The strongly connected components of more than one node (Tarjan). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe('the shape of src/', () => {
  const files = sourceFiles(SRC);
  const imports = importsOf(files);

  it('finds the imports it checks (the parser is not blind)', () => {
    expect(files.length).toBeGreaterThan(100);
    const across = imports.filter((i) => componentOf(i.file) !== componentOf(i.target));
    expect(across.length).toBeGreaterThan(100);
    expect(
      imports.some(
        (i) => i.file === join('processes', 'region.ts') && i.target === join('broker', 'index.js'),
      ),
    ).toBe(true);
  });

  it('has no source file at its top but the package front door', () => {
    const top = files.map((f) => relative(SRC, f)).filter((f) => !f.includes(sep));
    expect(top).toEqual(['index.ts']);
  });

  it('crosses between components only through front doors', () => {
    const deep = imports
      .filter((i) => componentOf(i.file) !== '' && componentOf(i.target) !== componentOf(i.file))
      .filter((i) => i.target !== join(componentOf(i.target), 'index.js'))
      .map((i) => `${i.file} imports ${i.target}`);
    expect(deep).toEqual([]);
  });

  it('has no import cycle between components', () => {
    const graph = new Map<string, Set<string>>();
    for (const i of imports) {
      const from = componentOf(i.file);
      const to = componentOf(i.target);
      if (from === to || from === '' || to === '') continue;
      const edges = graph.get(from) ?? new Set<string>();
      edges.add(to);
      graph.set(from, edges);
    }
    expect(cycles(graph)).toEqual([]);
    // The check itself finds a cycle when there is one.
    const looped = new Map([...graph].map(([k, v]) => [k, new Set(v)]));
    looped.set('common', new Set([...(looped.get('common') ?? []), 'config']));
    expect(cycles(looped).some((c) => c.includes('common') && c.includes('config'))).toBe(true);
  });

  it('lets no component import a composition root', () => {
    const up = imports
      .filter((i) => componentOf(i.target) === 'processes' && componentOf(i.file) !== '')
      .filter((i) => !ABOVE_PROCESSES.has(componentOf(i.file)))
      .map((i) => `${i.file} imports ${i.target}`);
    expect(up).toEqual([]);
  });
});
