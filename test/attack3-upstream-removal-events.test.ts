// Removing a run-time upstream removes its pool keys with it. An operator who follows key changes
// through webhooks (pool_key.added / removed / rotated) must learn of those removals too: a key
// that stops serving without its pool_key.removed event is a change the alerts never reported.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { type WebhookReceiver, startWebhookReceiver } from './helpers/webhook-receiver.js';
import { SECRET_A, runtimeSecret } from './helpers/runtime-fixture.js';

const KEY = runtimeSecret('upstream-removal');
const HOOK_SECRET = 'whsec-upstream-removal-0123456789';
registerSecret(HOOK_SECRET);

let fake: FakeUpstream;
let receiver: WebhookReceiver;
let gateway: TestGateway;

beforeAll(async () => {
  fake = await startFakeUpstream();
  receiver = await startWebhookReceiver(HOOK_SECRET);
  gateway = await startGateway({
    env: { KEYRELAY_SECRET: SECRET_A, OPENAI_API_KEYS: 'sk-upstream-removal-settings-000000001', KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: { alerts: { webhooks: [{ id: 'keys', url: receiver.url, events: ['pool_key.added', 'pool_key.removed'], secret: HOOK_SECRET }], firstRetryMs: 200, pollMs: 100, timeoutMs: 5000 } },
  });
});
afterAll(async () => {
  await gateway.close();
  await receiver.close();
  await fake.close();
});

describe('an upstream removed with its keys', () => {
  it('raises pool_key.removed for each key it held', async () => {
    expect((await gateway.admin('POST', '/upstreams', { id: 'extra', baseUrl: fake.baseUrl, models: ['extra-*'] })).status).toBe(201);
    expect((await gateway.admin('POST', '/upstreams/extra/keys', { id: 'x1', key: KEY })).status).toBe(201);
    await receiver.until((got) => got.some((r) => r.event.type === 'pool_key.added'));
    expect((await gateway.admin('DELETE', '/upstreams/extra')).status).toBe(200);
    await receiver.until((got) => got.some((r) => r.event.type === 'pool_key.removed'), 5000);
    const removed = receiver.received.filter((r) => r.event.type === 'pool_key.removed');
    expect(removed.map((r) => r.event.data)).toEqual([expect.objectContaining({ upstream: 'extra', key: 'x1' })]);
  }, 20_000);
});
