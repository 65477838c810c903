// An offer's destination is a URL template: /click fills in its macros and redirects there.
// A macro may only ever fill the path, query or fragment: if it could reach the scheme,
// credentials, host or port, whoever builds a click link would choose where it redirects.

const DESTINATION_MACROS = ['click_id', 'offer_id', 'affiliate_id', 'sub1', 'sub2', 'sub3', 'sub4', 'sub5'] as const;
type DestinationMacro = (typeof DESTINATION_MACROS)[number];
export type DestinationValues = { click_id: string } & Partial<Record<DestinationMacro, string>>;

const MACRO = new RegExp(`\\{(${DESTINATION_MACROS.join('|')})\\}`, 'g');

// Values are percent-encoded (encodeURIComponent): none can bring a "/", "?", "#", "@" or ":".
const fill = (template: string, value: (name: DestinationMacro) => string) =>
  template.replace(MACRO, (_m, name: DestinationMacro) => encodeURIComponent(value(name)));

/** An http(s) URL, or null. */
export function parseHttpUrl(value: string): URL | null {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : null;
  } catch {
    return null;
  }
}

/** A URL with `query` (encoded `name=value` pairs) added to its query, before its fragment. */
export function appendQuery(url: string, query: string): string {
  if (query === '') return url;
  const hashAt = url.indexOf('#');
  const [base, hash] = hashAt === -1 ? [url, ''] : [url.slice(0, hashAt), url.slice(hashAt)];
  const separator = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?';
  return `${base}${separator}${query}${hash}`;
}

/** What a redirect's target is decided by: scheme, credentials, host and port. */
export const authorityOf = (url: URL) => `${url.protocol}//${url.username}:${url.password}@${url.host}`;

/**
 * Why a destination template cannot be used, or null when it can. Checked the way /click uses
 * it: the template is filled with two different values in every macro, and each result must
 * parse to the template's own scheme, credentials, host and port.
 */
export function destinationTemplateProblem(template: string): string | null {
  const parsed = parseHttpUrl(template);
  if (!parsed) return 'must be an http(s) URL; {click_id}, {offer_id}, {affiliate_id} and {sub1}…{sub5} are replaced in its path, query or fragment';
  const authority = authorityOf(parsed);
  for (const value of ['a', '0']) {
    const filled = parseHttpUrl(fill(template, () => value));
    if (!filled || authorityOf(filled) !== authority) {
      return 'macros may only be in the path, query or fragment, not in the scheme, credentials, host or port';
    }
  }
  return null;
}

/**
 * Where a click goes: the template with its macros filled in (percent-encoded), or
 * `click_id=…` appended when it has no {click_id}. Null when the result would leave the
 * template's scheme, credentials, host or port (a template stored before that was refused).
 */
export function destinationFor(template: string, values: DestinationValues): string | null {
  let hadClickMacro = false;
  let url = fill(template, (name) => {
    if (name === 'click_id') hadClickMacro = true;
    return values[name] ?? '';
  });
  if (!hadClickMacro) url = appendQuery(url, `click_id=${encodeURIComponent(values.click_id)}`);
  const before = parseHttpUrl(template);
  const after = parseHttpUrl(url);
  return before && after && authorityOf(before) === authorityOf(after) ? url : null;
}
