// Every admin route that changes something leaves exactly one audit entry when it succeeds, and
// none when it fails; the list of such routes is the app's own (a new route without a case here
// fails this test, and a route without an audit action does not even start). No entry and no admin
// answer holds a secret: pool keys, user keys, their digests, webhook secrets.
import { createHash } from 'node:crypto';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditAdminRoutes } from '../src/audit/hook.js';
import { MemoryAuditLog } from '../src/audit/log.js';
import type { Config } from '../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { captureAnswer, capturingLogger, leakedAnswers, registerPoolKey, registerSecret } from './helpers/log-capture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const POOL_KEY = 'sk-pool-audit-routes-0123456789abcdefXYZ';
const WEBHOOK_SECRET = 'whsec-audit-routes-0123456789abcdef';
const RUNTIME_KEY = 'sk-pool-audit-runtime-0123456789abcdefXYZ';
const ROTATED_KEY = 'sk-pool-audit-rotated-0123456789abcdefXYZ';
const TESTED_KEY = 'sk-pool-audit-tested-0123456789abcdefXYZ';
// What seals the run-time pool keys (32 bytes, base64).
const STORE_SECRET = Buffer.alloc(32, 7).toString('base64');
registerPoolKey(POOL_KEY);
registerPoolKey(RUNTIME_KEY);
registerPoolKey(ROTATED_KEY);
registerPoolKey(TESTED_KEY);
registerSecret(STORE_SECRET);
registerSecret(WEBHOOK_SECRET);

interface Answer {
  status: number;
  json: any;
  text: string;
}

interface Ctx {
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Answer>;
  saved: Record<string, string>;
}

interface Case {
  /** A call that succeeds, and the target its entry must name. */
  ok(ctx: Ctx): Promise<{ answer: Answer; target: string }>;
  /** Calls that fail and must leave nothing. */
  failing(ctx: Ctx): Promise<Answer[]>;
}

