/**
 * The error catalogue holds: every code in src/ is declared by exactly one component's catalogue,
 * every declared code is raised somewhere, and docs/errors.md documents each one, under its
 * component, with the same HTTP status. The catalogues are found, not listed: every export named
 * `*_ERRORS` of a component's front door (the CLI, which has none, through its errors.ts), and a
 * declaration `satisfies ErrorCatalogue` anywhere else in src/ fails the test.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ErrorCatalogue, ErrorSpec } from '../../src/common/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SRC = join(ROOT, 'src');
const DOCS = join(ROOT, 'docs');
const ERRORS_DOC = join(DOCS, 'errors.md');

/** Names of the form of a code that are environment variables, not error codes. */
const ENVIRONMENT_VARIABLES = new Set(['IOTDR_CONFIG', 'IOTDR_HOME', 'IOTDR_BROKER_WORKER']);

const CODE_FORM = /^IOTDR_[A-Z0-9]+(?:_[A-Z0-9]+)*$/;
/** A code-shaped name anywhere (comments included): what a reader could take for a code. */
const CODE_TOKEN = /\bIOTDR_[A-Z0-9_]*[A-Z0-9]\b/g;
/** A code as a string literal: what raises it (catalogue keys are identifiers, never literals). */
const CODE_LITERAL = /['"`](IOTDR_[A-Z0-9_]+)['"`]/g;

interface Catalogued {
  code: string;
  spec: ErrorSpec;
  component: string;
  catalogue: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

function markdownFiles(): string[] {
  const docs = readdirSync(DOCS)
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(DOCS, f));
  return [...docs, join(ROOT, 'README.md')];
}

function componentOf(file: string): string {
  return relative(SRC, file).split(sep)[0] as string;
}

/** Every `*_ERRORS` export of every component's front door, by component. */
async function loadCatalogues(): Promise<Map<string, Map<string, ErrorCatalogue>>> {
  const found = new Map<string, Map<string, ErrorCatalogue>>();
  const components = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory());
  for (const { name } of components) {
    const door = ['index.ts', 'errors.ts'].find((f) => existsSync(join(SRC, name, f)));
    if (!door) continue;
    const module = (await import(join(SRC, name, door))) as Record<string, unknown>;
    const catalogues = new Map<string, ErrorCatalogue>();
    for (const [exported, value] of Object.entries(module)) {
      if (exported.endsWith('_ERRORS')) catalogues.set(exported, value as ErrorCatalogue);
    }
    if (catalogues.size > 0) found.set(name, catalogues);
  }
  return found;
}

/** The rows of docs/errors.md: code, the HTTP cell, and the component its section names. */
function documentedRows(): Array<{
  code: string;
  http: string;
  component: string | undefined;
  line: number;
}> {
  const rows: Array<{ code: string; http: string; component: string | undefined; line: number }> = [];
  let component: string | undefined;
  readFileSync(ERRORS_DOC, 'utf8')
    .split('\n')
    .forEach((text, index) => {
      const heading = /^## .*`src\/([a-z]+)\//.exec(text);
      if (heading) component = heading[1];
      else if (text.startsWith('## ')) component = undefined;
      const row = /^\|\s*`(IOTDR_[A-Z0-9_]+)`\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|\s*(.*?)\s*\|$/.exec(text);
      if (!row) return;
      expect(row[3], `docs/errors.md:${index + 1} has no meaning`).not.toBe('');
      expect(row[4], `docs/errors.md:${index + 1} says nothing to do`).not.toBe('');
      rows.push({ code: row[1] as string, http: row[2] as string, component, line: index + 1 });
    });
  return rows;
}

