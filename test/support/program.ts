import { waitFor } from '@trackway/testing';
import request from 'supertest';
import type { Stack } from './stack';

/** The admin API of a stack, authenticated. */
export function adminApi(stack: Stack) {
  return {
    get: (path: string) => request(stack.api).get(path).set(stack.auth),
    post: (path: string, body?: object) => request(stack.api).post(path).set(stack.auth).send(body),
    patch: (path: string, body: object) => request(stack.api).patch(path).set(stack.auth).send(body),
  };
}

export type PostbackOutcome = { id: string; status: string; reason: string | null; conversion_id: string | null; params: Record<string, unknown> };

/**
 * A program made through the admin API (an advertiser, an affiliate, an offer: a fixed 5.00 USD
 * payout unless `offer` says otherwise), one click through ingest, and postbacks on that click
 * through ingest, each answered with its outcome once the attribution worker has written it.
 */
export async function createProgram(stack: Stack, offer: Record<string, unknown> = {}, advertiserFields: Record<string, unknown> = {}) {
  const api = adminApi(stack);
  const advertiser = (await api.post('/v1/advertisers', { name: 'Shop', ...advertiserFields }).expect(201)).body;
  const affiliate = (await api.post('/v1/affiliates', { name: 'Blog' }).expect(201)).body;
  const created = (
    await api
      .post('/v1/offers', {
        advertiser_id: advertiser.id,
        name: 'Sale',
        destination_url: 'https://shop.example/',
        currency: 'USD',
        payout: { type: 'fixed', amount: '5.00' },
        min_ctit_seconds: 0,
        ...offer,
      })
      .expect(201)
  ).body;
  const click = async () => {
    const res = await request(stack.ingest).get(`/click?offer_id=${created.id}&affiliate_id=${affiliate.id}`).expect(302);
    return new URL(res.headers.location).searchParams.get('click_id')!;
  };
  const clickId = await click();
  const postback = async (params: Record<string, string>): Promise<PostbackOutcome> => {
    const res = await request(stack.ingest)
      .get('/postback')
      .query({ key: advertiser.postback_key, click_id: clickId, ...params })
      .expect(202);
    return waitFor(
      async () => {
        const outcome = (await api.get(`/v1/postbacks/${res.body.postback_id}`).expect(200)).body;
        return outcome.status === 'queued' ? null : outcome;
      },
      { what: 'postback outcome' },
    );
  };
  const conversion = async (id: string) => (await api.get(`/v1/conversions/${id}`).expect(200)).body;
  return { advertiser, affiliate, offer: created, clickId, click, postback, conversion };
}
