// Partner postbacks written in a tracker's dialect, read back by the same preset: one owner per
// dialect. Each preset's query is checked as a string (a wrong name fails here), then read by
// ingest's decision (decidePostback) with that preset's format, as if the tracker had posted it.
import {
  CONVERSION_STATUSES,
  type ConversionStatus,
  type IntakeAdvertiser,
  PARTNER_MACROS,
  PARTNER_PRESET_NAMES,
  PRESETS,
  type PartnerMacro,
  type PartnerPresetName,
  clickOrderKey,
  decidePostback,
  presetQuery,
  presetStatusWord,
  presetWritesStatus,
  resolveFormat,
  statusFor,
} from '../src';

const VALUES: Record<Exclude<PartnerMacro, 'status'>, string> = {
  click_id: 'AQAAAAEAAAAHZ0k2AJx1n3Qd8fV0m2Yc5Jk3a1Rw',
  sub1: 'aff-click_42',
  sub2: 's2',
  sub3: 's3',
  sub4: 's4',
  sub5: 's5',
  conversion_id: 'cnv_1',
  event: 'sale',
  event_type: 'conversion.approved',
  payout: '5.00',
  payout_currency: 'USD',
  offer_id: '7',
  affiliate_id: '3',
  timestamp: '2026-12-07T09:00:00Z',
  amount: '49.90',
};

/** The query Trackway sends the preset's tracker for a conversion with this status. */
function written(preset: PartnerPresetName, status: ConversionStatus): string {
  const pairs = presetQuery(preset).map(({ name, macro }): [string, string] => [name, macro === 'status' ? presetStatusWord(preset, status) : VALUES[macro]]);
  return new URLSearchParams(pairs).toString();
}

// Per preset: its query with STATUS for the status word (none where the tracker reads no status), and the words.
const EXPECTED: Record<PartnerPresetName, { query: string; words: Record<ConversionStatus, string> | null }> = {
  voluum: { query: 'cid=aff-click_42&txid=cnv_1&payout=5.00&currency=USD', words: null },
  binom: {
    query: 'cnv_id=aff-click_42&payout=5.00&cnv_currency=USD&cnv_status=STATUS',
    words: { pending: 'pending', approved: 'approved', rejected: 'rejected' },
  },
  keitaro: { query: 'subid=aff-click_42&tid=cnv_1&payout=5.00&currency=USD&status=STATUS', words: { pending: 'lead', approved: 'sale', rejected: 'rejected' } },
  redtrack: {
    query: 'clickid=aff-click_42&rdtk_event_id=cnv_1&sum=5.00&status=STATUS',
    words: { pending: 'Pending', approved: 'Approved', rejected: 'Declined' },
  },
  everflow: { query: 'transaction_id=aff-click_42&order_id=cnv_1&amount=5.00&currency=USD', words: null },
  affise: { query: 'clickid=aff-click_42&action_id=cnv_1&sum=5.00&status=STATUS', words: { pending: '2', approved: '1', rejected: '3' } },
  bemob: { query: 'cid=aff-click_42&txid=cnv_1&payout=5.00&status=STATUS', words: { pending: 'pending', approved: 'approved', rejected: 'rejected' } },
};

const cases = PARTNER_PRESET_NAMES.flatMap((preset) => CONVERSION_STATUSES.map((status) => [preset, status] as const));

describe('presetQuery and presetStatusWord', () => {
  it('cover every partner preset, each once', () => {
    expect(Object.keys(EXPECTED).sort()).toEqual([...PARTNER_PRESET_NAMES].sort());
  });

  test.each(cases)('%s, %s: the query is the tracker’s documented one', (preset, status) => {
    const { query, words } = EXPECTED[preset];
    expect(written(preset, status)).toBe(words ? query.replace('STATUS', words[status]) : query);
    expect(presetWritesStatus(preset)).toBe(words !== null);
    // A preset that reads no status is given Trackway's own word, which it never writes.
    expect(presetStatusWord(preset, status)).toBe(words ? words[status] : status);
  });

  test.each(PARTNER_PRESET_NAMES)('%s fills the click from sub1 and writes only macros that exist, each name once', (preset) => {
    const query = presetQuery(preset);
    expect(query[0]).toEqual({ name: expect.any(String), macro: 'sub1' });
    for (const { macro } of query) expect(PARTNER_MACROS).toContain(macro);
    const names = query.map(({ name }) => name);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('one owner per dialect', () => {
  test.each(PARTNER_PRESET_NAMES)('%s writes the names it reads: its first name for each field, else Trackway’s own', (preset) => {
    const { params, writes } = PRESETS[preset];
    const format = resolveFormat({ preset });
    const names = presetQuery(preset).map(({ name }) => name);
    expect(names).toEqual(writes.fields.map(([field]) => params[field][0] ?? field));
    writes.fields.forEach(([field], i) => {
      expect({ preset, field, reads: format.names[field].includes(names[i]) }).toEqual({ preset, field, reads: true });
    });
  });

  test.each(cases)('%s reads its %s word back as that status', (preset, status) => {
    if (!presetWritesStatus(preset)) return;
    expect(statusFor(presetStatusWord(preset, status), resolveFormat({ preset }))).toBe(status);
  });

  test.each(PARTNER_PRESET_NAMES)('%s writes three different status words, or none', (preset) => {
    const words = CONVERSION_STATUSES.map((status) => presetStatusWord(preset, status));
    expect(new Set(words.map((w) => w.toLowerCase())).size).toBe(3);
    expect(PRESETS[preset].writes.status_words === undefined).toBe(!presetWritesStatus(preset));
  });
});

describe('a partner postback read back by ingest with the same preset', () => {
  const advertiser = (preset: PartnerPresetName): IntakeAdvertiser => ({
    id: 1,
    status: 'active',
    requireSignedPostbacks: false,
    hasSigningSecret: false,
    format: resolveFormat({ preset }),
    secrets: [],
  });

  test.each(cases)('%s, %s', (preset, status) => {
    const query = Object.fromEntries(new URLSearchParams(written(preset, status)));
    const decision = decidePostback({
      method: 'GET',
      query,
      advertiser: advertiser(preset),
      address: '203.0.113.7',
      addressAllowed: true,
      signature: { sent: false },
      receivedAt: new Date('2026-12-07T09:00:00.000Z'),
    });
    if (!decision.accepted) throw new Error(JSON.stringify(decision.refusal));
    const { params } = PRESETS[preset];
    const writes = new Set(PRESETS[preset].writes.fields.map(([field]) => field));
    // Every parameter written is read: none is left over.
    expect(decision.ignoredNames).toEqual([]);
    expect(decision.postback).toMatchObject({
      clickId: VALUES.sub1,
      // Binom reads no order reference: the conversion is keyed by its click.
      orderId: params.order_id.length > 0 ? VALUES.conversion_id : clickOrderKey(VALUES.sub1),
      amount: VALUES.payout,
      // A tracker that reads no status takes every postback as a conversion.
      status: presetWritesStatus(preset) ? status : 'approved',
      event: 'conversion',
    });
    expect(decision.postback.currency).toBe(writes.has('currency') ? VALUES.payout_currency : undefined);
  });
});
