// A scriptable fake OpenAI upstream on real sockets, for the tests, `npm run demo` and the benchmark
// (where it is the "direct" baseline, so the request path does no logging and keeps little).
// Tests script answers with handlers; what no handler answers gets an OpenAI-like default answer.

import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { FakeJobs } from './fake-jobs.js';
import { FakePromptCache } from './fake-prompt-cache.js';
import { RATE_LIMIT_HEADERS, defaultAnswer, fakeId } from './fake-openai-answers.js';
import { serveFakeWebSocket } from './fake-websocket.js';

export { sseEvents } from './fake-openai-answers.js';
export { FAKE_REALTIME_USAGE, FAKE_RESPONSES_USAGE, FAKE_TRANSCRIPTION_USAGE } from './fake-websocket.js';

export interface FakeResponse {
  status?: number; // default 200
  headers?: Record<string, string | string[]>;
  body?: string | Buffer | object; // object -> JSON.stringify, content-type application/json
  chunks?: Array<string | Buffer>; // written one by one (chunked transfer), then end
  chunkIntervalMs?: number; // delay before each chunk after the first (default 0)
  headersDelayMs?: number; // wait before sending status+headers
  destroyAfterChunks?: number; // after writing N chunks, destroy the socket (no clean end)
  destroyBeforeHeaders?: boolean; // reset the connection without any answer
  neverRespond?: boolean; // accept the request, never answer (until the client goes away)
}

export interface RecordedRequest {
  method: string;
  url: string; // path + query exactly as received (req.url)
  path: string;
  query: string; // split of url at the first '?', query without '?' ('' if none)
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer; // the whole request body bytes (empty until the body is complete)
  json?: unknown; // parsed body when content-type is JSON and it parses
  receivedAt: number; // performance.now() when the body was complete (0 until then)
  closed: Promise<void>; // resolves when the client's connection/request closed or the response finished
  clientAborted: boolean; // becomes true if the client closed before the response finished
}

export interface RecordedUpgrade {
  url: string;
  headers: IncomingHttpHeaders;
  protocol: string; // the chosen subprotocol, or ''
}

export type FakeHandler = (req: RecordedRequest) => FakeResponse | undefined | Promise<FakeResponse | undefined>;

/** Headers to add to the 101 of an accepted WebSocket upgrade, given the client's handshake. */
export type FakeUpgradeHeaders = (upgrade: { url: string; headers: IncomingHttpHeaders }) => Record<string, string | string[]>;

export interface FakeUpstream {
  url: string; // 'http://127.0.0.1:<port>'
  baseUrl: string; // url + '/v1'
  port: number;
  requests: RecordedRequest[]; // every HTTP request, in arrival order
  wsConnections: RecordedUpgrade[]; // every accepted WebSocket upgrade
  wsMessages: Array<{ path: string; data: string }>; // every text message a WebSocket client sent
  handle(fn: FakeHandler): void; // handlers are tried newest first; undefined = next handler
  upgradeHeaders(fn: FakeUpgradeHeaders): void; // headers added to every 101 from now on (until reset)
  reset(): void; // clear handlers, upgrade headers, requests, wsConnections, jobs
  jobs: FakeJobs; // uploaded files, batches and background responses kept between requests
  close(): Promise<void>; // close server, destroy sockets and ws clients
}

export interface FakeUpstreamOptions {
  host?: string;
  port?: number;
  keys?: string[];
  record?: boolean; // default true; the benchmark sets false
  // Keep a prompt cache per API key, as OpenAI does per project, and report its hits as
  // `cached_tokens` in the default answers' usage (fake-prompt-cache.ts). Default false.
  promptCache?: boolean;
}

// With record: false nothing is kept after the answer; bodies up to this size are still held
// while the request is handled (default answers need the JSON), bigger ones are only counted.
const UNRECORDED_BODY_LIMIT = 1024 * 1024;
const EMPTY = Buffer.alloc(0);
const WS_PATHS = new Set(['/v1/realtime', '/v1/responses']);

/** Per-response state the writer needs besides the ServerResponse. */
interface Exchange {
  res: ServerResponse;
  rec: RecordedRequest;
  startedAt: number;
  done: boolean; // the response closed (finished, or the socket went away)
  selfDestroyed: boolean; // we cut the connection on purpose: not a client abort
}

