// Ends a run with one plain line, `vitest: N passed, N failed, N skipped`, that tools reading a
// run's closing lines understand whatever the test runner (vitest's own summary is styled).
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryLine implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const module of testModules) {
      let failedHere = 0;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failedHere++;
        else skipped++;
      }
      // A file that failed outside its tests (a hook such as the log secret scan, a syntax error)
      // counts as one failure, so the line never says all passed when the run did not.
      failed += failedHere === 0 && !module.ok() ? 1 : failedHere;
    }
    process.stdout.write(`\nvitest: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