// In the order they run: each may use what an earlier one made.
const CASES: Record<string, Case> = {
  'POST /admin/users': {
    ok: async (c) => ({ answer: await c.call('POST', '/users', { id: 'audited', limits: { rpm: 10 } }), target: 'user:audited' }),
    failing: async (c) => [await c.call('POST', '/users', { id: 'audited' }), await c.call('POST', '/users', { id: 'x', limits: { rpm: -1 } })],
  },
  'PATCH /admin/users/:id': {
    ok: async (c) => ({ answer: await c.call('PATCH', '/users/audited', { name: 'Audited' }), target: 'user:audited' }),
    failing: async (c) => [await c.call('PATCH', '/users/nobody', { name: 'x' }), await c.call('PATCH', '/users/audited', { nope: 1 })],
  },
  'POST /admin/users/:id/keys': {
    ok: async (c) => {
      const answer = await c.call('POST', '/users/audited/keys', { name: 'k' });
      c.saved.key = answer.json.key;
      c.saved.keyId = answer.json.id;
      registerSecret(answer.json.key);
      return { answer, target: `key:${answer.json.id}` };
    },
    failing: async (c) => [await c.call('POST', '/users/nobody/keys', {}), await c.call('POST', '/users/audited/keys', { expiresAt: 'soon' })],
  },
  'DELETE /admin/keys/:keyId': {
    ok: async (c) => ({ answer: await c.call('DELETE', `/keys/${c.saved.keyId}`), target: `key:${c.saved.keyId}` }),
    failing: async (c) => [await c.call('DELETE', '/keys/key_nope')],
  },
  'DELETE /admin/users/:id': {
    ok: async (c) => ({ answer: await c.call('DELETE', '/users/audited'), target: 'user:audited' }),
    failing: async (c) => [await c.call('DELETE', '/users/audited')],
  },
  'POST /admin/upstreams/:upstream/keys/:keyId/disable': {
    ok: async (c) => ({ answer: await c.call('POST', '/upstreams/main/keys/k1/disable'), target: 'pool_key:main/k1' }),
    failing: async (c) => [await c.call('POST', '/upstreams/main/keys/nope/disable')],
  },
  'POST /admin/upstreams/:upstream/keys/:keyId/enable': {
    ok: async (c) => ({ answer: await c.call('POST', '/upstreams/main/keys/k1/enable'), target: 'pool_key:main/k1' }),
    failing: async (c) => [await c.call('POST', '/upstreams/nope/keys/k1/enable')],
  },
  'POST /admin/upstreams': {
    ok: async (c) => ({ answer: await c.call('POST', '/upstreams', { id: 'extra', baseUrl: c.saved.baseUrl }), target: 'upstream:extra' }),
    failing: async (c) => [
      await c.call('POST', '/upstreams', { id: 'extra', baseUrl: c.saved.baseUrl }),
      await c.call('POST', '/upstreams', { id: 'main', baseUrl: c.saved.baseUrl }),
      await c.call('POST', '/upstreams', { id: 'bad', baseUrl: 'ftp://example.com' }),
    ],
  },
  'PATCH /admin/upstreams/:upstream': {
    ok: async (c) => ({ answer: await c.call('PATCH', '/upstreams/extra', { models: ['gpt-*'] }), target: 'upstream:extra' }),
    failing: async (c) => [await c.call('PATCH', '/upstreams/main', { models: ['gpt-*'] }), await c.call('PATCH', '/upstreams/nope', { models: [] })],
  },
  'POST /admin/upstreams/:upstream/keys': {
    ok: async (c) => ({ answer: await c.call('POST', '/upstreams/extra/keys', { id: 'r1', key: RUNTIME_KEY }), target: 'pool_key:extra/r1' }),
    failing: async (c) => [await c.call('POST', '/upstreams/extra/keys', { id: 'r1', key: RUNTIME_KEY }), await c.call('POST', '/upstreams/extra/keys', { key: '' })],
  },
  'PATCH /admin/upstreams/:upstream/keys/:keyId': {
    ok: async (c) => ({ answer: await c.call('PATCH', '/upstreams/extra/keys/r1', { weight: 2 }), target: 'pool_key:extra/r1' }),
    failing: async (c) => [await c.call('PATCH', '/upstreams/main/keys/k1', { weight: 2 }), await c.call('PATCH', '/upstreams/extra/keys/nope', { weight: 2 })],
  },
  'POST /admin/upstreams/:upstream/keys/:keyId/rotate': {
    ok: async (c) => ({ answer: await c.call('POST', '/upstreams/extra/keys/r1/rotate', { key: ROTATED_KEY }), target: 'pool_key:extra/r1' }),
    failing: async (c) => [await c.call('POST', '/upstreams/main/keys/k1/rotate', { key: ROTATED_KEY }), await c.call('POST', '/upstreams/extra/keys/nope/rotate', { key: ROTATED_KEY })],
  },
  'POST /admin/upstreams/:upstream/keys/:keyId/test': {
    ok: async (c) => ({ answer: await c.call('POST', '/upstreams/extra/keys/r1/test'), target: 'pool_key:extra/r1' }),
    failing: async (c) => [await c.call('POST', '/upstreams/extra/keys/nope/test')],
  },
  'POST /admin/upstreams/:upstream/test-key': {
    ok: async (c) => ({ answer: await c.call('POST', '/upstreams/extra/test-key', { key: TESTED_KEY }), target: 'upstream:extra' }),
    failing: async (c) => [await c.call('POST', '/upstreams/nope/test-key', { key: TESTED_KEY })],
  },
  'POST /admin/secrets/rotate': {
    ok: async (c) => ({ answer: await c.call('POST', '/secrets/rotate'), target: 'secrets' }),
    failing: async () => [],
  },
  'DELETE /admin/upstreams/:upstream/keys/:keyId': {
    ok: async (c) => ({ answer: await c.call('DELETE', '/upstreams/extra/keys/r1'), target: 'pool_key:extra/r1' }),
    failing: async (c) => [await c.call('DELETE', '/upstreams/extra/keys/r1'), await c.call('DELETE', '/upstreams/main/keys/k1')],
  },
  'DELETE /admin/upstreams/:upstream': {
    ok: async (c) => ({ answer: await c.call('DELETE', '/upstreams/extra'), target: 'upstream:extra' }),
    failing: async (c) => [await c.call('DELETE', '/upstreams/extra'), await c.call('DELETE', '/upstreams/main')],
  },
  'POST /admin/webhooks': {
    ok: async (c) => {
      const answer = await c.call('POST', '/webhooks', { url: 'http://127.0.0.1:9/hook', events: ['pool.exhausted'], secret: WEBHOOK_SECRET });
      c.saved.webhook = answer.json.id;
      return { answer, target: `webhook:${answer.json.id}` };
    },
    failing: async (c) => [
      await c.call('POST', '/webhooks', { url: 'ftp://127.0.0.1/hook', events: ['pool.exhausted'], secret: WEBHOOK_SECRET }),
      await c.call('POST', '/webhooks', { url: 'http://127.0.0.1:9/hook', events: ['pool.exploded'], secret: WEBHOOK_SECRET }),
    ],
  },
  'DELETE /admin/webhooks/:id': {
    ok: async (c) => ({ answer: await c.call('DELETE', `/webhooks/${c.saved.webhook}`), target: `webhook:${c.saved.webhook}` }),
    failing: async (c) => [await c.call('DELETE', `/webhooks/${c.saved.webhook}`), await c.call('DELETE', '/webhooks/from-settings')],
  },
};

