// The audit log in each store backend: newest first, pages by `before`, filters by target, ids
// that never go back, and retention by count and by age both enforced on every append (and the
// age again on reads), on the memory store, Redis and a Redis Cluster.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRetention, NewAuditEntry } from '../src/audit/log.js';
import { olderId } from '../src/audit/log.js';
import { type Backend, STORE_BACKENDS } from './helpers/store-backends.js';

const DAY = 86_400_000;
const KEEP: AuditRetention = { maxEntries: 100_000, maxAgeMs: 90 * DAY };
const entry = (target: string, action = 'user.update'): NewAuditEntry => ({ actor: 'admin', action, target, requestId: `req-${target}`, ip: '127.0.0.1' });

describe.each(STORE_BACKENDS)('audit log on %s', (_name, start) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await start();
  });
  afterAll(async () => {
    await backend?.stop();
  });

  it('answers newest first, pages back by `before`, filters by target, with ids that sort as time', async () => {
    const log = backend.store.audit;
    const t0 = Date.now();
    const written = [];
    for (let i = 0; i < 12; i++) written.push(await log.append(entry(`user:u${i % 3}`), t0 + i, KEEP));
    // The clock going back does not make an id older than the last one.
    written.push(await log.append(entry('user:late'), t0 - 5000, KEEP));
    for (let i = 1; i < written.length; i++) expect(olderId(written[i - 1]!.id, written[i]!.id)).toBe(true);

    const first = await log.page({ limit: 5 }, t0 + 20, KEEP);
    expect(first.map((e) => e.id)).toEqual(written.slice(-5).reverse().map((e) => e.id));
    expect(first[0]).toEqual({ ...written.at(-1), time: new Date(t0 - 5000).toISOString() });
    const second = await log.page({ limit: 5, before: first.at(-1)!.id }, t0 + 20, KEEP);
    expect(second.map((e) => e.id)).toEqual(written.slice(-10, -5).reverse().map((e) => e.id));

    const ofU1 = await log.page({ limit: 100, target: 'user:u1' }, t0 + 20, KEEP);
    expect(ofU1.map((e) => e.id)).toEqual(written.filter((e) => e.target === 'user:u1').reverse().map((e) => e.id));
    expect(await log.page({ limit: 100, target: 'user:nobody' }, t0 + 20, KEEP)).toEqual([]);
    const ofU1Before = await log.page({ limit: 2, target: 'user:u1', before: ofU1[0]!.id }, t0 + 20, KEEP);
    expect(ofU1Before.map((e) => e.id)).toEqual(ofU1.slice(1, 3).map((e) => e.id));
  });

  it('keeps at most maxEntries, dropping the oldest, whichever store holds them', async () => {
    const log = backend.store.audit;
    const small: AuditRetention = { maxEntries: 7, maxAgeMs: 90 * DAY };
    const now = Date.now() + 1000;
    const written = [];
    for (let i = 0; i < 20; i++) written.push(await log.append(entry(`user:count${i}`), now + i, small));
    const all = await log.page({ limit: 1000 }, now + 30, small);
    expect(all.map((e) => e.target)).toEqual(written.slice(-7).reverse().map((e) => e.target));
    if (backend.keys) {
      // Nothing kept beyond what the log shows: the stream itself holds seven entries.
      const keys = await backend.keys('kr:{audit}:*');
      expect(keys.map((k) => k.key)).toEqual(['kr:{audit}:log']);
    }
  });

  it('drops entries older than maxAge by the store clock on the next append, and hides them from reads before that', async () => {
    const log = backend.store.audit;
    // A short age, waited out for real: on Redis the age is the server's clock, not the one passed in.
    const retention: AuditRetention = { maxEntries: 1000, maxAgeMs: 300 };
    // Past the ids the earlier cases wrote in the memory store (ids never go back).
    const clock = () => Date.now() + 5000;
    await log.append(entry('user:old'), clock(), retention);
    expect((await log.page({ limit: 10, target: 'user:old' }, clock(), KEEP)).length).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 600));
    // Past its age a read no longer shows it ...
    expect(await log.page({ limit: 10, target: 'user:old' }, clock(), retention)).toEqual([]);
    // ... and the next append removes it for good, whatever retention a later read uses.
    await log.append(entry('user:new'), clock(), retention);
    expect(await log.page({ limit: 10, target: 'user:old' }, clock(), KEEP)).toEqual([]);
    expect((await log.page({ limit: 10, target: 'user:new' }, clock(), retention)).length).toBe(1);
  });

  it('on a shared store, an append or read with a clock 100 days ahead drops and hides nothing younger than maxAge', async () => {
    if (!backend.keys) return; // In memory the store is the process: its clock is the store's.
    const log = backend.store.audit;
    const retention: AuditRetention = { maxEntries: 1000, maxAgeMs: 90 * DAY };
    await log.append(entry('user:kept'), Date.now(), retention);
    const ahead = Date.now() + 100 * DAY;
    const future = await log.append(entry('user:ahead'), ahead, retention);
    expect(future.time).toBe(new Date(ahead).toISOString());
    // Its id is the server's time, so it does not push the ids of later entries into the future.
    expect(Number(future.id.split('-')[0])).toBeLessThan(Date.now() + DAY);
    expect((await log.page({ limit: 10, target: 'user:kept' }, ahead, retention)).length).toBe(1);
    expect((await log.page({ limit: 10, target: 'user:kept' }, Date.now(), retention)).length).toBe(1);
  });
});
