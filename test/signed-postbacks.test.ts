// Signed postbacks end to end: the admin API rotates an advertiser's signing secret (sealed
// under SECRETS_KEY), ingest opens it and verifies postbacks signed with the standardwebhooks
// library; the previous secret keeps verifying after a rotation; PATCH turns signing on.
import { createFixture, waitFor } from '@trackway/testing';
import { Webhook } from 'standardwebhooks';
import request from 'supertest';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

const admin = {
  get: (path: string) => request(stack.api).get(path).set(stack.auth),
  post: (path: string, body?: object) => request(stack.api).post(path).set(stack.auth).send(body),
  patch: (path: string, body: object) => request(stack.api).patch(path).set(stack.auth).send(body),
};

let n = 0;
function signed(query: string, secret: string) {
  const id = `msg_${Date.now()}_${++n}`;
  const now = new Date();
  return {
    path: `/postback?${query}`,
    headers: { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': new Webhook(secret).sign(id, now, query) },
  };
}

it('rotates a signing secret shown once and stored sealed, verifies with it, and keeps the previous one for 24 h', async () => {
  const created = await admin.post('/v1/advertisers', { name: 'Signed Shop' }).expect(201);
  const { id, postback_key: key } = created.body as { id: number; postback_key: string };
  const fx = await createFixture(stack.db.prisma);
  const clickId = stack.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
  const query = () => `key=${key}&click_id=${clickId}&order_id=S-${Date.now()}-${++n}&amount=19.90`;

  // Requiring signatures before there is a secret is refused.
  const early = await admin.patch(`/v1/advertisers/${id}`, { require_signed_postbacks: true }).expect(400);
  expect(early.body.error.fields).toHaveProperty('require_signed_postbacks');

  const first = await admin.post(`/v1/advertisers/${id}/rotate-signing-secret`).expect(200);
  expect(first.headers['cache-control']).toBe('no-store');
  expect(first.body).toEqual({ signing_secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]+=*$/), previous_signing_secret_expires_at: null });
  const stored = await stack.db.prisma.advertiser.findUniqueOrThrow({ where: { id } });
  expect(stored.signingSecretSealed).toMatch(/^v1:/);
  expect(stored.signingSecretSealed).not.toContain(first.body.signing_secret.slice(6));

  const shown = await admin.patch(`/v1/advertisers/${id}`, { require_signed_postbacks: true }).expect(200);
  expect(shown.body).toMatchObject({ require_signed_postbacks: true, signing_secret_set: true });
  expect((await admin.get(`/v1/advertisers/${id}`).expect(200)).body).toMatchObject({ require_signed_postbacks: true, signing_secret_set: true });
  expect(JSON.stringify((await admin.get(`/v1/advertisers/${id}`)).body)).not.toContain(first.body.signing_secret);

  // The API announced the change: ingest (which caches advertisers) now requires the signature.
  await waitFor(async () => (await request(stack.ingest).get(`/postback?${query()}`)).status === 401 || undefined, { what: 'ingest to require signatures' });
  const unsigned = await request(stack.ingest).get(`/postback?${query()}`).expect(401);
  expect(unsigned.body.error.code).toBe('invalid_signature');
  const ok = signed(query(), first.body.signing_secret);
  await request(stack.ingest).get(ok.path).set(ok.headers).expect(202);

  const second = await admin.post(`/v1/advertisers/${id}/rotate-signing-secret`).expect(200);
  const expiresAt = Date.parse(second.body.previous_signing_secret_expires_at);
  expect(Math.abs(expiresAt - (Date.now() + 24 * 3600_000))).toBeLessThan(60_000);
  expect((await admin.get(`/v1/advertisers/${id}`)).body.previous_signing_secret_expires_at).toBe(second.body.previous_signing_secret_expires_at);
  // Both secrets verify, once ingest has the new one.
  await waitFor(
    async () => {
      const next = signed(query(), second.body.signing_secret);
      return (await request(stack.ingest).get(next.path).set(next.headers)).status === 202 || undefined;
    },
    { what: 'ingest to take the new secret' },
  );
  const old = signed(query(), first.body.signing_secret);
  await request(stack.ingest).get(old.path).set(old.headers).expect(202);

  // A leaked secret is revoked at once by rotating twice: only the last two verify.
  const third = await admin.post(`/v1/advertisers/${id}/rotate-signing-secret`).expect(200);
  await waitFor(
    async () => {
      const next = signed(query(), third.body.signing_secret);
      return (await request(stack.ingest).get(next.path).set(next.headers)).status === 202 || undefined;
    },
    { what: 'ingest to take the third secret' },
  );
  const leaked = signed(query(), first.body.signing_secret);
  const refused = await request(stack.ingest).get(leaked.path).set(leaked.headers).expect(401);
  expect(refused.body.error.code).toBe('invalid_signature');
  const previous = signed(query(), second.body.signing_secret);
  await request(stack.ingest).get(previous.path).set(previous.headers).expect(202);
});

it('validates allowed_ips and postback_rate_limit_per_second, and shows them', async () => {
  const { id } = (await admin.post('/v1/advertisers', { name: 'Listed Shop' }).expect(201)).body as { id: number };
  const bad = await admin
    .patch(`/v1/advertisers/${id}`, { allowed_ips: ['203.0.113.0/24', 'not-an-ip', '10.0.0.0/33'], postback_rate_limit_per_second: -1 })
    .expect(400);
  expect(Object.keys(bad.body.error.fields).sort()).toEqual(['allowed_ips.1', 'allowed_ips.2', 'postback_rate_limit_per_second']);
  const ok = await admin
    .patch(`/v1/advertisers/${id}`, { allowed_ips: ['203.0.113.0/24', '2001:db8::/32', '198.51.100.7'], postback_rate_limit_per_second: 50 })
    .expect(200);
  expect(ok.body).toMatchObject({ allowed_ips: ['203.0.113.0/24', '2001:db8::/32', '198.51.100.7'], postback_rate_limit_per_second: 50 });
  const cleared = await admin.patch(`/v1/advertisers/${id}`, { allowed_ips: [], postback_rate_limit_per_second: null }).expect(200);
  expect(cleared.body).toMatchObject({ allowed_ips: [], postback_rate_limit_per_second: null });
  await admin.post('/v1/advertisers/999999/rotate-signing-secret').expect(404);
});

it('of two concurrent rotations, one wins and the other is told (409): no returned secret goes unstored', async () => {
  const { id } = (await admin.post('/v1/advertisers', { name: 'Racing Shop' }).expect(201)).body as { id: number };
  await admin.post(`/v1/advertisers/${id}/rotate-signing-secret`).expect(200);
  for (let round = 0; round < 5; round++) {
    const answers = await Promise.all([admin.post(`/v1/advertisers/${id}/rotate-signing-secret`), admin.post(`/v1/advertisers/${id}/rotate-signing-secret`)]);
    const ok = answers.filter((a) => a.status === 200);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    for (const a of answers) expect([200, 409]).toContain(a.status);
    for (const a of answers.filter((x) => x.status === 409)) expect(a.body.error.code).toBe('conflict');
    // Whatever was answered last with 200 is the stored secret.
    const row = await stack.db.prisma.advertiser.findUniqueOrThrow({ where: { id } });
    const { createSecretBox } = await import('@trackway/domain');
    const { SECRETS_KEY } = await import('./support/stack');
    const stored = createSecretBox(SECRETS_KEY).open(row.signingSecretSealed!);
    expect(ok.map((a) => a.body.signing_secret)).toContain(stored);
    if (ok.length === 1) expect(ok[0].body.signing_secret).toBe(stored);
  }
});
