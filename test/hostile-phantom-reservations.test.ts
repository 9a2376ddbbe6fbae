// A reservation never outlives the record that lets a sweep find it. A gateway killed between
// reserve and settle leaves its reservation to the lease: the next admission of that user charges
// it, as estimated. On Redis the held records and leases have a time to live; were they to expire
// before anyone swept (an idle user, a process with a shorter lease cutting them short), the
// counters would keep the amount reserved until the month ends, and refuse the user for it.
// Idle time on Redis is modelled by passTime (test/helpers/redis-time.ts), time in the ledger by
// the `now` each call takes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS } from '../src/dev/fake-openai-answers.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { estimateAt } from './helpers/estimate.js';
import { quotaKeys, userTag } from '../src/store/redis.js';
import type { QuotaLimits, Store } from '../src/store/types.js';
import { startChildGateway } from './helpers/child-gateway.js';
import type { TestGateway } from './helpers/gateway.js';
import { POOL_KEY, QUOTA_SETTINGS, latch, post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';
import { passTime } from './helpers/redis-time.js';
import { type Backend, STORE_BACKENDS } from './helpers/store-backends.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
// A fixed clock, well in the future so that absolute expiries written from it lie ahead.
const NOON = Date.UTC(2031, 4, 14, 12, 0, 0);
const DAY = '2031-05-14';
const MONTH = '2031-05';

describe.each(STORE_BACKENDS)('the %s store', (name, make) => {
  let backend: Backend;
  let store: Store;
  let seq = 0;
  const fresh = (): string => `phantom${++seq}-${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    backend = await make();
    store = backend.store;
  });
  afterAll(() => backend.stop());

  /** `ms` of idle time for this user's Redis keys; the memory store keeps no clock of its own. */
  async function idle(userId: string, ms: number): Promise<void> {
    if (backend.ports) await passTime(backend.ports, `kr:${userTag(userId)}:*`, ms);
  }
  const reserve = (userId: string, requestId: string, limits: QuotaLimits, tokens: number, now: number, leaseMs: number) =>
    store.reserve({ userId, requestId, limits, tokens, micros: tokens * 10, now, leaseMs });
  const settle = (userId: string, requestId: string, limits: QuotaLimits, tokens: number, now: number, leaseMs: number) =>
    store.settle({
      reservation: { userId, requestId, tokens: 0, micros: 0, day: DAY, month: MONTH },
      limits,
      tokens,
      micros: tokens * 10,
      estimated: false,
      refundRequest: false,
      now,
      leaseMs,
    });

  it('charges a dead reservation at the next admission, however long nothing came for it', async () => {
    const id = fresh();
    const limits = { tokensPerDay: 1000, tokensPerMonth: 1000 };
    expect((await reserve(id, 'lost', limits, 600, NOON, 1000)).admitted).toBe(true);
    // Its process died; nothing reserves nor settles for this user for 70 minutes, past the
    // lease and past the ten minutes settled ids are remembered for.
    await idle(id, 70 * MINUTE);
    const later = NOON + 70 * MINUTE;
    expect((await reserve(id, 'next', limits, 400, later, 1000)).admitted).toBe(true);
    const charged = { requests: 2, tokens: 600, micros: 6000, reservedTokens: 400, reservedMicros: 4000, estimatedRequests: 1 };
    const usage = await store.usage(id, limits, later);
    expect(usage.day).toMatchObject(charged);
    expect(usage.month).toMatchObject(charged);
    await settle(id, 'next', limits, 100, later, 1000);
    const after = await store.usage(id, limits, later);
    expect(after.day).toMatchObject({ requests: 2, tokens: 700, reservedTokens: 0, reservedMicros: 0, estimatedRequests: 1 });
    expect(after.month).toMatchObject({ requests: 2, tokens: 700, reservedTokens: 0, reservedMicros: 0, estimatedRequests: 1 });
    expect(after.inFlight).toBe(0);
  });

  it('keeps a long lease whole when a process with a short lease reserves and settles beside it', async () => {
    const id = fresh();
    const limits = { tokensPerDay: 1000, maxConcurrent: 2 };
    // One process leases for two hours; another, configured with one second, comes and goes.
    expect((await reserve(id, 'long', limits, 500, NOON, 2 * HOUR)).admitted).toBe(true);
    expect((await reserve(id, 'short', limits, 100, NOON, 1000)).admitted).toBe(true);
    await settle(id, 'short', limits, 100, NOON, 1000);
    await idle(id, 20 * MINUTE);
    const later = NOON + 20 * MINUTE;
    // The long request still runs: it holds its slot and its worst case ...
    const running = await store.usage(id, limits, later);
    expect(running.inFlight).toBe(1);
    expect(running.day).toMatchObject({ tokens: 100, reservedTokens: 500 });
    // ... and its settle releases it.
    await settle(id, 'long', limits, 300, later, 2 * HOUR);
    const done = await store.usage(id, limits, later);
    expect(done.day).toMatchObject({ requests: 2, tokens: 400, reservedTokens: 0, reservedMicros: 0, estimatedRequests: 0 });
    expect(done.inFlight).toBe(0);
  });

  // Only Redis keeps lifetimes (the memory store never drops a held record).
  if (name !== 'memory') it('keeps the held records and leases at least as long as the counters holding their amounts', async () => {
    const id = fresh();
    // Real time here: the keys' lifetimes are measured against Redis's own clock.
    const now = Date.now();
    const admission = await store.reserve({ userId: id, requestId: 'a', limits: { tokensPerDay: 1000 }, tokens: 10, micros: 0, now, leaseMs: 1000 });
    if (!admission.admitted) throw new Error('not admitted');
    const [day, month, , , held, leases] = quotaKeys(id, admission.reservation.day, admission.reservation.month);
    const ttl = new Map((await backend.keys!(`kr:${userTag(id)}:*`)).map((k) => [k.key, k.pttl]));
    const counters = Math.max(ttl.get(day as string) ?? Infinity, ttl.get(month as string) ?? Infinity);
    // A second of slack: the lifetimes are read one after another.
    expect(ttl.get(held as string)).toBeGreaterThanOrEqual(counters - 1000);
    expect(ttl.get(leases as string)).toBeGreaterThanOrEqual(counters - 1000);
  });
});

describe('a gateway killed between reserve and settle, on Redis', () => {
  const SMALL = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 100 };
  const LOST = { ...SMALL, max_tokens: 5000 };
  const worst = estimateAt('/chat/completions', LOST, QUOTA_SETTINGS.defaultMaxOutputTokens);
  const WORST = worst.promptTokens + worst.maxOutputTokens;
  const REAL = 1 + FAKE_COMPLETION_TOKENS;

  let fake: FakeUpstream;
  let redis: RedisServer;
  let survivor: TestGateway;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyrelay-phantom-'));
    fake = await startFake();
    redis = await startRedis();
    survivor = await startQuotaGateway(fake, redis.url, { leaseMs: 1000 });
  });
  afterAll(async () => {
    await survivor.close();
    await fake.close();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('charges what the dead process held, marked estimated, after an hour with no process sweeping', async () => {
    const settings = join(dir, 'keyrelay.yaml');
    writeFileSync(settings, 'quota:\n  leaseMs: 1000\n');
    const doomed = await startChildGateway({
      REDIS_URL: redis.url,
      OPENAI_API_KEYS: POOL_KEY,
      KEYRELAY_UPSTREAM_URL: fake.baseUrl,
      KEYRELAY_CONFIG: settings,
    });
    const key = await userWithKey(survivor, 'crashed', { tokensPerDay: 100_000 });

    // The upstream holds the answer open: the child has reserved, and will never settle.
    const release = latch();
    const arrived = latch();
    fake.handle(async () => {
      arrived.open();
      await release.wait;
      return undefined;
    });
    const lost = post(doomed.url, key, '/chat/completions', LOST).catch((err: unknown) => err);
    await arrived.wait;
    expect((await usageOf(survivor, 'crashed')).day).toMatchObject({ requests: 1, tokens: 0, reservedTokens: WORST });
    const [, deadline] = (await redis.cli('zrange', `kr:${userTag('crashed')}:q:leases`, '0', '-1', 'withscores')).split('\n');
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    expect(await lost).toBeInstanceOf(Error);
    release.open();
    fake.reset();

    // The one-second lease runs out; then Redis sits idle for 70 minutes, no process sweeping.
    await until(() => Date.now() > Number(deadline), 'the lease to run out', 5000);
    await passTime([redis.port], `kr:${userTag('crashed')}:*`, 70 * MINUTE);

    expect((await post(survivor.url, key, '/chat/completions', SMALL)).status).toBe(200);
    await until(async () => (await usageOf(survivor, 'crashed')).concurrent.inFlight === 0, 'the request to settle');
    const usage = await usageOf(survivor, 'crashed');
    for (const window of [usage.day, usage.month]) {
      expect(window).toMatchObject({ requests: 2, tokens: WORST + REAL, reservedTokens: 0, reservedUsdMicros: 0, estimatedRequests: 1 });
    }
    // A second process compiles the sources as it starts: many seconds on a busy machine.
  }, 90_000);
});
