// Runs in every test file: after the file's tests, no log line any gateway wrote may hold a
// secret or an `sk-` token (docs/reliability.md), and no answer a client got through the
// scanned helpers may hold a pool key in any form (log-capture.ts, captureAnswer).
import { afterAll, expect } from 'vitest';
import { leakedAnswers, leakedLines } from './helpers/log-capture.js';

afterAll(() => {
  expect(leakedLines(), 'log lines that leak a secret').toEqual([]);
  expect(leakedAnswers(), 'answers that leak a pool key').toEqual([]);
});
