// The fuzz tests' common setup (test/fuzz-*.test.ts): a seeded, bounded fast-check run, a gateway
// in front of the fake upstream with one pool key and one user with a limit, a raw exchange that
// sends any bytes and reads one answer back, and the properties every answer must have.
//
// Reproducible: the seed is fixed unless KEYRELAY_FUZZ_SEED gives another, and a failure names the
// seed to run again with. KEYRELAY_FUZZ_RUNS multiplies every property's number of runs (for a
// longer run by hand; the default keeps each file well under two minutes on a busy machine).
import { connect } from 'node:net';
import fc from 'fast-check';
import { expect } from 'vitest';
import type { Config } from '../../src/config.js';
import { ERRORS } from '../../src/errors.js';
import { type FakeUpstream, startFakeUpstream } from '../../src/dev/fake-upstream.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './gateway.js';
import { captureAnswer, registerPoolKey, registerSecret } from './log-capture.js';
import { until } from './quota-fixture.js';
import { NO_CIRCUIT } from './relay-fixture.js';

export const FUZZ_SEED = Number(process.env.KEYRELAY_FUZZ_SEED ?? 20261207);
const RUNS_FACTOR = Number(process.env.KEYRELAY_FUZZ_RUNS ?? 1);

/** Runs `property` `numRuns` times (times KEYRELAY_FUZZ_RUNS) from the seed; a failure says how to replay it. */
export async function fuzz<T>(property: fc.IAsyncProperty<T>, numRuns: number): Promise<void> {
  const runs = Math.max(1, Math.round(numRuns * RUNS_FACTOR));
  try {
    await fc.assert(property, { seed: FUZZ_SEED, numRuns: runs, includeErrorInReport: true });
  } catch (err) {
    // Shortened: a counterexample may hold a 70 KB value.
    const message = (err as Error).message.replace(/(.{1,4}?)\1{30,}/g, (run, c: string) => `${c.repeat(4)}…(${run.length / c.length} times)`);
    // The error first, then the counterexample.
    const got = message.indexOf('\nGot ');
    const shown = got === -1 ? message.slice(0, 6000) : `${message.slice(got + 1, got + 3000)}\n${message.slice(0, Math.min(got, 3000))}`;
    throw new Error(`fuzzing failed with KEYRELAY_FUZZ_SEED=${FUZZ_SEED} (${runs} runs): ${shown}`);
  }
}

/** A fuzz test's bound for a hang: its runs take seconds to tens of seconds, more on a busy machine. */
export const FUZZ_TIMEOUT = 120_000;

export const POOL_KEY = 'sk-pool-fuzz-0123456789abcdefghij';
/** The fuzz user's daily token limit: far above what the runs spend, so that no run is refused for it. */
export const TOKEN_LIMIT = 50_000_000;
export const USER_ID = 'fuzz-user';

export interface FuzzGateway {
  fake: FakeUpstream;
  gateway: TestGateway;
  userKey: string;
  /** Every unhandled rejection seen in this process since the fixture started. */
  rejections: unknown[];
  close(): Promise<void>;
}

export async function startFuzzGateway(config: Partial<Config> = {}): Promise<FuzzGateway> {
  registerPoolKey(POOL_KEY);
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  process.on('unhandledRejection', onRejection);
  const fake = await startFakeUpstream();
  const gateway = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: { ...NO_CIRCUIT, ...config },
  });
  const userKey = await gateway.createUserKey(USER_ID, { limits: { tokensPerDay: TOKEN_LIMIT } });
  registerSecret(userKey);
  return {
    fake,
    gateway,
    userKey,
    rejections,
    async close() {
      process.off('unhandledRejection', onRejection);
      await gateway.close();
      await fake.close();
    },
  };
}

export interface RawReply {
  status: number;
  /** Lower-cased names; a repeated header's values joined with ', '. */
  headers: Record<string, string>;
  body: Buffer;
  /** Every byte the gateway sent. */
  raw: Buffer;
}

/** Where the head of an answer ends in `raw`, and its parsed head; undefined while incomplete. */
function parseHead(raw: Buffer): { status: number; headers: Record<string, string>; bodyAt: number } | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const [statusLine = '', ...lines] = raw.toString('latin1', 0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers, bodyAt: end + 4 };
}

