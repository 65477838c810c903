import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { envelope, requestIdOf, unavailable } from '@trackway/http';
import { type Queues, bullQueues } from '@trackway/queues';
import express, { type RequestHandler, Router } from 'express';
import type { Redis } from 'ioredis';
import { type AdminSessions, BOARD_PATH } from './admin-sessions';

/**
 * Bull Board behind the admin sign-in (admin-sessions.ts): a session cookie from /admin/login, or
 * an admin JWT as a bearer token. There is no unauthenticated way to the board or its API.
 */
export function adminBoardRouter(deps: { queues: Queues; redis: Redis; sessions: AdminSessions }): Router {
  const router = Router();
  const serverAdapter = new ExpressAdapter().setBasePath(BOARD_PATH);
  createBullBoard({
    // Every delivery shard is a queue of its own on the board (`deliveries`, `deliveries-1`, …).
    queues: bullQueues({ ...deps.queues, deliveries: { ...deps.queues.deliveries, all: () => [...deps.queues.deliveries.shards] } }).map(
      (queue) => new BullMQAdapter(queue),
    ),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Trackway queues' } },
  });
  // Bull Board waits for Redis without a deadline; answer 503 at once instead of hanging.
  const requireRedis: RequestHandler = (_req, _res, next) => {
    if (deps.redis.status !== 'ready') throw unavailable('Redis is unreachable; the queues cannot be shown right now.');
    next();
  };
  // The adapter mounts an Express app of its own, which would add X-Powered-By back.
  const board = (serverAdapter.getRouter() as express.Express).disable('x-powered-by');
  // Bull Board's API cannot take control characters in its query (a NUL answered 500): refused first.
  const plainQuery: RequestHandler = (req, res, next) => {
    const at = req.originalUrl.indexOf('?');
    // eslint-disable-next-line no-control-regex
    if (at !== -1 && /%[01][0-9a-fA-F]|%7[fF]|[\u0000-\u001f\u007f]/.test(req.originalUrl.slice(at))) {
      res.status(400).json(envelope('invalid_request', 'The query string must not contain control characters.', undefined, requestIdOf(res)));
      return;
    }
    next();
  };
  // The board's JSON API answers 401; a browser asking for the page goes to the login.
  const [page, api] = [deps.sessions.requireSession('html'), deps.sessions.requireSession('json')];
  const requireSession: RequestHandler = (req, res, next) => (req.path.startsWith('/api/') ? api : page)(req, res, next);
  router.use(BOARD_PATH, plainQuery, requireSession, requireRedis, board);
  return router;
}