const settings = (fake: FakeUpstream): Partial<Config> =>
  ({
    upstreams: [{ id: 'main', baseUrl: fake.baseUrl, models: ['*'], strategy: 'round-robin', keys: [{ id: 'k1', key: POOL_KEY, weight: 1 }] }],
    alerts: { webhooks: [{ id: 'from-settings', url: 'http://127.0.0.1:9/settings', events: ['quota.threshold'], secret: WEBHOOK_SECRET }], firstRetryMs: 1000, pollMs: 1000, timeoutMs: 10_000 },
  }) as Partial<Config>;

describe.each(['memory', 'redis'])('audit of admin changes (%s store)', (kind) => {
  let fake: FakeUpstream;
  let redis: RedisServer | undefined;
  let gateway: TestGateway;
  const texts: string[] = [];

  beforeAll(async () => {
    fake = await startFakeUpstream();
    if (kind === 'redis') redis = await startRedis();
    gateway = await startGateway({ env: { REDIS_URL: redis?.url, KEYRELAY_SECRET: STORE_SECRET }, config: settings(fake) });
    ctx.saved.baseUrl = fake.baseUrl;
  });
  afterAll(async () => {
    await gateway?.close();
    await redis?.stop();
    await fake?.close();
  });

  const ctx: Ctx = {
    saved: {},
    async call(method, path, body, headers = {}) {
      const res = await fetch(`${gateway.url}/admin${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      captureAnswer(`${method} ${gateway.url}/admin${path}`, { status: res.status, headers: res.headers, body: text });
      texts.push(text);
      return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
    },
  };

  const log = async () => (await ctx.call('GET', '/audit?limit=1000')).json.data as Array<Record<string, string>>;

  it('covers every admin route that changes something, and only those', () => {
    const declared = gateway.app.auditedRoutes.map((r) => `${r.method} ${r.url}`);
    expect(declared.sort()).toEqual(Object.keys(CASES).sort());
    expect(gateway.app.auditedRoutes.every((r) => /^[a-z_]+\.[a-z_]+$/.test(r.action))).toBe(true);
  });

  it('writes exactly one entry per successful change, and none for a failed one', async () => {
    const byRoute = new Map(gateway.app.auditedRoutes.map((r) => [`${r.method} ${r.url}`, r.action]));
    for (const [route, test] of Object.entries(CASES)) {
      const before = await log();
      const { answer, target } = await test.ok(ctx);
      expect(answer.status, `${route}: ${answer.text}`).toBeLessThan(300);
      const after = await log();
      expect(after.length, route).toBe(before.length + 1);
      const entry = after[0]!;
      expect(entry).toEqual({ id: expect.any(String), time: expect.any(String), actor: 'admin', action: byRoute.get(route), target, requestId: expect.any(String), ip: '127.0.0.1' });
      expect(Object.keys(entry).sort()).toEqual(['action', 'actor', 'id', 'ip', 'requestId', 'target', 'time']);
      expect(Math.abs(Date.parse(entry.time!) - Date.now())).toBeLessThan(60_000);
      if (kind === 'memory') expect(gateway.logs.some((l) => l.requestId === entry.requestId)).toBe(true);

      for (const failed of await test.failing(ctx)) {
        expect(failed.status, `${route}: ${failed.text}`).toBeGreaterThanOrEqual(400);
        expect(failed.json.error.message.length).toBeGreaterThan(0);
      }
      expect((await log()).length, `${route} after failures`).toBe(after.length);
    }
  });

  it('takes the client address from the connection, not from a header a client writes', async () => {
    await ctx.call('POST', '/users', { id: 'forged-ip' }, { 'x-forwarded-for': '6.6.6.6', 'x-real-ip': '6.6.6.6' });
    const [entry] = (await ctx.call('GET', '/audit?target=user:forged-ip')).json.data;
    expect(entry.ip).toBe('127.0.0.1');
    expect(entry.actor).toBe('admin');
  });

  it('holds no secret in any entry or admin answer', async () => {
    const all = JSON.stringify(await log());
    const userKey = ctx.saved.key!;
    const secrets = [POOL_KEY, RUNTIME_KEY, ROTATED_KEY, TESTED_KEY, STORE_SECRET, userKey, createHash('sha256').update(userKey).digest('hex'), WEBHOOK_SECRET, ADMIN_TOKEN];
    for (const secret of secrets) expect(all).not.toContain(secret);
    // Answers: the user key comes back once, in the answer that created it; nothing else anywhere.
    const others = texts.filter((t) => !t.includes('"key":"sk-kr-'));
    for (const secret of secrets) for (const text of others) expect(text).not.toContain(secret);
    expect(leakedAnswers()).toEqual([]);
  });
});

describe('an admin route without an audit action', () => {
  it('stops the app from starting, naming the route', async () => {
    const app = Fastify();
    auditAdminRoutes(app, { log: new MemoryAuditLog(), retention: { maxEntries: 10, maxAgeMs: 1000 }, logger: capturingLogger() });
    const start = async () => {
      await app.register(
        async (admin) => {
          admin.get('/things', async () => ({ data: [] }));
          admin.post('/things', async () => ({ ok: true }));
        },
        { prefix: '/admin' },
      );
      await app.ready();
    };
    await expect(start()).rejects.toThrow('POST /admin/things: an admin route that changes something must declare config.audit');
    await app.close().catch(() => {});
  });
});

describe('the audit settings', () => {
  it('keep the newest maxEntries entries, and none older than maxAgeDays', async () => {
    const gateway = await startGateway({ config: { audit: { maxEntries: 3, maxAgeDays: 2 / 86_400 } } as Partial<Config> });
    try {
      for (const id of ['r1', 'r2', 'r3', 'r4', 'r5']) expect((await gateway.admin('POST', '/users', { id })).status).toBe(201);
      const kept = (await gateway.admin('GET', '/audit')).json.data as Array<{ target: string }>;
      expect(kept.map((e) => e.target)).toEqual(['user:r5', 'user:r4', 'user:r3']);
      // Two seconds of age: past them, the log is empty without any new write.
      await new Promise((r) => setTimeout(r, 2500));
      expect((await gateway.admin('GET', '/audit')).json.data).toEqual([]);
    } finally {
      await gateway.close();
    }
  });
});
