// What every Trackway HTTP answer carries (issue 8 §3.9), as a list of what is missing.
type Headers = Record<string, string | string[] | undefined>;

/**
 * `[]` when the answer has nosniff, a CSP with `frame-ancestors 'none'`, `Cache-Control:
 * no-store` (unless `cache: false`) and no `X-Powered-By`; otherwise what is wrong, one line each.
 */
export function securityHeaderProblems(headers: Headers, { cache = true } = {}): string[] {
  const get = (name: string) => {
    const value = Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];
    return Array.isArray(value) ? value.join(', ') : value;
  };
  const problems: string[] = [];
  if (get('x-content-type-options') !== 'nosniff') problems.push(`x-content-type-options: ${get('x-content-type-options')}`);
  if (!/(^|;)\s*frame-ancestors 'none'\s*(;|$)/.test(get('content-security-policy') ?? ''))
    problems.push(`content-security-policy: ${get('content-security-policy')}`);
  if (cache && get('cache-control') !== 'no-store') problems.push(`cache-control: ${get('cache-control')}`);
  if (get('x-powered-by') !== undefined) problems.push(`x-powered-by: ${get('x-powered-by')}`);
  return problems;
}
