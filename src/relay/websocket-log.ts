// The log lines of a WebSocket upgrade (`websocket opened`, `websocket refused`), with the fields
// of the HTTP access line that apply to it, escaped and cut by the same rules and bounds
// (src/observability/escape.ts): the route, the `?model=` and the User-Agent are the client's
// choice, and an 8,000-character model or a right-to-left override must not reach a log as it is.
import type { IncomingMessage } from 'node:http';
import { LIMITS, cleanText, escapeText } from '../observability/escape.js';

/** What is known of an upgrade so far; filled in as the handshake is checked. */
export interface UpgradeFacts {
  requestId: string;
  method: string;
  /** The canonical path, or the raw one when it could not be checked. */
  route: string;
  /** The first `model` of the query, as sent (checked or not). */
  model?: string;
  userAgent?: string;
  userId?: string;
  keyId?: string;
}

/** The facts of the raw handshake, before any check: a refused one is logged with them too. */
export function upgradeFacts(req: IncomingMessage, requestId: string): UpgradeFacts {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const model = q === -1 ? undefined : (new URLSearchParams(url.slice(q)).get('model') ?? undefined);
  return { requestId, method: req.method ?? '', route: q === -1 ? url : url.slice(0, q), model, userAgent: req.headers['user-agent'] };
}

/** The line's fields: the facts escaped and bounded, then `extra` (gateway-made values: ids, status, code). */
export function upgradeLine(facts: UpgradeFacts, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    requestId: escapeText(facts.requestId, LIMITS.id),
    userId: cleanText(facts.userId, LIMITS.id),
    keyId: cleanText(facts.keyId, LIMITS.id),
    method: escapeText(facts.method, LIMITS.id),
    route: escapeText(facts.route, LIMITS.route),
    model: cleanText(facts.model, LIMITS.model),
    userAgent: cleanText(facts.userAgent, LIMITS.userAgent),
    ...extra,
  };
}
