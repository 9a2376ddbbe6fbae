// Fuzzing of the quota ledger under load: a user with a small daily token limit sends random
// groups of chat requests side by side (random prompts, max_tokens, streamed or not) until the
// limit refuses them. While they run and after, what is charged plus what is reserved never
// exceeds the limit (docs/quota.md, "The guarantee"); a refusal is a 429 of the gateway's own with
// no upstream request; once all are done nothing is reserved. The prompts are short, so that the
// fake upstream's usage (a quarter token per character, 6 output tokens) is never above the
// request's worst case: the one documented way past a limit is not taken.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FUZZ_TIMEOUT, type FuzzGateway, checkAlive, checkReply, expectOpenAIError, fuzz, httpRequest, rawExchange, startFuzzGateway } from './helpers/fuzz.js';
import { registerSecret } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';

let fx: FuzzGateway;
let users = 0;

beforeAll(async () => {
  fx = await startFuzzGateway();
});

afterAll(async () => {
  await fx?.close();
});

const chat = fc.record({
  content: fc.string({ maxLength: 40 }),
  maxTokens: fc.integer({ min: 8, max: 400 }),
  stream: fc.boolean(),
});

async function day(id: string): Promise<{ tokens: number; reservedTokens: number; inFlight: number }> {
  const { json } = await fx.gateway.admin('GET', `/users/${id}`);
  return { tokens: json.usage.day.tokens, reservedTokens: json.usage.day.reservedTokens, inFlight: json.usage.concurrent.inFlight };
}

let refused = 0;
let served = 0;

describe('the quota ledger, fuzzed', () => {
  it('never holds more than the limit charged plus reserved, and nothing reserved at rest', async () => {
    await fuzz(
      fc.asyncProperty(fc.integer({ min: 200, max: 3_000 }), fc.array(fc.array(chat, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 6 }), async (limit, groups) => {
        const id = `quota-fuzz-${++users}`;
        const key = await fx.gateway.createUserKey(id, { limits: { tokensPerDay: limit } });
        registerSecret(key);
        let watching = true;
        const seen: Array<{ tokens: number; reservedTokens: number }> = [];
        // The ledger as it is while the requests run.
        const watcher = (async () => {
          while (watching) seen.push(await day(id));
        })();
        for (const group of groups) {
          await Promise.all(
            group.map(async (c) => {
              const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: c.content }], max_tokens: c.maxTokens, ...(c.stream ? { stream: true } : {}) });
              const headers: Array<[string, string]> = [['host', 'gateway.test'], ['authorization', `Bearer ${key}`], ['content-type', 'application/json']];
              const reply = await rawExchange(fx.gateway.port, httpRequest('POST', '/v1/chat/completions', headers, body));
              const label = `limit ${limit}: ${body}`;
              await checkReply(fx, label, reply, 0, { alongside: true });
              if (reply.status === 429) {
                refused++;
                expect(expectOpenAIError(reply.body, label).code, label).toBe('insufficient_quota');
              } else {
                served++;
                expect(reply.status, label).toBe(200);
              }
            }),
          );
        }
        await until(async () => (await day(id)).inFlight === 0, `${id}'s requests to settle`);
        watching = false;
        await watcher;
        const rest = await day(id);
        seen.push(rest);
        for (const s of seen) expect(s.tokens + s.reservedTokens, `${id}: charged + reserved within ${limit}`).toBeLessThanOrEqual(limit);
        expect(rest.reservedTokens, `${id}: reserved at rest`).toBe(0);
        // Every request the limit refused went nowhere: the upstream saw only the ones served.
        expect(fx.fake.requests.filter((r) => (r.json as { messages?: unknown } | undefined)?.messages !== undefined).length).toBe(served);
      }),
      80,
    );
    await checkAlive(fx);
    console.log(`fuzz-quota: ${users} users, ${served} requests served, ${refused} refused at the limit`);
  }, FUZZ_TIMEOUT);
});
