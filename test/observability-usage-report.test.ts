// GET /admin/usage after plain, streamed, aborted and failed requests of two users through a real
// gateway, on the memory store and on Redis: requests, errors, tokens and cost by day, model and
// user match what the fake upstream reported (and, for the aborted stream, what the gateway
// counted and charged).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS, promptTokens } from '../src/dev/fake-openai-answers.js';
import { PriceTable, costMicros } from '../src/quota/prices.js';
import type { TokenUsage } from '../src/quota/usage.js';
import { registerSecret } from './helpers/log-capture.js';
import { BREAK, type ObservedGateway, SLOW, abortAfterFirstChunk, chat, keptRecords, post, startObservedGateway } from './helpers/observability-fixture.js';

const POOL_KEY = 'sk-pool-usagereport-0123456789abcdef';
const prices = new PriceTable({});
const micros = (model: string, usage: TokenUsage): number => costMicros(prices.lookup(model) as NonNullable<ReturnType<PriceTable['lookup']>>, usage);
const chatUsage = (content: string): TokenUsage => ({ input: promptTokens([{ role: 'user', content }]), cachedInput: 0, output: FAKE_COMPLETION_TOKENS });

function figures(requests: number, errors: number, u: TokenUsage, cost: number, estimated = 0) {
  return {
    requests,
    errors,
    inputTokens: u.input,
    cachedInputTokens: u.cachedInput,
    outputTokens: u.output,
    totalTokens: u.input + u.output,
    costUsd: cost / 1e6,
    costMicros: cost,
    estimatedRequests: estimated,
  };
}

const add = (...all: TokenUsage[]): TokenUsage => ({
  input: all.reduce((n, u) => n + u.input, 0),
  cachedInput: all.reduce((n, u) => n + u.cachedInput, 0),
  output: all.reduce((n, u) => n + u.output, 0),
});

describe.each(['memory', 'redis'] as const)('usage reports on %s', (backend) => {
  let env: ObservedGateway;
  let aborted: { usage: TokenUsage; micros: number };
  const today = new Date().toISOString().slice(0, 10);
  const month = `${today.slice(0, 7)}-01`;
  const embedding: TokenUsage = { input: promptTokens('embed these words'), cachedInput: 0, output: 0 };

  beforeAll(async () => {
    env = await startObservedGateway(POOL_KEY, backend);
    const { gateway } = env;
    const alice = await gateway.createUserKey('alice');
    const bob = await gateway.createUserKey('bob');
    registerSecret(alice);
    registerSecret(bob);
    expect((await post(gateway, alice, '/chat/completions', chat('plain one'))).status).toBe(200);
    expect((await post(gateway, alice, '/chat/completions', chat('plain two'))).status).toBe(200);
    expect((await post(gateway, alice, '/chat/completions', chat('streamed', { stream: true }))).status).toBe(200);
    const cut = await abortAfterFirstChunk(gateway, alice, chat(SLOW, { stream: true }));
    expect((await post(gateway, alice, '/chat/completions', chat(BREAK))).status).toBe(502);
    expect((await post(gateway, bob, '/embeddings', { model: 'text-embedding-3-small', input: 'embed these words' })).status).toBe(200);
    // Refused before the relay: no usage.
    expect((await post(gateway, 'sk-kr-NoSuchKey0123456789abcdefghijklmn', '/chat/completions', chat('no'))).status).toBe(401);

    const kept = await keptRecords(gateway, 7);
    const record = kept.find((r) => r.requestId === cut.id) as { tokens: TokenUsage & { estimated: boolean }; costMicros: number };
    expect(record.tokens.estimated).toBe(true);
    aborted = { usage: { input: record.tokens.input, cachedInput: record.tokens.cachedInput, output: record.tokens.output }, micros: record.costMicros };
  });
  afterAll(async () => {
    await env.close();
  });

  const aliceUsage = () => add(chatUsage('plain one'), chatUsage('plain two'), chatUsage('streamed'), aborted.usage);
  const aliceMicros = () =>
    micros('gpt-4o-mini', chatUsage('plain one')) + micros('gpt-4o-mini', chatUsage('plain two')) + micros('gpt-4o-mini', chatUsage('streamed')) + aborted.micros;
  const bobMicros = () => micros('text-embedding-3-small', embedding);

  it('by user, the most expensive first, with totals; this month by default', async () => {
    const report = await env.gateway.admin('GET', '/usage?groupBy=user');
    expect(report).toEqual({
      status: 200,
      json: {
        from: month,
        to: today,
        user: null,
        groupBy: ['user'],
        data: [
          { user: 'alice', ...figures(5, 2, aliceUsage(), aliceMicros(), 1) },
          { user: 'bob', ...figures(1, 0, embedding, bobMicros()) },
        ],
        total: figures(6, 2, add(aliceUsage(), embedding), aliceMicros() + bobMicros(), 1),
      },
    });
  });

  it('by model, and by day (the default)', async () => {
    const byModel = await env.gateway.admin('GET', `/usage?groupBy=model&from=${today}&to=${today}`);
    expect(byModel.json.data).toEqual([
      { model: 'gpt-4o-mini', ...figures(5, 2, aliceUsage(), aliceMicros(), 1) },
      { model: 'text-embedding-3-small', ...figures(1, 0, embedding, bobMicros()) },
    ]);
    const byDay = await env.gateway.admin('GET', '/usage');
    expect(byDay.json.groupBy).toEqual(['day']);
    expect(byDay.json.data).toEqual([{ day: today, ...byDay.json.total }]);
  });

  it("one user's usage, and several groups at once", async () => {
    const bob = await env.gateway.admin('GET', '/usage?user=bob&groupBy=day,model');
    expect(bob.json).toMatchObject({
      user: 'bob',
      groupBy: ['day', 'model'],
      data: [{ day: today, model: 'text-embedding-3-small', ...figures(1, 0, embedding, bobMicros()) }],
      total: figures(1, 0, embedding, bobMicros()),
    });
  });

  it('an empty span, and 400s naming a bad parameter', async () => {
    const empty = await env.gateway.admin('GET', '/usage?from=2001-01-01&to=2001-01-31');
    expect(empty.json).toEqual({ from: '2001-01-01', to: '2001-01-31', user: null, groupBy: ['day'], data: [], total: figures(0, 0, { input: 0, cachedInput: 0, output: 0 }, 0) });
    const param = async (query: string) => {
      const answer = await env.gateway.admin('GET', `/usage?${query}`);
      expect(answer.status).toBe(400);
      return answer.json.error.param;
    };
    expect(await param('groupBy=week')).toBe('groupBy');
    expect(await param('from=2030-02-01&to=2030-01-01')).toBe('from');
    expect(await param('from=2020-01-01&to=2030-01-01')).toBe('from');
    expect(await param('to=tomorrow')).toBe('to');
  });
});
