// Runs in every test file: after the file's tests, no output of any gateway (log lines, a child
// process's stdout and stderr, every answer's status line, headers and body, WebSocket frames) may
// hold a registered secret in any form (docs/reliability.md, "Secret scan"; log-capture.ts).
import { afterAll, expect } from 'vitest';
import { fileEndOutputs, secretFindings } from './helpers/log-capture.js';

afterAll(async () => {
  // A gateway the file left open: what it shows on its own is read now.
  await fileEndOutputs();
  expect(secretFindings(), 'outputs that hold a secret').toEqual([]);
});
