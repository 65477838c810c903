import {
  basePrefixOf,
  contractOf,
  deliveryShardName,
  deliveryShardNames,
  deliveryShardOf,
  endpointKeyPrefix,
  isDeliveryShard,
  keyBase,
  queueKeyPrefix,
} from '../src';

describe('key layout', () => {
  it.each([
    ['trackway', 'postbacks', '{trackway:postbacks}'],
    ['{trackway}', 'postbacks', '{trackway:postbacks}'],
    ['{tw}.prod', 'events', '{tw.prod:events}'],
    ['trackway', 'deliveries-3', '{trackway:deliveries-3}'],
  ])('QUEUE_PREFIX %p puts queue %p under the hash tag %p', (prefix, queue, expected) => {
    expect(queueKeyPrefix(prefix, queue)).toBe(expected);
  });

  it.each(['trackway', 'tw.prod', 'test-0a1b'])('finds QUEUE_PREFIX %p back from a queue made with it', (prefix) => {
    expect(basePrefixOf(queueKeyPrefix(prefix, 'postbacks'))).toBe(prefix);
    expect(basePrefixOf(queueKeyPrefix(prefix, 'deliveries-12'))).toBe(prefix);
  });

  it('reads `{trackway}` and `trackway` as one deployment', () => {
    expect([keyBase('{trackway}'), keyBase('trackway')]).toEqual(['trackway', 'trackway']);
  });

  it.each([
    [0, 'deliveries'],
    [1, 'deliveries-1'],
    [63, 'deliveries-63'],
  ])('names shard %p %p', (shard, name) => {
    expect(deliveryShardName(shard)).toBe(name);
    expect(isDeliveryShard(name)).toBe(true);
    expect(contractOf(name)).toBe('deliveries');
  });

  it.each(['events', 'deliveries-0', 'deliveries-', 'deliveries-01', 'deliveriesx', 'postbacks'])('%p is no delivery shard', (name) => {
    expect(isDeliveryShard(name)).toBe(false);
  });

  it('keeps the name `deliveries` for one shard, so the default is the queue it always was', () => {
    expect(deliveryShardNames(1)).toEqual(['deliveries']);
    expect(deliveryShardNames(3)).toEqual(['deliveries', 'deliveries-1', 'deliveries-2']);
  });
});

describe('deliveryShardOf', () => {
  // Fixed values: a change here moves endpoints between shards on upgrade (FNV-1a 32 of the id, mod shards).
  it.each([
    ['ep_01JD8Z6Q61A2C4E6G8J0L2N4Q6', [0, 1, 0, 3, 3, 19]],
    ['ep_01JD8Z6Q61A2C4E6G8J0L2N4Q7', [0, 0, 1, 0, 0, 0]],
    ['ep_1', [0, 0, 0, 0, 4, 36]],
    ['ep_2', [0, 1, 0, 1, 5, 29]],
    ['pp_01JD8Z6Q64E6G8J0L2N4Q6S8U0', [0, 1, 2, 1, 5, 53]],
  ])('puts %p on shards %p of 1, 2, 3, 4, 8, 64', (id, shards) => {
    expect([1, 2, 3, 4, 8, 64].map((n) => deliveryShardOf(id, n))).toEqual(shards);
  });

  it.each([
    ['', 64, 0x811c9dc5 % 64],
    ['a', 64, 0xe40c292c % 64],
    ['foobar', 64, 0xbf9cf968 % 64],
    ['foobar', 7, 0xbf9cf968 % 7],
  ])('is FNV-1a: %p mod %p', (id, shards, expected) => {
    expect(deliveryShardOf(id, shards)).toBe(expected);
  });

  it('spreads endpoint ids over every shard', () => {
    const shards = 8;
    const ids = Array.from({ length: 4_000 }, (_, i) => `ep_01JD8Z6Q61A2C4E6G8J0L${String(i).padStart(5, '0')}`);
    const counts = Array(shards).fill(0);
    for (const id of ids) counts[deliveryShardOf(id, shards)] += 1;
    // 500 expected per shard: a fair spread stays within ±25 %.
    for (const n of counts) expect(n).toBeGreaterThan(375);
    for (const n of counts) expect(n).toBeLessThan(625);
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses %p shards', (shards) => {
    expect(() => deliveryShardOf('ep_1', shards)).toThrow(RangeError);
  });

  it("keeps an endpoint's isolation keys under its shard's tag", () => {
    expect(endpointKeyPrefix('{trackway}', 4, 'ep_01JD8Z6Q61A2C4E6G8J0L2N4Q6')).toBe('{trackway:deliveries-3}');
    expect(endpointKeyPrefix('trackway', 1, 'ep_01JD8Z6Q61A2C4E6G8J0L2N4Q6')).toBe('{trackway:deliveries}');
  });
});
