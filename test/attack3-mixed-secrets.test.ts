// A careless operator starts a second gateway on the same Redis with another KEYRELAY_SECRET (a
// typo, a copied .env). While the catalog is empty nothing tells the two apart, so both start.
// From then on each process writes values the other cannot open. What must hold even so:
// - a change the store took is answered as made and leaves its audit entry (never a 404 after a
//   write, never a change that the audit log does not show), or it is refused with nothing written;
// - a pool key removed through the admin API gets no new request after a second, in the process
//   that removed it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, type RecordedRequest, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { type RedisServer, redisCli, startRedis } from './helpers/redis-server.js';
import { SECRET_A, SECRET_B, adminAt, chat, runtimeSecret } from './helpers/runtime-fixture.js';

const KEY_ONE = runtimeSecret('mixed-one');
const KEY_TWO = runtimeSecret('mixed-two');

let redis: RedisServer;
let fake: FakeUpstream;
let a: TestGateway;
let b: TestGateway;
let userKey: string;

const auth = (r: RecordedRequest) => String(r.headers.authorization).slice('Bearer '.length);
const gatewayWith = (secret: string) =>
  startGateway({ env: { REDIS_URL: redis.url, KEYRELAY_UPSTREAM_URL: fake.baseUrl, KEYRELAY_SECRET: secret } });

beforeAll(async () => {
  redis = await startRedis();
  fake = await startFakeUpstream();
  a = await gatewayWith(SECRET_A);
  b = await gatewayWith(SECRET_B);
  userKey = await a.createUserKey('mixed-user', { limits: { tokensPerDay: 1_000_000 } });
  registerSecret(userKey);
  expect((await adminAt(a.url)('POST', '/upstreams/default/keys', { id: 'k1', key: KEY_ONE })).status).toBe(201);
}, 60_000);
afterAll(async () => {
  await a?.close();
  await b?.close();
  await fake.close();
  await redis.stop();
});

describe('two processes of different KEYRELAY_SECRET on one store', () => {
  it('a key added through the second one is either refused with nothing written, or answered 201 and audited', async () => {
    const added = await adminAt(b.url)('POST', '/upstreams/default/keys', { id: 'k2', key: KEY_TWO });
    const stored = (await redisCli(redis.port, 'get', 'kr:{pool}:catalog')).includes('"k2"');
    const audit = await b.admin('GET', '/audit?target=pool_key:default/k2');
    if (stored) {
      expect(added.status).toBe(201);
      expect(audit.json.data).toHaveLength(1);
    } else {
      expect(added.status).toBe(409);
    }
  });

  it('a key removed through the first one gets no new request after a second', async () => {
    expect((await chat(a.url, userKey)).status).toBe(200);
    const removed = await adminAt(a.url)('DELETE', '/upstreams/default/keys/k1');
    expect(removed.status).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    fake.reset();
    for (let i = 0; i < 3; i++) await chat(a.url, userKey);
    expect(fake.requests.map(auth)).not.toContain(KEY_ONE);
  });
});
