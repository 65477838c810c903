export * from './errors';
export * from './input-messages';
export * from './inputs';
export * from './request-id';
