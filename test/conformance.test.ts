// Every operation of spec/openai/routes.tsv crosses the gateway unchanged (README, "The relay"):
// one request per operation, scripted per operation at the fake upstream, and both ends compared
// byte for byte, less only what the README ("The relay") and docs/reliability.md, case 34, say the gateway changes.
import type { IncomingHttpHeaders } from 'node:http';
import { type Dispatcher, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import type { FakeResponse } from '../src/dev/fake-upstream.js';
import { PERMISSIONS } from '../src/operations/costs.js';
import { type RelayFixture, cutEvery, startRelay } from './helpers/relay-fixture.js';
import { type Route, loadRoutes } from './helpers/routes.js';

const POOL_KEY = 'sk-pool-conformance-1';
const BOUNDARY = 'keyrelay-conformance-7MA4YWxkTrZu0gW';
// A fixed Date proves the upstream's own header came through rather than one the gateway made.
const DATE = 'Wed, 21 Oct 2026 07:28:00 GMT';
const TEXT = 'héllo ✓ wörld';
const HOP_BY_HOP = ['connection', 'keep-alive', 'transfer-encoding'];
// What the gateway adds or replaces on the way up; checked one by one instead.
const SET_BY_GATEWAY_UP = ['host', 'connection', 'accept-encoding', 'content-length'];

type Kind = 'json' | 'sse' | 'binary' | 'empty';

const routes = loadRoutes();
const exercised = new Set<string>();
let relay: RelayFixture;

beforeAll(async () => {
  // The operations name made-up objects (`file-abc123` ...) that the gateway never saw created:
  // shared, they reach the upstream like any other, which is what this file proves.
  // Organization routes are opened too (relay.allowOrganizationRoutes): every operation is relayed.
  relay = await startRelay(POOL_KEY, {}, { pool: { shareUnknownObjects: true } as Config['pool'], relay: { allowOrganizationRoutes: true } });
  // So are the operations refused unless allowed (docs/metering.md): the user is allowed them all.
  const allowed = await relay.gateway.admin('PATCH', '/users/relay-user', { allow: PERMISSIONS });
  if (allowed.status !== 200) throw new Error(`allow: ${allowed.status}`);
});
afterAll(() => relay.close());

function kindOf(route: Route): Kind {
  if (route.sse) return 'sse';
  if (route.binaryTypes.length > 0 || route.notes.includes('raw file bytes')) return 'binary';
  if (route.responseTypes.length === 0) return 'empty';
  return 'json';
}

/** `{file_id}` -> `file-abc123`, `{thread_id}` -> `thread_test1`, `{version}` -> `version_test1`. */
function fillParams(path: string): string {
  return path.replace(/\{([a-z_]+)\}/g, (_m, name: string) =>
    name === 'file_id' ? 'file-abc123' : `${name.replace(/_id$/, '')}_test1`,
  );
}

/** The request target: params filled, the wire query kept, list and stream-resume queries added. */
function wireTarget(route: Route, kind: Kind): string {
  const filled = fillParams(route.path);
  const [path = '', wireQuery] = filled.split('?');
  const query = wireQuery === undefined ? [] : [wireQuery];
  if (route.method === 'GET' && kind === 'sse') query.push('stream=true&starting_after=2');
  else if (route.method === 'GET' && !path.endsWith('_test1') && !path.endsWith('file-abc123') && kind === 'json') {
    query.push('limit=2&after=x&include[]=a&order=desc');
  }
  return query.length === 0 ? path : `${path}?${query.join('&')}`;
}

/** The first declared type, except that a raw type (application/sdp) beats multipart and JSON. */
function requestType(route: Route): string | undefined {
  return route.requestTypes.find((t) => t !== 'application/json' && t !== 'multipart/form-data') ?? route.requestTypes[0];
}

const FILE_BYTES = Buffer.concat([Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0d, 0x0a]), Buffer.from(`--${BOUNDARY}x\r\n`), Buffer.from(TEXT)]);

