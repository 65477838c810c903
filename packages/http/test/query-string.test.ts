import querystring from 'node:querystring';
import { type HttpError, MAX_QUERY_PARAMETERS, parseQueryString } from '../src';

const pairs = (n: number) => Array.from({ length: n }, (_, i) => `p${i}=${i}`).join('&');

describe('parseQueryString', () => {
  it.each([
    ['nothing', undefined, {}],
    ['an empty string', '', {}],
    ['one pair', 'a=1', { a: '1' }],
    ['a repeated name, as an array', 'a=1&a=2', { a: ['1', '2'] }],
    ['brackets, kept as part of the name', 'order_id[$ne]=1', { 'order_id[$ne]': '1' }],
    ['percent-encoding and plus signs', 'q=a%20b+c&%C3%A9=1', { q: 'a b c', é: '1' }],
  ])('parses %s as Express\'s "simple" parser does', (_name, query, expected) => {
    expect(parseQueryString(query)).toEqual(expected);
    if (query) expect(parseQueryString(query)).toEqual({ ...querystring.parse(query) });
  });

  it(`keeps all of ${MAX_QUERY_PARAMETERS} parameters, and empty pairs do not count`, () => {
    const parsed = parseQueryString(`${pairs(MAX_QUERY_PARAMETERS)}&&&`);
    expect(Object.keys(parsed)).toHaveLength(MAX_QUERY_PARAMETERS);
    expect(parsed[`p${MAX_QUERY_PARAMETERS - 1}`]).toBe(String(MAX_QUERY_PARAMETERS - 1));
  });

  it('refuses one parameter more with a 400, where node:querystring would drop it', () => {
    const query = pairs(MAX_QUERY_PARAMETERS + 1);
    expect(Object.keys(querystring.parse(query))).toHaveLength(MAX_QUERY_PARAMETERS);
    expect(() => parseQueryString(query)).toThrow(expect.objectContaining({ status: 400, code: 'too_many_parameters' }) as HttpError);
  });
});
