// alerts.emit, called directly as the admin routes call it (pool_key.added, removed, rotated): a
// real receiver gets `{id, type, time, data}` signed with its secret; only the webhooks that want
// the event get it; a receiver that answers 500 twice gets the same event a third time, and the
// attempts are kept; a receiver that never answers neither blocks other deliveries nor the close.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Alerts, createAlerts } from '../src/alerts/alerts.js';
import { nextAttemptAt } from '../src/alerts/deliver.js';
import { MemoryAlertStore } from '../src/alerts/types.js';
import type { Config } from '../src/config.js';
import { secretBoxFrom } from '../src/secrets/box.js';
import { capturingLogger } from './helpers/log-capture.js';
import { type WebhookReceiver, startWebhookReceiver, verify } from './helpers/webhook-receiver.js';

const SECRET = 'whsec-emit-test-0123456789abcdef';
const OTHER = 'whsec-emit-other-0123456789abcdef';

let receivers: WebhookReceiver[] = [];
let alerts: Alerts | undefined;

afterEach(async () => {
  await alerts?.close();
  for (const r of receivers) await r.close();
  receivers = [];
  alerts = undefined;
});

async function setUp(hooks: Array<{ events: string[]; secret: string }>, timing: Partial<Config['alerts']> = {}) {
  const rs = await Promise.all(hooks.map((h) => startWebhookReceiver(h.secret)));
  receivers.push(...rs);
  const store = new MemoryAlertStore();
  const config = {
    alerts: { webhooks: hooks.map((h, i) => ({ id: `h${i}`, url: rs[i]!.url, events: h.events, secret: h.secret })), firstRetryMs: 100, pollMs: 50, timeoutMs: 500, ...timing },
  } as Pick<Config, 'alerts'>;
  alerts = createAlerts({ config, store, box: secretBoxFrom(undefined, undefined), log: capturingLogger() });
  alerts.start();
  return { rs, store, alerts };
}

describe('alerts.emit', () => {
  it('sends the event, signed, to the webhooks that want it and to no other', async () => {
    const { rs, alerts } = await setUp([
      { events: ['pool_key.added', 'pool_key.removed'], secret: SECRET },
      { events: ['quota.threshold'], secret: OTHER },
    ]);
    const event = await alerts.emit('pool_key.added', { upstream: 'main', key: 'k9' });
    expect(event).toMatchObject({ type: 'pool_key.added', data: { upstream: 'main', key: 'k9' } });
    await rs[0]!.until((got) => got.length === 1);
    const [got] = rs[0]!.received;
    expect(got!.event).toEqual(event);
    expect(Object.keys(got!.event)).toEqual(['id', 'type', 'time', 'data']);
    expect(got!.verified).toBe(true);
    expect(got!.headers['content-type']).toBe('application/json');
    expect(got!.headers['x-keyrelay-event']).toBe('pool_key.added');
    // A signature under another secret, or of another body, does not check.
    expect(verify(OTHER, got!.headers['x-keyrelay-signature'] as string, got!.body)).toBe(false);
    expect(verify(SECRET, got!.headers['x-keyrelay-signature'] as string, got!.body.replace('k9', 'k8'))).toBe(false);
    await alerts.emit('pool_key.removed', { upstream: 'main', key: 'k9' });
    await rs[0]!.until((got) => got.length === 2);
    // Time for a wrong delivery to the second receiver to arrive, if there were one.
    await new Promise((r) => setTimeout(r, 300));
    expect(rs[1]!.received).toEqual([]);
  });

  it('delivers again after two 500s, the same event each time, and keeps the attempts', async () => {
    const { rs, store, alerts } = await setUp([{ events: ['pool_key.rotated'], secret: SECRET }]);
    rs[0]!.script(500, 500);
    const event = await alerts.emit('pool_key.rotated', { upstream: 'main', key: 'k1' });
    await rs[0]!.until((got) => got.length === 3);
    expect(rs[0]!.received.map((r) => r.event.id)).toEqual([event!.id, event!.id, event!.id]);
    expect(rs[0]!.received.every((r) => r.verified)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(rs[0]!.received.length).toBe(3);
    const attempts = await store.attempts('h0', 10);
    expect(attempts.map((a) => [a.attempt, a.status, a.ok])).toEqual([[3, 200, true], [2, 500, false], [1, 500, false]]);
    expect(attempts[0]!.nextAttemptAt).toBeNull();
    expect(attempts[1]!.nextAttemptAt).not.toBeNull();
  });

  it('is not held up by a receiver that never answers, and closes without waiting for it', async () => {
    const { rs, store, alerts } = await setUp(
      [
        { events: ['pool.exhausted'], secret: SECRET },
        { events: ['pool.exhausted'], secret: OTHER },
      ],
      { timeoutMs: 60_000 },
    );
    rs[0]!.script('hang');
    const started = Date.now();
    await alerts.emit('pool.exhausted', { upstream: 'main' });
    await rs[1]!.until((got) => got.length === 1, 5000);
    await rs[0]!.until((got) => got.length === 1, 5000);
    // The attempt is recorded once the receiver's answer is in, a moment after the receiver saw it.
    await vi.waitFor(async () => expect(await store.attempts('h1', 10)).toHaveLength(1), { timeout: 5000, interval: 50 });
    // A later event reaches the other receiver while the first attempt still hangs.
    await alerts.emit('pool.exhausted', { upstream: 'second' });
    await rs[1]!.until((got) => got.length === 2, 5000);
    expect(rs[1]!.received[1]!.event.data).toEqual({ upstream: 'second' });
    await alerts.close();
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('backs off exponentially, up to an hour, and gives up 24 hours after the event', () => {
    const d = { firstAt: 0 } as Parameters<typeof nextAttemptAt>[0];
    expect([1, 2, 3, 4].map((n) => nextAttemptAt(d, n, 0, 1000))).toEqual([1000, 2000, 4000, 8000]);
    expect(nextAttemptAt(d, 40, 0, 1000)).toBe(3_600_000);
    expect(nextAttemptAt(d, 40, 23 * 3_600_000, 1000)).toBe(24 * 3_600_000);
    expect(nextAttemptAt(d, 40, 23 * 3_600_000 + 1, 1000)).toBeUndefined();
  });
});
