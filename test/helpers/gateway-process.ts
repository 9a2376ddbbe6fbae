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
