import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    // The web console's build (dist/console/), made once when stale: its budget and browser tests read it.
    globalSetup: ['test/helpers/console-build.ts'],
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    // Bounds for a hang, not for speed: a child gateway compiles its TypeScript as it starts, which
    // takes tens of seconds when the machine is busy with other work, and past a minute when it is
    // very busy (a load of ten times its cores).
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Suites start real servers; two cores are shared by everything, so keep workers few.
    maxWorkers: 2,
  },
});