/** The body of a chunked answer, or undefined while its last chunk has not come. */
function dechunk(bytes: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = bytes.indexOf('\r\n', at);
    if (eol === -1) return undefined;
    const size = Number.parseInt(bytes.toString('latin1', at, eol), 16);
    if (Number.isNaN(size)) return Buffer.concat(parts);
    if (size === 0) return Buffer.concat(parts);
    if (bytes.length < eol + 2 + size + 2) return undefined;
    parts.push(bytes.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/** The first whole answer in `raw`, or undefined while it is not whole (`closed`: take what there is). */
function parseReply(raw: Buffer, closed: boolean, head: boolean): RawReply | undefined {
  let parsed = parseHead(raw);
  // An interim answer (100 Continue) comes before the answer.
  while (parsed && parsed.status >= 100 && parsed.status < 200 && parsed.status !== 101) {
    const next = parseHead(raw.subarray(parsed.bodyAt));
    if (!next) return closed ? { status: 0, headers: {}, body: Buffer.alloc(0), raw } : undefined;
    parsed = { ...next, bodyAt: parsed.bodyAt + next.bodyAt };
  }
  if (!parsed) return closed ? { status: 0, headers: {}, body: Buffer.alloc(0), raw } : undefined;
  const { status, headers, bodyAt } = parsed;
  const rest = raw.subarray(bodyAt);
  if (head || status === 204 || status === 304 || status === 101) return { status, headers, body: Buffer.alloc(0), raw };
  if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
    const body = dechunk(rest);
    if (body) return { status, headers, body, raw };
    return closed ? { status, headers, body: rest, raw } : undefined;
  }
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    if (rest.length >= length) return { status, headers, body: rest.subarray(0, length), raw };
  }
  return closed ? { status, headers, body: rest, raw } : undefined;
}

/**
 * Sends `bytes` as written on a new connection and resolves the first whole answer (status 0 when
 * the gateway closed without one). A bound for a hang only: 15 s, where an answer takes ms.
 */
export function rawExchange(port: number, bytes: Buffer | string, options: { head?: boolean } = {}): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      const reply = parseReply(Buffer.concat(chunks), closed, options.head === true);
      if (!reply) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(reply);
    };
    const timer = setTimeout(() => {
      done = true;
      socket.destroy();
      reject(new Error(`no answer within 15 s to ${JSON.stringify(Buffer.from(bytes).toString('latin1').slice(0, 200))}`));
    }, 15_000);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      finish(false);
    });
    // The gateway may close (or reset) while the request is still being written: what it said counts.
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.write(bytes);
  });
}

/** An OpenAI-shaped error body: {"error":{"message","type","param","code"}}. */
export function expectOpenAIError(body: Buffer, label: string): { message: string; type: string; param: unknown; code: unknown } {
  let json: any;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new Error(`${label}: the error body is not JSON: ${JSON.stringify(body.toString('latin1').slice(0, 300))}`);
  }
  const error = json?.error;
  expect(typeof error?.message, `${label}: error.message`).toBe('string');
  expect(typeof error?.type, `${label}: error.type`).toBe('string');
  expect(error.param === null || typeof error.param === 'string', `${label}: error.param`).toBe(true);
  expect(error.code === null || typeof error.code === 'string', `${label}: error.code`).toBe(true);
  return error;
}

/** The body is an error of the gateway's catalogue (src/errors.ts). */
function catalogued(body: Buffer): boolean {
  try {
    const code = JSON.parse(body.toString('utf8'))?.error?.code;
    return typeof code === 'string' && code in ERRORS;
  } catch {
    return false;
  }
}

/** The access log line of request `id`, once written (undefined if none comes within 2 s). */
export async function accessLine(fx: FuzzGateway, id: string): Promise<Record<string, unknown> | undefined> {
  const find = () => fx.gateway.logs.find((line) => line.requestId === id && 'outcome' in line);
  await until(() => find() !== undefined, `the log line of ${id}`, 2_000).catch(() => undefined);
  return find();
}

/**
 * Who made the answer. Different request ids: the upstream (its own id passed on). The same id:
 * the gateway's own answer, or an upstream answer that had no id: the access log line tells
 * (an error code is the gateway's own); an answer written on the socket (no Date, no log line:
 * src/inbound/raw-answer.ts), or an error of the gateway's catalogue, is the gateway's.
 */
export async function whoAnswered(fx: FuzzGateway, reply: RawReply): Promise<'gateway' | 'upstream'> {
  const own = reply.headers['x-keyrelay-request-id'];
  if (own === undefined) return 'gateway';
  if (reply.headers['x-request-id'] !== own) return 'upstream';
  if (reply.headers.date === undefined || catalogued(reply.body)) return 'gateway';
  const line = await accessLine(fx, own);
  return line !== undefined && line.errorCode === undefined && line.poolKeyId !== undefined ? 'upstream' : 'gateway';
}

/**
 * The properties of every answer: no secret in any byte, no 500 but a logged `internal_error`,
 * every error of the gateway OpenAI-shaped (the upstream's reach the client as it sent them:
 * README, Errors), no upstream request for a request the gateway refused itself, and an upstream
 * request behind every answer the upstream made. `upstreamBefore`: the fake's count of requests
 * before this one was sent; `pipelined`: the bytes hold a second request after the first;
 * `alongside`: other requests were in flight (upstream requests are then counted by the caller);
 * `streamed`: the body is one the gateway streams upstream as it reads it (a form).
 * Resolves who answered.
 */
