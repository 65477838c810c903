// Types of what scripts/stores.mjs exports (plain Node: it runs before the dependencies are installed).
export declare class StartError extends Error {
  constructor(message: string, options?: { cause?: unknown });
}
export declare function shown(url: string): string;
export declare function probe(host: string, port: number, timeoutMs?: number): Promise<string>;
export declare function postgresDataDir(state: string): string;
export declare function readDotEnv(root: string): Record<string, string>;
export declare const users: { join(dir: string): void; others(dir: string): number[]; leave(dir: string): boolean };
export interface Stores {
  env: Record<string, string>;
  stop(): Promise<void>;
}
export declare function prepareStores(options: {
  root: string;
  state?: string;
  kind: 'start' | 'test';
  env?: Record<string, string | undefined>;
  dotEnv?: Record<string, string>;
  say?: (line: string) => void;
  defaults?: { postgres?: string; redis?: string };
  ports?: { postgres?: number; redis?: number };
}): Promise<Stores>;
export declare function printStartError(prefix: string, error: unknown, env?: Record<string, string | undefined>): void;