export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const record = options.record ?? true;
  const validAuth = options.keys ? new Set(options.keys.map((k) => `Bearer ${k}`)) : undefined;
  let handlers: FakeHandler[] = [];
  let extraUpgradeHeaders: FakeUpgradeHeaders | undefined;
  const requests: RecordedRequest[] = [];
  const wsConnections: RecordedUpgrade[] = [];
  const wsMessages: Array<{ path: string; data: string }> = [];
  const jobs = new FakeJobs();
  const promptCache = options.promptCache ? new FakePromptCache() : undefined;

  // requestTimeout 0: a slow 512 MB upload must not be cut by the fake.
  const server = createServer({ requestTimeout: 0 }, (req, res) => onRequest(req, res));
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) => offered.values().next().value ?? false,
  });
  wss.on('headers', (lines: string[], req: IncomingMessage) => {
    const extra = extraUpgradeHeaders?.({ url: req.url ?? '/', headers: req.headers }) ?? {};
    for (const [name, value] of Object.entries(extra)) {
      for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
    }
  });

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    let resolveClosed!: () => void;
    const rec: RecordedRequest = {
      method: req.method ?? 'GET',
      url,
      path: q === -1 ? url : url.slice(0, q),
      query: q === -1 ? '' : url.slice(q + 1),
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body: EMPTY,
      receivedAt: 0,
      closed: new Promise<void>((resolve) => (resolveClosed = resolve)),
      clientAborted: false,
    };
    const ex: Exchange = { res, rec, startedAt: performance.now(), done: false, selfDestroyed: false };
    res.once('close', () => {
      ex.done = true;
      rec.clientAborted = !res.writableFinished && !ex.selfDestroyed;
      resolveClosed();
    });
    if (record) requests.push(rec);

    const parts: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (record || length <= UNRECORDED_BODY_LIMIT) parts.push(chunk);
      else parts.length = 0;
    });
    req.once('end', () => {
      rec.body = parts.length === 0 ? EMPTY : parts.length === 1 && parts[0] ? parts[0] : Buffer.concat(parts);
      rec.receivedAt = performance.now();
      if (rec.body.length > 0 && isJson(req.headers['content-type'])) {
        try {
          rec.json = JSON.parse(rec.body.toString('utf8'));
        } catch {
          // not JSON after all: json stays undefined
        }
      }
      answer(ex, length).catch((err: unknown) => fail(ex, err));
    });
  }

  async function answer(ex: Exchange, bodyLength: number): Promise<void> {
    // Handlers see everything first, so tests can script any answer, including to bad keys.
    const list = handlers; // reset() during an async handler must not shift the indexes
    for (let i = list.length - 1; i >= 0; i--) {
      const handler = list[i];
      const scripted = handler ? await handler(ex.rec) : undefined;
      if (scripted) return send(ex, scripted, false);
    }
    if (validAuth && !validAuth.has(ex.rec.headers.authorization ?? '')) {
      return send(ex, { status: 401, body: invalidKeyBody(ex.rec.headers.authorization) }, false);
    }
    const job = jobs.answer(ex.rec);
    if (job) return send(ex, job, true);
    const json = ex.rec.json;
    const cached = promptCache && ex.rec.method === 'POST' && json !== null && typeof json === 'object' ? promptCache.cachedChars(ex.rec.path, ex.rec.headers, json as Record<string, unknown>) : undefined;
    return send(ex, defaultAnswer(ex.rec, bodyLength, cached), true);
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    socket.on('error', () => socket.destroy()); // a client that resets must not crash the fake
    if (!WS_PATHS.has(path)) {
      return rejectUpgrade(socket, 404, { error: { message: 'Not found', type: 'invalid_request_error', param: null, code: null } });
    }
    const authorized = !validAuth || validAuth.has(req.headers.authorization ?? '') || validAuth.has(`Bearer ${subprotocolKey(req)}`);
    if (!authorized) {
      return rejectUpgrade(socket, 401, invalidKeyBody(req.headers.authorization));
    }
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      if (record) wsConnections.push({ url, headers: req.headers, protocol: ws.protocol });
      ws.on('error', () => ws.terminate());
      const model = new URLSearchParams(q === -1 ? '' : url.slice(q + 1)).get('model');
      serveFakeWebSocket(ws, path, model, (data) => {
        if (record) wsMessages.push({ path, data });
      });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const url = `http://${urlHost(options.host ?? '127.0.0.1')}:${port}`;

  return {
    url,
    baseUrl: `${url}/v1`,
    port,
    requests,
    wsConnections,
    wsMessages,
    handle(fn) {
      handlers.push(fn);
    },
    upgradeHeaders(fn) {
      extraUpgradeHeaders = fn;
    },
    reset() {
      handlers = [];
      extraUpgradeHeaders = undefined;
      requests.length = 0;
      wsConnections.length = 0;
      wsMessages.length = 0;
      jobs.reset();
      promptCache?.reset();
    },
    jobs,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Also ends requests that are waiting (neverRespond, delays): their timers end on 'close'.
      server.closeAllConnections();
      await closed;
    },
  };
}