function multipart(fields: Array<[string, string]>): Buffer {
  const parts: Buffer[] = fields.map(([name, value]) =>
    Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`),
  );
  parts.push(
    Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    FILE_BYTES,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  );
  return Buffer.concat(parts);
}

interface Sent {
  target: string;
  headers: Record<string, string>;
  body?: Buffer;
}

function clientRequest(route: Route, i: number, kind: Kind, userKey: string): Sent {
  const headers: Record<string, string> = {
    authorization: `Bearer ${userKey}`,
    cookie: 'session=client-cookie',
    'openai-organization': 'org-client',
    'openai-project': 'proj_client',
    'x-client-trace': `op-${i}`,
    accept: route.sdkAccept.includes('/') ? route.sdkAccept : 'application/json',
  };
  if (route.sdkOpenAIBeta) headers['openai-beta'] = route.sdkOpenAIBeta;
  const streamed = kind === 'sse' && route.method !== 'GET';
  const type = requestType(route);
  let body: Buffer | undefined;
  if (type === 'application/json') {
    const stream = !streamed ? '' : route.path === '/v1/audio/speech' ? ', "stream_format": "sse"' : ', "stream": true';
    // Odd spacing and non-ASCII text: any re-serialisation would change the bytes.
    body =
      route.operationId === 'createBatch'
        ? // A batch is checked against its input file before it is relayed: it must be one.
          Buffer.from(`{ "input_file_id" : "file-abc123", "endpoint": "/v1/chat/completions", "completion_window": "24h", "metadata": { "note": "${TEXT}" } }`)
        : Buffer.from(`{ "model" : "gpt-4o-mini", "input": "${TEXT} ${route.operationId}"${stream} }`);
  } else if (type === 'multipart/form-data') {
    body = multipart([['model', 'gpt-4o-mini'], ['purpose', 'conformance'], ...(streamed ? [['stream', 'true'] as [string, string]] : [])]);
    headers['content-type'] = `multipart/form-data; boundary=${BOUNDARY}`;
  } else if (type !== undefined) {
    body = Buffer.from('v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n');
  }
  if (type !== undefined && type !== 'multipart/form-data') headers['content-type'] = type;
  return { target: wireTarget(route, kind), headers, body };
}

/** One SSE body in the dialect of the operation (WIRE.md, Streaming formats). */
function sseText(route: Route, i: number): string {
  const named = (type: string, extra: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...extra })}\n\n`;
  const data = (value: object) => `data: ${JSON.stringify(value)}\n\n`;
  const p = route.path;
  if (p.startsWith('/v1/threads')) {
    return [
      named('thread.run.created', { id: `run_${i}`, object: 'thread.run' }),
      named('thread.message.delta', { id: `msg_${i}`, delta: { content: [{ type: 'text', text: { value: TEXT } }] } }),
      named('thread.run.completed', { id: `run_${i}`, object: 'thread.run' }),
      'event: done\ndata: [DONE]\n\n',
    ].join('');
  }
  if (p.startsWith('/v1/chat/completions') || p.startsWith('/v1/completions')) {
    const chunk = (content: string) => data({ id: `chatcmpl-${i}`, object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] });
    return `${chunk(TEXT)}${chunk(' again')}data: [DONE]\n\n`;
  }
  if (p.startsWith('/v1/responses')) {
    return [
      named('response.created', { sequence_number: 0, response: { id: `resp_${i}`, status: 'in_progress' } }),
      named('response.output_text.delta', { sequence_number: 1, delta: TEXT }),
      named('response.completed', { sequence_number: 2, response: { id: `resp_${i}`, status: 'completed' } }),
    ].join('');
  }
  if (p.startsWith('/v1/images')) {
    return named('image_generation.partial_image', { b64_json: 'aGVsbG8=' }) + named('image_generation.completed', { b64_json: 'aGVsbG8h' });
  }
  if (p === '/v1/audio/transcriptions') {
    return data({ type: 'transcript.text.delta', delta: TEXT }) + data({ type: 'transcript.text.done', text: TEXT });
  }
  if (p === '/v1/audio/speech') return data({ type: 'speech.audio.delta', audio: 'AAEC' }) + data({ type: 'speech.audio.done' });
  throw new Error(`no SSE dialect for ${route.method} ${p}`);
}

