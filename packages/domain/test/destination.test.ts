import fc from 'fast-check';
import { type DestinationValues, destinationFor, destinationTemplateProblem } from '../src';

const OUTSIDE = 'macros may only be in the path, query or fragment, not in the scheme, credentials, host or port';
const NOT_HTTP = expect.stringMatching(/^must be an http\(s\) URL/);

describe('destinationTemplateProblem', () => {
  it.each([
    ['a plain URL', 'https://shop.example/'],
    ['macros in the query', 'https://shop.example/land?c={click_id}&s={sub1}'],
    ['macros in the path', 'https://shop.example/{offer_id}/{affiliate_id}'],
    ['a macro in the fragment', 'https://shop.example/#{sub5}'],
    ['a macro right after the host, as a query', 'https://shop.example?{sub1}'],
    ['a backslash before the macro (parsed as "/")', 'https://shop.example\\{sub1}'],
    ['a port and credentials without macros', 'https://u:p@shop.example:8443/{sub2}'],
    ['an unknown macro in the host (never replaced)', 'https://{SUB1}.example/'],
  ])('accepts %s', (_name, template) => {
    expect(destinationTemplateProblem(template)).toBeNull();
  });

  it.each([
    ['the whole host', 'https://{sub1}/', OUTSIDE],
    ['the end of the host', 'https://shop.example{sub1}/', OUTSIDE],
    ['a subdomain', 'https://{sub1}.shop.example/', OUTSIDE],
    ['the host with no path', 'https://shop.example{click_id}', OUTSIDE],
    ['the user name', 'https://{sub1}@shop.example/', OUTSIDE],
    ['the password', 'https://u:{sub1}@shop.example/', OUTSIDE],
    ['the host after "https:" without slashes', 'https:{sub1}/', OUTSIDE],
    ['the host behind a line feed the parser drops', 'https:/\n/{sub1}/', OUTSIDE],
    ['the port', 'https://shop.example:{sub1}/', NOT_HTTP],
    ['the scheme', '{sub1}://shop.example/', NOT_HTTP],
    ['part of the scheme', 'http{sub1}://shop.example/', NOT_HTTP],
    ['another scheme', 'javascript:alert(1)//{sub1}', NOT_HTTP],
    ['a URL without a scheme', 'shop.example/{click_id}', NOT_HTTP],
  ])('refuses a macro in %s', (_name, template, problem) => {
    expect(destinationTemplateProblem(template)).toEqual(problem);
  });
});

describe('destinationFor', () => {
  const values: DestinationValues = { click_id: 'CID', offer_id: '7', affiliate_id: '9', sub1: 'a b' };

  it.each([
    ['fills macros, percent-encoded', 'https://shop.example/land?c={click_id}&s={sub1}', values, 'https://shop.example/land?c=CID&s=a%20b'],
    ['fills path macros', 'https://shop.example/{offer_id}/{affiliate_id}?c={click_id}', values, 'https://shop.example/7/9?c=CID'],
    ['leaves a missing sub empty', 'https://shop.example/?c={click_id}&s={sub2}', values, 'https://shop.example/?c=CID&s='],
    ['appends click_id without a {click_id} macro', 'https://shop.example/p', values, 'https://shop.example/p?click_id=CID'],
    ['appends it to a query', 'https://shop.example/p?x=1', values, 'https://shop.example/p?x=1&click_id=CID'],
    ['appends it after a trailing "?" or "&"', 'https://shop.example/p?x=1&', values, 'https://shop.example/p?x=1&click_id=CID'],
    ['appends it before the fragment', 'https://shop.example/p?x=1#top', values, 'https://shop.example/p?x=1&click_id=CID#top'],
    [
      'encodes characters that would end the path or query',
      'https://shop.example/{sub1}',
      { click_id: 'C', sub1: '/../x?y#z@w:1' },
      'https://shop.example/%2F..%2Fx%3Fy%23z%40w%3A1?click_id=C',
    ],
  ])('%s', (_name, template, given, expected) => {
    expect(destinationFor(template, given)).toBe(expected);
  });

  it.each([
    ['a host macro', 'https://{sub1}/?c={click_id}', { click_id: 'C', sub1: 'evil.example' }],
    ['a host macro left empty', 'https://shop.example{sub1}/', { click_id: 'C' }],
    ['a host-suffix macro', 'https://shop.example{sub1}/', { click_id: 'C', sub1: '.evil.example' }],
    ['a user-name macro', 'https://{sub1}@shop.example/', { click_id: 'C', sub1: 'x' }],
    ['a port macro', 'https://shop.example:{sub1}/', { click_id: 'C', sub1: '8080' }],
  ])('never leaves the template origin: %s gives null', (_name, template, given) => {
    expect(destinationFor(template, given as DestinationValues)).toBeNull();
  });

  it('never changes the host, whatever the values', () => {
    const nasty = ['//evil.example', '@evil.example', 'evil.example/', '\\\\evil.example', '%2F%2Fevil.example', '?x', '#y', ':80', '\r\nLocation: x'];
    for (const sub1 of nasty) {
      for (const template of [
        'https://shop.example/{sub1}',
        'https://shop.example/?s={sub1}',
        'https://shop.example/#{sub1}',
        'https://shop.example{sub1}',
        'https://{sub1}@shop.example/',
      ]) {
        const url = destinationFor(template, { click_id: 'C', sub1 });
        if (url !== null) expect(new URL(url).host).toBe('shop.example');
      }
    }
  });

  it('keeps the host of every accepted template, for any values (property)', () => {
    const template = fc.constantFrom(
      'https://shop.example/{sub1}/{sub2}',
      'https://shop.example/?a={sub1}&b={sub2}&c={click_id}',
      'https://shop.example#{sub1}{sub2}',
      'https://shop.example?{sub1}',
    );
    fc.assert(
      fc.property(template, fc.string({ unit: 'binary' }), fc.string(), (t, sub1, sub2) => {
        expect(destinationTemplateProblem(t)).toBeNull();
        const url = destinationFor(t, { click_id: 'C', sub1: sub1.toWellFormed(), sub2 });
        expect(url).not.toBeNull();
        expect(new URL(url!).host).toBe('shop.example');
      }),
      { numRuns: 2000 },
    );
  });
});
