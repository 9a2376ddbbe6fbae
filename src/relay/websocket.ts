// WebSocket relay for `GET /v1/realtime` and `GET /v1/responses` upgrades. The upgrade is admitted
// against the user's rpm and concurrency (an HTTP refusal before the 101, as OpenAI answers), the
// handshake is forwarded with the key swapped and without compression offers, then the session is
// relayed frame by frame and metered response by response (ws-session.ts, docs/websockets.md).
// A handshake the upstream refuses for its key (401, 403, 429, 5xx) is tried on another key before
// the client hears of it, as an HTTP request is (attempts.ts); a refusal that stands reaches the
// client with its status, masked.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { authenticate, bearerToken } from '../auth.js';
import { GatewayError } from '../errors.js';
import { type Cors, userRefusal } from '../inbound/cors.js';
import { modelAllowed, modelRefused } from '../models.js';
import { checkWebSocketBound } from '../quota/bounds.js';
import { type ModelDecision, decideModel } from '../pool/aliases.js';
import { parseUpstreamError } from '../pool/outcome.js';
import type { Pool, PoolChoice } from '../pool/pool.js';
import type { RetryPolicy } from '../pool/retry.js';
import type { Config } from '../config.js';
import type { Charge, QuotaGate } from '../quota/gate.js';
import type { Store, User } from '../store/types.js';
import type { Metrics } from '../metrics.js';
import type { ObjectAccess } from './object-access.js';
import type { ObjectSlots } from './object-slots.js';
import { NO_MODEL } from '../observability/usage.js';
import type { RequestRecord } from '../observability/record.js';
import { SessionMeter } from './ws-meter.js';
import { type ResponseFacts, type SessionFacts, refusedRecord, settledRecord } from './ws-record.js';
import { RealtimeDialect } from './ws-realtime.js';
import { TranscriptionMeter } from './ws-transcription.js';
import { ResponsesDialect } from './ws-responses.js';
import { WebSocketSession } from './ws-session.js';
import { SessionSlot } from './ws-slot.js';
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
  config: Config;
  metrics: Metrics;
  store: Store;
  pool: Pool;
  retry: RetryPolicy;
  masker: Masker;
  outbound: Outbound;
  log: Logger;
  newRequestId: () => string;
  streams: OpenStreams;
  quota: QuotaGate;
  cors: Cors;
  /** Keeps a record in the request log (src/observability/index.ts): each response of a session. */
  record: (record: RequestRecord) => void;
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

/** The query with the value of its `model` parameter (found as URLSearchParams finds it) replaced;
 * every other byte as the client sent it. */
