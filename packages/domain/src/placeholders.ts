/**
 * Template placeholders an advertiser's tracker left unreplaced (`txid={transaction_id}`,
 * `cid=[CLICK_ID]`, `amount=%payout%`, `OPTIONAL`): a value that is one of them is no value, and
 * taking it would make a different click's conversion a duplicate. Returns the placeholder seen,
 * or null.
 */
const WRAPPED = [/\{[^{}]*\}/, /\[[^[\]]*\]/, /%[A-Za-z_][\w.-]*%/, /##[^#]+##/, /\$[A-Za-z_][\w.-]*\$/];
const WHOLE = /^\([^()]*\)$/;
const LITERALS = new Set(['replace', 'optional', 'null', 'undefined']);

export function unreplacedPlaceholder(value: string): string | null {
  const trimmed = value.trim();
  if (LITERALS.has(trimmed.toLowerCase())) return trimmed;
  if (WHOLE.test(trimmed)) return trimmed;
  for (const pattern of WRAPPED) {
    const match = pattern.exec(trimmed);
    if (match) return match[0];
  }
  return null;
}