export async function checkReply(
  fx: FuzzGateway,
  label: string,
  reply: RawReply,
  upstreamBefore: number,
  options: { head?: boolean; pipelined?: boolean; alongside?: boolean; streamed?: boolean } = {},
): Promise<'gateway' | 'upstream'> {
  // A request followed on its connection by bytes that are not HTTP is not answered: the parse
  // error closes the connection (src/inbound/slow-clients.ts, clientError).
  if (options.pipelined && reply.status === 0) return 'gateway';
  expect(reply.status, `${label}: an answer`).toBeGreaterThan(0);
  captureAnswer(label, { status: reply.status, headers: reply.headers, body: reply.raw });
  const all = reply.raw.toString('latin1');
  for (const secret of [POOL_KEY, fx.userKey, ADMIN_TOKEN]) expect(all.includes(secret), `${label}: a secret in the answer`).toBe(false);
  const who = await whoAnswered(fx, reply);
  if (reply.status === 500) {
    expect(who, `${label}: a 500 of the upstream`).toBe('gateway');
    const error = expectOpenAIError(reply.body, label);
    expect(error.code, `${label}: a 500 is an internal_error`).toBe('internal_error');
    const id = reply.headers['x-keyrelay-request-id'];
    expect(fx.gateway.logs.some((line) => line.requestId === id && line.level === 50), `${label}: the 500's log line`).toBe(true);
  }
  if (who === 'gateway' && reply.status >= 400 && !options.head) expectOpenAIError(reply.body, label);
  // Requests sent side by side are counted together by the caller.
  if (options.alongside) return who;
  const sent = fx.fake.requests.length - upstreamBefore;
  if (who === 'gateway') {
    if (reply.status >= 400 && reply.status < 500 && !options.streamed) expect(sent, `${label}: upstream requests for a refused request`).toBe(0);
    if (reply.status >= 400 && reply.status < 500 && options.streamed) {
      // A form streams upstream as it arrives (a 512 MB upload is never held whole): one found bad
      // on the way is cut before its end, so the upstream never has a whole request to act on.
      for (const cut of fx.fake.requests.slice(upstreamBefore)) {
        await cut.closed;
        expect(cut.receivedAt === 0 && cut.clientAborted, `${label}: a whole upstream request for a refused request`).toBe(true);
      }
    }
  } else if (reply.headers['x-request-id'] !== reply.headers['x-keyrelay-request-id']) {
    // The fake's handler answered (it names every answer): the fake saw the request.
    expect(sent, `${label}: an upstream answer without an upstream request`).toBeGreaterThan(0);
  }
  return who;
}

/** Counts answers by status and by who made them, for the summary line each file prints. */
export class Tally {
  private readonly counts = new Map<string, number>();
  runs = 0;
  add(reply: RawReply, who: 'gateway' | 'upstream'): void {
    this.runs++;
    const key = `${reply.status}${who === 'upstream' ? ' upstream' : ''}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  toString(): string {
    return `${this.runs} runs: ${[...this.counts].sort().map(([k, n]) => `${k} x${n}`).join(', ')}`;
  }
}

/** The fuzz user's ledger once nothing of theirs is in flight: nothing reserved, nothing past the limit. */
export async function checkLedger(fx: FuzzGateway, label: string): Promise<any> {
  let usage: any;
  await until(async () => {
    const answer = await fx.gateway.admin('GET', `/users/${USER_ID}`);
    usage = answer.json.usage;
    return usage.concurrent.inFlight === 0;
  }, `${label}: the fuzz user's requests to settle`);
  for (const window of [usage.day, usage.month]) {
    expect(window.reservedTokens, `${label}: tokens left reserved`).toBe(0);
    expect(window.reservedUsdMicros, `${label}: dollars left reserved`).toBe(0);
    expect(window.tokens + window.reservedTokens, `${label}: spent + reserved within the limit`).toBeLessThanOrEqual(TOKEN_LIMIT);
  }
  return usage;
}

/** No unhandled rejection so far, and the gateway still answers. */
export async function checkAlive(fx: FuzzGateway): Promise<void> {
  expect(fx.rejections, 'unhandled rejections').toEqual([]);
  const health = await fetch(`${fx.gateway.url}/healthz`);
  expect(health.status).toBe(200);
  await health.arrayBuffer();
}

/** A request as bytes: request line, headers as given (name, value), and the body with its length. */
export function httpRequest(method: string, target: string | Buffer, headers: Array<[string, string | Buffer]>, body?: Buffer | string): Buffer {
  const parts: Buffer[] = [Buffer.from(`${method} `, 'latin1'), Buffer.isBuffer(target) ? target : Buffer.from(target, 'latin1'), Buffer.from(' HTTP/1.1\r\n', 'latin1')];
  for (const [name, value] of headers) parts.push(Buffer.from(`${name}: `, 'latin1'), Buffer.isBuffer(value) ? value : Buffer.from(value, 'latin1'), Buffer.from('\r\n'));
  const bytes = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  if (bytes) parts.push(Buffer.from(`content-length: ${bytes.length}\r\n`));
  parts.push(Buffer.from('connection: close\r\n\r\n'));
  if (bytes) parts.push(bytes);
  return Buffer.concat(parts);
}
