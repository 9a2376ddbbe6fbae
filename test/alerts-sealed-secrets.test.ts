// Webhook signing secrets added at run time are sealed at rest under KEYRELAY_SECRET, as pool keys
// are: without it a webhook with a secret is refused (409 secret_not_configured) and nothing is
// kept; no raw key or value of Redis holds a secret or any 8-character piece of one; a webhook kept
// before secrets were sealed (its secret as given) still signs, and `secrets rotate` seals it; a
// gateway whose secret does not open a webhook's refuses to start naming the setting; during a
// rotation the two-secret process signs with both, and after it a real receiver still verifies; a
// process already running that meets a secret it cannot open sends nothing unsigned and rotates
// nothing, and the delivery goes out, signed, from a process that opens it.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Config } from '../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { parseSecret } from '../src/secrets/box.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey } from './helpers/log-capture.js';
import { rawValues } from './helpers/redis-raw.js';
import { type RedisServer, redisCli, startRedis } from './helpers/redis-server.js';
import { SECRET_A, SECRET_B, adminAt, fragments } from './helpers/runtime-fixture.js';
import { type WebhookReceiver, startWebhookReceiver } from './helpers/webhook-receiver.js';

const POOL_KEY = 'sk-pool-sealed-hooks-0123456789abcdef';
registerPoolKey(POOL_KEY);
// Random-looking, so that the scans count any piece of them (each receiver registers its own).
const HOOK_A = 'whsec-Zq8Lm3Np7Rt2Vx6Bc9Df4Gh-a1A';
const HOOK_OLD = 'whsec-Kx4Wp9Qs2Ty7Hn3Jm8Lv5Rb-o2O';
const HOOK_B = 'whsec-Pc7Vn2Xr5Mw8Qt3Ks6Yh9Fd-b3B';
const HOOK_Y = 'whsec-Wd3Jf8Lr6Nb1Xs4Hq7Tv2Cm-y4Y';
const ID_A = parseSecret(SECRET_A, 'a').id;
const ID_B = parseSecret(SECRET_B, 'b').id;
const EVENTS = ['pool_key.disabled', 'pool_key.recovered'];

let redis: RedisServer;
let fake: FakeUpstream;
const receivers: Record<string, WebhookReceiver> = {};
const open: TestGateway[] = [];
/** The gateway of KEYRELAY_SECRET A, closed when the rotation starts. */
let first: TestGateway | undefined;

const settings = (): Partial<Config> =>
  ({
    upstreams: [{ id: 'main', baseUrl: fake.baseUrl, models: ['*'], strategy: 'round-robin', keys: [{ id: 'k1', key: POOL_KEY, weight: 1 }] }],
    alerts: { webhooks: [], firstRetryMs: 200, pollMs: 100, timeoutMs: 1000 },
  }) as Partial<Config>;

async function gatewayWith(secret: string | undefined, previous?: string, redisUrl: string | undefined = redis.url): Promise<TestGateway> {
  // A claim lasts twice timeoutMs plus 5 s: 7 s here.
  const gateway = await startGateway({ env: { REDIS_URL: redisUrl, KEYRELAY_SECRET: secret, KEYRELAY_SECRET_PREVIOUS: previous }, config: settings() });
  open.push(gateway);
  return gateway;
}

/** Disables or enables the key through `gateway`, and waits until each receiver has one more event
 * of that kind, every one of them signed so that the receiver verifies it. */
async function raise(gateway: TestGateway, action: 'disable' | 'enable', names: string[]): Promise<void> {
  const type = action === 'disable' ? 'pool_key.disabled' : 'pool_key.recovered';
  const before = new Map(names.map((n) => [n, receivers[n]!.received.filter((r) => r.event.type === type).length]));
  expect((await adminAt(gateway.url)('POST', `/upstreams/main/keys/k1/${action}`)).status).toBe(200);
  for (const name of names) {
    const receiver = receivers[name]!;
    await receiver.until((got) => got.filter((r) => r.event.type === type).length > before.get(name)!);
    expect(receiver.received.every((r) => r.verified), `every delivery to ${name} verifies`).toBe(true);
  }
}

