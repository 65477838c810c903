import type { PgPool, PrismaClient } from '@trackway/db';
import type { SecretBox } from '@trackway/domain';
import type { Redis } from 'ioredis';
import type { Logger } from '@trackway/logger';
import type { InvalidationKind, Queues, TypedQueue } from '@trackway/queues';
import type { HealthState, Metrics, TrustProxy } from '@trackway/runtime';
import type { AdminVerifier } from './auth';

export interface ApiDeps {
  prisma: PrismaClient;
  /** The pool under `prisma`: publishing outbox events uses the shared named statements. */
  pool: PgPool;
  queues: Queues;
  /**
   * The postbacks queue of the layout before per-queue hash tags (createOldLayoutQueue): a
   * postback answered 202 before the upgrade is looked up there too until it is drained.
   */
  olderPostbacks?: TypedQueue<'postbacks'>;
  /** The producer connection behind `queues`: enqueues fail fast (503) when it is down. */
  redis: Redis;
  /** Seals webhook signing secrets (AES-256-GCM under SECRETS_KEY). */
  box: SecretBox;
  /** SECRETS_KEY bytes: the Bull Board session key is derived from it (HKDF). */
  sessionKey: Buffer;
  webhooks: {
    /** DELIVERY_RETRY_SCHEDULE, for replays. */
    schedule: readonly number[];
    allowHttp: boolean;
    allowedCidrs: readonly string[];
  };
  /** PAYOUT_NICE_RATIO: a payout's build rests this many times as long as each batch took (default 0: none). */
  payoutNiceRatio?: number;
  /** Announces a changed row to every process caching it; best effort (caches also expire). */
  invalidate: (kind: InvalidationKind, id?: string | number) => Promise<void>;
  verifier: AdminVerifier;
  logger: Logger;
  metrics: Metrics;
  health: HealthState;
  /** TRUST_PROXY, AUTH_FAILURE_LIMIT and the Redis prefix of the failure counts (defaults: false, 30, QUEUE_PREFIX as the queues were made with); admin sessions use the prefix too. */
  frontDoor?: { trustProxy?: TrustProxy; authFailureLimit?: number; prefix?: string };
  /** METRICS_TOKEN: /metrics (and /readyz's details) need it as a bearer token; unset, no /metrics. */
  metricsToken?: string;
  /** PUBLIC_INGEST_URL (default: this host at INGEST_PORT): the document's ingest server. */
  publicIngestUrl?: string;
  /** Check every answer against its route's schema before sending it (the tests do): one that strays is a 500. */
  checkAnswers?: boolean;
}