export function withQueryModel(search: string, model: string): string {
  if (search.length < 2) return search;
  const pairs = search.slice(1).split('&').map((pair) => {
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    return new URLSearchParams(`${name}=`).has('model') ? `${name}=${encodeURIComponent(model)}` : pair;
  });
  return `?${pairs.join('&')}`;
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

function handshakeRequest(h: Handshake, choice: PoolChoice, timeouts: Config['timeouts']): Dispatcher.DispatchOptions {
  const headers = upstreamRequestHeaders(h.req.headers, choice, undefined);
  delete headers['accept-encoding'];
  delete headers['sec-websocket-protocol'];
  // No compression: frames stay plain text and binary, which the metering reads (docs/websockets.md).
  delete headers['sec-websocket-extensions'];
  if (h.protocols.length > 0) headers['sec-websocket-protocol'] = h.protocols.join(', ');
  return {
    origin: choice.upstream.origin,
    path: choice.upstream.basePath + h.target.path.slice(3) + h.target.search,
    method: 'GET',
    headers,
    upgrade: 'websocket',
    headersTimeout: timeouts.headersMs,
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
      const result = await upgradeUpstream(deps.outbound.dispatcherFor(choice, 'upgrade'), handshakeRequest(h, choice, deps.config.timeouts), controller.signal, deps.config.timeouts.bodyIdleMs);
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

interface Session {
  user: User;
  /** Who opened it, with which key, on which pool key: what each response's record carries. */
  facts: SessionFacts;
  slot: SessionSlot;
  opened: Opened;
  models: ModelDecision;
  head: Buffer;
}

export function createUpgradeHandler(deps: UpgradeDeps) {
  const { config, store, quota: gate } = deps;
  const objects: ObjectAccess = { owners: store.objectOwners, shareUnknown: config.pool.shareUnknownObjects };
  const slots: ObjectSlots = { owners: store.objectOwners, max: config.pool.maxObjectsPerUser, leaseMs: config.quota.leaseMs, log: deps.log };

  /** Relays the opened session, metered; its slot and every reservation end with it. */
  function relaySession(target: Target, requestId: string, socket: Duplex, s: Session): void {
    const realtime = target.path === '/v1/realtime';
    let audioBytesPerToken = () => 4;
    const onCharge = (model: string | undefined, charge: Charge): void =>
      deps.metrics.usage(model ?? NO_MODEL, charge.usage.input, charge.usage.output, charge.micros / 1_000_000, s.user.id);
    const meter = new SessionMeter({
      gate,
      user: s.user,
      sessionId: requestId,
      log: deps.log,
      maxInFlight: config.websocket.maxResponsesInFlight,
      audioBytesPerToken: () => audioBytesPerToken(),
      // The record counts the response in the usage report and the token and cost metrics.
      onSettled: (pending, end, charge) =>
        deps.record(settledRecord(s.facts, { requestId: pending.id, at: pending.at, model: pending.named ?? pending.model, upstreamModel: pending.model }, end, charge)),
    });
    const transcription = new TranscriptionMeter({ gate, user: s.user, sessionId: requestId, log: deps.log, onCharge });
    const session = new WebSocketSession({
      client: socket,
      upstream: s.opened.socket,
      head: s.head,
      clientMessageBytes: config.websocket.clientMessageBytes,
      upstreamMessageBytes: config.websocket.upstreamMessageBytes,
      streams: deps.streams,
      log: deps.log,
      requestId,
      sizedTypes: realtime ? new Set(['response.output_audio.delta', 'response.audio.delta']) : new Set(),
      onEnd: async () => {
        if (!realtime) responses?.close();
        await Promise.all([meter.close(), transcription.close()]);
        await s.slot.close();
        deps.log.info({ requestId }, 'websocket closed');
      },
    });
    const defaultMaxOutput = config.quota.defaultMaxOutputTokens;
    const owner = { userId: s.user.id, upstreamId: s.opened.choice.upstream.id, keyId: s.opened.choice.key.id };
    // A model an event names is sent as the session's upstream knows it, as HTTP's is (src/pool/aliases.ts).
    const modelFor = (model: string): string => decideModel(deps.pool, model, owner.upstreamId).upstream ?? model;
    const refused = (error: GatewayError, response: ResponseFacts): void => deps.record(refusedRecord(s.facts, response, error));
    const responses = realtime ? undefined : new ResponsesDialect({ user: s.user, meter, objects, slots, owner, defaultMaxOutput, modelFor, refused });
    if (realtime) {
      const dialect = new RealtimeDialect({ user: s.user, meter, transcription, channel: session, model: s.models.public, upstreamModel: s.models.upstream, modelFor, defaultMaxOutput });
      audioBytesPerToken = () => dialect.audioBytesPerToken;
      session.start(dialect);
    } else session.start(responses as ResponsesDialect);
  }

  return async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    const requestId = deps.newRequestId();
    socket.on('error', () => socket.destroy());
    const facts = upgradeFacts(req, requestId);
    const tried: TriedKey[] = [];
    let slot: SessionSlot | undefined;
    try {
      const target = checkTarget(req.url ?? '');
      facts.route = target.path;
      if (!WS_PATHS.has(target.path) || req.method !== 'GET') {
        throw new GatewayError('unknown_url', { message: `No WebSocket route at ${target.path}.` });
      }
      // Browsers do not guard WebSockets with CORS: the page's origin is checked here, before the
      // key (cors.origins) and after it (the user's origins), as an HTTP request's is.
      const pageRefused = deps.cors.upgradeRefusal(req);
      if (pageRefused) throw pageRefused;
      const protocols = splitProtocols(req.headers['sec-websocket-protocol']);
      const caller = await authenticate(deps.store, bearerToken(req) ?? protocols.key);
      facts.userId = caller.user.id;
      facts.keyId = caller.key.id;
      const userRefused = userRefusal(caller.user, req.headers.origin);
      if (userRefused) throw userRefused;
      const model = queryModel(target.search);
      if (model !== undefined && !modelAllowed(caller.user, model)) throw modelRefused(caller.user, model);
      checkWebSocketBound(caller.user, target.path, target.search, model);
      // Once: the public name routes and was checked; the upstream's is sent in the query and priced.
      const models = decideModel(deps.pool, model);
      // Admitted before any upstream connection: a refusal is an HTTP answer, the upstream never sees it.
      slot = await SessionSlot.take({ gate, log: deps.log }, caller.user, requestId, models.upstream);

      const sent = models.aliased ? { ...target, search: withQueryModel(target.search, models.upstream as string) } : target;
      const opened = await openUpstream(deps, { req, socket, target: sent, model, protocols: protocols.others, requestId }, tried);
      if (!opened) {
        await slot.close(true);
        deps.log.info(upgradeLine(facts, { tried }), 'websocket refused');
        return;
      }
      const upstream = opened.socket;
      if (socket.destroyed) {
        upstream.destroy();
        await slot.close(true);
        return;
      }
      socket.write(handshakeHead(maskHeaders(opened.headers, deps.masker).headers, requestId));
      const sessionFacts: SessionFacts = {
        sessionId: requestId,
        route: target.path,
        userId: caller.user.id,
        keyId: caller.key.id,
        poolKeyId: opened.choice.key.id,
        upstream: opened.choice.upstream.id,
        userAgent: facts.userAgent,
      };
      relaySession(target, requestId, socket, { user: caller.user, facts: sessionFacts, slot, opened, models, head });
      deps.log.info(upgradeLine(facts, { poolKeyId: opened.choice.key.id, upstream: opened.choice.upstream.id, retries: tried.length }), 'websocket opened');
    } catch (err) {
      await slot?.close(true);
      if (socket.destroyed) return;
      const error = err instanceof GatewayError ? err : mapUpstreamError(err);
      deps.log.info(upgradeLine(facts, { status: error.status, code: error.code, tried: tried.length > 0 ? tried : undefined }), 'websocket refused');
      writeHttpError(socket, error, requestId);
    }
  };
}
