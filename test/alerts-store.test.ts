// The shared part of alerts in each store backend: webhooks, the once-marks that make one process
// raise an event, and the delivery queue whose claims hand each delivery to one process, give it
// back when the claim lapses, and keep the last attempts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Attempt, Delivery } from '../src/alerts/types.js';
import { ATTEMPTS_KEPT } from '../src/alerts/types.js';
import { openSecret, resealed, sealWebhook, storedView } from '../src/alerts/sealed.js';
import { secretBoxFrom } from '../src/secrets/box.js';
import { createRedisStore } from '../src/store/redis.js';
import type { Store } from '../src/store/types.js';
import { type Backend, STORE_BACKENDS } from './helpers/store-backends.js';
import { capturingLogger, registerSecret } from './helpers/log-capture.js';
import { rawValues } from './helpers/redis-raw.js';
import { SECRET_A, SECRET_B, fragments } from './helpers/runtime-fixture.js';

const delivery = (n: number, webhookId = 'wh1'): Delivery => ({
  id: `evt_${n}.${webhookId}`,
  webhookId,
  body: JSON.stringify({ id: `evt_${n}`, type: 'pool.exhausted', time: new Date().toISOString(), data: { n } }),
  eventId: `evt_${n}`,
  type: 'pool.exhausted',
  attempts: 0,
  firstAt: Date.now(),
});
const attempt = (d: Delivery, n: number): Attempt => ({ deliveryId: d.id, eventId: d.eventId, type: d.type, attempt: n, at: new Date().toISOString(), status: 500, ok: false, error: 'x', durationMs: 1, nextAttemptAt: null });

