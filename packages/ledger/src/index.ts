export * from './conversions';
