import type { ErrorReporter } from '@trackway/logger';
import type { compileTrust } from '@trackway/runtime';
import type { IngestDeps } from './app';
import type { createEnqueuers } from './enqueue';

/** What the hot paths' handlers share: the app's dependencies and what createApp makes once from them. */
export interface IngestContext {
  deps: IngestDeps;
  enqueue: ReturnType<typeof createEnqueuers>;
  /** TRUST_PROXY, compiled: the client's address. */
  trust: ReturnType<typeof compileTrust>;
  /** The hot paths' Redis errors: during an outage, one line per interval. */
  reportRedisError: ErrorReporter;
  /** Failed lookups (Postgres, for a key, offer or affiliate not cached): one line per kind and interval. */
  reportLookupError: ErrorReporter;
}

export type Query = Record<string, string | string[] | undefined>;