/** Writes one answer: status and headers, then a body or chunks, with the scripted delays and faults. */
async function send(ex: Exchange, fake: FakeResponse, isDefault: boolean): Promise<void> {
  const { res } = ex;
  if (fake.neverRespond) return;
  if (fake.headersDelayMs) await wait(ex, fake.headersDelayMs);
  if (ex.done) return;
  if (fake.destroyBeforeHeaders) {
    ex.selfDestroyed = true;
    res.socket?.resetAndDestroy();
    return;
  }

  const status = fake.status ?? 200;
  const headers: OutgoingHttpHeaders = {
    'x-request-id': fakeId('req_'),
    'openai-processing-ms': String(Math.round(performance.now() - ex.startedAt)),
  };
  if (isDefault) Object.assign(headers, RATE_LIMIT_HEADERS);
  let body: string | Buffer | undefined;
  if (fake.body !== undefined) {
    if (typeof fake.body === 'string' || Buffer.isBuffer(fake.body)) body = fake.body;
    else {
      body = JSON.stringify(fake.body);
      headers['content-type'] = 'application/json';
    }
  }
  if (fake.headers) for (const name in fake.headers) headers[name.toLowerCase()] = fake.headers[name];

  if (!fake.chunks) {
    const hasBody = status !== 204 && status !== 304 && status >= 200;
    if (hasBody && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) {
      headers['content-length'] = body === undefined ? 0 : Buffer.byteLength(body);
    }
    res.writeHead(status, headers);
    if (fake.destroyAfterChunks === undefined) {
      res.end(body);
      return;
    }
    // A body counts as one chunk: 0 cuts after the headers, 1 after the body (no clean end either way).
    if (fake.destroyAfterChunks >= 1 && body !== undefined) res.write(body);
    return destroyWhenFlushed(ex);
  }

  res.writeHead(status, headers);
  const interval = fake.chunkIntervalMs ?? 0;
  const cutAfter = fake.destroyAfterChunks;
  for (let i = 0; i < fake.chunks.length; i++) {
    if (cutAfter !== undefined && i >= cutAfter) break;
    if (i > 0 && interval > 0) await wait(ex, interval);
    if (ex.done) return;
    const chunk = fake.chunks[i];
    // Honour backpressure, so that a slow reader of the gateway can be seen to slow this upstream.
    if (chunk !== undefined && !res.write(chunk)) await drained(ex);
    if (ex.done) return;
  }
  if (cutAfter !== undefined) return destroyWhenFlushed(ex);
  res.end();
}

/** A handler threw: answer 500 with the reason if nothing was sent yet, else cut the connection. */
function fail(ex: Exchange, err: unknown): void {
  if (ex.res.headersSent || ex.done) {
    ex.res.destroy();
    return;
  }
  const message = `fake upstream handler failed: ${err instanceof Error ? err.message : String(err)}`;
  const body = { error: { message, type: 'server_error', param: null, code: null } };
  send(ex, { status: 500, body }, false).catch(() => ex.res.destroy());
}

/** Destroys the socket once what was written reached the kernel, so the client gets it before the cut. */
function destroyWhenFlushed(ex: Exchange): void {
  const socket = ex.res.socket;
  ex.selfDestroyed = true;
  if (!socket) return;
  ex.res.flushHeaders();
  socket.write(EMPTY, () => socket.destroy());
}

/** Resolves after `ms`, or at once when the response closes (so close() is never held up by a timer). */
function wait(ex: Exchange, ms: number): Promise<void> {
  if (ex.done) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      ex.res.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    ex.res.once('close', done);
  });
}

function drained(ex: Exchange): Promise<void> {
  if (ex.done) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      ex.res.off('drain', done);
      ex.res.off('close', done);
      resolve();
    };
    ex.res.once('drain', done);
    ex.res.once('close', done);
  });
}

function isJson(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.includes('json');
}

/** OpenAI's 401 body; it quotes part of the key on purpose (the gateway has to mask it). */
export function invalidKeyBody(authorization: string | undefined): object {
  const key = authorization?.startsWith('Bearer ') ? authorization.slice(7) : '';
  const message = key
    ? `Incorrect API key provided: ${key.slice(0, 3)}${'*'.repeat(Math.max(key.length - 7, 3))}${key.slice(-4)}. ` +
      'You can find your API key at https://platform.openai.com/account/api-keys.'
    : "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth " +
      '(i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys.';
  return { error: { message, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } };
}

/** Browsers cannot set headers on a WebSocket, so OpenAI also takes the key as a subprotocol. */
function subprotocolKey(req: IncomingMessage): string {
  const offered = req.headers['sec-websocket-protocol'] ?? '';
  const p = offered.split(',').find((s) => s.trim().startsWith('openai-insecure-api-key.'));
  return p ? p.trim().slice('openai-insecure-api-key.'.length) : '';
}

function rejectUpgrade(socket: Duplex, status: 401 | 404, body: object): void {
  const text = JSON.stringify(body);
  const reason = status === 401 ? 'Unauthorized' : 'Not Found';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
      `x-request-id: ${fakeId('req_')}\r\nConnection: close\r\n\r\n${text}`,
  );
  socket.once('finish', () => socket.destroy());
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

// CLI: node dist/dev/fake-upstream.js [--port N] [--host H]
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const arg = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i === -1 ? undefined : args[i + 1];
  };
  const port = Number(arg('--port') ?? 0);
  const upstream = await startFakeUpstream({ host: arg('--host'), port, record: false });
  process.stdout.write(`fake upstream listening on ${upstream.baseUrl}\n`);
  const stop = (): void => void upstream.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
