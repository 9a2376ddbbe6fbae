// WebSocket relay for `GET /v1/realtime` and `GET /v1/responses` upgrades. The handshake is
// forwarded with the key swapped, then the two sockets are joined byte for byte: frames are never
// decoded, so every extension and message type passes unchanged. A handshake the upstream refuses
// for its key (401, 403, 429, 5xx) is tried on another key before the client hears of it, as an
// HTTP request is (attempts.ts); a refusal that stands reaches the client with its status, masked.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { authenticate, bearerToken } from '../auth.js';
import { GatewayError } from '../errors.js';
import { modelAllowed } from '../models.js';
import { checkWebSocketBound } from '../quota/bounds.js';
import { parseUpstreamError } from '../pool/outcome.js';
import type { Pool, PoolChoice } from '../pool/pool.js';
import type { RetryPolicy } from '../pool/retry.js';
import type { Store } from '../store/types.js';
import { guardHeldAnswer, maskHeaders } from './answer-guard.js';
import { checkModel } from './body.js';
import { Failover, type TriedKey, backoff, noKeyError, transportResult } from './failover.js';
import { clientResponseHeaders, handshakeResponseHeaders, upstreamRequestHeaders } from './headers.js';
import type { Masker } from './mask.js';
import type { OpenStreams } from './open-streams.js';
import type { Outbound } from './outbound.js';
import { type Target, checkTarget } from './path.js';
import { type UpgradeResult, upgradeUpstream } from './upstream-upgrade.js';
import { mapUpstreamError } from './upstream-errors.js';
import { upgradeFacts, upgradeLine } from './websocket-log.js';
import { rawAnswer, rawError } from '../inbound/raw-answer.js';

const WS_PATHS = new Set(['/v1/realtime', '/v1/responses']);
// Browsers cannot set headers, so they send the key as a subprotocol (openai-node websocket.ts).
const KEY_PROTOCOL = 'openai-insecure-api-key.';
// A refused handshake's body is kept to its first 64 KB (upstream-upgrade.ts); inflated, to 1 MB.
const REFUSAL_DECODED_LIMIT = 1024 * 1024;

export interface UpgradeDeps {
  store: Store;
  pool: Pool;
  retry: RetryPolicy;
  masker: Masker;
  outbound: Outbound;
  log: Logger;
  newRequestId: () => string;
  streams: OpenStreams;
}

/**
 * The model of the upgrade's query. Given twice, the gateway and the upstream could each read a
 * different one (the first, the last), so the model checked would not be the model used.
 */
function queryModel(search: string): string | undefined {
  const models = new URLSearchParams(search).getAll('model');
  if (models.length > 1) throw new GatewayError('invalid_request', { message: 'The query gives `model` more than once.', param: 'model' });
  return models[0] === undefined ? undefined : checkModel(models[0]);
}

/** A plain HTTP answer on the raw socket of a refused upgrade; the connection closes after it. */
function writeHttpError(socket: Duplex, error: GatewayError, requestId: string): void {
  socket.end(rawError(error, requestId));
}

/** The upstream's own refusal, as the client gets it: its status, its headers less what never crosses, its body masked. */
function writeRefusal(socket: Duplex, refusal: Extract<UpgradeResult, { kind: 'refused' }>, masker: Masker, requestId: string): void {
  const guarded = guardHeldAnswer(refusal.headers, refusal.body, masker, REFUSAL_DECODED_LIMIT);
  if (!guarded.ok) return writeHttpError(socket, guarded.error, requestId);
  socket.end(rawAnswer(refusal.status, clientResponseHeaders(guarded.headers, requestId), guarded.body));
}

/** Splits the offered subprotocols into the key (if the browser form is used) and the rest. */
export function splitProtocols(header: string | undefined): { key?: string; others: string[] } {
  const others: string[] = [];
  let key: string | undefined;
  for (const raw of (header ?? '').split(',')) {
    const protocol = raw.trim();
    if (!protocol) continue;
    if (protocol.startsWith(KEY_PROTOCOL)) key = protocol.slice(KEY_PROTOCOL.length);
    else others.push(protocol);
  }
  return { key, others };
}

