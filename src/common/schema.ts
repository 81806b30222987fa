/**
 * Building blocks of the configuration's schema, shared by every component's section. Each takes
 * the sentence that says what is valid and reuses it for every issue, so a user can fix a field
 * from its message alone: "required: X" for a missing field, "X, got Y" otherwise.
 */
import { z } from 'zod';
import { DNS_LABEL_PATTERN, isAddress } from './names.js';

/** Inclusive bounds of a number in the configuration; messages and docs quote the same two. */
export interface Range {
  readonly min: number;
  readonly max: number;
}

/** A short, safe rendering of what the user wrote, for "got …" in messages. */
export function describeInput(input: unknown): string {
  if (input === undefined) return 'nothing';
  if (input === null) return 'null (an empty value)';
  if (typeof input === 'string') return JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input);
  if (typeof input === 'number' || typeof input === 'boolean' || typeof input === 'bigint')
    return String(input);
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'a mapping';
  return typeof input;
}

/** Error map: "required: X" for a missing field, "X, got Y" otherwise. */
export function expecting(what: string): (issue: { input?: unknown }) => string {
  return (issue) =>
    issue.input === undefined ? `required: ${what}` : `${what}, got ${describeInput(issue.input)}`;
}

export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * One check for integer-ness and range, so a bad value gets one message. Not `z.int()`: its
 * non-integer issue aborts the whole parse, which would hide the cross-field problems.
 */
function integerIn(min: number, max: number, what: string) {
  const error = expecting(what);
  return z.number({ error }).refine((n) => Number.isInteger(n) && n >= min && n <= max, { error });
}

export function integerBetween(min: number, max: number, unit?: string) {
  return integerIn(
    min,
    max,
    `expected an integer between ${min} and ${max}${unit === undefined ? '' : ` (${unit})`}`,
  );
}

/** integerBetween over a named range. */
export function integerWithin(range: Range, unit?: string) {
  return integerBetween(range.min, range.max, unit);
}

export function integerAtLeast(min: number) {
  return integerIn(min, Number.MAX_SAFE_INTEGER, `expected an integer of at least ${min}`);
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: expecting(`expected one of ${values.join(', ')}`) });
}

export function matching(pattern: RegExp, what: string) {
  const error = expecting(`expected ${what}`);
  return z.string({ error }).regex(pattern, { error });
}

export function nonEmptyString(what: string) {
  const error = expecting(`expected ${what}`);
  return z.string({ error }).min(1, { error });
}

export function trueOrFalse() {
  return z.boolean({ error: expecting('expected true or false') });
}

/** A file path the configuration names: secrets, databases. */
export function filePath() {
  return nonEmptyString('a file path (absolute, or relative to the state directory)');
}

/** A strict mapping: unknown keys are errors that list the valid ones. */
export function section<T extends z.core.$ZodLooseShape>(shape: T) {
  const fields = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown field; valid fields here are ${fields}`
        : `expected a mapping with fields ${fields}, got ${describeInput(issue.input)}`,
  });
}

/** Every TCP or UDP port; 0 asks the system for a free one (tests). */
export const PORT: Range = { min: 0, max: 65_535 };
export const portSchema = integerWithin(PORT, '0 picks a free port');

const ADDRESS_MESSAGE = 'expected an IPv4 or IPv6 address (without brackets) or a hostname';
export const addressSchema = z
  .string({ error: expecting(ADDRESS_MESSAGE) })
  .refine(isAddress, { error: expecting(ADDRESS_MESSAGE) });

/** A listener of one process, as the configuration gives it. */
export interface ListenerConfig {
  readonly address: string;
  /** 0..65535; 0 asks the system for a free port (tests). */
  readonly port: number;
}

/** The fields of a listener, with its defaults. */
export function listener(address: string, port: number) {
  return { address: addressSchema.default(address), port: portSchema.default(port) };
}

export const dnsLabelSchema = matching(
  DNS_LABEL_PATTERN,
  'a lowercase DNS label: letters a-z, digits and inner hyphens, 1 to 63 characters, no dots',
);

const HTTP_URL_MESSAGE = 'expected an http:// or https:// URL without user or password';

/**
 * An http(s) URL the platform calls, without credentials: they would end up in logs and in
 * `config print`, and none are needed here. `prepare` rewrites what a URL may hold before it is
 * parsed (a health check's placeholders).
 */
export function httpUrl(prepare: (value: string) => string = (value) => value) {
  return z.string({ error: expecting(HTTP_URL_MESSAGE) }).refine(
    (value) => {
      try {
        const url = new URL(prepare(value));
        return (
          (url.protocol === 'http:' || url.protocol === 'https:') &&
          url.username === '' &&
          url.password === ''
        );
      } catch {
        return false;
      }
    },
    { error: expecting(HTTP_URL_MESSAGE) },
  );
}

/** A plain http(s) URL: webhooks, rule actions, the PowerDNS API. */
export const httpUrlSchema = httpUrl();

/** Extra HTTP headers of a webhook or rule action. */
export function headersSchema() {
  return z.record(z.string(), z.string(), {
    error: expecting('expected a mapping of header names to values'),
  });
}
