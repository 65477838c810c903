// What Postgres can store and a client can mean: no NUL or other C0 control characters (text
// columns refuse NUL), and no unpaired surrogates (not valid UTF-8, refused by jsonb).
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** The reason a piece of client text cannot be stored, or null when it can. */
export function textProblem(value: string): string | null {
  if (!value.isWellFormed()) return 'must be valid Unicode text';
  if (CONTROL.test(value)) return 'must not contain control characters';
  return null;
}