describe('the error catalogue', async () => {
  const catalogues = await loadCatalogues();
  const all: Catalogued[] = [...catalogues].flatMap(([component, named]) =>
    [...named].flatMap(([catalogue, entries]) =>
      Object.entries(entries).map(([code, spec]) => ({ code, spec, component, catalogue })),
    ),
  );
  const byCode = new Map(all.map((c) => [c.code, c]));
  const files = sourceFiles(SRC);
  const texts = new Map(files.map((f) => [f, readFileSync(f, 'utf8')]));

  it('finds the catalogues it checks (the loader is not blind)', () => {
    expect(catalogues.get('registry')?.has('REGISTRY_ERRORS')).toBe(true);
    expect(catalogues.get('cli')?.has('CLI_ERRORS')).toBe(true);
    expect(all.length).toBeGreaterThan(130);
  });

  it('declares every catalogue through its component: no catalogue is missed', () => {
    const declared = [...texts].flatMap(([file, text]) =>
      [
        ...text.matchAll(
          /export const (\w+) = \{(?:(?!export const)[\s\S])*?\} as const satisfies ErrorCatalogue/g,
        ),
      ].map((m) => `${componentOf(file)}.${m[1]}`),
    );
    const loaded = [...catalogues].flatMap(([component, named]) =>
      [...named.keys()].map((n) => `${component}.${n}`),
    );
    expect(declared.sort()).toEqual(loaded.sort());
  });

  it('gives every code the form of a code, a meaning, and an HTTP status or none', () => {
    const bad = all.filter(
      ({ code, spec }) =>
        !CODE_FORM.test(code) ||
        typeof spec.meaning !== 'string' ||
        spec.meaning.length === 0 ||
        (spec.status !== undefined &&
          !(Number.isInteger(spec.status) && spec.status >= 400 && spec.status < 600)),
    );
    expect(bad).toEqual([]);
  });

  it('declares each code in exactly one catalogue', () => {
    const seen = new Map<string, string[]>();
    for (const c of all) seen.set(c.code, [...(seen.get(c.code) ?? []), `${c.component}.${c.catalogue}`]);
    expect([...seen].filter(([, where]) => where.length > 1)).toEqual([]);
  });

  it('catalogues every code src/ names, comments included', () => {
    const stray = [...texts].flatMap(([file, text]) =>
      [...text.matchAll(CODE_TOKEN)]
        .map((m) => m[0])
        .filter((name) => !byCode.has(name) && !ENVIRONMENT_VARIABLES.has(name))
        .map((name) => `${relative(SRC, file)}: ${name}`),
    );
    expect(stray).toEqual([]);
  });

  it('raises every catalogued code somewhere in src/ (no dead codes)', () => {
    const raised = new Set(
      [...texts.values()].flatMap((text) => [...text.matchAll(CODE_LITERAL)].map((m) => m[1])),
    );
    expect(all.map((c) => c.code).filter((code) => !raised.has(code))).toEqual([]);
  });

  it('names no environment variable as a code', () => {
    expect([...ENVIRONMENT_VARIABLES].filter((name) => byCode.has(name))).toEqual([]);
  });

  it('documents every code once in docs/errors.md, under its component, with its HTTP status', () => {
    const rows = documentedRows();
    const problems: string[] = [];
    for (const c of all) {
      const found = rows.filter((r) => r.code === c.code);
      if (found.length !== 1) {
        problems.push(`${c.code}: documented ${found.length} times`);
        continue;
      }
      const row = found[0] as (typeof rows)[number];
      const http = c.spec.status === undefined ? '—' : String(c.spec.status);
      if (row.http !== http)
        problems.push(`${c.code}: HTTP ${row.http} in the docs, ${http} in the catalogue`);
      if (row.component !== c.component)
        problems.push(
          `${c.code}: documented under ${row.component ?? 'no component'}, declared in ${c.component}`,
        );
    }
    for (const row of rows)
      if (!byCode.has(row.code)) problems.push(`docs/errors.md:${row.line}: ${row.code} is not catalogued`);
    expect(problems).toEqual([]);
  });

  it('names no uncatalogued code in any doc, and gives a code only its own status', () => {
    const problems: string[] = [];
    for (const file of markdownFiles()) {
      const text = readFileSync(file, 'utf8');
      for (const [name] of text.matchAll(CODE_TOKEN))
        if (!byCode.has(name) && !ENVIRONMENT_VARIABLES.has(name))
          problems.push(`${relative(ROOT, file)}: ${name}`);
      // "409 `IOTDR_…`", "`403 IOTDR_…`": a status written before a code is that code's answer.
      for (const m of text.matchAll(/\b([45]\d\d)`? `?(IOTDR_[A-Z0-9_]+)/g)) {
        const status = byCode.get(m[2] as string)?.spec.status;
        if (status !== undefined && String(status) !== m[1])
          problems.push(`${relative(ROOT, file)}: ${m[1]} ${m[2]}, catalogued ${status}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
