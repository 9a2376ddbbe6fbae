// One user cannot hurt the others through the owner table. It used to be one LRU of 100,000
// records for all users, so a user creating many objects pushed other users' records out: their
// own objects answered them 404, and with `pool.shareUnknownObjects` became open to everyone.
// Now nothing is ever pushed out: each user counts only their own objects (and the slots their
// creating requests hold), and one at `pool.maxObjectsPerUser` gets 429 before the upstream sees
// the create. Store level on memory, Redis and Redis Cluster; end to end on memory and Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import type { RecordedRequest } from '../src/dev/fake-upstream.js';
import type { ObjectOwner } from '../src/pool/object-owners.js';
import type { Store } from '../src/store/types.js';
import { registerSecret } from './helpers/log-capture.js';
import { type Answer, type PoolFixture, startPool } from './helpers/pool-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';
import { type Backend, STORE_BACKENDS } from './helpers/store-backends.js';

// Past the 100,000 records the memory table used to keep for all users together.
const FLOOD = 100_001;

describe.each(STORE_BACKENDS)('the %s store', (name, make) => {
  let backend: Backend;
  let store: Store;
  let seq = 0;
  const fresh = (): string => `u${++seq}-${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    backend = await make();
    store = backend.store;
  });
  afterAll(() => backend.stop());

  it("keeps alice's objects however many mallory records", async () => {
    const alice: ObjectOwner = { userId: fresh(), upstreamId: 'main', keyId: 'a' };
    const mallory: ObjectOwner = { userId: fresh(), upstreamId: 'main', keyId: 'a' };
    const mine = [`file-${fresh()}`, `resp_${fresh()}`, `vs_${fresh()}`, `conv_${fresh()}`];
    for (const id of mine) await store.objectOwners.record(id, alice);
    // Fewer on Redis, where no table ever pushed records out: the count is what matters there.
    const flood = name === 'memory' ? FLOOD : 3_000;
    const stamp = fresh();
    for (let i = 0; i < flood; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, flood - i) }, (_, j) => store.objectOwners.record(`resp_${stamp}x${i + j}`, mallory));
      await Promise.all(batch);
    }
    expect(await store.objectOwners.lookupMany(mine)).toEqual(new Map(mine.map((id) => [id, alice])));
    expect(await store.objectOwners.held(alice.userId)).toBe(mine.length);
    expect(await store.objectOwners.held(mallory.userId)).toBe(flood);
  }, 120_000);

  it('refuses a slot at the bound, counts slots and objects alike, and a deletion frees one', async () => {
    const userId = fresh();
    const owner: ObjectOwner = { userId, upstreamId: 'main', keyId: 'a' };
    const lease = 3_600_000;
    await store.objectOwners.record(`file-${userId}-1`, owner);
    await store.objectOwners.record(`file-${userId}-2`, owner);
    expect(await store.objectOwners.hold(userId, 'r1', 3, lease)).toBe(true);
    expect(await store.objectOwners.hold(userId, 'r2', 3, lease)).toBe(false);
    // Another user is not affected.
    expect(await store.objectOwners.hold(fresh(), 'r2', 3, lease)).toBe(true);
    // r1's answer made a file, then r1 gave its slot back: still at the bound.
    await store.objectOwners.record(`file-${userId}-3`, owner);
    await store.objectOwners.release(userId, 'r1');
    expect(await store.objectOwners.held(userId)).toBe(3);
    expect(await store.objectOwners.hold(userId, 'r2', 3, lease)).toBe(false);
    await store.objectOwners.forget(`file-${userId}-2`);
    expect(await store.objectOwners.held(userId)).toBe(2);
    expect(await store.objectOwners.hold(userId, 'r2', 3, lease)).toBe(true);
    // Forgetting what is unknown, or twice, changes nothing.
    await store.objectOwners.forget(`file-${userId}-2`);
    await store.objectOwners.forget(`file-${fresh()}`);
    expect(await store.objectOwners.held(userId)).toBe(3);
  });

  it('gives exactly as many slots as the bound leaves to requests sent at once', async () => {
    const userId = fresh();
    await store.objectOwners.record(`file-${userId}`, { userId, upstreamId: 'main', keyId: 'a' });
    const granted = await Promise.all(Array.from({ length: 30 }, (_, i) => store.objectOwners.hold(userId, `r${i}`, 8, 3_600_000)));
    expect(granted.filter(Boolean)).toHaveLength(7);
    expect(await store.objectOwners.held(userId)).toBe(8);
  });
});

const CAP = 5;
const noSuchObject = (id: string) => ({ error: { message: `No such object: ${id}`, type: 'invalid_request_error', param: null, code: 'not_found' } });
const tooMany = {
  error: {
    message: `You hold ${CAP} objects created through this gateway (files, vector stores, responses …), as many as a user may. Delete some before creating more.`,
    type: 'invalid_request_error',
    param: null,
    code: 'too_many_objects',
  },
};

describe.each([
  ['memory', false],
  ['memory', true],
  ['redis', false],
  ['redis', true],
] as const)('end to end on the %s store, shareUnknownObjects %s', (storeName, shareUnknown) => {
  let redis: RedisServer | undefined;
  let pool: PoolFixture;
  let malloryKey: string;

  const call = async (apiKey: string, method: string, path: string, body?: unknown): Promise<Answer> => {
    const res = await fetch(`${pool.gateway.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) : undefined };
  };
  const createResponse = (apiKey: string, input: string, extra: object = {}) => call(apiKey, 'POST', '/responses', { model: 'gpt-4o-mini', input, ...extra });
  /** The upstream's POST /v1/responses whose input was `input`. */
  const upstreamCreates = (input: string): RecordedRequest[] =>
    pool.fake.requests.filter((r) => r.method === 'POST' && r.path === '/v1/responses' && (r.json as { input?: string } | undefined)?.input === input);

  beforeAll(async () => {
    if (storeName === 'redis') redis = await startRedis();
    pool = await startPool({
      keys: ['a', 'b'],
      userId: 'alice',
      env: redis ? { REDIS_URL: redis.url } : {},
      config: { pool: { shareUnknownObjects: shareUnknown, maxObjectsPerUser: CAP } as Config['pool'] },
    });
    malloryKey = await pool.gateway.createUserKey('mallory', { limits: { tokensPerDay: 1_000_000 } });
    registerSecret(malloryKey);
    // Deletion answers, as OpenAI gives them.
    pool.fake.handle((req) => {
      const id = /^\/v1\/responses\/(resp_[^/]+)$/.exec(req.path)?.[1];
      return req.method === 'DELETE' && id ? { body: { id, object: 'response', deleted: true } } : undefined;
    });
  });
  afterAll(async () => {
    await pool?.close();
    await redis?.stop();
  });

  it("keeps alice's response hers while mallory creates all she may; mallory past her bound gets 429 and the upstream never sees it", async () => {
    const created = await createResponse(pool.userKey, 'alice-1');
    expect(created.status).toBe(200);
    const aliceResponse = created.json.id as string;

    const mallorys: string[] = [];
    for (let i = 0; i < CAP; i++) {
      const answer = await createResponse(malloryKey, `mallory-${i}`);
      expect(answer.status).toBe(200);
      mallorys.push(answer.json.id as string);
    }
    for (const attempt of ['mallory-over-1', 'mallory-over-2']) {
      const refused = await createResponse(malloryKey, attempt);
      expect(refused.status).toBe(429);
      expect(refused.json).toEqual(tooMany);
      expect(refused.headers.get('x-should-retry')).toBe('false');
      expect(upstreamCreates(attempt)).toEqual([]);
    }
    // Nothing is made with store: false: it goes through.
    expect((await createResponse(malloryKey, 'mallory-unstored', { store: false })).status).toBe(200);
    // Nor does the bound touch what creates nothing, or her own objects.
    expect((await call(malloryKey, 'POST', '/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })).status).toBe(200);
    expect((await call(malloryKey, 'GET', `/responses/${mallorys[0]}`)).status).toBe(200);

    expect((await call(pool.userKey, 'GET', `/responses/${aliceResponse}`)).status).toBe(200);
    const stolen = await call(malloryKey, 'GET', `/responses/${aliceResponse}`);
    expect(stolen.status).toBe(404);
    expect(stolen.json).toEqual(noSuchObject(aliceResponse));
    // Alice has her own bound, untouched by mallory's.
    expect((await createResponse(pool.userKey, 'alice-2')).status).toBe(200);

    // A deletion frees a slot: one more, then the bound again.
    const deleted = await call(malloryKey, 'DELETE', `/responses/${mallorys[0]}`);
    expect(deleted.json).toEqual({ id: mallorys[0], object: 'response', deleted: true });
    expect((await createResponse(malloryKey, 'mallory-after-delete')).status).toBe(200);
    expect((await createResponse(malloryKey, 'mallory-over-3')).status).toBe(429);
    expect(upstreamCreates('mallory-over-3')).toEqual([]);
  });

  it('lets requests sent at once create no more than the bound', async () => {
    const eveKey = await pool.gateway.createUserKey(`eve-${shareUnknown}`, { limits: { tokensPerDay: 1_000_000 } });
    registerSecret(eveKey);
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => createResponse(eveKey, `eve-${shareUnknown}-${i}`)));
    expect(answers.map((a) => a.status).sort()).toEqual([...Array(CAP).fill(200), ...Array(12 - CAP).fill(429)]);
    const reached = Array.from({ length: 12 }, (_, i) => upstreamCreates(`eve-${shareUnknown}-${i}`).length).reduce((a, b) => a + b, 0);
    expect(reached).toBe(CAP);
  });
});
