export * from './ids';
export * from './money';
export * from './payout';
export * from './status';
export * from './fraud';
export * from './events';
export * from './representations';
export * from './keys';
