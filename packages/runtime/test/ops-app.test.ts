// The workers' health port (HEALTH_PORT, not public): metrics and readiness details stay open
// to whoever reaches it, with the same security headers as the public ports.
import { securityHeaderProblems } from '@trackway/testing';
import request from 'supertest';
import { type HealthState, createMetrics, createOpsApp } from '../src';

it('serves /metrics without a token and /readyz with every check, with security headers', async () => {
  const health: HealthState = {
    accepting: true,
    checks: {
      redis: async () => undefined,
      workers: async () => {
        throw new Error('not running: postbacks');
      },
    },
  };
  const app = createOpsApp(health, createMetrics('attribution'));
  const metrics = await request(app).get('/metrics').expect(200);
  expect(metrics.text).toMatch(/^process_cpu_user_seconds_total\{service="attribution"\} /m);
  const ready = await request(app).get('/readyz').expect(503);
  expect(ready.body).toEqual({ status: 'not_ready', checks: { redis: 'ok', workers: 'not running: postbacks' } });
  const missing = await request(app).get('/nope').expect(404);
  expect(missing.body.error.code).toBe('not_found');
  for (const res of [metrics, ready, await request(app).get('/healthz').expect(200), missing]) {
    expect(securityHeaderProblems(res.headers)).toEqual([]);
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  }
  expect(missing.body.error.request_id).toBe(missing.headers['x-request-id']);
  expect((await request(app).get('/healthz').set('X-Request-Id', 'probe-9').expect(200)).headers['x-request-id']).toBe('probe-9');
});
