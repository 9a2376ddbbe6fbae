// GET /admin/requests and its export after plain, streamed, aborted, failed and refused requests
// through a real gateway, on the memory store and on Redis: each request kept once, newest first,
// with what the fake upstream reported; filters by user and status; pages with `before`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS, promptTokens } from '../src/dev/fake-openai-answers.js';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import {
  BREAK,
  type ObservedGateway,
  SLOW,
  type Sent,
  abortAfterFirstChunk,
  chat,
  keptRecords,
  post,
  startObservedGateway,
} from './helpers/observability-fixture.js';

const POOL_KEY = 'sk-pool-requestlog-0123456789abcdef';

describe.each(['memory', 'redis'] as const)('the request log on %s', (backend) => {
  let env: ObservedGateway;
  let alice: string;
  const sent: Record<string, Sent> = {};

  beforeAll(async () => {
    env = await startObservedGateway(POOL_KEY, backend);
    alice = await env.gateway.createUserKey('alice');
    registerSecret(alice);
    const { gateway } = env;
    // Records are kept in the order requests end, and a relayed request ends after its settle:
    // each waits for the one before it to be kept, so that the order below is the sending order.
    sent.plain = await post(gateway, alice, '/chat/completions', chat('plain'));
    await keptRecords(gateway, 1);
    sent.streamed = await post(gateway, alice, '/chat/completions', chat('streamed', { stream: true }));
    await keptRecords(gateway, 2);
    sent.aborted = await abortAfterFirstChunk(gateway, alice, chat(SLOW, { stream: true }));
    await keptRecords(gateway, 3);
    sent.failed = await post(gateway, alice, '/chat/completions', chat(BREAK));
    await keptRecords(gateway, 4);
    sent.refused = await post(gateway, 'sk-kr-NoSuchKey0123456789abcdefghijklmn', '/chat/completions', chat('refused'));
    await keptRecords(gateway, 5);
  });
  afterAll(async () => {
    await env.close();
  });

  it('keeps every request once, newest first, with how it ended', async () => {
    const data = await keptRecords(env.gateway, 5);
    expect(data.map((r) => [r.requestId, r.userId, r.status, r.outcome, r.stream])).toEqual([
      [sent.refused?.id, undefined, 401, 'auth_failed', false],
      [sent.failed?.id, 'alice', 502, 'upstream_error', false],
      [sent.aborted?.id, 'alice', 200, 'client_aborted', true],
      [sent.streamed?.id, 'alice', 200, 'ok', true],
      [sent.plain?.id, 'alice', 200, 'ok', false],
    ]);
    expect([sent.refused?.status, sent.failed?.status, sent.streamed?.status, sent.plain?.status]).toEqual([401, 502, 200, 200]);
  });

  it('keeps the figures the upstream reported, and what the gateway counted for the aborted stream', async () => {
    const data = await keptRecords(env.gateway, 5);
    const byId = new Map(data.map((r) => [r.requestId, r]));
    const plain = byId.get(sent.plain?.id);
    expect(plain).toEqual({
      id: expect.stringMatching(/^[0-9]+-[0-9]+$/),
      requestId: sent.plain?.id,
      upstreamRequestId: expect.stringMatching(/^req_/),
      time: expect.any(String),
      userId: 'alice',
      keyId: expect.stringMatching(/^key_/),
      poolKeyId: 'env-1',
      upstream: 'default',
      // No `affinity`: with one pool key there was nothing to choose (docs/key-pool.md, Prompt
      // cache affinity; test/pool-cache-affinity.test.ts has the records of a pool of four).
      method: 'POST',
      route: '/v1/chat/completions',
      operation: 'createChatCompletion',
      model: 'gpt-4o-mini',
      stream: false,
      status: 200,
      outcome: 'ok',
      retries: 0,
      ttfbMs: expect.any(Number),
      durationMs: expect.any(Number),
      tokens: { input: promptTokens([{ role: 'user', content: 'plain' }]), cachedInput: 0, output: FAKE_COMPLETION_TOKENS, estimated: false },
      costMicros: expect.any(Number),
      costUsd: expect.any(Number),
      bytesIn: Buffer.byteLength(JSON.stringify(chat('plain'))),
      bytesOut: Buffer.byteLength(sent.plain?.text ?? ''),
    });
    expect(plain?.costUsd).toBe((plain?.costMicros as number) / 1e6);
    expect(byId.get(sent.streamed?.id)?.tokens).toEqual({
      input: promptTokens([{ role: 'user', content: 'streamed' }]),
      cachedInput: 0,
      output: FAKE_COMPLETION_TOKENS,
      estimated: false,
    });
    expect(byId.get(sent.aborted?.id)?.tokens).toMatchObject({ estimated: true, output: expect.any(Number) });
    // No key's answer reached the client: the key is among those tried.
    expect(byId.get(sent.failed?.id)).toMatchObject({ errorCode: 'upstream_unreachable', tried: [expect.objectContaining({ poolKeyId: 'env-1' })] });
    expect(byId.get(sent.failed?.id)).not.toHaveProperty('tokens');
  });

  it('filters by user and by status or status class', async () => {
    const ids = async (query: string) => (await keptRecords(env.gateway, 0, query)).map((r) => r.requestId);
    expect(await ids('&user=alice&status=200')).toEqual([sent.aborted?.id, sent.streamed?.id, sent.plain?.id]);
    expect(await ids('&status=4xx')).toEqual([sent.refused?.id]);
    expect(await ids('&status=5xx&user=alice')).toEqual([sent.failed?.id]);
    expect(await ids('&outcome=client_aborted')).toEqual([sent.aborted?.id]);
    expect(await ids('&user=nobody')).toEqual([]);
  });

  it('pages with limit and before, and takes a time for before', async () => {
    const first = await env.gateway.admin('GET', '/requests?limit=2');
    expect(first.json.data.map((r: { requestId: string }) => r.requestId)).toEqual([sent.refused?.id, sent.failed?.id]);
    const second = await env.gateway.admin('GET', `/requests?limit=2&before=${first.json.next}`);
    expect(second.json.data.map((r: { requestId: string }) => r.requestId)).toEqual([sent.aborted?.id, sent.streamed?.id]);
    const third = await env.gateway.admin('GET', `/requests?limit=2&before=${second.json.next}`);
    expect(third.json).toEqual({ data: [expect.objectContaining({ requestId: sent.plain?.id })], next: null, nextBefore: null, hasMore: false });
    const future = new Date(Date.now() + 60_000).toISOString();
    expect((await env.gateway.admin('GET', `/requests?limit=1000&before=${future}`)).json.data.length).toBe(5);
    expect((await env.gateway.admin('GET', '/requests?before=2000-01-01T00:00:00Z')).json).toEqual({ data: [], next: null, nextBefore: null, hasMore: false });
  });

  it('answers 400 naming the parameter for a bad status, limit or before', async () => {
    const bad = async (query: string) => (await env.gateway.admin('GET', `/requests?${query}`)).json.error.param;
    expect(await bad('status=abc')).toBe('status');
    expect(await bad('before=yesterday')).toBe('before');
    expect(await bad('limit=0')).toBe('limit');
    expect((await env.gateway.admin('GET', '/requests?limit=5000')).status).toBe(400);
  });

  it('exports the log as JSON lines, oldest first, with the same filters', async () => {
    const res = await fetch(`${env.gateway.url}/admin/requests/export?user=alice`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const text = await res.text();
    expect(text.endsWith('\n')).toBe(true);
    const records = text.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(records.map((r) => r.requestId)).toEqual([sent.plain?.id, sent.streamed?.id, sent.aborted?.id, sent.failed?.id]);
    expect(records[0]).toEqual((await keptRecords(env.gateway, 5)).find((r) => r.requestId === sent.plain?.id));
  });

  it('needs the admin token', async () => {
    const res = await fetch(`${env.gateway.url}/admin/requests`, { headers: { authorization: `Bearer ${alice}` } });
    expect(res.status).toBe(401);
    const exported = await fetch(`${env.gateway.url}/admin/requests/export`);
    expect(exported.status).toBe(401);
  });
});