async function close(gateway: TestGateway): Promise<void> {
  open.splice(open.indexOf(gateway), 1);
  await gateway.close();
}

const piecesIn = (raw: string, secret: string) => fragments(secret).filter((piece) => raw.includes(piece));

beforeAll(async () => {
  redis = await startRedis();
  fake = await startFakeUpstream();
  receivers.a = await startWebhookReceiver(HOOK_A);
  receivers.old = await startWebhookReceiver(HOOK_OLD);
  receivers.b = await startWebhookReceiver(HOOK_B);
  receivers.y = await startWebhookReceiver(HOOK_Y);
});
afterAll(async () => {
  for (const gateway of open) await gateway.close();
  for (const receiver of Object.values(receivers)) await receiver.close();
  await fake?.close();
  await redis?.stop();
});

describe('webhook secrets at rest', () => {
  it('refuses a webhook secret without KEYRELAY_SECRET and keeps nothing', async () => {
    const gateway = await gatewayWith(undefined, undefined, undefined);
    const added = await adminAt(gateway.url)('POST', '/webhooks', { id: 'refused', url: receivers.a!.url, events: EVENTS, secret: HOOK_A });
    expect(added.status).toBe(409);
    expect(added.json.error).toMatchObject({ code: 'secret_not_configured', param: 'secret', type: 'invalid_request_error' });
    expect((await adminAt(gateway.url)('GET', '/webhooks')).json.data).toEqual([]);
  });

  it('seals a new secret, signs with it and with one kept as given before, and shows only the last 4', async () => {
    // A webhook kept before secrets were sealed: its secret as given.
    const legacy = { id: 'hook-old', url: receivers.old!.url, events: EVENTS, secret: HOOK_OLD, source: 'store', createdAt: '2026-11-01T00:00:00.000Z' };
    await redisCli(redis.port, 'hset', 'kr:{alerts}:webhooks', 'hook-old', JSON.stringify(legacy));
    const gateway = await gatewayWith(SECRET_A);
    first = gateway;
    const admin = adminAt(gateway.url);
    const added = await admin('POST', '/webhooks', { id: 'hook-a', url: receivers.a!.url, events: EVENTS, secret: HOOK_A });
    expect(added.status).toBe(201);
    expect(added.json).toEqual({ id: 'hook-a', url: receivers.a!.url, events: EVENTS, source: 'store', createdAt: expect.any(String), last4: HOOK_A.slice(-4) });
    const listed = await admin('GET', '/webhooks');
    expect(listed.json.data.map((w: { id: string; last4: string }) => [w.id, w.last4]).sort()).toEqual([['hook-a', HOOK_A.slice(-4)], ['hook-old', HOOK_OLD.slice(-4)]]);
    for (const secret of [HOOK_A, HOOK_OLD]) expect(listed.text).not.toContain(secret.slice(0, -4));

    await raise(gateway, 'disable', ['a', 'old']);
    const raw = await rawValues([redis.port]);
    expect(raw).toContain(`kr1:${ID_A}:`);
    expect(piecesIn(raw, HOOK_A), 'pieces of a sealed webhook secret in the store').toEqual([]);
    expect(piecesIn(raw, SECRET_A)).toEqual([]);
  });

  it('refuses to start when KEYRELAY_SECRET does not open a webhook secret, naming the setting', async () => {
    await expect(gatewayWith(SECRET_B)).rejects.toThrow(new RegExp(`^KEYRELAY_SECRET: the store holds webhook hook-a sealed under key id ${ID_A}, and KEYRELAY_SECRET has key id ${ID_B}`));
    await expect(gatewayWith(undefined)).rejects.toThrow(/^KEYRELAY_SECRET: the store holds webhook hook-a sealed under key id .*KEYRELAY_SECRET is not set/);
  });

  it('rotates: the two-secret process signs with both, rotate seals every one under the new, receivers still verify', async () => {
    await close(first!);
    const both = await gatewayWith(SECRET_B, SECRET_A);
    await raise(both, 'enable', ['a', 'old']);
    const added = await adminAt(both.url)('POST', '/webhooks', { id: 'hook-b', url: receivers.b!.url, events: EVENTS, secret: HOOK_B });
    expect(added.status).toBe(201);
    const mixed = await rawValues([redis.port]);
    expect(mixed).toContain(`kr1:${ID_A}:`);
    expect(mixed).toContain(`kr1:${ID_B}:`);
    await raise(both, 'disable', ['a', 'old', 'b']);

    // hook-a was under A, hook-old as given; hook-b under B already.
    const rotated = await adminAt(both.url)('POST', '/secrets/rotate');
    expect(rotated.status).toBe(200);
    expect(rotated.json).toEqual({ keyId: ID_B, resealed: 2, total: 3 });
    const raw = await rawValues([redis.port]);
    expect(raw).not.toContain(`kr1:${ID_A}:`);
    for (const secret of [HOOK_A, HOOK_OLD, HOOK_B]) expect(piecesIn(raw, secret), 'pieces of a webhook secret in the store').toEqual([]);
    expect((await adminAt(both.url)('POST', '/secrets/rotate')).json).toEqual({ keyId: ID_B, resealed: 0, total: 3 });
    await close(both);

    const fresh = await gatewayWith(SECRET_B);
    await raise(fresh, 'enable', ['a', 'old', 'b']);
    await expect(gatewayWith(SECRET_A)).rejects.toThrow(/^KEYRELAY_SECRET: the store holds webhook .* sealed under key id/);
  });

  it('a running process that cannot open a webhook secret sends nothing unsigned, and cannot rotate; one that opens it delivers', async () => {
    const other = await startRedis();
    try {
      // Two processes of different secrets on an empty store: both start.
      const x = await gatewayWith(SECRET_A, undefined, other.url);
      const y = await gatewayWith(SECRET_B, undefined, other.url);
      expect((await adminAt(y.url)('POST', '/webhooks', { id: 'hook-y', url: receivers.y!.url, events: EVENTS, secret: HOOK_Y })).status).toBe(201);
      await close(y);

      // x raises an event it cannot sign for hook-y: nothing goes out, no attempt is recorded.
      expect((await adminAt(x.url)('POST', '/upstreams/main/keys/k1/disable')).status).toBe(200);
      await vi.waitFor(() => expect(x.logs.some((l) => l.msg === 'alerts: could not make or record a delivery attempt')).toBe(true), { timeout: 10_000, interval: 50 });
      const line = x.logs.find((l) => l.msg === 'alerts: could not make or record a delivery attempt')!;
      expect(String(line.reason)).toMatch(new RegExp(`^KEYRELAY_SECRET: the store holds webhook hook-y sealed under key id ${ID_B}, and KEYRELAY_SECRET has key id ${ID_A}`));
      expect(receivers.y!.received).toEqual([]);
      expect((await adminAt(x.url)('GET', '/webhooks/hook-y/deliveries')).json.data).toEqual([]);
      // Nor does x rotate: nothing is re-sealed under its secret.
      const rotated = await adminAt(x.url)('POST', '/secrets/rotate');
      expect(rotated.status).toBe(409);
      expect(rotated.json.error).toMatchObject({ code: 'conflict' });
      expect(rotated.json.error.message).toMatch(/^KEYRELAY_SECRET: .*Nothing was re-sealed\.$/);
      const after = await rawValues([other.port]);
      expect(after).toContain(`kr1:${ID_B}:`);
      expect(after).not.toContain(`kr1:${ID_A}:`);

      // A process of the webhook's secret takes the delivery once x's claim lapses, and signs it
      // (x is gone first: left running, it might claim it again, and the turn would be chance's).
      await close(x);
      const y2 = await gatewayWith(SECRET_B, undefined, other.url);
      await receivers.y!.until((got) => got.length === 1, 30_000);
      expect(receivers.y!.received[0]!.verified).toBe(true);
      expect(receivers.y!.received[0]!.event.type).toBe('pool_key.disabled');
      await close(y2);
    } finally {
      await other.stop();
    }
  }, 120_000);
});
