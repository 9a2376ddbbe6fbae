// Runs in every test file: after the file's tests, no log line any gateway wrote may hold a
// secret or an `sk-` token (RELIABILITY.md, conventions).
import { afterAll, expect } from 'vitest';
import { leakedLines } from './helpers/log-capture.js';

afterAll(() => {
  expect(leakedLines(), 'log lines that leak a secret').toEqual([]);
});
