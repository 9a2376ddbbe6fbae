// A user at pool.maxObjectsPerUser is refused creates (429 too_many_objects), but
// POST /v1/responses/compact is not among CREATING_OPERATIONS (src/pool/objects.ts) while its
// answer (CompactResource: `{id: "resp_…", object: "response.compaction"}`) is read by the object
// tap (src/relay/object-tap.ts), which records the `resp_` id as a stored response for 30 days. So
// at the bound the user makes one more owner record per call, without ever taking a slot: the
// per-user bound does not hold.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { createMemoryStore } from '../src/store/memory.js';
import type { Store } from '../src/store/types.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-attack2-compact-000001';
const CAP = 3;

let fake: FakeUpstream;
let gateway: TestGateway;
let store: Store;
let key: string;
let seq = 0;

beforeAll(async () => {
  registerPoolKey(POOL_KEY);
  fake = await startFakeUpstream();
  store = createMemoryStore();
  gateway = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: { pool: { maxObjectsPerUser: CAP } as Config['pool'] },
    store,
  });
  key = await gateway.createUserKey('mallory', { limits: { tokensPerDay: 10_000_000 } });
  registerSecret(key);
  // What OpenAI answers a compaction (openapi.yaml, CompactResource): a new `resp_` id each time.
  fake.handle((req) =>
    req.method === 'POST' && req.path === '/v1/responses/compact'
      ? {
          body: {
            id: `resp_compact${++seq}`,
            object: 'response.compaction',
            created_at: 1764967971,
            output: [],
            usage: { input_tokens: 5, output_tokens: 5, total_tokens: 10 },
          },
        }
      : undefined,
  );
});

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

async function post(path: string, body: unknown) {
  const res = await fetch(`${gateway.baseUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

it('compacting at the bound makes no owner record past pool.maxObjectsPerUser', async () => {
  for (let i = 0; i < CAP; i++) expect((await post('/responses', { model: 'gpt-4o-mini', input: `fill-${i}` })).status).toBe(200);
  expect((await post('/responses', { model: 'gpt-4o-mini', input: 'over' })).status).toBe(429);
  expect(await store.objectOwners.held('mallory')).toBe(CAP);

  for (let i = 0; i < 20; i++) await post('/responses/compact', { model: 'gpt-4o-mini', input: `compact-${i}` });

  expect(await store.objectOwners.held('mallory')).toBeLessThanOrEqual(CAP);
});
