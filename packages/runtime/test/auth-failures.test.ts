// AUTH_FAILURE_LIMIT's counters, on the real Redis: postback and admin failures are counted
// apart, so noise against one kind of credential never blocks the other from the same address.
import { createProducerConnection, whenReady } from '@trackway/queues';
import { TEST_REDIS_URL, deleteRedisPrefix, randomPrefix } from '@trackway/testing';
import { authFailureGuard } from '../src/front-door';

const prefix = randomPrefix();
const redis = createProducerConnection(TEST_REDIS_URL);
beforeAll(() => whenReady(redis));
afterAll(async () => {
  redis.disconnect();
  await deleteRedisPrefix(prefix);
});

it('counts postback and admin failures of one address apart, and blocks only the kind over its limit', async () => {
  const postback = authFailureGuard({ redis, prefix, scope: 'postback', perMinute: 2 });
  const admin = authFailureGuard({ redis, prefix, scope: 'admin', perMinute: 2 });
  const address = '198.51.100.7';
  expect([await postback.fail(address), await postback.fail(address)]).toEqual([0, 0]);
  expect(await postback.fail(address)).toBeGreaterThan(0);
  expect(postback.blockedFor(address)).toBeGreaterThan(0);
  // The same address, the other kind: nothing counted yet, not blocked.
  expect(admin.blockedFor(address)).toBe(0);
  expect(await admin.fail(address)).toBe(0);
  // Another replica of the postback guard (same Redis) sees the shared count.
  const replica = authFailureGuard({ redis, prefix, scope: 'postback', perMinute: 2 });
  expect(await replica.fail(address)).toBeGreaterThan(0);
  // Another address is not blocked.
  expect(await postback.fail('198.51.100.8')).toBe(0);
});
