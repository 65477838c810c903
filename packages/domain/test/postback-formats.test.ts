import {
  PRESETS,
  PRESET_NAMES,
  POSTBACK_FIELDS,
  clickOrderKey,
  postbackFormatProblems,
  resolveFormat,
  sentOrderId,
  statusFor,
  withDecimalPoint,
} from '../src/postback-formats';

describe('resolveFormat', () => {
  it('reads an advertiser without a format with the trackway preset: Trackway’s name first, then the aliases', () => {
    const format = resolveFormat(null);
    expect(format).toEqual(resolveFormat({ preset: 'trackway' }));
    expect(format.names.click_id).toEqual(['click_id', 'transaction_id', 'clickid', 'cid', 'click']);
    expect(format.names.order_id).toEqual(['order_id', 'adv_sub', 'txid', 'tid', 'order', 'orderid']);
    expect(format).toMatchObject({ preset: 'trackway', decimalComma: false, dedupe: 'order_id', statusValues: {} });
  });

  test.each([
    // preset, field, the names it reads (Trackway's own name first unless the preset reads it for another field)
    ['keitaro', 'order_id', ['order_id', 'tid']],
    ['keitaro', 'click_id', ['click_id', 'subid', 'sub_id']],
    ['offer18', 'click_id', ['click_id', 'tid']],
    ['offer18', 'amount', ['amount', 'sale']],
    ['binom', 'order_id', ['order_id']],
    ['cake', 'click_id', ['click_id', 'r']],
    ['everflow', 'event', ['event', 'adv_event_id', 'event_id']],
    ['redtrack', 'event', ['event', 'type']],
    ['bemob', 'click_id', ['click_id', 'cid']],
    ['bemob', 'order_id', ['order_id', 'txid']],
    ['bemob', 'amount', ['amount', 'payout']],
    ['bemob', 'status', ['status']],
  ] as const)('%s reads %s as %p', (preset, field, names) => {
    expect(resolveFormat({ preset }).names[field]).toEqual(names);
  });

  it('gives no name to two fields in any preset, and names its documentation for every tracker', () => {
    for (const preset of PRESET_NAMES) {
      const names = POSTBACK_FIELDS.flatMap((field) => resolveFormat({ preset }).names[field]);
      expect(new Set(names).size).toBe(names.length);
      expect(postbackFormatProblems({ preset, params: { ...PRESETS[preset].params } as never })).toEqual({});
      if (preset !== 'trackway') expect(PRESETS[preset].source).toMatch(/^https:\/\//);
    }
  });

  it('replaces a preset’s names for a field, merges status values over the preset’s, and takes decimal_comma and dedupe', () => {
    const format = resolveFormat({
      preset: 'affise',
      params: { amount: ['rev'] },
      status_values: { ' Seven ': 'rejected', '1': 'pending' },
      decimal_comma: true,
      dedupe: 'order_id',
    });
    expect(format.names.amount).toEqual(['amount', 'rev']);
    expect(format.names.click_id).toEqual(['click_id', 'clickid']);
    expect(format.statusValues).toEqual({ '1': 'pending', '2': 'pending', '3': 'rejected', '5': 'pending', seven: 'rejected' });
    expect(format).toMatchObject({ decimalComma: true, dedupe: 'order_id' });
  });

  it('leaves Trackway’s own name out of a field when the format reads it for another', () => {
    expect(resolveFormat({ preset: 'trackway', params: { order_id: ['event'] } }).names.event).toEqual(['goal', 'event_name']);
  });
});

describe('postbackFormatProblems', () => {
  test.each([
    [{ click_id: ['cid'], order_id: ['cid'] }, { 'postback_format.params.order_id': '"cid" is read for click_id too' }],
    [{ event: ['key'] }, { 'postback_format.params.event': '"key" is the postback key\'s parameter' }],
    [{ amount: ['order_id'] }, { 'postback_format.params.amount': '"order_id" is Trackway\'s name for order_id' }],
    [{ amount: ['a b', 'x'.repeat(65)] }, { 'postback_format.params.amount': '"a b" is not a parameter name (letters, digits, _ . -, at most 64)' }],
    [{ amount: ['amount', 'sum'], order_id: ['tid'] }, {}],
  ])('%p → %p', (params, problems) => {
    expect(postbackFormatProblems({ preset: 'trackway', params })).toEqual(problems);
  });

  it('refuses an override that takes a name the preset reads for another field, unless that field is overridden too', () => {
    expect(postbackFormatProblems({ preset: 'keitaro', params: { click_id: ['tid'] } })).toEqual({
      'postback_format.params.click_id': '"tid" is read for order_id too (by the keitaro preset; override order_id as well)',
    });
    expect(postbackFormatProblems({ preset: 'keitaro', params: { click_id: ['tid'], order_id: ['txn'] } })).toEqual({});
  });

  it('refuses status values that are one word in two cases, and __proto__', () => {
    expect(postbackFormatProblems({ preset: 'trackway', status_values: { Sale: 'rejected', sale: 'approved' } })).toEqual({
      'postback_format.status_values.sale': 'is "Sale" in another case: status values are read in any case',
    });
    expect(postbackFormatProblems({ preset: 'trackway', status_values: JSON.parse('{"__proto__": "approved"}') })).toEqual({
      'postback_format.status_values.__proto__': 'is not a status value',
    });
  });
});

describe('statusFor', () => {
  const affise = resolveFormat({ preset: 'affise' });
  const mapped = resolveFormat({ preset: 'trackway', status_values: { Approved: 'pending', '9': 'rejected' } });
  test.each([
    [affise, '1', 'approved'],
    [affise, '2', 'pending'],
    [affise, '3', 'rejected'],
    [affise, '5', 'pending'],
    [affise, '4', null],
    [affise, 'Declined', 'rejected'],
    [resolveFormat({ preset: 'redtrack' }), 'Approved', 'approved'],
    [resolveFormat({ preset: 'redtrack' }), 'Pending', 'pending'],
    [resolveFormat({ preset: 'keitaro' }), 'sale', 'approved'],
    [resolveFormat({ preset: 'keitaro' }), 'lead', 'pending'],
    [resolveFormat({ preset: 'bemob' }), 'Declined', 'rejected'],
    [resolveFormat(null), '1', null],
    // The advertiser's own values win over the vocabulary, in any case.
    [mapped, 'APPROVED', 'pending'],
    [mapped, '9', 'rejected'],
    [mapped, 'sale', 'approved'],
    // Words that are properties of every object are no status.
    [affise, 'constructor', null],
    [affise, '__proto__', null],
    [resolveFormat(null), 'toString', null],
    [resolveFormat(null), 'hasOwnProperty', null],
  ] as const)('%#: %p', (format, value, expected) => {
    expect(statusFor(value, format)).toBe(expected);
  });
});

describe('withDecimalPoint', () => {
  const comma = resolveFormat({ preset: 'everflow' });
  const point = resolveFormat(null);
  test.each([
    [comma, '12,34', '12.34'],
    [comma, '12.34', '12.34'],
    [comma, '1.234,56', '1.234,56'],
    [comma, '12,', '12,'],
    [comma, ',5', ',5'],
    [point, '12,34', '12,34'],
  ])('%#: %p', (format, amount, expected) => {
    expect(withDecimalPoint(amount, format)).toBe(expected);
  });
});

describe('order keys under dedupe "click_id"', () => {
  it('keys a postback without an order by its click, in a form no postback can send, and shows it as no order', () => {
    const key = clickOrderKey('abc');
    expect(key).not.toBe('abc');
    expect(/[\u0000-\u001f]/.test(key)).toBe(true);
    expect(sentOrderId(key)).toBeNull();
    expect(sentOrderId('ORD-1')).toBe('ORD-1');
    expect(sentOrderId('click:abc')).toBe('click:abc');
  });
});
