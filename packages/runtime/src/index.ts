export * from './metrics';
export * from './health';
export * from './shutdown';
export * from './workers';
export * from './cache';
export * from './context';
export * from './serve';
export * from './batcher';
