import { MAX_NESTING, PRESETS } from '@trackway/domain';
import { isUtf8 } from 'node:buffer';
import querystring from 'node:querystring';
import { type FieldErrors, badRequest, parseQueryString } from '@trackway/http';
import { visit } from 'jsonc-parser';

/**
 * Parameter names advertisers already send, mapped to Trackway's: the `trackway` preset, what
 * an advertiser without a postback_format is read with. docs/postbacks.md's alias table is this one.
 */
export const POSTBACK_ALIASES = PRESETS.trackway.params;

// A percent-encoded byte of 0x80 or more, or a raw non-ASCII character: the only ways to send
// text that may not be UTF-8.
const NON_ASCII = /%[89a-fA-F]|[^\x00-\x7f]/;

/**
 * The query string, parsed as the api parses it (parseQueryString: more than 1,000 parameters
 * is a 400, not the rest dropped), refusing too what node:querystring would alter silently:
 * bytes that are not UTF-8 (it makes them U+FFFD, so distinct orders would collide) and raw
 * non-ASCII characters.
 */
export function parseQuery(raw: string): Record<string, string | string[] | undefined> {
  refuseNonUtf8(raw, false);
  return parseQueryString(raw);
}

/** Throws a 400 naming each parameter whose percent-encoded bytes are not UTF-8 (or that holds a raw non-ASCII character, unless allowed). */
function refuseNonUtf8(raw: string, allowRaw: boolean): void {
  if (!NON_ASCII.test(raw)) return;
  const fields: FieldErrors = {};
  for (const pair of raw.split('&')) {
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    const value = eq === -1 ? '' : pair.slice(eq + 1);
    const decodedName = strictDecode(name, allowRaw);
    if (decodedName === null || strictDecode(value, allowRaw) === null) {
      fields[decodedName ?? querystring.unescape(name)] = allowRaw
        ? 'must be UTF-8 text (its percent-encoded bytes are not UTF-8)'
        : 'must be percent-encoded UTF-8 (a byte sequence that is not UTF-8, or a raw non-ASCII character, was sent)';
    }
  }
  if (Object.keys(fields).length > 0) throw badRequest(fields, 'The parameters are not valid UTF-8.');
}

/** A component decoded as UTF-8, or null when its bytes are not UTF-8 (a stray "%" stays literal, as querystring leaves it). */
function strictDecode(component: string, allowRaw: boolean): string | null {
  if (!allowRaw && /[^\x00-\x7f]/.test(component)) return null;
  try {
    return decodeURIComponent(component.replace(/\+/g, ' ').replace(/%(?![0-9a-fA-F]{2})/g, '%25'));
  } catch {
    return null;
  }
}

/**
 * A body's bytes, checked before its parsed fields are used: bytes that are not UTF-8 (the
 * parser made them U+FFFD) and, in JSON, a key given twice (JSON.parse keeps the last) are a 400
 * naming the field. Returns a JSON body's top-level numbers as they were written (name → text),
 * so that a field is read from its text and never through a float.
 */
export function checkBody(raw: Buffer, parsed: Record<string, unknown> | undefined, json: boolean): Record<string, string> {
  if (!isUtf8(raw)) {
    const named = Object.entries(parsed ?? {}).filter(([name, value]) => name.includes('\uFFFD') || (typeof value === 'string' && value.includes('\uFFFD')));
    const fields: FieldErrors = {};
    for (const [name] of named) fields[name] = 'must be UTF-8 text (the body holds bytes that are not UTF-8)';
    if (named.length === 0) fields._ = 'the body holds bytes that are not UTF-8';
    throw badRequest(fields, 'The request body is not valid UTF-8.');
  }
  if (!json) {
    // A form body decodes its percent-escapes as the query string does.
    refuseNonUtf8(raw.toString('utf8'), true);
    return {};
  }
  // Before anything walks it recursively (a 12 KB body can nest 6,000 levels).
  if (nestsDeeper(parsed, MAX_NESTING)) throw badRequest({ _: `the JSON body nests deeper than ${MAX_NESTING} levels` }, 'The JSON body nests too deep.');
  const { duplicates, numbers } = readJsonText(raw.toString('utf8'));
  if (duplicates.length > 0) {
    throw badRequest(Object.fromEntries(duplicates.map((name) => [name, 'given more than once in the JSON body'])), 'The JSON body has a key more than once.');
  }
  return numbers;
}

/** Whether a parsed JSON value nests deeper than `levels` (walking no deeper than that). */
function nestsDeeper(value: unknown, levels: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (levels === 0) return true;
  return Object.values(value).some((inner) => nestsDeeper(inner, levels - 1));
}

/** Keys that appear twice in one object of a JSON text, and the top-level object's numbers as written. */
function readJsonText(text: string): { duplicates: string[]; numbers: Record<string, string> } {
  const objects: Set<string>[] = [];
  const duplicates: string[] = [];
  const numbers: Record<string, string> = {};
  visit(text, {
    onObjectBegin: () => void objects.push(new Set()),
    onObjectEnd: () => void objects.pop(),
    onObjectProperty: (name) => {
      const keys = objects[objects.length - 1];
      if (!keys) return;
      if (keys.has(name)) duplicates.push(name);
      else keys.add(name);
    },
    onLiteralValue: (value, offset, length, _line, _character, path) => {
      // path() copies the parser's path: only numbers need it.
      if (typeof value !== 'number') return;
      const [name, ...below] = path();
      if (typeof name === 'string' && below.length === 0 && name !== '__proto__') numbers[name] = text.slice(offset, offset + length);
    },
  });
  return { duplicates, numbers };
}
