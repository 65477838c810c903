import { monotonicFactory } from 'ulidx';

// Prefixed ULIDs: sortable by creation time (so keyset pagination on id is newest-first by
// construction) and self-describing in logs and support tickets.
export const ID_PREFIX = {
  postback: 'pb',
  conversion: 'cnv',
  commission: 'com',
  fraudFlag: 'ff',
  event: 'evt',
  endpoint: 'ep',
  delivery: 'dlv',
  payout: 'po',
} as const;

const ulid = monotonicFactory();

export function newId(kind: keyof typeof ID_PREFIX): string {
  return `${ID_PREFIX[kind]}_${ulid()}`;
}
