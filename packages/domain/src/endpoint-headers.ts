import type { SecretBox } from './secrets-box';

/**
 * What reads show for every custom header value. Not printable ASCII, so the API refuses it
 * as a value: a client that sends back what it read cannot overwrite a secret with the mask.
 */
export const MASKED_HEADER_VALUE = '••••';

export type HeaderMap = Record<string, string>;

/** An endpoint's two header columns: sealed values, and plaintext from before sealing. */
export interface EndpointHeaderColumns {
  sealedHeaders: unknown;
  plaintextHeaders: unknown;
}

const asMap = (value: unknown): HeaderMap => (value && typeof value === 'object' && !Array.isArray(value) ? (value as HeaderMap) : {});

/** Each value sealed on its own; the names stay readable. */
export function sealHeaders(box: SecretBox, headers: HeaderMap): HeaderMap {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, box.seal(value)]));
}

// Plaintext left from before sealing wins while it is there: only an api older than sealing
// writes it (during a rolling upgrade), so it is the newer of the two.
const current = (row: EndpointHeaderColumns) => {
  const plaintext = asMap(row.plaintextHeaders);
  return Object.keys(plaintext).length > 0 ? { sealed: false, map: plaintext } : { sealed: true, map: asMap(row.sealedHeaders) };
};

/** The headers an endpoint's requests carry, in clear (for the delivery worker only). */
export function openHeaders(box: SecretBox, row: EndpointHeaderColumns): HeaderMap {
  const { sealed, map } = current(row);
  return sealed ? Object.fromEntries(Object.entries(map).map(([name, value]) => [name, box.open(value)])) : { ...map };
}

/** The headers as every read shows them: names, and MASKED_HEADER_VALUE for each value. */
export function maskHeaders(row: EndpointHeaderColumns): HeaderMap {
  return Object.fromEntries(Object.keys(current(row).map).map((name) => [name, MASKED_HEADER_VALUE]));
}
