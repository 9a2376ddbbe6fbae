// One pino logger for the process. Redaction is by fixed paths (fast, and nothing is missed by a
// pattern that does not match); the relay never puts a secret into a log object in the first place.
// Two nets under that: errors are serialised to a fixed set of fields (undici errors carry request
// headers and bodies, ioredis errors the command and its arguments: none of those is kept), and
// every line is masked before it is written (OpenAI-shaped keys, and the settings' secrets when
// the logger is given them).
import pino, { type Logger } from 'pino';
import type { Config } from './config.js';
import { configSecrets } from './observability/secrets.js';
import { prettyStream } from './observability/pretty.js';
import { type Masker, createMasker } from './relay/mask.js';

export const REDACT_PATHS = [
  'authorization',
  'headers.authorization',
  'headers.cookie',
  'headers["proxy-authorization"]',
  'headers["sec-websocket-protocol"]',
  'headers["x-api-key"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'key',
  'secret',
  'adminToken',
  'password',
  'digest',
  'token',
];

export interface LoggerOptions {
  /** `auto`: pretty when writing to stdout and stdout is a terminal. */
  pretty?: boolean | 'auto';
  /** Values masked wherever they appear in a line (pool keys, the admin token, proxy passwords). */
  secrets?: Iterable<string>;
}

/** The logger options the settings call for. */
export function loggerOptions(config: Config): LoggerOptions {
  return { pretty: config.logging.pretty, secrets: configSecrets(config) };
}

// `scheme://user:password@host` in a message (a proxy or Redis URL) keeps only the scheme and host.
const USERINFO = /([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi;
// A SHA-256 in hex: what the store keeps of a user key (a Redis key name in an ioredis error).
const DIGEST = /\b[0-9a-f]{64}\b/gi;
const KEPT_FIELDS = ['code', 'errno', 'syscall', 'statusCode', 'status'] as const;
const MAX_DEPTH = 4;
const MAX_ERRORS = 5;

function cleanText(masker: Masker, text: string): string {
  return masker.text(text.replace(USERINFO, '$1***@').replace(DIGEST, '[sha256]'));
}

/** An error as a fixed set of fields: type, message, code and the like, stack, cause. */
export function errorSerializer(masker: Masker): (err: unknown) => Record<string, unknown> {
  const serialize = (err: unknown, depth: number): Record<string, unknown> => {
    if (!(err instanceof Error)) {
      const message = typeof err === 'object' && err !== null && 'message' in err ? String(err.message) : String(err);
      return { type: typeof err, message: cleanText(masker, message) };
    }
    const out: Record<string, unknown> = { type: err.constructor?.name ?? err.name, message: cleanText(masker, err.message) };
    const fields = err as unknown as Record<string, unknown>;
    for (const name of KEPT_FIELDS) {
      const value = fields[name];
      if (typeof value === 'number') out[name] = value;
      else if (typeof value === 'string') out[name] = cleanText(masker, value);
    }
    if (err.stack) out.stack = cleanText(masker, err.stack);
    if (depth < MAX_DEPTH) {
      if (err.cause !== undefined) out.cause = serialize(err.cause, depth + 1);
      if (err instanceof AggregateError) out.errors = err.errors.slice(0, MAX_ERRORS).map((e: unknown) => serialize(e, depth + 1));
    }
    return out;
  };
  return (err) => serialize(err, 0);
}

export function createLogger(level: string, destination?: pino.DestinationStream, options: LoggerOptions = {}): Logger {
  const masker = createMasker(options.secrets);
  const err = errorSerializer(masker);
  const pretty = options.pretty === true || (options.pretty !== false && destination === undefined && process.stdout.isTTY === true);
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err, error: err },
      hooks: { streamWrite: masker.text },
      base: { service: 'keyrelay', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pretty ? prettyStream(process.stdout) : destination,
  );
}