/** The 101 the client gets: the upstream's, by the same rules as an HTTP answer's headers. */
function handshakeHead(upstream: IncomingHttpHeaders, requestId: string): string {
  const lines = ['HTTP/1.1 101 Switching Protocols'];
  for (const [name, value] of Object.entries(handshakeResponseHeaders(upstream, requestId))) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

function join(client: Duplex, upstream: Duplex, streams: OpenStreams): void {
  // WebSocket frames are never decoded here, so a shutdown can only close the connection.
  const unregister = streams.add(() => closeBoth());
  const closeBoth = () => {
    unregister();
    client.destroy();
    upstream.destroy();
  };
  client.on('error', closeBoth).on('close', closeBoth);
  upstream.on('error', closeBoth).on('close', closeBoth);
  client.pipe(upstream);
  upstream.pipe(client);
}

/** The client's handshake, as far as the upstream's depends on it. */
interface Handshake {
  req: IncomingMessage;
  socket: Duplex;
  target: Target;
  model?: string;
  /** The subprotocols offered, less the browser's key. */
  protocols: string[];
  requestId: string;
}

function handshakeRequest(h: Handshake, choice: PoolChoice): Dispatcher.DispatchOptions {
  const headers = upstreamRequestHeaders(h.req.headers, choice.key, undefined);
  delete headers['accept-encoding'];
  delete headers['sec-websocket-protocol'];
  if (h.protocols.length > 0) headers['sec-websocket-protocol'] = h.protocols.join(', ');
  return {
    origin: choice.upstream.origin,
    path: choice.upstream.basePath + h.target.path.slice(3) + h.target.search,
    method: 'GET',
    headers,
    upgrade: 'websocket',
  };
}

interface Opened {
  choice: PoolChoice;
  headers: IncomingHttpHeaders;
  socket: Duplex;
}

/** Opens the upstream connection on the first key that takes it; answers the client itself otherwise. */
async function openUpstream(deps: UpgradeDeps, h: Handshake, tried: TriedKey[]): Promise<Opened | undefined> {
  const { socket, model, requestId } = h;
  const controller = new AbortController();
  const abort = () => controller.abort();
  socket.once('close', abort);
  const failover = new Failover(deps.pool, deps.retry, { model, method: 'GET', replayable: () => true });
  let fallback: (() => void) | undefined;
  try {
    for (;;) {
      const selection = failover.choose();
      if (!selection.ok) {
        if (!fallback) throw noKeyError(selection, model);
        fallback();
        return undefined;
      }
      const attempt = failover.start(selection);
      const { choice } = attempt;
      const result = await upgradeUpstream(deps.outbound.dispatcherFor(choice), handshakeRequest(h, choice), controller.signal);
      if (result.kind === 'upgraded') {
        attempt.finish({ status: result.status, headers: result.headers });
        return { choice, headers: result.headers, socket: result.socket };
      }
      if (result.kind === 'failed' && result.aborted) {
        attempt.finish({ clientAborted: true });
        return undefined;
      }
      const decision =
        result.kind === 'refused'
          ? failover.fail(attempt, { status: result.status, headers: result.headers, error: parseUpstreamError(result.body) }, true)
          : failover.fail(attempt, transportResult(result.error), result.written);
      fallback = result.kind === 'refused' ? () => writeRefusal(socket, result, deps.masker, requestId) : () => writeHttpError(socket, mapUpstreamError(result.error), requestId);
      if (decision.retry && (await backoff(decision.delayMs, controller.signal))) continue;
      if (!controller.signal.aborted) fallback();
      return undefined;
    }
  } finally {
    socket.off('close', abort);
    tried.push(...failover.tried);
  }
}

export function createUpgradeHandler(deps: UpgradeDeps) {
  return async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    const requestId = deps.newRequestId();
    socket.on('error', () => socket.destroy());
    const facts = upgradeFacts(req, requestId);
    const tried: TriedKey[] = [];
    try {
      const target = checkTarget(req.url ?? '');
      facts.route = target.path;
      if (!WS_PATHS.has(target.path) || req.method !== 'GET') {
        throw new GatewayError('unknown_url', { message: `No WebSocket route at ${target.path}.` });
      }
      const protocols = splitProtocols(req.headers['sec-websocket-protocol']);
      const caller = await authenticate(deps.store, bearerToken(req) ?? protocols.key);
      facts.userId = caller.user.id;
      facts.keyId = caller.key.id;
      const model = queryModel(target.search);
      if (model !== undefined && !modelAllowed(caller.user, model)) throw new GatewayError('model_not_allowed');
      checkWebSocketBound(caller.user, target.path, model);

      const opened = await openUpstream(deps, { req, socket, target, model, protocols: protocols.others, requestId }, tried);
      if (!opened) {
        deps.log.info(upgradeLine(facts, { tried }), 'websocket refused');
        return;
      }
      const upstream = opened.socket;
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      // The frames that follow are relayed as they come (docs/key-pool.md); the head is checked.
      socket.write(handshakeHead(maskHeaders(opened.headers, deps.masker).headers, requestId));
      if (head.length > 0) upstream.write(head);
      join(socket, upstream, deps.streams);
      deps.log.info(upgradeLine(facts, { poolKeyId: opened.choice.key.id, upstream: opened.choice.upstream.id, retries: tried.length }), 'websocket opened');
      upstream.once('close', () => deps.log.info({ requestId }, 'websocket closed'));
    } catch (err) {
      if (socket.destroyed) return;
      const error = err instanceof GatewayError ? err : mapUpstreamError(err);
      deps.log.info(upgradeLine(facts, { status: error.status, code: error.code, tried: tried.length > 0 ? tried : undefined }), 'websocket refused');
      writeHttpError(socket, error, requestId);
    }
  };
}
