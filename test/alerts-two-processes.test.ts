// Two gateway processes on one Redis (and on one Redis Cluster) both notice the same crossings and
// the same pool key changes, and race to raise them: the receiver gets each quota threshold once,
// and each pool event once, every delivery signed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { admin, chat, fixedUsage } from './helpers/alert-fixture.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';
import { type RedisCluster, type RedisServer, startRedis, startRedisCluster } from './helpers/redis-server.js';
import { SECRET_A } from './helpers/runtime-fixture.js';
import { type WebhookReceiver, startWebhookReceiver } from './helpers/webhook-receiver.js';

const POOL_KEY = 'sk-pool-alerts-two-processes-0123456789ab';
const SECRET = 'whsec-two-processes-0123456789abcdef';
registerPoolKey(POOL_KEY);
registerSecret(SECRET);

const BACKENDS: Array<[string, () => Promise<{ env: Record<string, string>; stop(): Promise<void> }>]> = [
  [
    'redis',
    async () => {
      const server: RedisServer = await startRedis();
      return { env: { REDIS_URL: server.url }, stop: () => server.stop() };
    },
  ],
  [
    'cluster',
    async () => {
      const cluster: RedisCluster = await startRedisCluster();
      return { env: { REDIS_CLUSTER_NODES: cluster.nodes.join(',') }, stop: () => cluster.stop() };
    },
  ],
];

const ofType = (type: string) => (r: { event: { type: string } }) => r.event.type === type;

describe.each(BACKENDS)('two gateway processes on one %s', (_name, startBackend) => {
  let backend: { env: Record<string, string>; stop(): Promise<void> };
  let fake: FakeUpstream;
  let receiver: WebhookReceiver;
  let gateways: ChildGateway[] = [];

  beforeAll(async () => {
    backend = await startBackend();
    fake = await startFakeUpstream();
    fixedUsage(fake, 20);
    receiver = await startWebhookReceiver(SECRET);
    const env = { ...backend.env, OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl, KEYRELAY_SECRET: SECRET_A };
    // Two processes that compile TypeScript at start, on a machine shared with other suites: slow.
    gateways = await Promise.all([startChildGateway(env), startChildGateway(env)]);
  }, 300_000);

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await receiver?.close();
    await fake?.close();
    await backend?.stop();
  });

  it('raises each quota threshold once while both race to raise it', async () => {
    const [one, two] = gateways as [ChildGateway, ChildGateway];
    const added = await admin(one.url, 'POST', '/webhooks', { url: receiver.url, events: ['quota.threshold', 'pool_key.disabled', 'pool_key.recovered', 'pool.exhausted'], secret: SECRET });
    expect(added.status).toBe(201);
    // The webhook added through one process is the other's too.
    expect((await admin(two.url, 'GET', `/webhooks/${added.json.id}`)).json.url).toBe(receiver.url);
    for (let round = 0; round < 3; round++) {
      const user = `race-${round}`;
      expect((await admin(one.url, 'POST', '/users', { id: user, limits: { tokensPerDay: 100 } })).status).toBe(201);
      const key = (await admin(one.url, 'POST', `/users/${user}/keys`, {})).json.key as string;
      registerSecret(key);
      // Requests on both processes at once: their settles land together, so both look at the
      // counters at about the same moment and see the same crossings.
      const statuses = (await Promise.all(Array.from({ length: 10 }, (_, i) => chat((i % 2 ? two : one).url, key)))).map((a) => a.status);
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(4);
      expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
      // Until the window is full: later requests find it so.
      for (let i = 0; i < 6; i++) await chat((i % 2 ? two : one).url, key);
      const mine = () => receiver.received.filter((r) => r.event.type === 'quota.threshold' && r.event.data.user === user);
      await receiver.until(() => mine().length >= 3);
      // Room for a second copy from the other process to arrive, were there one (it polls each second).
      await new Promise((r) => setTimeout(r, 2500));
      expect(mine().map((r) => r.event.data.threshold).sort((a, b) => a - b)).toEqual([80, 95, 100]);
      expect(mine().every((r) => r.verified)).toBe(true);
    }
  });

  it('raises each pool event once, though both processes see the key change', async () => {
    const [one, two] = gateways as [ChildGateway, ChildGateway];
    expect((await admin(one.url, 'POST', '/upstreams/default/keys/env-1/disable')).status).toBe(200);
    await receiver.until((got) => got.some(ofType('pool_key.disabled')) && got.some(ofType('pool.exhausted')));
    expect((await admin(two.url, 'POST', '/upstreams/default/keys/env-1/enable')).status).toBe(200);
    await receiver.until((got) => got.some(ofType('pool_key.recovered')));
    await new Promise((r) => setTimeout(r, 2500));
    const pool = receiver.received.filter((r) => r.event.type.startsWith('pool'));
    expect(pool.map((r) => r.event.type).sort()).toEqual(['pool.exhausted', 'pool_key.disabled', 'pool_key.recovered']);
    expect(pool.every((r) => r.verified)).toBe(true);
    // Both processes logged the change; one raised each event.
    const raised = gateways.flatMap((g) => g.logs.filter((l) => l.msg === 'alert raised' && String(l.type).startsWith('pool')));
    expect(raised.length).toBe(3);
  });
});
