// Case 40 (docs/reliability.md): 1,000 concurrent slow streams plus a burst of connections over the
// process's cap (inbound.maxConnections, KEYRELAY_MAX_CONNECTIONS). The excess gets a fast 503
// server_overloaded instead of a queue; every stream admitted ends whole; memory and descriptors of
// the gateway process (a child, so that /proc/<pid>/fd counts its own alone) stay bounded and come
// back after each of two rounds (memory measured after a collection, so that the collector's
// timing is not in it); the user's ledger is exact at the end. Each stream is
// slow (an event every 100 ms) but short (about a second once the burst is answered), so that a
// round fits a busy 2-core machine.
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Server, type ServerResponse, createServer } from 'node:http';
import { sseEvents } from '../src/dev/fake-upstream.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';
import { latch, until } from './helpers/quota-fixture.js';
import { rawRequest } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-case-40-load-0001';
const STREAMS = 1000;
const CAP = 1100;
const BURST = 300;
const WORDS = ['one ', 'two ', 'three ', 'four ', 'five ', 'six ', 'seven ', 'eight ', 'nine ', 'ten'];
const USAGE = { prompt_tokens: 5, completion_tokens: 10, total_tokens: 15 };
const SSE = { 'content-type': 'text/event-stream; charset=utf-8' };
const REQUEST = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count' }], max_tokens: 50 };
const BODY = JSON.stringify(REQUEST);
const STREAM_BODY = JSON.stringify({ ...REQUEST, stream: true });

let upstream: Server;
let upstreamUrl: string;
let gateway: ChildGateway;
let userKey: string;
// Streams the upstream has begun, and the gate that holds them after their first event until the
// burst has been answered: so that the burst meets all of them open however slow the machine is.
let begun = 0;
let gate = latch();

function chatStream(withUsage: boolean): string[] {
  const chunk = (content: string) => ({ id: 'chatcmpl-l', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] });
  const events: object[] = WORDS.map(chunk);
  if (withUsage) events.push({ id: 'chatcmpl-l', object: 'chat.completion.chunk', choices: [], usage: USAGE });
  return sseEvents(events, { done: true });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The first event, the gate, then an event every 100 ms: a slow stream of about a second. */
async function slowStream(res: ServerResponse, events: string[]): Promise<void> {
  res.writeHead(200, SSE);
  res.write(events[0]);
  begun++;
  await gate.wait;
  for (const event of events.slice(1)) {
    await sleep(100);
    if (res.destroyed) return;
    res.write(event);
  }
  res.end();
}

async function admin(method: string, path: string, body?: unknown): Promise<any> {
  const res = await request(`${gateway.url}/admin${path}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', connection: 'close' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return res.body.json();
}

function descriptors(): number {
  return readdirSync(`/proc/${gateway.pid}/fd`).length;
}

/** What the gateway process holds once its garbage is collected: heap and buffers outside it. */
async function held(): Promise<number> {
  const from = gateway.logs.length;
  gateway.child.kill('SIGUSR2');
  await until(() => gateway.logs.slice(from).some((l) => l.msg === 'memory held'), 'the memory line');
  const line = gateway.logs.slice(from).find((l) => l.msg === 'memory held') as { heapUsed: number; arrayBuffers: number };
  return line.heapUsed + line.arrayBuffers;
}

function rssBytes(): number {
  const line = readFileSync(`/proc/${gateway.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(line?.[1] ?? 0) * 1024;
}

beforeAll(async () => {
  registerPoolKey(POOL_KEY);
  upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      const json = JSON.parse(body) as { stream?: boolean; stream_options?: { include_usage?: boolean } };
      if (json.stream) {
        void slowStream(res, chatStream(json.stream_options?.include_usage === true));
        return;
      }
      const message = { role: 'assistant', content: WORDS.join('') };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'chatcmpl-p', object: 'chat.completion', choices: [{ index: 0, message, finish_reason: 'stop' }], usage: USAGE }));
    });
  });
  upstream.maxConnections = 10_000;
  await new Promise<void>((resolve) => upstream.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve));
  const address = upstream.address();
  upstreamUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/v1`;
  // The kept request log is a ring (logging.requestLogSize, 10,000 by default): at 1,000 it is full
  // after the first round, so that a second round that grows memory would be a leak, not the ring.
  const settings = join(mkdtempSync(join(tmpdir(), 'keyrelay-case-40-')), 'keyrelay.yaml');
  writeFileSync(settings, 'logging:\n  requestLogSize: 1000\n');
  gateway = await startChildGateway({
    KEYRELAY_CONFIG: settings,
    // For held(): gc() in the child, called by its SIGUSR2 handler (test/helpers/gateway-process.ts).
    NODE_OPTIONS: '--expose-gc',
    OPENAI_API_KEYS: POOL_KEY,
    KEYRELAY_UPSTREAM_URL: upstreamUrl,
    KEYRELAY_MAX_CONNECTIONS: String(CAP),
  });
  await admin('POST', '/users', { id: 'loaded', limits: { tokensPerDay: 100_000_000 } });
  userKey = (await admin('POST', '/users/loaded/keys', {})).key as string;
  registerSecret(userKey);
}, 30_000);

afterAll(async () => {
  gate.open();
  await gateway?.stop();
  upstream?.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

/** One round: STREAMS streams, and once they all run, BURST more connections at once. */
async function round(): Promise<{ admittedBurst: number; peakFds: number }> {
  const agent = new Agent({ connections: null });
  begun = 0;
  gate = latch();
  const streams = Array.from({ length: STREAMS }, async () => {
    const res = await request(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      dispatcher: agent,
      headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
      body: STREAM_BODY,
    });
    return { status: res.statusCode, text: await res.body.text() };
  });
  await until(() => begun >= STREAMS, 'every stream to reach the upstream', 40_000);
  const peakFds = descriptors();

  // The burst: streams too, so that those let in hold their connection as the others do.
  let refusedSoFar = 0;
  const burstAnswers = Array.from({ length: BURST }, async () => {
    const started = Date.now();
    const answer = await rawRequest(
      Number(new URL(gateway.url).port),
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${userKey}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(STREAM_BODY)}\r\nConnection: close\r\n\r\n${STREAM_BODY}`,
      30_000,
    );
    if (answer.status === 503) refusedSoFar++;
    return { answer, ms: Date.now() - started };
  });
  await until(() => refusedSoFar + (begun - STREAMS) >= BURST, 'every connection of the burst to be let in or refused', 30_000);
  gate.open();
  const burst = await Promise.all(burstAnswers);
  const done = await Promise.all(streams);
  await agent.close();

  // Nothing lost: every stream admitted ends whole, in order, with its [DONE].
  const whole = chatStream(false).join('');
  for (const s of done) {
    expect(s.status).toBe(200);
    expect(s.text).toBe(whole);
  }
  let admittedBurst = 0;
  let refused = 0;
  for (const { answer, ms } of burst) {
    if (answer.status === 200) {
      admittedBurst++;
      // (The raw body is chunked: the events are checked inside it.)
      for (const word of WORDS) expect(answer.body).toContain(`"content":"${word}"`);
      expect(answer.body).toContain('data: [DONE]');
      continue;
    }
    // The excess: a 503 written as the connection comes, not after a wait in a queue.
    expect(answer.status).toBe(503);
    expect(answer.headers['retry-after']).toBe('1');
    expect(JSON.parse(answer.body).error).toMatchObject({ code: 'server_overloaded', type: expect.any(String) });
    expect(ms).toBeLessThan(5000);
    refused++;
  }
  // At most CAP - STREAMS connections could get in beside the streams.
  expect(admittedBurst).toBeLessThanOrEqual(CAP - STREAMS);
  expect(refused).toBeGreaterThanOrEqual(BURST - (CAP - STREAMS));
  return { admittedBurst, peakFds };
}

