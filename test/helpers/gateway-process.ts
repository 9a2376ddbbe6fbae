// A gateway in a process of its own, configured by the environment exactly as `keyrelay serve` is,
// for the tests that need two real processes sharing one Redis. Logs go to stdout (pino), where
// the parent reads the listening URL and scans every line for secrets.
import './child-answer-tap.js';
import { loadConfig } from '../../src/config.js';
import { startServer } from '../../src/server.js';

const server = await startServer(loadConfig());
process.once('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
// For the load test: SIGUSR2 collects the garbage (when node runs with --expose-gc) and writes one
// line with what stays held, so that memory is compared without the collector's timing in it.
process.on('SIGUSR2', () => {
  (globalThis as { gc?: () => void }).gc?.();
  const { heapUsed, external, arrayBuffers } = process.memoryUsage();
  process.stdout.write(`${JSON.stringify({ msg: 'memory held', heapUsed, external, arrayBuffers })}\n`);
});
