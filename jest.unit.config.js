// The fast tier (`make test-unit`): the test files named `test/**/*.unit.test.ts`, which need no
// database, process, cluster or build (dist/). Same transform as jest.config.js, without its
// global setup (which starts the database servers); `make test` runs these files too.
import full from './jest.config.js';

const { globalSetup: _setup, globalTeardown: _teardown, ...shared } = full;

/** @type {import('jest').Config} */
export default {
  ...shared,
  roots: ['<rootDir>/test'],
  testMatch: ['<rootDir>/test/**/*.unit.test.ts'],
};
