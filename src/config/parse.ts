import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError, describeInput, type FieldIssue, formatPath } from '../common/index.js';
import { configSchema, type IotdrConfig } from './schema.js';

interface RawIssue {
  path: PropertyKey[];
  message: string;
}

/** One issue per field; zod reports all unknown keys of a mapping as one issue, we name each. */
function rawIssues(error: z.ZodError): RawIssue[] {
  const issues: RawIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) issues.push({ path: [...issue.path, key], message: issue.message });
    } else {
      issues.push({ path: issue.path, message: issue.message });
    }
  }
  return issues;
}

/** Error map for the few issues the schema has no sentence for; says what was expected and what came. */
function fallbackMessage(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code === 'invalid_type') return `expected ${issue.expected}, got ${describeInput(issue.input)}`;
  return undefined;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

type Validation = { ok: true; config: IotdrConfig } | { ok: false; issues: RawIssue[] };

function validate(input: unknown): Validation {
  const result = configSchema.safeParse(input === undefined ? {} : input, { error: fallbackMessage });
  if (!result.success) return { ok: false, issues: rawIssues(result.error) };
  return { ok: true, config: deepFreeze(result.data) };
}

function configError(source: string | undefined, issues: FieldIssue[]): ConfigError {
  const where = source === undefined ? 'invalid configuration' : `invalid configuration in ${source}`;
  return new ConfigError(`${where} (${plural(issues.length, 'problem')})`, issues);
}

/**
 * Validates an already-parsed configuration (from YAML, JSON or code) into a deeply frozen,
 * fully-defaulted object. `undefined` means "no file": all defaults.
 * @throws ConfigError naming every bad field with its path and what would be valid.
 */
export function parseConfig(input: unknown): IotdrConfig {
  const result = validate(input);
  if (result.ok) return result.config;
  throw configError(
    undefined,
    result.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message })),
  );
}

/** The line of the deepest node of the document on `path`: the field itself, or the mapping that lacks it. */
function lineOf(contents: unknown, path: PropertyKey[], lines: LineCounter): number | undefined {
  let node = contents;
  let offset: number | undefined = (contents as Node | null)?.range?.[0];
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(key));
      if (pair === undefined) break;
      offset = (pair.key as Node).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(key)];
      if (item === undefined) break;
      offset = (item as Node).range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset === undefined ? undefined : lines.linePos(offset).line;
}

/**
 * Parses the text of a YAML configuration file. `source` names it in messages (a path, usually).
 * @throws ConfigError with `line:column` paths for YAML syntax errors, and with field paths (and the
 *   line they are on) for invalid fields.
 */
export function parseConfigYaml(text: string, source: string): IotdrConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((error) => {
      const position = error.linePos?.[0];
      // prettyErrors appends " at line L, column C:" and a source excerpt; the path carries the position.
      const message = error.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '');
      return { path: position === undefined ? '(yaml)' : `${position.line}:${position.col}`, message };
    });
    throw new ConfigError(`YAML syntax error in ${source} (${plural(issues.length, 'problem')})`, issues);
  }
  // An empty file, or one holding only comments, is an empty mapping: all defaults.
  const input: unknown = doc.contents === null ? {} : doc.toJS();
  const result = validate(input);
  if (result.ok) return result.config;
  throw configError(
    source,
    result.issues.map((issue) => {
      const line = lineOf(doc.contents, issue.path, lines);
      const message = line === undefined ? issue.message : `${issue.message} (line ${line})`;
      return { path: formatPath(issue.path), message };
    }),
  );
}
