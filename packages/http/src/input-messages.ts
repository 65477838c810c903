import type { z } from 'zod';

/*
 * Zod's default messages ("Too small: expected number to be >=1", "Invalid input: expected
 * string, received undefined") name a type system, not the field's rule. Every input the apps
 * parse goes through this map instead (parseInput, the api's list queries): each message says
 * what the field must be, in the project's words. A message a schema gives itself wins.
 */

type RawIssue = Parameters<z.core.$ZodErrorMap>[0];

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'an object',
  array: 'a list',
  record: 'an object',
  date: 'a date',
  null: 'null',
  bigint: 'a whole number',
};

const FORMAT_WORDS: Record<string, string> = {
  email: 'an email address',
  url: 'a URL',
  uuid: 'a UUID',
  datetime: 'an ISO 8601 date-time',
  date: 'an ISO 8601 date',
  time: 'an ISO 8601 time',
  ipv4: 'an IPv4 address',
  ipv6: 'an IPv6 address',
  base64: 'base64',
  base64url: 'base64url',
  uppercase: 'upper case',
  lowercase: 'lower case',
};

/** The JSON kind of a value, as a client would name it. */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'number') return Number.isInteger(value) ? 'a whole number' : 'a number';
  if (typeof value === 'boolean') return 'true or false';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

const plural = (count: number | bigint, one: string, many: string) => `${count} ${Number(count) === 1 ? one : many}`;

function sizeRule(issue: { origin: string; inclusive?: boolean }, bound: number | bigint, least: boolean): string {
  const word = least ? (issue.inclusive === false ? 'more than' : 'at least') : issue.inclusive === false ? 'less than' : 'at most';
  switch (issue.origin) {
    case 'string':
      if (least && Number(bound) === 1 && issue.inclusive !== false) return 'must not be empty';
      return `must be ${word} ${plural(bound, 'character', 'characters')}`;
    case 'array':
    case 'set':
      if (least && Number(bound) === 1 && issue.inclusive !== false) return 'must list at least one item';
      return `must have ${word} ${plural(bound, 'item', 'items')}`;
    case 'date':
      return `must be ${least ? 'on or after' : 'on or before'} ${new Date(Number(bound)).toISOString()}`;
    default:
      return `must be ${word} ${bound}`;
  }
}

/** The message of an issue a schema did not word itself. */
export function inputMessage(issue: RawIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      if (issue.expected === 'nonoptional') return 'is required';
      // A coerced query parameter that is no number arrives as NaN: what was sent is not shown by its kind.
      if (typeof issue.input === 'number' && Number.isNaN(issue.input)) return `must be ${TYPE_WORDS[issue.expected] ?? issue.expected}`;
      return `must be ${TYPE_WORDS[issue.expected] ?? issue.expected}, not ${kindOf(issue.input)}`;
    case 'too_small':
      return sizeRule(issue, issue.minimum, true);
    case 'too_big':
      return sizeRule(issue, issue.maximum, false);
    case 'invalid_format':
      if (issue.format === 'regex') return `must match the pattern ${String((issue as { pattern?: unknown }).pattern ?? '')}`.trimEnd();
      if (issue.format === 'starts_with') return `must start with ${JSON.stringify((issue as { prefix?: string }).prefix)}`;
      if (issue.format === 'ends_with') return `must end with ${JSON.stringify((issue as { suffix?: string }).suffix)}`;
      if (issue.format === 'includes') return `must contain ${JSON.stringify((issue as { includes?: string }).includes)}`;
      return `must be ${FORMAT_WORDS[issue.format] ?? issue.format}`;
    case 'not_multiple_of':
      return `must be a multiple of ${issue.divisor}`;
    case 'unrecognized_keys':
      return `has fields this request does not take: ${issue.keys.join(', ')}`;
    case 'invalid_union':
      return 'matches none of the shapes this field takes';
    case 'invalid_key':
      return 'has a key that is not accepted';
    case 'invalid_element':
      return 'has an item that is not accepted';
    case 'invalid_value':
      return issue.values.length === 1
        ? `must be ${JSON.stringify(issue.values[0])}`
        : `must be one of ${issue.values.map((value) => JSON.stringify(value)).join(', ')}`;
    default:
      return 'is not accepted';
  }
}

/** Zod's error map for client input (see above). */
export const inputErrorMap: z.core.$ZodErrorMap = (issue) => inputMessage(issue);
