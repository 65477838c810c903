export * from './conversions';
export * from './payouts';
export * from './endpoints';
export * from './reports';
export * from './reports-rebuild';
export * from './history';
