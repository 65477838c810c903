export * from './conversions';
export * from './payouts';
export * from './endpoints';