interface Scripted {
  answer: FakeResponse;
  /** Every header the upstream's answer carries (the fake adds content-length for whole bodies). */
  sentHeaders: Record<string, string | string[]>;
  bytes: Buffer;
}

function upstreamAnswer(route: Route, i: number, kind: Kind): Scripted {
  const headers: Record<string, string | string[]> = {
    'x-request-id': `req_conformance_${i}`,
    'x-conformance-op': `${i}:${route.operationId}`,
    'openai-processing-ms': String(10 + i),
    date: DATE,
  };
  if (i % 3 === 0) headers['set-cookie'] = ['__cf_bm=upstream; path=/; HttpOnly', `_cfuvid=op${i}; path=/`];
  if (i % 4 === 1) {
    Object.assign(headers, {
      'openai-organization': 'org-upstream',
      'openai-project': 'proj_upstream',
      'x-ratelimit-limit-requests': '4242',
      'x-ratelimit-remaining-requests': '4241',
      'x-ratelimit-reset-tokens': '42ms',
    });
  }
  if (i % 5 === 2) {
    // Hop-by-hop by RFC 9110 7.6.1, both by name and by being listed in Connection.
    Object.assign(headers, { connection: 'keep-alive, x-upstream-hop', 'x-upstream-hop': '1', 'proxy-authenticate': 'Basic realm="up"' });
  }
  let status = route.declaredStatus;
  let bytes = Buffer.alloc(0);
  let chunks: Buffer[] | undefined;
  switch (kind) {
    case 'sse':
      headers['content-type'] = 'text/event-stream; charset=utf-8';
      bytes = Buffer.from(sseText(route, i));
      chunks = cutEvery(bytes, 29); // mid-line and mid-character cuts
      break;
    case 'binary': {
      const type = route.binaryTypes[0] ?? 'application/octet-stream';
      headers['content-type'] = type;
      if (type === 'application/sdp') {
        headers.location = '/v1/realtime/calls/rtc_test1';
        bytes = Buffer.from('v=0\r\no=- 1 2 IN IP4 203.0.113.1\r\ns=-\r\nt=0 0\r\n');
      } else {
        bytes = Buffer.from(Array.from({ length: 3000 }, (_, k) => (k * 131 + i * 7) & 0xff));
        if (i % 2 === 0) chunks = cutEvery(bytes, 1000);
      }
      break;
    }
    case 'empty':
      break;
    case 'json':
      headers['content-type'] = 'application/json';
      if (i % 20 === 7) {
        status = [400, 404, 422][Math.floor(i / 20) % 3] ?? 400;
        bytes = Buffer.from(`{"error":{"message":"Upstream says no to ${route.operationId}.","type":"invalid_request_error","param":null,"code":null}}`);
      } else {
        bytes = Buffer.from(`{\n  "object": "conformance.answer",\n  "op": "${route.operationId}",\n  "index": ${i},\n  "text": "${TEXT}"\n}`);
      }
      break;
  }
  const sentHeaders = { ...headers };
  if (!chunks) sentHeaders['content-length'] = String(bytes.length);
  const answer: FakeResponse = chunks ? { status, headers, chunks } : { status, headers, body: bytes };
  return { answer, sentHeaders, bytes };
}

function omit(headers: IncomingHttpHeaders | Record<string, unknown>, names: (name: string) => boolean): Record<string, unknown> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !names(name)));
}

