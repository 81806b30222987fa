/**
 * Wildcard matching for policy resources, compiled once per policy set.
 *
 * A resource pattern is a sequence of tokens: literal text, `*` (any run of characters, '/'
 * included), `?` (exactly one UTF-16 code unit) and variables, whose values are matched
 * literally. Compilation cuts the pattern at its stars into fixed-length blocks; matching then
 * anchors the first block at the start, the last at the end, and places each middle block at its
 * leftmost occurrence. Leftmost placement is optimal for `*`-separated fixed-length blocks, so
 * there is no backtracking, no RegExp and no allocation per evaluation.
 */
import { type PolicyContext, type PolicyVariable, parseVariable, resolveVariable } from './variables.js';

export type Token =
  | { t: 'lit'; text: string }
  | { t: 'star' }
  | { t: 'one' }
  | { t: 'var'; variable: PolicyVariable };

const LIT = 0;
const ONE = 1;
const VAR = 2;

/** One item of a block; a single shape so the matching loop stays monomorphic. */
interface Item {
  k: number;
  text: string;
  variable: PolicyVariable | null;
}

interface Block {
  items: Item[];
  /** Length of the literal and `?` items; variables add their value's length. */
  fixedLength: number;
  /** Text of the first item when it is literal, to find candidate positions with indexOf. */
  lead: string | null;
}

const ANY = 0;
const EXACT = 1;
const PREFIX = 2;
const GENERAL = 3;

export interface CompiledPattern {
  kind: number;
  /** The literal for EXACT and PREFIX. */
  text: string;
  head: Block;
  middles: Block[];
  /** Null when the pattern has no star. */
  tail: Block | null;
  /** The variables it holds, to tell an unresolved one from a mismatch. */
  variables: PolicyVariable[];
}

export type TokensResult = { ok: true; tokens: Token[] } | { ok: false; message: string };

/**
 * Cuts a policy string into tokens. `*` and `?` are wildcards only when `wildcards` is set (a
 * resource, StringLike, ArnLike); `${…}` is a variable only when `variables` is set: in a
 * '2008-10-17' document AWS reads it as plain text.
 */
export function tokenize(pattern: string, variables: boolean, wildcards: boolean): TokensResult {
  const tokens: Token[] = [];
  let literal = '';
  const flush = (): void => {
    if (literal !== '') tokens.push({ t: 'lit', text: literal });
    literal = '';
  };
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (wildcards && (c === '*' || c === '?')) {
      flush();
      tokens.push(c === '*' ? { t: 'star' } : { t: 'one' });
    } else if (variables && c === '$' && pattern[i + 1] === '{') {
      const close = pattern.indexOf('}', i + 2);
      if (close < 0) return { ok: false, message: `'\${' at character ${i} is not closed by '}'` };
      const parsed = parseVariable(pattern.slice(i + 2, close));
      if (!parsed.ok) return parsed;
      if ('literal' in parsed) {
        literal += parsed.literal;
      } else {
        flush();
        tokens.push({ t: 'var', variable: parsed.variable });
      }
      i = close;
    } else {
      literal += c;
    }
  }
  flush();
  return { ok: true, tokens };
}

function block(tokens: Token[]): Block {
  const items: Item[] = [];
  let fixedLength = 0;
  for (const token of tokens) {
    const last = items[items.length - 1];
    if (token.t === 'lit') {
      fixedLength += token.text.length;
      if (last !== undefined && last.k === LIT) last.text += token.text;
      else items.push({ k: LIT, text: token.text, variable: null });
    } else if (token.t === 'one') {
      fixedLength += 1;
      items.push({ k: ONE, text: '', variable: null });
    } else if (token.t === 'var') {
      items.push({ k: VAR, text: '', variable: token.variable });
    }
  }
  const first = items[0];
  return { items, fixedLength, lead: first !== undefined && first.k === LIT ? first.text : null };
}

