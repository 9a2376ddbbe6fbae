// Prompt cache affinity (docs/key-pool.md): a fake upstream that keeps a prompt cache per key, as
// OpenAI does per project, and conversations that grow turn by turn. With affinity each
// conversation stays on one key and nearly all of its prompt is read from the cache; round robin
// spreads it and pays for most of it again. A key taken out moves only its own conversations, a
// cooling key hands them to the next key by rank until it recovers, requests with nothing to hash
// follow the strategy, and `pool.cacheAffinity: false` is the strategy alone.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Config, loadConfig } from '../src/config.js';
import { type PoolFixture, poolSecret, startPool } from './helpers/pool-fixture.js';
import { until } from './helpers/quota-fixture.js';
import { SECRET_A } from './helpers/runtime-fixture.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';

const KEYS = ['a', 'b', 'c', 'd'];
const CONVERSATIONS = 10;
const TURNS = 20;

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;

/** One conversation: its own long system prompt, and what groups it (conversations 0-2 a
 * prompt_cache_key, 3-5 an end user, 6-9 only the start of their prompt). */
class Conversation {
  readonly messages: Message[];
  readonly group: Record<string, string>;
  readonly source: string;

  constructor(readonly n: number) {
    this.messages = [{ role: 'system', content: `Conversation ${n}. ${'You answer questions about the weather in detail. '.repeat(30)}` }];
    this.group = n < 3 ? { prompt_cache_key: `conversation-${n}` } : n < 6 ? { user: `end-user-${n}` } : {};
    this.source = n < 3 ? 'prompt_cache_key' : n < 6 ? 'user' : 'prefix';
  }
}

interface Turn {
  prompt: number;
  cached: number;
  key: string;
  affinity?: unknown;
}

/** Sends the conversation's next user turn and keeps the answer in it. */
async function turn(pool: PoolFixture, client: OpenAI, c: Conversation, t: number): Promise<Turn> {
  // Each turn brings some text of its own (a pasted report), so the history soon outweighs the system prompt.
  c.messages.push({ role: 'user', content: `Turn ${t} of conversation ${c.n}: what of tomorrow, given this report? ${'Wind from the west, rain later. '.repeat(14)}` });
  const { data, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: c.messages, ...c.group }).withResponse();
  c.messages.push({ role: 'assistant', content: data.choices[0]?.message.content ?? '' });
  const requestId = response.headers.get('x-keyrelay-request-id');
  const line = pool.gateway.logs.find((l) => l.requestId === requestId && l.route !== undefined);
  return {
    prompt: data.usage?.prompt_tokens ?? 0,
    cached: data.usage?.prompt_tokens_details?.cached_tokens ?? 0,
    key: String(line?.poolKeyId),
    affinity: line?.affinity,
  };
}

/** Turns `from` to `to` of every conversation, the conversations side by side. */
async function run(pool: PoolFixture, client: OpenAI, conversations: Conversation[], from: number, to: number): Promise<Turn[][]> {
  return Promise.all(
    conversations.map(async (c) => {
      const turns: Turn[] = [];
      for (let t = from; t <= to; t++) turns.push(await turn(pool, client, c, t));
      return turns;
    }),
  );
}

/**
 * Every turn of every conversation, one request at a time, in an order shuffled the same way each
 * run (a fixed LCG): people do not take turns in step, and a round robin over conversations that
 * do would send each one back and forth between the same two keys.
 */
