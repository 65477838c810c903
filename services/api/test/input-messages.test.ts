// Every refusal of a client's input names the field and the rule in the project's words: bad
// values walked over every route's body fields and query parameters (from the route
// definitions, so a new route is walked too), and no message may be zod's default wording.
import request from 'supertest';
import { z } from 'zod';
import { ADMIN_RESOURCES } from '../src/resources';
import type { Route } from '../src/route';
import { type ApiHarness, startApi } from './helpers';

let h: ApiHarness;
beforeAll(async () => {
  h = await startApi();
});
afterAll(() => h.close());

/** zod's own wording ("Too small: expected number to be >=1", "Invalid input: expected string, received undefined"…). */
const ZOD_WORDING =
  /Too small|Too big|Invalid input|Invalid option|Invalid string|Invalid (type|key|element|union)|Unrecognized key|expected .* to (be|have)|expected [a-z]+, received|received [a-z]+$/i;

const BAD_VALUES: unknown[] = [null, 0, -1, 1.5, 1e20, '', '   ', 'x', 'x'.repeat(5000), true, [], [1], {}, { a: 1 }];
const BAD_QUERY_VALUES = ['', ' ', 'abc', '0', '-1', '1.5', '1e99', '99999999999', 'x'.repeat(300)];

/** A path whose id parses (so the input is read), naming nothing. */
function pathOf(r: Route): string {
  if (!r.params) return r.path;
  const example = (r.params.schema.shape.id as z.ZodType).meta()?.example;
  return r.path.replace('{id}', typeof example === 'string' ? example.replace(/.$/, 'Z') : '2147483000');
}

/** The fields of a body schema, nested objects' too (dotted), as far as they are objects. */
function fieldPaths(schema: z.ZodType, prefix = ''): string[] {
  const inner = schema instanceof z.ZodOptional || schema instanceof z.ZodNullable ? schema.unwrap() : schema;
  if (!(inner instanceof z.ZodObject)) return [];
  return Object.entries(inner.shape as Record<string, z.ZodType>).flatMap(([name, field]) => [`${prefix}${name}`, ...fieldPaths(field, `${prefix}${name}.`)]);
}

const setAt = (path: string, value: unknown): Record<string, unknown> =>
  path.split('.').reduceRight<unknown>((inner, key) => ({ [key]: inner }), value) as Record<string, unknown>;

const routes = ADMIN_RESOURCES.flatMap((res) => res.routes);

describe('refusals name the field and the rule, never in zod’s words', () => {
  it('walks every body field and query parameter of every route', async () => {
    const leaks: string[] = [];
    let refusals = 0;
    const check = async (r: Route, label: string, send: () => request.Test) => {
      const res = await send();
      if (res.status >= 500) leaks.push(`${r.method.toUpperCase()} ${r.path} ${label}: answered ${res.status}`);
      if (res.status !== 400) return;
      refusals += 1;
      const { message, fields } = res.body.error as { message: string; fields?: Record<string, string> };
      for (const [field, reason] of Object.entries({ _message: message, ...fields })) {
        if (ZOD_WORDING.test(reason) || reason.trim() === '') leaks.push(`${r.method.toUpperCase()} ${r.path} ${label}: ${field}: ${reason}`);
      }
    };
    for (const r of routes) {
      const path = pathOf(r);
      const call = () => request(h.app)[r.method](path).set(h.auth);
      if (r.body) {
        await check(r, 'no body', () => call());
        for (const whole of [null, [], 'x', 1, {}])
          await check(r, `body ${JSON.stringify(whole)}`, () => call().set('content-type', 'application/json').send(JSON.stringify(whole)));
        for (const field of fieldPaths(r.body)) {
          for (const value of BAD_VALUES) await check(r, `${field}=${JSON.stringify(value).slice(0, 20)}`, () => call().send(setAt(field, value)));
        }
        await check(r, 'an unknown field', () => call().send({ colour: 'red' }));
      }
      if (r.query) {
        for (const name of Object.keys(r.query.shape)) {
          for (const value of BAD_QUERY_VALUES) await check(r, `?${name}=${value.slice(0, 20)}`, () => call().query({ [name]: value }));
        }
      }
    }
    expect(leaks).toEqual([]);
    // The walk reached the parsers: many refusals, on bodies and queries alike.
    expect(refusals).toBeGreaterThan(500);
  }, 120_000);

  it('says what is wrong with a present value, and "is required" only of a missing one', async () => {
    const named = async (body: object) => (await request(h.app).post('/v1/affiliates').set(h.auth).send(body).expect(400)).body.error.fields;
    expect(await named({})).toEqual({ name: 'is required' });
    expect(await named({ name: '' })).toEqual({ name: 'must not be empty' });
    expect(await named({ name: '   ' })).toEqual({ name: 'must not be blank (only spaces)' });
    expect(await named({ name: 7 })).toEqual({ name: 'must be a string, not a whole number' });
    expect(await named({ name: 'x', colour: 'red' })).toEqual({ colour: 'is not a field this request takes' });
    const limit = async (value: string) => (await request(h.app).get(`/v1/affiliates?limit=${value}`).set(h.auth).expect(400)).body.error.fields;
    expect(await limit('0')).toEqual({ limit: 'must be at least 1' });
    expect(await limit('201')).toEqual({ limit: 'must be at most 200' });
    expect(await limit('abc')).toEqual({ limit: 'must be a number' });
    const status = await request(h.app).get('/v1/affiliates?status=paused').set(h.auth).expect(400);
    expect(status.body.error.fields).toEqual({ status: 'must be one of "active", "inactive"' });
  });
});