export function compilePattern(tokens: readonly Token[]): CompiledPattern {
  const blocks: Token[][] = [[]];
  for (const token of tokens) {
    if (token.t === 'star') blocks.push([]);
    else blocks[blocks.length - 1]?.push(token);
  }
  const simple = tokens.every((t) => t.t === 'lit' || t.t === 'star');
  const literal = tokens.map((t) => (t.t === 'lit' ? t.text : '')).join('');
  const empty: Block = { items: [], fixedLength: 0, lead: null };
  const variables = tokens.flatMap((t) => (t.t === 'var' ? [t.variable] : []));
  const base = { text: literal, head: empty, middles: [] as Block[], tail: null, variables };
  if (blocks.length > 1 && blocks.every((b) => b.length === 0)) return { ...base, kind: ANY };
  if (simple && blocks.length === 1) return { ...base, kind: EXACT };
  if (simple && blocks.length === 2 && blocks[1]?.length === 0) return { ...base, kind: PREFIX };
  const compiled = blocks.map(block);
  const head = compiled[0] ?? empty;
  if (compiled.length === 1) return { ...base, kind: GENERAL, head };
  return {
    ...base,
    kind: GENERAL,
    head,
    middles: compiled.slice(1, -1).filter((b) => b.items.length > 0),
    tail: compiled[compiled.length - 1] ?? empty,
  };
}

/** End of `b` placed at `pos` in `s`, not passing `limit`; -1 when it does not fit. */
function matchBlockAt(b: Block, context: PolicyContext, s: string, pos: number, limit: number): number {
  const items = b.items;
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as Item;
    if (item.k === ONE) {
      if (pos >= limit) return -1;
      pos += 1;
      continue;
    }
    const text = item.k === LIT ? item.text : resolveVariable(item.variable as PolicyVariable, context);
    if (text === undefined || pos + text.length > limit || !s.startsWith(text, pos)) return -1;
    pos += text.length;
  }
  return pos;
}

function blockLength(b: Block, context: PolicyContext): number {
  let length = b.fixedLength;
  const items = b.items;
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as Item;
    if (item.k !== VAR) continue;
    const value = resolveVariable(item.variable as PolicyVariable, context);
    if (value === undefined) return -1;
    length += value.length;
  }
  return length;
}

/** End of the leftmost placement of `b` in s[from, limit); -1 when there is none. */
function findBlock(b: Block, context: PolicyContext, s: string, from: number, limit: number): number {
  const length = blockLength(b, context);
  if (length < 0) return -1;
  let start = from;
  while (start + length <= limit) {
    if (b.lead !== null) {
      const found = s.indexOf(b.lead, start);
      if (found < 0 || found + length > limit) return -1;
      start = found;
    }
    const end = matchBlockAt(b, context, s, start, limit);
    if (end >= 0) return end;
    start += 1;
  }
  return -1;
}

/** Whether `s` from `offset` to its end matches the pattern for this connection. */
export function matchPattern(p: CompiledPattern, context: PolicyContext, s: string, offset: number): boolean {
  switch (p.kind) {
    case ANY:
      return true;
    case EXACT:
      return s.length - offset === p.text.length && s.startsWith(p.text, offset);
    case PREFIX:
      return s.startsWith(p.text, offset);
  }
  const n = s.length;
  let pos = matchBlockAt(p.head, context, s, offset, n);
  if (pos < 0) return false;
  const tail = p.tail;
  if (tail === null) return pos === n;
  const tailLength = blockLength(tail, context);
  if (tailLength < 0) return false;
  const tailStart = n - tailLength;
  if (tailStart < pos) return false;
  const middles = p.middles;
  for (let i = 0; i < middles.length; i++) {
    pos = findBlock(middles[i] as Block, context, s, pos, tailStart);
    if (pos < 0) return false;
  }
  return matchBlockAt(tail, context, s, tailStart, n) === n;
}

/** Whether every variable of the pattern resolves for this connection. */
export function patternResolves(p: CompiledPattern, context: PolicyContext): boolean {
  const variables = p.variables;
  for (let i = 0; i < variables.length; i++) {
    if (resolveVariable(variables[i] as PolicyVariable, context) === undefined) return false;
  }
  return true;
}

/** Plain `*`/`?` glob over whole strings, for compile-time use (action names). */
export function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    const c = pattern[p];
    if (c === '?' || (c !== undefined && c !== '*' && c === text[t])) {
      p += 1;
      t += 1;
    } else if (c === '*') {
      starP = p;
      starT = t;
      p += 1;
    } else if (starP >= 0) {
      p = starP + 1;
      starT += 1;
      t = starT;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p += 1;
  return p === pattern.length;
}
