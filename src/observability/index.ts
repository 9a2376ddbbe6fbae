// "Who spent what, on which model, with which key, and why did it fail": one call per request
// writes its access log line, keeps it in the request log, moves the usage counters and the
// metrics. Nothing here waits on a store: Redis writes go out in the background.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import { operationTemplate } from '../operations/match.js';
import { type Masker, createMasker } from '../relay/mask.js';
import { accessLine, sanitize } from './access-log.js';
import { type BodyCapture, createBodyCapture } from './bodies.js';
import { lineWriter } from './line-writer.js';
import type { RequestRecord } from './record.js';
import { createObservabilityRedis } from './redis.js';
import { type RequestLogStore, createMemoryRequestLog } from './request-log.js';
import { createRedisRequestLog } from './request-log-redis.js';
import { configSecrets } from './secrets.js';
import { ModelCap, NO_MODEL, NO_POOL_KEY, type UsageStore, createMemoryUsage, minuteLabel, utcDay } from './usage.js';
import { createRedisUsage } from './usage-redis.js';

export interface Observability {
  /** Never throws and never waits. */
  record(record: RequestRecord): void;
  readonly requests: RequestLogStore;
  readonly usage: UsageStore;
  readonly bodies: BodyCapture;
  readonly metrics: Metrics;
  readonly masker: Masker;
  close(): Promise<void>;
}

/** The UTC day of an ISO 8601 time. The gateway's own times are `toISOString()` text, whose first
 * ten characters are that day; any other form is parsed. */
function dayOf(time: string): string {
  return time.length === 24 && time.charCodeAt(10) === 0x54 && time.charCodeAt(23) === 0x5a ? time.slice(0, 10) : utcDay(Date.parse(time));
}

/** The minute (`YYYY-MM-DDTHH:MM`) of an ISO 8601 time, read as dayOf reads the day. */
function minuteOf(time: string): string {
  return time.length === 24 && time.charCodeAt(10) === 0x54 && time.charCodeAt(23) === 0x5a ? time.slice(0, 16) : minuteLabel(Date.parse(time));
}

/** Only API requests are kept, counted and measured; other routes (admin, unknown URLs) are logged. */
const isApiRoute = (route: string): boolean => route === '/v1' || route.startsWith('/v1/');

export function createObservability(config: Config, log: Logger, metrics: Metrics): Observability {
  const masker = createMasker(configSecrets(config));
  const redis = createObservabilityRedis(config, log);
  const size = config.logging.requestLogSize;
  const requests = redis ? createRedisRequestLog(redis, size, metrics) : createMemoryRequestLog(size);
  const usage = redis ? createRedisUsage(redis, metrics) : createMemoryUsage();
  const models = new ModelCap();
  const writeLine = lineWriter(log);

  function count(record: RequestRecord): void {
    // Reached an upstream: a key answered, or keys were tried and failed.
    const relayed = record.poolKeyId !== undefined || (record.tried?.length ?? 0) > 0;
    metrics.request(operationTemplate(record.operation) ?? 'other', record.status, record.outcome);
    if (record.outcome === 'quota_rejected') metrics.quotaRejected(record.errorCode ?? 'unknown');
    const tokens = record.tokens;
    const micros = record.costMicros ?? 0;
    if (relayed) {
      // The first `retries` keys tried were each followed by another attempt.
      if (record.retries > 0) for (const tried of record.tried?.slice(0, record.retries) ?? []) metrics.retried(tried.code ?? String(tried.status ?? 'unknown'));
      metrics.timing(record.stream, record.ttfbMs, record.durationMs);
      if (tokens) metrics.usage(record.model ?? NO_MODEL, tokens.input, tokens.output, micros / 1_000_000, record.userId);
    }
    // The usage report counts every request of a user, relayed or refused by the gateway (403,
    // 429, ...): its errors are both. A refused key (401) is no user's request.
    if (record.userId === undefined || record.outcome === 'auth_failed') return;
    const day = dayOf(record.time);
    const minute = minuteOf(record.time);
    usage.add({
      day,
      minute,
      hour: minute.slice(0, 13),
      user: record.userId,
      model: models.label(day, record.model ?? NO_MODEL),
      poolKey: record.poolKeyId ?? NO_POOL_KEY,
      requests: 1,
      errors: record.status >= 400 || record.outcome !== 'ok' ? 1 : 0,
      input: tokens?.input ?? 0,
      cachedInput: tokens?.cachedInput ?? 0,
      output: tokens?.output ?? 0,
      micros,
      estimated: tokens?.estimated ? 1 : 0,
    });
  }

  return {
    record(raw) {
      try {
        const record = sanitize(raw, masker);
        writeLine(record.status >= 500 ? 'warn' : 'info', accessLine(record), 'request');
        if (!isApiRoute(raw.route)) return;
        requests.append(record);
        count(record);
      } catch (err) {
        log.error({ err, requestId: raw.requestId }, 'recording the request failed');
      }
    },
    requests,
    usage,
    bodies: createBodyCapture(config.logging.bodies, config.logging.bodyBytes, masker),
    metrics,
    masker,
    async close() {
      await Promise.all([requests.close(), usage.close()]);
      await redis?.close();
    },
  };
}
