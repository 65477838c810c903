export * from './errors';
export * from './inputs';