describe('case 40: 1,000 slow streams and a burst over the connection cap', () => {
  it('refuses the excess fast, loses nothing, keeps memory and descriptors bounded, and charges exactly', async () => {
    // A request first, so that the baseline includes the gateway's warm-up.
    const warm = await request(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json', connection: 'close' },
      body: BODY,
    });
    expect(warm.statusCode).toBe(200);
    await warm.body.text();
    const baseFds = descriptors();
    const baseRss = rssBytes();
    const baseHeld = await held();

    const settledFds = async () => {
      // The gateway's idle connections to the upstream close by themselves (keep-alive timeout).
      await until(() => descriptors() <= baseFds + 50, 'the descriptors to come back down', 30_000);
    };

    const rounds: Array<{ admittedBurst: number; peakFds: number; rss: number; held: number }> = [];
    for (let i = 0; i < 2; i++) {
      const r = await round();
      await settledFds();
      rounds.push({ ...r, rss: rssBytes(), held: await held() });
    }
    const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
    console.info(
      `case 40: 2 rounds of ${STREAMS} streams + ${BURST} burst; burst admitted ${rounds.map((r) => r.admittedBurst).join('/')}; ` +
        `fds base ${baseFds}, peak ${rounds.map((r) => r.peakFds).join('/')}; MB held base ${mb(baseHeld)}, after each round ` +
        `${rounds.map((r) => mb(r.held)).join('/')}; rss MB base ${mb(baseRss)}, after each round ${rounds.map((r) => mb(r.rss)).join('/')}`,
    );

    // Descriptors: one per client connection and one per upstream connection, never a pile-up,
    // and back to the base once a round is over (settledFds).
    for (const r of rounds) expect(r.peakFds).toBeLessThan(baseFds + 2 * CAP + 100);
    // Memory: what the process holds after a round (garbage collected) is what it held before,
    // give or take a few MB, and the second round adds nothing to the first: a leak of 8 KB per
    // request would show as more than the bound. Its resident size stays bounded too.
    expect(rounds[0]!.held - baseHeld).toBeLessThan(16 * 1024 * 1024);
    expect(rounds[1]!.held - rounds[0]!.held).toBeLessThan(8 * 1024 * 1024);
    for (const r of rounds) expect(r.rss - baseRss).toBeLessThan(400 * 1024 * 1024);

    // Quotas exact: every admitted request charged its reported usage once, nothing left reserved.
    const admittedBurst = rounds.reduce((n, r) => n + r.admittedBurst, 0);
    const charged = 1 + rounds.length * STREAMS + admittedBurst;
    expect(admittedBurst).toBeGreaterThan(0);
    await until(async () => (await admin('GET', '/users/loaded')).usage.concurrent.inFlight === 0, 'every request to settle');
    const usage = (await admin('GET', '/users/loaded')).usage;
    expect(usage.day.reservedTokens).toBe(0);
    expect(usage.day.requests).toBe(charged);
    expect(usage.day.tokens).toBe(charged * USAGE.total_tokens);
  }, 120_000);
});
