import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    // The web console's build (dist/console/), made once when stale: its budget and browser tests read it.
    globalSetup: ['test/helpers/console-build.ts'],
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Suites start real servers; two cores are shared by everything, so keep workers few.
    maxWorkers: 2,
  },
});
