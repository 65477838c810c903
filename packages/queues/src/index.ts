export * from './names';
export * from './payloads';
export * from './options';
export * from './connection';
export * from './queues';
export * from './invalidation';
export * from './layout';