/** The upstream's headers as the README ("The relay") says the client gets them. */
function expectedClientHeaders(sent: Record<string, string | string[]>, kind: Kind): Record<string, unknown> {
  const dropped = new Set(['set-cookie', 'openai-organization', 'openai-project', 'proxy-authenticate', 'x-upstream-hop', ...HOP_BY_HOP]);
  const out = omit(sent, (n) => dropped.has(n) || n.startsWith('x-ratelimit-'));
  if (kind === 'sse') Object.assign(out, { 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
  out['x-keyrelay-request-id'] = expect.any(String);
  return out;
}

async function exercise(route: Route, i: number): Promise<void> {
  const kind = kindOf(route);
  const sent = clientRequest(route, i, kind, relay.userKey);
  const scripted = upstreamAnswer(route, i, kind);
  const { fake, gateway } = relay;
  fake.reset();
  fake.handle(() => scripted.answer);
  // A batch's input file is read (on the pool key) before the batch is created, its lines checked
  // (src/relay/batch-input.ts): one valid line for the batch's endpoint. That read is the gateway's
  // own request, not the relayed one, and is left out below.
  const batch = route.operationId === 'createBatch' ? (JSON.parse(String(sent.body)) as { endpoint: string }) : undefined;
  const isInputRead = (r: { method: string; path: string }) => batch !== undefined && r.method === 'GET' && /^\/v1\/files\/[^/]+\/content$/.test(r.path);
  if (batch) {
    const line = { custom_id: 'c1', method: 'POST', url: batch.endpoint, body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 16 } };
    fake.handle((r) => (isInputRead(r) ? { body: `${JSON.stringify(line)}\n`, headers: { 'content-type': 'application/octet-stream' } } : undefined));
  }

  const res = await request(`${gateway.url}${sent.target}`, {
    method: route.method as Dispatcher.HttpMethod,
    headers: sent.headers,
    body: sent.body,
  });
  const received = Buffer.from(await res.body.arrayBuffer());

  const relayed = fake.requests.filter((r) => !isInputRead(r));
  expect(relayed).toHaveLength(1);
  const rec = relayed[0]!;
  expect(`${rec.method} ${rec.url}`).toBe(`${route.method} ${sent.target}`);
  const upstreamBody = expectedUpstreamBody(route, kind, sent.body);
  expect(rec.body).toEqual(upstreamBody);
  const { authorization: _userAuth, cookie: _c, 'openai-organization': _o, 'openai-project': _p, ...forwarded } = sent.headers;
  expect(omit(rec.headers, (n) => SET_BY_GATEWAY_UP.includes(n))).toEqual({ ...forwarded, authorization: `Bearer ${POOL_KEY}` });
  expect(rec.headers['content-length'] ?? '0').toBe(String(upstreamBody.length));

  expect(res.statusCode).toBe(scripted.answer.status);
  expect(omit(res.headers, (n) => HOP_BY_HOP.includes(n) || n.startsWith('x-ratelimit-'))).toEqual(
    expectedClientHeaders(scripted.sentHeaders, kind),
  );
  for (const name of Object.keys(scripted.sentHeaders).filter((n) => n.startsWith('x-ratelimit-'))) {
    expect(res.headers[name], name).not.toBe(scripted.sentHeaders[name]);
  }
  expect(res.headers['x-request-id']).toBe(`req_conformance_${i}`);
  expect(received).toEqual(scripted.bytes);
  exercised.add(`${route.method} ${route.path}`);
}

// For usage accounting the gateway asks a streamed chat or completions call for its usage chunk
// (and strips that chunk from the answer, so the client still gets the upstream's bytes).
const ASKS_FOR_USAGE = new Set(['/v1/chat/completions', '/v1/completions']);

function expectedUpstreamBody(route: Route, kind: Kind, body: Buffer | undefined): Buffer {
  if (!body) return Buffer.alloc(0);
  if (kind !== 'sse' || route.method !== 'POST' || !ASKS_FOR_USAGE.has(route.path)) return body;
  return Buffer.concat([Buffer.from('{"stream_options":{"include_usage":true},'), body.subarray(1)]);
}

const KINDS: Array<[Kind, string]> = [
  ['json', 'operations answering JSON'],
  ['sse', 'operations answering SSE when asked to stream'],
  ['binary', 'operations answering binary bodies'],
  ['empty', 'operations answering an empty body'],
];

for (const [kind, title] of KINDS) {
  describe(`relay of ${title}`, () => {
    routes.forEach((route, i) => {
      if (kindOf(route) === kind) it(`${route.method} ${route.path}`, () => exercise(route, i));
    });
  });
}

describe('coverage of routes.tsv', () => {
  it('exercised each of the 288 operations once', () => {
    expect(routes).toHaveLength(288);
    expect(new Set(routes.map((r) => `${r.method} ${r.path}`)).size).toBe(288);
    expect(exercised.size).toBe(288);
  });
});
