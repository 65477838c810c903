import type { PrismaClient } from '@trackway/db';
import type { Logger } from '@trackway/logger';
import type { InvalidationKind, Queues } from '@trackway/queues';
import type { HealthState, Metrics } from '@trackway/runtime';
import type { AdminVerifier } from './auth';

export interface ApiDeps {
  prisma: PrismaClient;
  queues: Queues;
  /** Announces a changed row to every process caching it; best effort (caches also expire). */
  invalidate: (kind: InvalidationKind, id?: string | number) => Promise<void>;
  verifier: AdminVerifier;
  logger: Logger;
  metrics: Metrics;
  health: HealthState;
}
