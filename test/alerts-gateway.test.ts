// Alerts raised by a running gateway and delivered to a real receiver: quota.threshold at 80 %,
// 95 % and 100 % of a token window, once each however many requests follow; pool_key.disabled,
// pool.exhausted and pool_key.recovered from the pool's health; retries after a receiver's 500s,
// shown by GET /admin/webhooks/{id}/deliveries. A receiver that never answers slows no request.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { admin, chat, fixedUsage } from './helpers/alert-fixture.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';
import { SECRET_A } from './helpers/runtime-fixture.js';
import { type WebhookReceiver, startWebhookReceiver } from './helpers/webhook-receiver.js';

const POOL_KEY = 'sk-pool-alerts-gateway-0123456789abcdef';
const SECRET = 'whsec-alerts-gateway-0123456789abcdef';
registerPoolKey(POOL_KEY);
registerSecret(SECRET);

let fake: FakeUpstream;
let gateway: TestGateway;
let good: WebhookReceiver;
let hung: WebhookReceiver;

beforeAll(async () => {
  fake = await startFakeUpstream();
  fixedUsage(fake, 20);
  good = await startWebhookReceiver(SECRET);
  hung = await startWebhookReceiver(SECRET);
  gateway = await startGateway({
    env: { KEYRELAY_SECRET: SECRET_A },
    config: {
      upstreams: [{ id: 'main', baseUrl: fake.baseUrl, models: ['*'], strategy: 'round-robin', keys: [{ id: 'k1', key: POOL_KEY, weight: 1 }] }],
      alerts: { webhooks: [], firstRetryMs: 200, pollMs: 100, timeoutMs: 60_000 },
    } as Partial<Config>,
  });
});

afterAll(async () => {
  await gateway?.close();
  await good?.close();
  await hung?.close();
  await fake?.close();
});

const ofType = (type: string) => (r: { event: { type: string } }) => r.event.type === type;

describe('alerts from a running gateway', () => {
  it('answers requests at once while a webhook hangs, and raises each quota threshold once', async () => {
    // The hung receiver never answers anything; the good one answers 200.
    hung.script(...Array.from({ length: 50 }, () => 'hang' as const));
    for (const receiver of [hung, good]) {
      const added = await admin(gateway.url, 'POST', '/webhooks', { url: receiver.url, events: ['quota.threshold'], secret: SECRET });
      expect(added.status).toBe(201);
    }
    const key = await gateway.createUserKey('thresholds', { limits: { tokensPerDay: 100 } });
    registerSecret(key);
    // 20 tokens a request: 80 % after the 4th, 95 % and 100 % after the 5th; then 429s.
    const answers = [];
    for (let i = 0; i < 8; i++) {
      answers.push(await chat(gateway.url, key));
      // Each threshold reaches the hung receiver before the next request; it still answers at once.
      if (i === 3) await hung.until((got) => got.filter(ofType('quota.threshold')).length >= 1, 10_000);
    }
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    for (const a of answers) expect(a.ms).toBeLessThan(5000);

    await good.until((got) => got.filter(ofType('quota.threshold')).length >= 3);
    await hung.until((got) => got.filter(ofType('quota.threshold')).length >= 3);
    // More requests (refused) and time for a duplicate, were there one.
    for (let i = 0; i < 3; i++) expect((await chat(gateway.url, key)).status).toBe(429);
    await new Promise((r) => setTimeout(r, 1000));
    const events = good.received.filter(ofType('quota.threshold'));
    expect(events.map((r) => r.event.data.threshold).sort((a, b) => a - b)).toEqual([80, 95, 100]);
    expect(events.every((r) => r.verified)).toBe(true);
    expect(events.find((r) => r.event.data.threshold === 80)!.event.data).toMatchObject({ user: 'thresholds', limit: 'tokensPerDay', threshold: 80, used: 80, max: 100 });
    expect(events.find((r) => r.event.data.threshold === 100)!.event.data).toMatchObject({ used: 100, max: 100, window: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) });
    expect(new Set(events.map((r) => r.event.id)).size).toBe(3);
  });

  it('raises pool_key.disabled and pool.exhausted when the only key is disabled, pool_key.recovered when it is back', async () => {
    const added = await admin(gateway.url, 'POST', '/webhooks', { url: good.url, events: ['pool_key.disabled', 'pool_key.recovered', 'pool.exhausted'], secret: SECRET });
    expect(added.status).toBe(201);
    const started = Date.now();
    expect((await admin(gateway.url, 'POST', '/upstreams/main/keys/k1/disable')).status).toBe(200);
    await good.until((got) => got.some(ofType('pool_key.disabled')) && got.some(ofType('pool.exhausted')));
    expect((await admin(gateway.url, 'POST', '/upstreams/main/keys/k1/enable')).status).toBe(200);
    await good.until((got) => got.some(ofType('pool_key.recovered')));
    expect(Date.now() - started).toBeLessThan(15_000);
    const pool = good.received.filter((r) => r.event.type.startsWith('pool'));
    expect(pool.map((r) => r.event.type).sort()).toEqual(['pool.exhausted', 'pool_key.disabled', 'pool_key.recovered']);
    expect(pool.find(ofType('pool_key.disabled'))!.event.data).toMatchObject({ upstream: 'main', key: 'k1', reason: 'manual' });
    expect(pool.find(ofType('pool.exhausted'))!.event.data).toMatchObject({ upstream: 'main', keys: [{ key: 'k1', state: 'disabled' }] });
    expect(JSON.stringify(pool)).not.toContain(POOL_KEY);
    expect(JSON.stringify(pool)).not.toContain(POOL_KEY.slice(-8));
  });

  it('sends an event again after the receiver answered 500 twice, and shows the attempts', async () => {
    const flaky = await startWebhookReceiver(SECRET);
    try {
      flaky.script(500, 500);
      const added = await admin(gateway.url, 'POST', '/webhooks', { url: flaky.url, events: ['pool_key.disabled'], secret: SECRET });
      expect((await admin(gateway.url, 'POST', '/upstreams/main/keys/k1/disable')).status).toBe(200);
      await flaky.until((got) => got.length === 3);
      expect(new Set(flaky.received.map((r) => r.event.id)).size).toBe(1);
      expect(flaky.received.every((r) => r.verified)).toBe(true);
      let deliveries: any[] = [];
      for (let i = 0; i < 50 && deliveries.length < 3; i++) {
        deliveries = (await admin(gateway.url, 'GET', `/webhooks/${added.json.id}/deliveries`)).json.data;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(deliveries.map((d) => [d.attempt, d.status, d.ok, d.type])).toEqual([
        [3, 200, true, 'pool_key.disabled'],
        [2, 500, false, 'pool_key.disabled'],
        [1, 500, false, 'pool_key.disabled'],
      ]);
      expect(deliveries[0].eventId).toBe(flaky.received[0]!.event.id);
    } finally {
      await admin(gateway.url, 'POST', '/upstreams/main/keys/k1/enable');
      await flaky.close();
    }
  });
});
