/** @type {import('jest').Config} */
const swc = (syntax) => [
  '@swc/jest',
  { jsc: { target: 'es2022', parser: { syntax, ...(syntax === 'typescript' ? { decorators: false } : {}) } }, module: { type: 'commonjs' } },
];

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/packages', '<rootDir>/services', '<rootDir>/test'],
  testMatch: ['**/test/**/*.test.ts'],
  transform: {
    '^.+\\.ts$': swc('typescript'),
    '^.+\\.m?js$': swc('ecmascript'),
  },
  // jose, Scalar's Express middleware and the OpenAPI validator ship ESM only: let swc turn them
  // into CommonJS like our own code.
  transformIgnorePatterns: ['/node_modules/(?!(\\.pnpm/)?(jose|@scalar|@readme|@apidevtools|@humanwhocodes)[@+/])'],
  globalSetup: '<rootDir>/test/global-setup.ts',
  testTimeout: 30_000,
  maxWorkers: 2,
};