async function shuffled(pool: PoolFixture, client: OpenAI, conversations: Conversation[], turns: number): Promise<Turn[][]> {
  const done: Turn[][] = conversations.map(() => []);
  const order = conversations.flatMap((_, n) => Array.from({ length: turns }, () => n));
  let seed = 12345;
  for (let i = order.length - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % (i + 1);
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  for (const n of order) {
    const turns = done[n] as Turn[];
    turns.push(await turn(pool, client, conversations[n] as Conversation, turns.length + 1));
  }
  return done;
}

const cachedShare = (turns: Turn[][]): number => {
  const all = turns.flat();
  return all.reduce((n, t) => n + t.cached, 0) / all.reduce((n, t) => n + t.prompt, 0);
};

const clientOf = (pool: PoolFixture) => new OpenAI({ baseURL: pool.gateway.baseUrl, apiKey: pool.userKey, maxRetries: 0 });

async function startCachePool(config: Partial<Config> = {}): Promise<PoolFixture> {
  return startPool({ keys: KEYS, fakeOptions: { promptCache: true }, config, cacheAffinity: config.pool?.cacheAffinity ?? true, env: { KEYRELAY_SECRET: SECRET_A } });
}

it('is on by default', () => {
  expect(loadConfig({ KEYRELAY_CONFIG: undefined }).pool.cacheAffinity).toBe(true);
});

describe('200 requests of 10 growing conversations over 4 keys', () => {
  let affinity: PoolFixture;
  let roundRobin: PoolFixture;
  beforeAll(async () => {
    affinity = await startCachePool();
    roundRobin = await startCachePool({ pool: { cacheAffinity: false } } as Partial<Config>);
  });
  afterAll(async () => {
    await affinity.close();
    await roundRobin.close();
  });

  it('reads more than 90 % of the prompt tokens from the cache with affinity, far more than round robin', async () => {
    const conversations = Array.from({ length: CONVERSATIONS }, (_, n) => new Conversation(n));
    const withAffinity = await shuffled(affinity, clientOf(affinity), conversations, TURNS);
    const plain = Array.from({ length: CONVERSATIONS }, (_, n) => new Conversation(n));
    const withRoundRobin = await shuffled(roundRobin, clientOf(roundRobin), plain, TURNS);

    const shares = { affinity: cachedShare(withAffinity), roundRobin: cachedShare(withRoundRobin) };
    // The figures docs/key-pool.md quotes.
    process.stdout.write(`cached share of prompt tokens: affinity ${(shares.affinity * 100).toFixed(1)} %, round robin ${(shares.roundRobin * 100).toFixed(1)} %\n`);
    expect(withAffinity.flat()).toHaveLength(200);
    expect(shares.affinity).toBeGreaterThan(0.9);
    expect(shares.roundRobin).toBeLessThan(shares.affinity - 0.15);

    // One key per conversation, recorded as following its affinity of the right kind; between them
    // the conversations use more than one key.
    for (const [n, turns] of withAffinity.entries()) {
      expect(new Set(turns.map((t) => t.key)).size, `conversation ${n}`).toBe(1);
      expect(new Set(turns.map((t) => t.affinity))).toEqual(new Set([conversations[n]?.source]));
    }
    expect(new Set(withAffinity.map((turns) => turns[0]?.key)).size).toBeGreaterThan(1);
    // pool.cacheAffinity false: the strategy's rotation, and no record says affinity.
    expect(withRoundRobin.flat().every((t) => t.affinity === undefined)).toBe(true);
    expect(new Set(roundRobin.keysUsed())).toEqual(new Set(KEYS));
  });
});

describe('keys that come and go', () => {
  let pool: PoolFixture;
  let client: OpenAI;
  beforeAll(async () => {
    pool = await startCachePool({ pool: { health: { defaultCooldownMs: 1000 } } } as Partial<Config>);
    client = clientOf(pool);
    registerPoolKey(poolSecret('e'));
  });
  afterAll(() => pool.close());

  const keysOf = (turns: Turn[][]) => turns.map((ts) => ts.map((t) => t.key));
  const only = (keys: string[]) => {
    expect(new Set(keys).size).toBe(1);
    return keys[0] as string;
  };

  it('a key disabled mid-run moves only its conversations, and they come back when it is enabled', async () => {
    const conversations = Array.from({ length: CONVERSATIONS }, (_, n) => new Conversation(n));
    const before = keysOf(await run(pool, client, conversations, 1, 4)).map(only);
    // The key with the most conversations goes.
    const counts = KEYS.map((k) => before.filter((b) => b === k).length);
    const out = KEYS[counts.indexOf(Math.max(...counts))] as string;
    expect((await pool.gateway.admin('POST', `/upstreams/main/keys/${out}/disable`, {})).status).toBe(200);

    const during = keysOf(await run(pool, client, conversations, 5, 8)).map(only);
    for (let n = 0; n < CONVERSATIONS; n++) {
      if (before[n] === out) expect(during[n]).not.toBe(out);
      else expect(during[n], `conversation ${n} keeps its key`).toBe(before[n]);
    }

    expect((await pool.gateway.admin('POST', `/upstreams/main/keys/${out}/enable`, {})).status).toBe(200);
    const after = keysOf(await run(pool, client, conversations, 9, 10)).map(only);
    expect(after).toEqual(before);
  });

  it('a key added at run time takes only conversations of its own, and removing it gives them back', async () => {
    const conversations = Array.from({ length: 40 }, (_, n) => new Conversation(100 + n));
    const before = keysOf(await run(pool, client, conversations, 1, 2)).map(only);
    expect((await pool.gateway.admin('POST', '/upstreams/main/keys', { id: 'e', key: poolSecret('e') })).status).toBe(201);
    const added = keysOf(await run(pool, client, conversations, 3, 4)).map(only);
    let moved = 0;
    for (let n = 0; n < conversations.length; n++) {
      if (added[n] === before[n]) continue;
      moved++;
      expect(added[n]).toBe('e');
    }
    expect(moved).toBeGreaterThan(0);
    expect(moved).toBeLessThan(conversations.length / 2);

    expect((await pool.gateway.admin('DELETE', '/upstreams/main/keys/e')).status).toBe(200);
    const removed = keysOf(await run(pool, client, conversations, 5, 6)).map(only);
    expect(removed).toEqual(before);
  });

  it('a cooling key (429) is skipped for the next by rank, and its conversations return once it recovers', async () => {
    const c = new Conversation(7);
    const home = (await turn(pool, client, c, 1)).key;
    let limited = true;
    pool.script(home, () =>
      limited ? { status: 429, headers: { 'retry-after': '1' }, body: { error: { message: 'Rate limit reached.', type: 'requests', param: null, code: 'rate_limit_exceeded' } } } : undefined,
    );
    const failedOver = await turn(pool, client, c, 2);
    expect(failedOver.key).not.toBe(home);
    limited = false;
    // While the key cools, the conversation stays on its second key (no request reaches the first).
    const sentHome = pool.fake.requests.filter((r) => pool.keyOf(r) === home).length;
    const cooling = await turn(pool, client, c, 3);
    expect(cooling.key).toBe(failedOver.key);
    expect(cooling.affinity).toBe('prefix');
    expect(pool.fake.requests.filter((r) => pool.keyOf(r) === home).length).toBe(sentHome);
    await until(async () => (await pool.poolKey(home)).state === 'active', `key ${home} to recover`);
    expect((await turn(pool, client, c, 4)).key).toBe(home);
  });
});

describe('requests with nothing to hash, and bad groupings', () => {
  let pool: PoolFixture;
  beforeAll(async () => {
    pool = await startCachePool();
  });
  afterAll(() => pool.close());

  it('follow the strategy (round robin here)', async () => {
    pool.fake.reset();
    for (let i = 0; i < 8; i++) expect((await pool.post('/embeddings', { model: 'text-embedding-3-small', input: 'the same words' })).status).toBe(200);
    expect(pool.keysUsed()).toEqual([...KEYS, ...KEYS]);
    const lines = pool.gateway.logs.filter((l) => l.route === '/v1/embeddings');
    expect(lines).toHaveLength(8);
    expect(lines.every((l) => l.affinity === undefined)).toBe(true);
  });

  it('the same chat prompt, without a key or a user, goes to one key by its prefix', async () => {
    pool.fake.reset();
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }] };
    for (let i = 0; i < 6; i++) expect((await pool.post('/chat/completions', body)).status).toBe(200);
    expect(new Set(pool.keysUsed()).size).toBe(1);
  });

  it('a responses conversation and a growing completion prompt keep their key too', async () => {
    pool.fake.reset();
    const input: unknown[] = [];
    for (let t = 0; t < 4; t++) {
      input.push({ role: 'user', content: `Question ${t} about the tides.` });
      const answer = await pool.post('/responses', { model: 'gpt-4o-mini', instructions: 'You are a harbour master.', input });
      expect(answer.status).toBe(200);
      if (t > 0) expect(answer.json.usage.input_tokens_details.cached_tokens).toBeGreaterThan(0);
      input.push({ role: 'assistant', content: answer.json.output[0].content[0].text });
    }
    expect(new Set(pool.keysUsed()).size).toBe(1);

    pool.fake.reset();
    let prompt = `A log of the tides. ${'High water at dawn, low water at noon. '.repeat(40)}`;
    for (let t = 0; t < 4; t++) {
      prompt += ` Day ${t}: calm.`;
      const answer = await pool.post('/completions', { model: 'gpt-3.5-turbo-instruct', prompt });
      expect(answer.status).toBe(200);
      if (t > 0) expect(answer.json.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(0);
    }
    expect(new Set(pool.keysUsed()).size).toBe(1);
    const lines = pool.gateway.logs.filter((l) => l.route === '/v1/completions' || l.route === '/v1/responses');
    expect(lines.every((l) => l.affinity === 'prefix')).toBe(true);
  });

  it('a body too large to parse whole still goes by its prompt_cache_key, and by its strategy without one', async () => {
    // Such a body is estimated at a token a byte: a user whose day holds a few of them.
    const userKey = await pool.gateway.createUserKey('big-bodies', { limits: { tokensPerDay: 100_000_000 } });
    registerSecret(userKey);
    const post = async (body: object) =>
      (await fetch(`${pool.gateway.baseUrl}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })).status;
    pool.fake.reset();
    const long = 'Wind from the west, rain later. '.repeat(40_000);
    const body = (extra: object) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: long }], ...extra });
    expect(JSON.stringify(body({})).length).toBeGreaterThan(1024 * 1024);
    for (let i = 0; i < 3; i++) expect(await post(body({ prompt_cache_key: 'one-big-report' }))).toBe(200);
    expect(new Set(pool.keysUsed()).size).toBe(1);
    pool.fake.reset();
    for (let i = 0; i < 4; i++) expect(await post(body({}))).toBe(200);
    expect(new Set(pool.keysUsed())).toEqual(new Set(KEYS));
    const lines = pool.gateway.logs.filter((l) => l.route === '/v1/chat/completions' && typeof l.bytesIn === 'number' && l.bytesIn > 1024 * 1024);
    expect(lines.map((l) => l.affinity)).toEqual(['prompt_cache_key', 'prompt_cache_key', 'prompt_cache_key', undefined, undefined, undefined, undefined]);
  });

  it.each([
    ['prompt_cache_key', 5],
    ['user', { id: 'x' }],
    ['safety_identifier', ['x']],
  ])('refuses a %s that is not a string, before anything reaches the upstream', async (field, value) => {
    pool.fake.reset();
    const answer = await pool.post('/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], [field]: value });
    expect(answer.status).toBe(400);
    expect(answer.json).toEqual({ error: { message: `\`${field}\` must be a string.`, type: 'invalid_request_error', param: field, code: 'invalid_request' } });
    expect(pool.fake.requests).toHaveLength(0);
  });
});