describe.each(STORE_BACKENDS)('alerts on %s', (name, start) => {
  let backend: Backend;
  // A second store on the same Redis: another gateway process.
  let other: Store;
  beforeAll(async () => {
    backend = await start();
    const log = capturingLogger();
    if (name === 'memory') other = backend.store;
    else if (name === 'redis') other = await createRedisStore({ url: `redis://127.0.0.1:${backend.ports![0]}`, commandTimeoutMs: 2000, log });
    else other = await createRedisStore({ clusterNodes: backend.ports!.map((p) => `127.0.0.1:${p}`), commandTimeoutMs: 2000, log });
  });
  afterAll(async () => {
    if (other !== backend?.store) await other?.close();
    await backend?.stop();
  });

  it('adds, lists and removes webhooks; an id is taken once', async () => {
    const a = backend.store.alerts;
    const hook = { id: 'wh-a', url: 'http://127.0.0.1:1/x', events: ['pool.exhausted' as const], secret: 'a-secret-of-some-length', source: 'store' as const };
    expect(await a.addWebhook(hook)).toBe(true);
    expect(await other.alerts.addWebhook({ ...hook, url: 'http://127.0.0.1:2/y' })).toBe(false);
    expect((await other.alerts.listWebhooks()).find((w) => w.id === 'wh-a')?.url).toBe(hook.url);
    expect(await other.alerts.removeWebhook('wh-a')).toBe(true);
    expect(await a.removeWebhook('wh-a')).toBe(false);
    expect((await a.listWebhooks()).some((w) => w.id === 'wh-a')).toBe(false);
  });

  it('keeps a sealed signing secret sealed: no raw value holds a piece of it; rewrites a webhook against other writers', async () => {
    const box = secretBoxFrom(SECRET_A, undefined);
    const secret = 'whsec-Store-Ty7Hn3Kx4Wp9Qs2Jm8Lv5';
    registerSecret(secret, 'webhook secret of the store test');
    const events = ['pool.exhausted' as const];
    const stored = sealWebhook({ id: 'wh-sealed', url: 'http://127.0.0.1:1/s', events, secret, last4: '', source: 'store' }, box);
    expect(await backend.store.alerts.addWebhook(stored)).toBe(true);
    const read = (await other.alerts.listWebhooks()).find((w) => w.id === 'wh-sealed')!;
    expect(openSecret(read, box)).toBe(secret);
    expect(storedView(read)).toEqual({ id: 'wh-sealed', url: 'http://127.0.0.1:1/s', events, source: 'store', last4: secret.slice(-4) });
    // What someone who reads the Redis sees; in memory, what the store holds.
    const raw = backend.ports ? await rawValues(backend.ports) : JSON.stringify(await backend.store.alerts.listWebhooks());
    expect(raw).toContain('wh-sealed');
    expect(fragments(secret).filter((piece) => raw.includes(piece))).toEqual([]);

    // Re-sealed under another secret by one process; the next rewrite finds nothing to do.
    const next = secretBoxFrom(SECRET_B, SECRET_A);
    expect(await other.alerts.updateWebhook('wh-sealed', (w) => resealed(w, next))).toBe(true);
    expect(await backend.store.alerts.updateWebhook('wh-sealed', (w) => resealed(w, next))).toBe(false);
    expect(openSecret((await backend.store.alerts.listWebhooks()).find((w) => w.id === 'wh-sealed')!, secretBoxFrom(SECRET_B, undefined))).toBe(secret);
    expect(await backend.store.alerts.updateWebhook('wh-none', (w) => w)).toBe(false);
    expect((await backend.store.alerts.listWebhooks()).some((w) => w.id === 'wh-none')).toBe(false);

    // Writers at once, from two processes: each one's change lands on what the others wrote.
    const added = ['quota.threshold', 'pool_key.added', 'pool_key.removed', 'pool_key.rotated'] as const;
    const writes = added.map((type, i) =>
      (i % 2 ? other : backend.store).alerts.updateWebhook('wh-sealed', (w) => ({ ...w, events: [...w.events, type] })),
    );
    expect(await Promise.all(writes)).toEqual(added.map(() => true));
    const final = (await backend.store.alerts.listWebhooks()).find((w) => w.id === 'wh-sealed')!;
    expect([...final.events].sort()).toEqual(['pool.exhausted', ...added].sort());
    expect(await backend.store.alerts.removeWebhook('wh-sealed')).toBe(true);
  });

  it('gives a mark to the first of many callers at once, across processes, until it lapses', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? other : backend.store).alerts.once('mark-1', 60_000)));
    expect(results.filter(Boolean).length).toBe(1);
    expect(await backend.store.alerts.once('mark-short', 50)).toBe(true);
    await new Promise((r) => setTimeout(r, 120));
    expect(await other.alerts.once('mark-short', 50)).toBe(true);
  });

  it('hands each due delivery to one claimer, gives it back after the lease, and reschedules or ends it', async () => {
    // Real time, waited out: on Redis due times and claims are the server's clock, not the one passed in.
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const queued = Array.from({ length: 30 }, (_, i) => delivery(1000 + i));
    await backend.store.alerts.enqueue(queued, Date.now());
    const claims = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? other : backend.store).alerts.claim(Date.now(), 1500, 10)));
    const ids = claims.flat().map((d) => d.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(ids)).toEqual(new Set(queued.map((d) => d.id)));
    // Claimed: nobody gets them until the lease ends; then they come back (a process died).
    expect(await other.alerts.claim(Date.now(), 60_000, 100)).toEqual([]);
    // On a shared store, not even a process whose clock runs an hour ahead.
    if (name !== 'memory') expect(await other.alerts.claim(Date.now() + 3_600_000, 60_000, 100)).toEqual([]);
    await sleep(1600);
    const back = await other.alerts.claim(Date.now(), 60_000, 100);
    expect(back.length).toBe(30);
    // Ended ones are gone; a rescheduled one comes back at its time, with its attempts counted,
    // measured from the `now` given with it (whatever that clock says).
    for (const d of back.slice(1)) await backend.store.alerts.attempted(d, attempt(d, 1), undefined, Date.now());
    const kept = back[0]!;
    const skewed = name === 'memory' ? Date.now() : Date.now() + 3_600_000;
    await backend.store.alerts.attempted({ ...kept, attempts: 1 }, attempt(kept, 1), skewed + 1500, skewed);
    expect(await other.alerts.claim(Date.now(), 60_000, 100)).toEqual([]);
    await sleep(1600);
    const again = await other.alerts.claim(Date.now(), 60_000, 100);
    expect(again.map((d) => [d.id, d.attempts])).toEqual([[kept.id, 1]]);
    await other.alerts.attempted(again[0]!, attempt(again[0]!, 2), undefined, Date.now());
    expect(await backend.store.alerts.claim(Date.now() + 1_000_000, 10_000, 100)).toEqual([]);
  });

  it('keeps the last attempts of each webhook, newest first, capped', async () => {
    const d = delivery(5000, 'wh-log');
    for (let n = 1; n <= ATTEMPTS_KEPT + 5; n++) await backend.store.alerts.attempted(d, attempt(d, n), Date.now() + 1_000_000_000, Date.now());
    const list = await other.alerts.attempts('wh-log', 1000);
    expect(list.length).toBe(ATTEMPTS_KEPT);
    expect(list[0]!.attempt).toBe(ATTEMPTS_KEPT + 5);
    expect((await other.alerts.attempts('wh-log', 3)).map((a) => a.attempt)).toEqual([ATTEMPTS_KEPT + 5, ATTEMPTS_KEPT + 4, ATTEMPTS_KEPT + 3]);
    expect(await other.alerts.attempts('wh-none', 10)).toEqual([]);
  });
});
