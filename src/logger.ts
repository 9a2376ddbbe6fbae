// One pino logger for the process. Redaction is by fixed paths (fast, and nothing is missed by a
// pattern that does not match); the relay never puts a secret into a log object in the first place.
import pino, { type Logger } from 'pino';

export const REDACT_PATHS = [
  'authorization',
  'headers.authorization',
  'headers.cookie',
  'headers["proxy-authorization"]',
  'headers["sec-websocket-protocol"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'key',
  'secret',
  'adminToken',
  'password',
  'digest',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { service: 'keyrelay', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
