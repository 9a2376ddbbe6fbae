// Secrets added at run time are sealed at rest: no raw value of the store holds a pool key or a
// proxy password, nor any 8-character piece of one. A gateway whose KEYRELAY_SECRET does not open
// what the store holds refuses to start and names the setting. Rotating KEYRELAY_SECRET: a process
// with the new secret and the previous one serves both while `secrets rotate` re-seals everything
// under the new one; after it, the new secret alone serves and the old one alone cannot start.
import type { Config } from '../src/config.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, type RecordedRequest, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { parseSecret } from '../src/secrets/box.js';
import { startChildGateway } from './helpers/child-gateway.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { rawValues } from './helpers/redis-raw.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';
import { SECRET_A, SECRET_B, adminAt, chat, fragments, runtimeSecret } from './helpers/runtime-fixture.js';

const KEY_ONE = runtimeSecret('sealed-one');
const KEY_TWO = runtimeSecret('sealed-two');
const PROXY_PASSWORD = 'pw-Proxy-Secret-4711';
registerSecret(PROXY_PASSWORD);
const ID_A = parseSecret(SECRET_A, 'a').id;
const ID_B = parseSecret(SECRET_B, 'b').id;

let redis: RedisServer;
let fake: FakeUpstream;
const open: TestGateway[] = [];

const rawStore = () => rawValues([redis.port]);

const gatewayWith = async (secret: string | undefined, previous?: string) => {
  const gateway = await startGateway({
    env: { REDIS_URL: redis.url, KEYRELAY_UPSTREAM_URL: fake.baseUrl, KEYRELAY_SECRET: secret, KEYRELAY_SECRET_PREVIOUS: previous },
    // Round robin, so that the same request reaches every key (affinity would keep it on one).
    config: { pool: { cacheAffinity: false } } as Partial<Config>,
  });
  open.push(gateway);
  return gateway;
};

const auth = (r: RecordedRequest) => String(r.headers.authorization).slice('Bearer '.length);

beforeAll(async () => {
  redis = await startRedis();
  fake = await startFakeUpstream();
});
afterAll(async () => {
  for (const gateway of open) await gateway.close();
  await fake.close();
  await redis.stop();
});

describe('secrets at rest', () => {
  let userKey: string;

  it('keeps no secret, and no piece of one, in any raw value of the store', async () => {
    const gateway = await gatewayWith(SECRET_A);
    const admin = adminAt(gateway.url);
    userKey = await gateway.createUserKey('sealed-user', { limits: { tokensPerDay: 1_000_000 } });
    registerSecret(userKey);
    expect((await admin('POST', '/upstreams/default/keys', { id: 'one', key: KEY_ONE, proxy: `http://user:${PROXY_PASSWORD}@127.0.0.1:1` })).status).toBe(201);
    expect((await admin('POST', '/upstreams/default/keys', { id: 'two', key: KEY_TWO })).status).toBe(201);
    expect((await admin('PATCH', '/upstreams/default/keys/one', { proxy: null })).status).toBe(200);
    expect((await admin('POST', '/upstreams', { id: 'proxied', baseUrl: fake.baseUrl, models: ['none-*'], proxy: `socks5h://user:${PROXY_PASSWORD}@127.0.0.1:1` })).status).toBe(201);
    fake.reset();
    expect((await chat(gateway.url, userKey)).status).toBe(200);
    expect((await chat(gateway.url, userKey)).status).toBe(200);
    expect(new Set(fake.requests.map(auth))).toEqual(new Set([KEY_ONE, KEY_TWO]));

    const raw = await rawStore();
    expect(raw).toContain(`kr1:${ID_A}:`);
    for (const secret of [KEY_ONE, KEY_TWO, PROXY_PASSWORD, SECRET_A]) {
      const found = fragments(secret).filter((piece) => raw.includes(piece));
      expect(found, `pieces of a secret in the store`).toEqual([]);
    }
  });

  it('refuses to start with a wrong KEYRELAY_SECRET, or none, naming the setting', async () => {
    const env = { REDIS_URL: redis.url, KEYRELAY_UPSTREAM_URL: fake.baseUrl };
    await Promise.all([
      expect(startChildGateway({ ...env, KEYRELAY_SECRET: SECRET_B }, { entry: 'serve' })).rejects.toThrow(
        new RegExp(`keyrelay: invalid settings: KEYRELAY_SECRET: the store holds .+ sealed under key id ${ID_A}, and KEYRELAY_SECRET has key id ${ID_B}`),
      ),
      expect(startChildGateway(env, { entry: 'serve' })).rejects.toThrow(/keyrelay: invalid settings: KEYRELAY_SECRET: .*KEYRELAY_SECRET is not set/),
      expect(startChildGateway({ ...env, KEYRELAY_SECRET: 'too-short' }, { entry: 'serve' })).rejects.toThrow(/KEYRELAY_SECRET: must be 32 random bytes/),
    ]);
  }, 180_000);

  it('rotates KEYRELAY_SECRET: both secrets serve in between, then the new one alone', async () => {
    const old = open[0] as TestGateway;
    const both = await gatewayWith(SECRET_B, SECRET_A);
    // Before the rotation: the old-secret process and the two-secret process both serve the keys.
    for (const gateway of [old, both]) {
      fake.reset();
      expect((await chat(gateway.url, userKey)).status).toBe(200);
      expect((await chat(gateway.url, userKey)).status).toBe(200);
      expect(new Set(fake.requests.map(auth))).toEqual(new Set([KEY_ONE, KEY_TWO]));
    }
    // A key added now is sealed under the new secret: the two-secret process holds both kinds at once.
    const KEY_THREE = runtimeSecret('sealed-three');
    expect((await adminAt(both.url)('POST', '/upstreams/default/keys', { id: 'three', key: KEY_THREE })).status).toBe(201);
    const mixed = await rawStore();
    expect(mixed).toContain(`kr1:${ID_A}:`);
    expect(mixed).toContain(`kr1:${ID_B}:`);

    const rotated = await adminAt(both.url)('POST', '/secrets/rotate');
    expect(rotated.status).toBe(200);
    // one, two, and the upstream's proxy were under A; three was under B already.
    expect(rotated.json).toEqual({ keyId: ID_B, resealed: 3, total: 4 });
    const raw = await rawStore();
    expect(raw).not.toContain(`kr1:${ID_A}:`);
    for (const secret of [KEY_ONE, KEY_TWO, KEY_THREE, PROXY_PASSWORD]) expect(fragments(secret).filter((p) => raw.includes(p))).toEqual([]);
    // Rotating again changes nothing.
    expect((await adminAt(both.url)('POST', '/secrets/rotate')).json).toEqual({ keyId: ID_B, resealed: 0, total: 4 });

    const fresh = await gatewayWith(SECRET_B);
    fake.reset();
    for (let i = 0; i < 3; i++) expect((await chat(fresh.url, userKey)).status).toBe(200);
    expect(new Set(fake.requests.map(auth))).toEqual(new Set([KEY_ONE, KEY_TWO, KEY_THREE]));
    await expect(gatewayWith(SECRET_A)).rejects.toThrow(/KEYRELAY_SECRET: the store holds .* sealed under key id/);
  });
});
