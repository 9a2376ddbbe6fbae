// One wide JSON body cannot stall the gateway: a 50 MB body costs it about its bytes, whatever its
// shape. A 42 MB array of 14 million `{}` was parsed whole into about 1 GB of heap, and /healthz
// timed out for 13 s meanwhile. Bodies past 1 MB are now read in one pass that builds no tree and
// lets other requests run: past 1,000,000 values they are refused with a 413, and the others are
// relayed byte for byte and charged the usage their answer reports.
//
// The gateway runs in a process of its own, so that its peak resident memory (VmHWM) is its own,
// and a gateway stuck parsing fails these tests by their bounds instead of stalling the runner.
import { readFileSync } from 'node:fs';
import { setTimeout as pause } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { ADMIN_TOKEN, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-hostile-wide-json-0001';
const MB = 1024 * 1024;
const SIZE = 50 * MB - 1024;
// Generous: /healthz answers in milliseconds while a body is read, and in seconds when the machine
// is busy with other work; it timed out at 10 s when the read blocked the event loop.
const HEALTH_BOUND_MS = 6000;
// What a 50 MB body may add to the gateway's peak resident memory: the body itself (read, then
// joined into one buffer) and the pass's bookkeeping. It grew by 1.2 GB before.
const GROWTH_BOUND = 300 * MB;
// Each test sends 50 MB through the gateway to the fake upstream on two shared cores.
const TEST_MS = 120_000;
const USAGE = { prompt_tokens: 1234, completion_tokens: 5, total_tokens: 1239 };

let fake: FakeUpstream;
let gateway: ChildGateway;
let key: string;
let relayed: number[] = [];
/** The gateway's peak resident memory once it served its first request. */
let baseline: number;

async function admin(method: string, path: string, body?: unknown) {
  const res = await fetch(`${gateway.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

/** The gateway's peak resident memory so far, in bytes. */
function peakMemory(): number {
  const status = readFileSync(`/proc/${gateway.pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

beforeAll(async () => {
  registerSecret(POOL_KEY);
  // Not recorded: the fake neither keeps nor parses bodies past 1 MB, so the test process stays small.
  fake = await startFakeUpstream({ record: false });
  fake.handle((req) => {
    relayed.push(Number(req.headers['content-length']));
    const embeddings = req.path === '/v1/embeddings';
    const body = embeddings
      ? { object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.5] }], model: 'text-embedding-3-small', usage: { prompt_tokens: USAGE.prompt_tokens, total_tokens: USAGE.prompt_tokens } }
      : { id: 'chatcmpl-wide', object: 'chat.completion', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: USAGE };
    return { status: 200, body };
  });
  gateway = await startChildGateway({ OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl });
  // A token limit (far above what these bodies are estimated at): every request is estimated and reserved.
  expect((await admin('POST', '/users', { id: 'wide', models: ['gpt-4o-mini', 'text-embedding-3-small'], limits: { tpm: 1_000_000_000 } })).status).toBe(201);
  key = (await admin('POST', '/users/wide/keys', {})).json.key as string;
  registerSecret(key);
  expect((await send('/v1/chat/completions', ROUTES['/v1/chat/completions']('"hi"'))).status).toBe(200);
  baseline = peakMemory();
});

afterAll(async () => {
  const stopped = gateway?.stop();
  const timer = setTimeout(() => gateway?.child.kill('SIGKILL'), 10_000);
  await stopped;
  clearTimeout(timer);
  await fake?.close();
});

/** `unit` repeated to fill `bytes`, joined by commas. */
const fill = (unit: string, bytes: number) => Array(Math.floor(bytes / (unit.length + 1))).fill(unit).join(',');

// Each prompt value, about SIZE bytes of JSON once in its body.
const VALUES = {
  'fourteen million {}': () => `[${fill('{}', SIZE)}]`,
  'a number array': () => `[${fill('7', SIZE)}]`,
  'one giant string': () => `"${'a'.repeat(SIZE)}"`,
  'three quarters of a million strings': () => `[${fill(`"${'w'.repeat(64)}"`, SIZE)}]`,
};
const ROUTES = {
  '/v1/chat/completions': (value: string, extra = '') => `{"model":"gpt-4o-mini"${extra},"messages":[{"role":"user","content":${value}}]}`,
  '/v1/embeddings': (value: string, extra = '') => `{"model":"text-embedding-3-small"${extra},"input":${value}}`,
};
/** An object of `count` keys of about `width` bytes each, for `metadata`. */
const wide = (count: number, width: number) => `{${Array.from({ length: count }, (_, i) => `"${String(i).padStart(width, 'k')}":0`).join(',')}}`;

interface Sent {
  status: number;
  json: Record<string, any>;
  /** Every /healthz asked while the request was on its way answered 200 within the bound. */
  healthy: boolean;
  polls: number;
}

/** Sends `body`, asking /healthz every 100 ms until the answer is in. */
async function send(path: string, body: string): Promise<Sent> {
  let done = false;
  let healthy = true;
  let polls = 0;
  const poller = (async () => {
    while (!done) {
      const res = await fetch(`${gateway.url}/healthz`, { signal: AbortSignal.timeout(HEALTH_BOUND_MS) }).catch(() => undefined);
      polls++;
      if (res?.status !== 200) healthy = false;
      await res?.arrayBuffer();
      await pause(100);
    }
  })();
  try {
    const res = await fetch(`${gateway.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body,
    });
    return { status: res.status, json: (await res.json()) as Record<string, any>, healthy, polls };
  } finally {
    done = true;
    await poller;
  }
}

async function tokensCharged(): Promise<number> {
  const user = await admin('GET', '/users/wide');
  return user.json.usage.day.tokens as number;
}

const TOO_MANY = {
  error: { message: 'The request body holds more than 1,000,000 JSON values (objects, arrays, strings, numbers).', type: 'invalid_request_error', param: null, code: 'request_too_large' },
};

describe.each(Object.keys(ROUTES) as Array<keyof typeof ROUTES>)('a 50 MB body to %s', (path) => {
  const body = (value: keyof typeof VALUES) => ROUTES[path](VALUES[value]());

  it.each(['fourteen million {}', 'a number array'] as const)('of %s is refused with a 413, and /healthz answers meanwhile', async (shape) => {
    relayed = [];
    const sent = await send(path, body(shape));
    expect(sent).toMatchObject({ status: 413, json: TOO_MANY, healthy: true });
    expect(relayed).toEqual([]);
    expect(peakMemory() - baseline).toBeLessThan(GROWTH_BOUND);
  }, TEST_MS);

  it.each(['one giant string', 'three quarters of a million strings'] as const)('of %s is relayed whole and charged its usage, and /healthz answers meanwhile', async (shape) => {
    relayed = [];
    const before = await tokensCharged();
    const text = body(shape);
    const sent = await send(path, text);
    expect(sent).toMatchObject({ status: 200, healthy: true });
    expect(relayed).toEqual([Buffer.byteLength(text)]);
    const reported = path === '/v1/embeddings' ? USAGE.prompt_tokens : USAGE.total_tokens;
    expect((await tokensCharged()) - before).toBe(reported);
    expect(peakMemory() - baseline).toBeLessThan(GROWTH_BOUND);
  }, TEST_MS);

  it('with an object of more than a million keys is refused with a 413, and /healthz answers meanwhile', async () => {
    relayed = [];
    const sent = await send(path, ROUTES[path]('"hi"', `,"metadata":${wide(1_100_000, 40)}`));
    expect(sent).toMatchObject({ status: 413, json: TOO_MANY, healthy: true });
    expect(relayed).toEqual([]);
    expect(peakMemory() - baseline).toBeLessThan(GROWTH_BOUND);
  }, TEST_MS);

  it('with an object of 400,000 long keys is relayed whole, and /healthz answers meanwhile', async () => {
    relayed = [];
    const text = ROUTES[path]('"hi"', `,"metadata":${wide(400_000, 120)}`);
    const sent = await send(path, text);
    expect(sent).toMatchObject({ status: 200, healthy: true });
    expect(relayed).toEqual([Buffer.byteLength(text)]);
    expect(peakMemory() - baseline).toBeLessThan(GROWTH_BOUND);
  }, TEST_MS);
});

describe('a streamed 2 MB chat request that leaves usage out', () => {
  it('is relayed with include_usage turned on, the rest byte for byte', async () => {
    const recording = await startFakeUpstream();
    const own = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: recording.baseUrl } });
    try {
      const streamKey = await own.createUserKey('streamer');
      registerSecret(streamKey);
      const head = '{"model":"gpt-4o-mini","stream":true';
      const tail = `,"messages":[{"role":"user","content":"${'x'.repeat(2 * MB)}"}]}`;
      for (const options of [',"stream_options":{"include_usage":false,"include_obfuscation":false}', '']) {
        const res = await fetch(`${own.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${streamKey}`, 'content-type': 'application/json' },
          body: `${head}${options}${tail}`,
        });
        expect(res.status).toBe(200);
        await res.text();
      }
      const sent = recording.requests.map((r) => r.body.toString('utf8'));
      expect(sent).toEqual([
        // Its own stream_options, written again in place with the flag on.
        `${head},"stream_options":{"include_usage":true,"include_obfuscation":false}${tail}`,
        // None: one member inserted first.
        `{"stream_options":{"include_usage":true},${head.slice(1)}${tail}`,
      ]);
    } finally {
      await own.close();
      await recording.close();
    }
  }, TEST_MS);
});
