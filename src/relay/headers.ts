// Which headers cross the gateway, in each direction.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { PoolChoice } from '../pool/pool.js';
import { setPoolKeyHeaders } from './credentials.js';

// RFC 9110 section 7.6.1, plus the proxy headers that are hop-by-hop in practice.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

// Never sent upstream: the client's credentials and identity, where the client came from (the
// upstream has no business knowing; a page's origin is the gateway's to judge: src/inbound/cors.ts),
// and what undici sets itself.
const NOT_FORWARDED = new Set([
  'host',
  'origin',
  'authorization',
  'cookie',
  'openai-organization',
  'openai-project',
  'forwarded',
  'x-real-ip',
  'api-key',
  'x-api-key',
  'content-length',
  'expect',
  'accept-encoding',
]);

// Never passed back: cookies, the pool key's account, the pool key's own rate limits (a user
// sees their own), and auth challenges. Nor the upstream's access-control-* headers (below): which
// pages may read an answer is the gateway's decision (src/inbound/cors.ts), not the upstream's.
const NOT_RETURNED = new Set([
  'set-cookie',
  'set-cookie2',
  'openai-organization',
  'openai-project',
  'www-authenticate',
  'content-length',
]);

// What Connection says on nearly every request and answer: it names no header that is not dropped anyway.
const NAMES_NOTHING_MORE = new Set(['keep-alive', 'close', 'Keep-Alive', 'Close']);

function namedByConnection(value: string | string[] | undefined): Set<string> | undefined {
  if (!value || (typeof value === 'string' && NAMES_NOTHING_MORE.has(value))) return undefined;
  const names = (Array.isArray(value) ? value.join(',') : value).split(',');
  return new Set(names.map((n) => n.trim().toLowerCase()).filter(Boolean));
}

/** The headers of the upstream request: the client's, less the above, plus the pool key's (as its upstream's kind takes it). */
export function upstreamRequestHeaders(
  client: IncomingHttpHeaders,
  choice: Pick<PoolChoice, 'upstream' | 'key'>,
  contentLength: number | undefined,
): Record<string, string | string[]> {
  const dropped = namedByConnection(client.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in client) {
    const value = client[name];
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || NOT_FORWARDED.has(name) || name.startsWith('x-forwarded-')) continue;
    if (dropped?.has(name)) continue;
    out[name] = value;
  }
  setPoolKeyHeaders(out, choice.upstream, choice.key);
  // The gateway reads usage from answers, and SSE must never be compressed (README, "Settings").
  out['accept-encoding'] = 'identity';
  if (contentLength !== undefined) out['content-length'] = String(contentLength);
  return out;
}

export function isEventStream(contentType: string | string[] | undefined): boolean {
  const value = Array.isArray(contentType) ? contentType[0] : contentType;
  return value !== undefined && value.toLowerCase().startsWith('text/event-stream');
}

/** The headers of the answer to the client, from the upstream's (masked already: answer-guard.ts). */
export function clientResponseHeaders(upstream: Record<string, string | string[] | undefined>, requestId: string): OutgoingHttpHeaders {
  const dropped = namedByConnection(upstream.connection);
  const stream = isEventStream(upstream['content-type']);
  const out: OutgoingHttpHeaders = {};
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || NOT_RETURNED.has(name) || name.startsWith('x-ratelimit-') || name.startsWith('access-control-')) continue;
    // Skipped rather than deleted after: a delete turns the object into a slow dictionary.
    if (stream && name === 'content-encoding') continue;
    if (dropped?.has(name)) continue;
    out[name] = value;
  }
  if (stream) {
    out['cache-control'] = 'no-cache';
    out['x-accel-buffering'] = 'no';
  } else if (upstream['content-length'] !== undefined && upstream['transfer-encoding'] === undefined) {
    out['content-length'] = upstream['content-length'] as string;
  }
  if (!out['x-request-id']) out['x-request-id'] = requestId;
  out['x-keyrelay-request-id'] = requestId;
  return out;
}

/**
 * The headers of a WebSocket handshake's 101: those of an HTTP answer (above), plus the two that
 * make it a 101. A 101 has no body, so no length either.
 */
export function handshakeResponseHeaders(upstream: IncomingHttpHeaders, requestId: string): OutgoingHttpHeaders {
  const { 'content-length': _length, ...rest } = clientResponseHeaders(upstream, requestId);
  return { upgrade: 'websocket', connection: 'Upgrade', ...rest };
}
