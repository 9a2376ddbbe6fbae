// A user tries to bend prompt cache affinity (docs/key-pool.md): to pin other users' traffic to one
// pool key, to move their conversations by flooding one key, to learn from an answer which pool key
// served it, and to make a grouping value cost the gateway or show up in its logs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PoolFixture, startPool } from './helpers/pool-fixture.js';
import { registerSecret } from './helpers/log-capture.js';

const KEYS = ['a', 'b', 'c', 'd'];
const MARK = 'attack7-grouping-value-7f3a';

let pool: PoolFixture;

beforeAll(async () => {
  pool = await startPool({ keys: KEYS, cacheAffinity: true });
});
afterAll(() => pool.close());

const chat = (extra: Record<string, unknown>, content = 'Hi') => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra });

/** The pool key each of `n` victim conversations (their own prompt_cache_key) is sent to. */
async function victimKeys(n: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const before = pool.fake.requests.length;
    expect((await pool.post('/chat/completions', chat({ prompt_cache_key: `victim-conversation-${i}` }))).status).toBe(200);
    keys.push(pool.keyOf(pool.fake.requests[before] as (typeof pool.fake.requests)[number]));
  }
  return keys;
}

describe('one user flooding one grouping', () => {
  it("stays on one key and moves no other conversation: theirs spread over the keys as before", async () => {
    const attacker = await pool.gateway.createUserKey('attack7-flooder', { limits: { tokensPerDay: 1_000_000 } });
    registerSecret(attacker);
    const before = await victimKeys(24);
    expect(new Set(before).size).toBeGreaterThanOrEqual(3);
    pool.fake.reset();
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`${pool.gateway.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${attacker}`, 'content-type': 'application/json' },
        body: JSON.stringify(chat({ prompt_cache_key: 'everyone' }, `flood ${i}`)),
      });
      await res.arrayBuffer();
      expect(res.status).toBe(200);
    }
    expect(new Set(pool.keysUsed()).size).toBe(1);
    expect(await victimKeys(24)).toEqual(before);
  });
});

