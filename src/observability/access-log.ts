// The access log: one pino line per request, built from its record. Everything a client or an
// upstream chose is escaped and cut (escape.ts) before it is logged or kept, so one request is
// one line of bounded size whatever was sent.
import type { Masker } from '../relay/mask.js';
import { LIMITS, cleanText, escapeText } from './escape.js';
import { type RequestRecord, type TokenCounts, microsToUsd } from './record.js';

const tenth = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : Math.round(ms * 10) / 10);

/** The record with every free-text field escaped and bounded, error text masked, in the order a
 * reader scans a line: who, what, how it ended, how long, how much. A field that is absent stays
 * undefined, as a property: JSON leaves it out and the request log drops it when read
 * (request-log.ts). One literal of one shape, rather than a copy of the set fields, which past a
 * dozen keys made a slow dictionary of every record. */
export function sanitize(record: RequestRecord, masker: Masker): RequestRecord {
  return {
    requestId: escapeText(record.requestId, LIMITS.id),
    upstreamRequestId: cleanText(record.upstreamRequestId, LIMITS.id),
    time: record.time,
    userId: cleanText(record.userId, LIMITS.id),
    keyId: cleanText(record.keyId, LIMITS.id),
    poolKeyId: cleanText(record.poolKeyId, LIMITS.id),
    upstream: cleanText(record.upstream, LIMITS.id),
    affinity: record.affinity,
    method: escapeText(record.method, LIMITS.id),
    // Chosen by the client, who may write a key in them (the route of a path that matched no
    // operation is the path as sent), as in the fields below: masked as the log line masks them,
    // so the kept request log and the usage by model hold no more than the line does.
    route: escapeText(masker.text(record.route), LIMITS.route),
    operation: record.operation,
    model: cleanText(maskedText(record.model, masker), LIMITS.model),
    upstreamModel: cleanText(maskedText(record.upstreamModel, masker), LIMITS.model),
    endUser: cleanText(maskedText(record.endUser, masker), LIMITS.endUser),
    userAgent: cleanText(maskedText(record.userAgent, masker), LIMITS.userAgent),
    stream: record.stream,
    status: record.status,
    outcome: record.outcome,
    errorCode: record.errorCode,
    errorMessage: record.errorMessage === undefined ? undefined : escapeText(masker.text(record.errorMessage), LIMITS.message),
    retries: record.retries,
    tried: record.tried,
    ttfbMs: tenth(record.ttfbMs),
    durationMs: tenth(record.durationMs) ?? 0,
    tokens: record.tokens,
    costMicros: record.costMicros,
    bytesIn: record.bytesIn,
    bytesOut: record.bytesOut,
    requestBody: record.requestBody,
    responseBody: record.responseBody,
    chargedLater: record.chargedLater,
    createdBy: cleanText(record.createdBy, LIMITS.id),
    chargedBy: cleanText(record.chargedBy, LIMITS.id),
  };
}

/** The counts and their total. Copied then added to: V8 (Node 20) makes `{ ...tokens, total }`, a
 * spread followed by a property, tens of times slower. */
const maskedText = (value: string | undefined, masker: Masker): string | undefined => (typeof value === 'string' ? masker.text(value) : value);

function withTotal(tokens: TokenCounts): TokenCounts & { total: number } {
  const out = Object.assign({}, tokens) as TokenCounts & { total: number };
  out.total = tokens.input + tokens.output;
  return out;
}

/** The fields of the line (pino adds level, time, service and msg). Bodies are never logged.
 * Spelled out rather than spread: this runs for every request. A field left undefined is not
 * written, as a missing one is not. */
export function accessLine(record: RequestRecord): Record<string, unknown> {
  const { tokens, costMicros } = record;
  return {
    requestId: record.requestId,
    upstreamRequestId: record.upstreamRequestId,
    userId: record.userId,
    keyId: record.keyId,
    poolKeyId: record.poolKeyId,
    upstream: record.upstream,
    affinity: record.affinity,
    method: record.method,
    route: record.route,
    operation: record.operation,
    model: record.model,
    upstreamModel: record.upstreamModel,
    endUser: record.endUser,
    userAgent: record.userAgent,
    stream: record.stream,
    status: record.status,
    outcome: record.outcome,
    errorCode: record.errorCode,
    errorMessage: record.errorMessage,
    retries: record.retries,
    tried: record.tried,
    ttfbMs: record.ttfbMs,
    durationMs: record.durationMs,
    tokens: tokens && withTotal(tokens),
    costUsd: costMicros === undefined ? undefined : microsToUsd(costMicros),
    costMicros,
    bytesIn: record.bytesIn,
    bytesOut: record.bytesOut,
    chargedLater: record.chargedLater,
    createdBy: record.createdBy,
    chargedBy: record.chargedBy,
  };
}