describe("another user's conversation", () => {
  it("cannot be found by sending its grouping or its prompt start: the same values from two users rank the keys apart", async () => {
    const other = await pool.gateway.createUserKey('attack7-prober', { limits: { tokensPerDay: 1_000_000 } });
    registerSecret(other);
    const keyFor = async (userKey: string, extra: Record<string, unknown>, content: string): Promise<string> => {
      const before = pool.fake.requests.length;
      const res = await fetch(`${pool.gateway.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(chat(extra, content)),
      });
      await res.arrayBuffer();
      expect(res.status).toBe(200);
      return pool.keyOf(pool.fake.requests[before] as (typeof pool.fake.requests)[number]);
    };
    let apart = 0;
    for (let i = 0; i < 16; i++) {
      for (const [extra, content] of [[{ prompt_cache_key: `shared-${i}` }, 'Hi'], [{ user: `alice-${i}` }, 'Hi'], [{}, `The same system prompt ${i}`]] as const) {
        const victim = await keyFor(pool.userKey, extra, content);
        // Each user's own conversation keeps its key.
        expect(await keyFor(pool.userKey, extra, content)).toBe(victim);
        if ((await keyFor(other, extra, content)) !== victim) apart++;
      }
    }
    // Over 4 keys, about three in four land apart; all 48 alike would mean the user is not hashed.
    expect(apart).toBeGreaterThan(20);
  });
});

describe('grouping values of any size', () => {
  it('a prompt_cache_key of 600 KB costs no more than its first 1,024 characters, and goes where they go', async () => {
    pool.fake.reset();
    const head = `huge-${'k'.repeat(1019)}`;
    const started = Date.now();
    for (const key of [head, `${head}${'x'.repeat(600_000)}`, `${head}${'y'.repeat(600_000)}`]) {
      expect((await pool.post('/chat/completions', chat({ prompt_cache_key: key }))).status).toBe(200);
    }
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(new Set(pool.keysUsed()).size).toBe(1);
    // The upstream gets the key as the client wrote it: only the gateway's hash is cut.
    expect((pool.fake.requests[1]?.json as { prompt_cache_key: string }).prompt_cache_key.length).toBe(601_024);
  });

  it.each([
    ['prompt_cache_key', 'a list', ['a', 'b']],
    ['prompt_cache_key', 'an object', { toString: 'x' }],
    ['prompt_cache_key', 'a boolean', true],
    ['user', 'a number', 12345],
    ['user', 'a list of 10,000 lists', Array.from({ length: 10_000 }, () => [])],
    ['safety_identifier', 'a nested object', { nested: { deep: ['x'] } }],
  ])('a %s that is %s is refused with 400 naming it, nothing sent, nothing charged', async (field, _what, value) => {
    pool.fake.reset();
    const before = await pool.charged();
    const answer = await pool.post('/chat/completions', chat({ [field]: value }));
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatchObject({ param: field, type: 'invalid_request_error' });
    expect(pool.fake.requests).toHaveLength(0);
    const after = await pool.charged();
    expect(after.tokens).toBe(before.tokens);
  });

  it('a first message of deeply nested or many-keyed values is hashed within the bound', async () => {
    pool.fake.reset();
    const deep = (depth: number) => `${'['.repeat(depth)}"leaf"${']'.repeat(depth)}`;
    const wide = `{${Array.from({ length: 20_000 }, (_, i) => `"k${i}":{}`).join(',')}}`;
    const body = (content: string) => `{"model":"gpt-4o-mini","messages":[{"role":"user","content":${content},"extra":${wide}}]}`;
    const started = Date.now();
    const statuses: number[] = [];
    for (const content of [deep(58), wide, deep(58), deep(100_000)]) {
      const res = await fetch(`${pool.gateway.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${pool.userKey}`, 'content-type': 'application/json' },
        body: body(content),
      });
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    expect(Date.now() - started).toBeLessThan(20_000);
    // The upstream decides what such content means; the gateway only had to hash it. Nesting past
    // the gateway's own bound is refused as a client's error, never a crash.
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses[3]).toBe(400);
    const keys = pool.keysUsed();
    expect(keys).toHaveLength(3);
    expect(keys[0]).toBe(keys[2]);
  });
});

describe('what an answer and the logs tell', () => {
  it("an answer names no pool key: the upstream's organization, project and rate limits stay with the gateway", async () => {
    for (const id of KEYS) {
      pool.script(id, () => ({
        headers: {
          'openai-organization': `org-${id}-marker`,
          'openai-project': `proj-${id}-marker`,
          'x-ratelimit-remaining-requests': id === 'a' ? '1' : '9999',
          'x-ratelimit-limit-tokens': `${id}000`,
        },
        body: { id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'x' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } },
      }));
    }
    pool.fake.reset();
    const seen = new Map<string, string>();
    for (let i = 0; i < 16; i++) {
      const answer = await pool.post('/chat/completions', chat({ prompt_cache_key: `probe-${i}` }));
      expect(answer.status).toBe(200);
      const key = pool.keysUsed()[i] as string;
      const headers = [...answer.headers.entries()].filter(([name]) => !['date', 'x-request-id', 'x-keyrelay-request-id', 'content-length'].includes(name));
      const text = JSON.stringify(headers);
      expect(text).not.toMatch(/marker/);
      expect(text).not.toContain('9999');
      // Answers from different keys are told apart by nothing but the values the gateway set.
      seen.set(key, JSON.stringify(headers.map(([name]) => name).sort()));
    }
    expect(seen.size).toBeGreaterThanOrEqual(2);
    expect(new Set(seen.values()).size).toBe(1);
  });

  // `user` is logged as `endUser` by design (docs/observability.md); the others never are.
  it('no log line or request record holds a prompt_cache_key, a safety_identifier or the prompt, only the source', async () => {
    pool.fake.reset();
    for (const extra of [{ prompt_cache_key: `${MARK}-key` }, { safety_identifier: `${MARK}-safety` }, { safety_identifier: `${MARK}-safety`, user: 'end-user-1' }]) {
      expect((await pool.post('/chat/completions', chat(extra, `${MARK} prompt`))).status).toBe(200);
    }
    const lines = pool.gateway.logs.filter((l) => l.route === '/v1/chat/completions').slice(-3);
    expect(lines.map((l) => l.affinity)).toEqual(['prompt_cache_key', 'user', 'user']);
    const leaked = pool.gateway.logs.filter((l) => JSON.stringify(l).includes(MARK));
    expect(leaked).toEqual([]);
    const records = await pool.gateway.admin('GET', `/requests?user=${pool.userId}`);
    expect(records.status).toBe(200);
    expect(JSON.stringify(records.json)).not.toContain(MARK);
  });

  it('a key written into a grouping or the model reaches no log line (test/setup.ts scans every line)', async () => {
    pool.fake.reset();
    for (const extra of [{ user: pool.userKey }, { prompt_cache_key: pool.userKey }, { safety_identifier: `id ${pool.userKey}` }]) {
      expect((await pool.post('/chat/completions', chat(extra))).status).toBe(200);
    }
    const answer = await pool.post('/chat/completions', { ...chat({}), model: pool.userKey });
    expect(answer.status).toBe(200);
    const records = await pool.gateway.admin('GET', `/requests?user=${pool.userId}`);
    expect(JSON.stringify(records.json)).not.toContain(pool.userKey);
    const usage = await pool.gateway.admin('GET', `/usage?user=${pool.userId}&groupBy=model`);
    expect(usage.status).toBe(200);
    expect(JSON.stringify(usage.json)).toContain('gpt-4o-mini');
    expect(JSON.stringify(usage.json)).not.toContain(pool.userKey);
    const metrics = await fetch(`${new URL(pool.gateway.baseUrl).origin}/metrics`);
    const exposition = await metrics.text();
    expect(metrics.status).toBe(200);
    expect(exposition).toContain('keyrelay_');
    expect(exposition).not.toContain(pool.userKey);
    const lines = pool.gateway.logs.filter((l) => l.route === '/v1/chat/completions').slice(-4);
    expect(lines.map((l) => l.affinity)).toEqual(['user', 'prompt_cache_key', 'user', 'prefix']);
  });
});
