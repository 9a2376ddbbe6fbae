// /console/api/me's request data over HTTP, on the in-memory store and on a real Redis, played by
// a hostile signed-in user: one request's record (another user's is as unknown as a missing one),
// the live tail of her own requests only (while other users and the admin are busy; widening
// query parameters; ending with her session; a reader that stops reading) and her usage series.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { LiveTail } from '../src/observability/live-tail.js';
import { createMemoryRequestLog } from '../src/observability/request-log.js';
import { call, consoleAnswers, signIn } from './helpers/console-client.js';
import { ADMIN_TOKEN, type TestGateway } from './helpers/gateway.js';
import { TAIL_BOUND_MS, type Tail, openTail } from './helpers/live-tail-client.js';
import { registerSecret } from './helpers/log-capture.js';
import { type ObservedGateway, type Sent, chat, keptRecords, post, startObservedGateway } from './helpers/observability-fixture.js';

registerSecret(ADMIN_TOKEN);
const POOL_KEY = 'sk-pool-console-me-data-0123456789abcdefXYZ';
const STREAM = '/console/api/me/requests/stream';
// Records of some 64 KB each (bodies kept): a few dozen fill what the sockets hold and the
// stream's bound, for the reader that stops reading.
const LOGGING = { requestLogSize: 2000, bodies: true, bodyBytes: 64 * 1024 } as Config['logging'];

async function metric(gateway: TestGateway, name: string): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? Number.NaN);
}

/** Resolves when the stream ends, or fails after the bound (a stream that never ends). */
function endsWithinBound(tail: Tail, what: string): Promise<void> {
  return Promise.race([
    tail.ended,
    new Promise<void>((_, reject) => setTimeout(() => reject(new Error(`${what}: the stream was still open after ${TAIL_BOUND_MS} ms`)), TAIL_BOUND_MS)),
  ]);
}

const totals = (t: Record<string, number>) => ({
  requests: t.requests,
  errors: t.errors,
  inputTokens: t.inputTokens,
  outputTokens: t.outputTokens,
  totalTokens: t.totalTokens,
  costMicros: t.costMicros,
});

describe.each(['memory', 'redis'] as const)('/console/api/me request data on the %s store', (backend) => {
  let env: ObservedGateway;
  let url: string;
  let aliceKey: string;
  let bobKey: string;
  let alice: Awaited<ReturnType<typeof signIn>>;
  let bob: Awaited<ReturnType<typeof signIn>>;
  let admin: Awaited<ReturnType<typeof signIn>>;
  let aliceSent: Sent;
  let bobSent: Sent;

  const tailOf = (cookie: string, query = '') => openTail(`${url}${STREAM}${query}`, { cookie });
  const chatAs = async (key: string, content: string) => {
    const sent = await post(env.gateway, key, '/chat/completions', chat(content));
    expect(sent.status).toBe(200);
    return sent;
  };

  beforeAll(async () => {
    env = await startObservedGateway(POOL_KEY, backend, { logging: LOGGING });
    url = env.gateway.url;
    aliceKey = await env.gateway.createUserKey('alice', { name: 'Alice' });
    bobKey = await env.gateway.createUserKey('bob');
    registerSecret(aliceKey);
    registerSecret(bobKey);
    aliceSent = await chatAs(aliceKey, 'alice one');
    await chatAs(aliceKey, 'alice two');
    bobSent = await chatAs(bobKey, 'bob one');
    await keptRecords(env.gateway, 2, '&user=alice');
    await keptRecords(env.gateway, 1, '&user=bob');
    alice = await signIn(url, aliceKey);
    bob = await signIn(url, bobKey);
    admin = await signIn(url, ADMIN_TOKEN);
  });

  afterAll(() => env?.close());

  describe('GET /me/requests/{requestId}', () => {
    it('is her record, as /admin/requests/{id} shows it, by the request id and by the log id', async () => {
      const listed = (await env.gateway.admin('GET', `/requests/${aliceSent.id}`)).json;
      expect(listed.userId).toBe('alice');
      for (const id of [aliceSent.id, listed.id as string]) {
        const res = await call(url, 'GET', `/console/api/me/requests/${encodeURIComponent(id)}`, { cookie: alice.cookie });
        expect(res.status, id).toBe(200);
        expect(res.json).toEqual(listed);
      }
    });

    it("is 404 request_not_found for bob, the same answer an unknown id gets (no oracle)", async () => {
      const listed = (await env.gateway.admin('GET', `/requests/${aliceSent.id}`)).json;
      const unknownLogId = '1-0';
      const unknownRequestId = `${aliceSent.id.slice(0, -4)}ffff`;
      expect((await env.gateway.admin('GET', `/requests/${unknownRequestId}`)).status).toBe(404);
      // The answer names the id asked for; with that put back, every refusal is the same.
      const shape = async (id: string) => {
        const res = await call(url, 'GET', `/console/api/me/requests/${encodeURIComponent(id)}`, { cookie: bob.cookie });
        expect(res.status, id).toBe(404);
        expect(res.headers.get('content-type')).toContain('application/json');
        return JSON.parse(res.text.split(JSON.stringify(JSON.stringify(id)).slice(1, -1)).join('<id>'));
      };
      const theirs = await shape(aliceSent.id);
      expect(theirs.error).toMatchObject({ code: 'request_not_found', param: 'requestId' });
      expect(await shape(listed.id)).toEqual(theirs);
      expect(await shape(unknownRequestId)).toEqual(theirs);
      expect(await shape(unknownLogId)).toEqual(theirs);
      // And alice, the other way round, cannot read bob's.
      const bobsLogId = (await env.gateway.admin('GET', `/requests/${bobSent.id}`)).json.id as string;
      for (const id of [bobSent.id, bobsLogId]) {
        const res = await call(url, 'GET', `/console/api/me/requests/${encodeURIComponent(id)}`, { cookie: alice.cookie });
        expect(res.status, id).toBe(404);
        expect(res.text).not.toContain('"userId"');
      }
    });

    it('a query naming another user changes nothing; a path trick reaches no other record', async () => {
      const res = await call(url, 'GET', `/console/api/me/requests/${bobSent.id}?user=bob`, { cookie: alice.cookie });
      expect(res.status).toBe(404);
      for (const path of [`/console/api/me/requests/${bobSent.id}/..`, `/console/api/me/requests/..%2F..%2F..%2Fadmin%2Frequests%2F${bobSent.id}`]) {
        const trick = await call(url, 'GET', path, { cookie: alice.cookie });
        expect([400, 404], path).toContain(trick.status);
        expect(trick.text, path).not.toContain('"userId"');
      }
    });
  });

  describe('GET /me/requests/stream', () => {
    it("sends her only her own requests while bob's and the admin's traffic flows", async () => {
      const watcher = await openTail(`${url}/admin/requests/stream`, { authorization: `Bearer ${ADMIN_TOKEN}` });
      const tails = [await tailOf(alice.cookie), await tailOf(alice.cookie, '?user=bob')];
      for (const tail of [watcher, ...tails]) {
        expect(tail.status).toBe(200);
        await tail.until(() => tail.text().startsWith(': connected\n\n'), 'opening comment');
      }
      expect(tails[0]?.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');

      const hers: string[] = [];
      const his: string[] = [];
      for (let round = 0; round < 5; round++) {
        const [a, b] = await Promise.all([
          chatAs(aliceKey, `alice live ${round}`),
          chatAs(bobKey, `bob live ${round}`),
          // The admin's own traffic: admin API calls and a console call, each a record of no user.
          env.gateway.admin('GET', '/users'),
          call(url, 'GET', '/admin/requests?limit=5', { cookie: admin.cookie }),
          post(env.gateway, 'sk-kr-NoSuchKey0123456789abcdefghijklmn', '/chat/completions', chat('nobody')),
        ]);
        hers.push(a.id);
        his.push(b.id);
      }
      // Her requests reach her, each within the bound.
      for (const tail of tails) await tail.until((events) => hers.every((id) => events.some((e) => e.requestId === id)), 'each of her requests');
      // Everything sent so far has been through every stream's filter once the watcher saw it
      // and then one more of hers came through: events go out in order.
      await watcher.until((events) => his.every((id) => events.some((e) => e.requestId === id)), "bob's requests on the admin's tail");
      const marker = await chatAs(aliceKey, 'alice marker');
      for (const tail of tails) {
        await tail.until((events) => events.some((e) => e.requestId === marker.id), 'her last request');
        expect(tail.events.every((e) => e.userId === 'alice')).toBe(true);
        expect(tail.events.map((e) => e.requestId).sort()).toEqual([...hers, marker.id].sort());
        for (const id of his) expect(tail.text()).not.toContain(id);
        expect(tail.text()).not.toContain('"bob"');
        expect(tail.text()).not.toContain(aliceKey);
        tail.close();
      }
      // Her events are the records as the admin sees them.
      const seen = tails[0]?.events.find((e) => e.requestId === marker.id);
      expect(seen).toEqual((await env.gateway.admin('GET', `/requests/${marker.id}`)).json);
      watcher.close();
    });

    it('refuses query parameters that would widen or reshape it: 400 naming the parameter', async () => {
      const cases = [
        ['?user[]=bob', 'user[]'],
        ['?user=bob&user=alice', 'user'],
        ['?user=alice&user=bob', 'user'],
        ['?limit=5', 'limit'],
        ['?before=1-0', 'before'],
        ['?from=2030-01-01', 'from'],
        ['?all=true', 'all'],
        ['?status=abc', 'status'],
      ] as const;
      for (const [query, param] of cases) {
        const res = await call(url, 'GET', `${STREAM}${query}`, { cookie: alice.cookie });
        expect(res.status, query).toBe(400);
        expect(res.json.error, query).toMatchObject({ type: 'invalid_request_error' });
        expect(res.json.error.param, query).toBe(param);
      }
      for (const query of ['?__proto__=bob', '?constructor=bob', '?user%5B%5D=bob']) {
        const res = await call(url, 'GET', `${STREAM}${query}`, { cookie: alice.cookie });
        expect(res.status, query).toBe(400);
        expect(res.json.error.type, query).toBe('invalid_request_error');
      }
    });

    it('ends within seconds when she signs out', async () => {
      const session = await signIn(url, aliceKey);
      const tail = await tailOf(session.cookie);
      expect(tail.status).toBe(200);
      await tail.until(() => tail.text().length > 0, 'opening comment');
      const out = await call(url, 'DELETE', '/console/api/session', { cookie: session.cookie, csrf: session.csrf });
      expect(out.status).toBe(204);
      await endsWithinBound(tail, 'signed out');
      const after = await chatAs(aliceKey, 'after sign-out');
      expect(tail.text()).not.toContain(after.id);
      expect((await call(url, 'GET', STREAM, { cookie: session.cookie })).status).toBe(401);
    });

    it('ends within seconds when the key she signed in with is revoked, or her user deleted', async () => {
      const spare = await env.gateway.admin('POST', '/users/alice/keys', { name: 'spare' });
      expect(spare.status).toBe(201);
      registerSecret(spare.json.key);
      const session = await signIn(url, spare.json.key);
      const tail = await tailOf(session.cookie);
      await tail.until(() => tail.text().length > 0, 'opening comment');
      expect((await env.gateway.admin('DELETE', `/keys/${spare.json.id}`)).status).toBe(200);
      await endsWithinBound(tail, 'key revoked');
      expect((await call(url, 'GET', STREAM, { cookie: session.cookie })).status).toBe(401);

      const carolKey = await env.gateway.createUserKey('carol');
      registerSecret(carolKey);
      const carol = await signIn(url, carolKey);
      const carolTail = await tailOf(carol.cookie);
      await carolTail.until(() => carolTail.text().length > 0, 'opening comment');
      expect((await env.gateway.admin('DELETE', '/users/carol')).status).toBeLessThan(300);
      await endsWithinBound(carolTail, 'user deleted');
    });

    it("an admin's cookie stream on /admin ends at sign-out too; a bearer one is not checked", async () => {
      const session = await signIn(url, ADMIN_TOKEN);
      const tail = await openTail(`${url}/admin/requests/stream`, { cookie: session.cookie });
      expect(tail.status).toBe(200);
      await tail.until(() => tail.text().length > 0, 'opening comment');
      expect((await call(url, 'DELETE', '/console/api/session', { cookie: session.cookie, csrf: session.csrf })).status).toBe(204);
      await endsWithinBound(tail, 'admin signed out');
    });

    it('counts the clients of both tails in keyrelay_live_tail_clients', async () => {
      const before = await metric(env.gateway, 'keyrelay_live_tail_clients');
      const tails = [await tailOf(alice.cookie), await openTail(`${url}/admin/requests/stream`, { authorization: `Bearer ${ADMIN_TOKEN}` })];
      for (const tail of tails) await tail.until(() => tail.text().length > 0, 'opening comment');
      expect(await metric(env.gateway, 'keyrelay_live_tail_clients')).toBe(before + 2);
      for (const tail of tails) tail.close();
      const deadline = Date.now() + TAIL_BOUND_MS;
      while ((await metric(env.gateway, 'keyrelay_live_tail_clients')) !== before) {
        if (Date.now() > deadline) throw new Error('the client count did not come back');
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    });

    it('a session still signed in keeps its stream past the checks', async () => {
      const tail = await tailOf(alice.cookie);
      await tail.until(() => tail.text().length > 0, 'opening comment');
      // Longer than the session is re-checked: the stream stays and still delivers.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      const sent = await chatAs(aliceKey, 'still here');
      await tail.until((events) => events.some((e) => e.requestId === sent.id), 'her request after the checks');
      tail.close();
    });

    it('drops a reader that stops reading, without holding back another', async () => {
      const droppedBefore = await metric(env.gateway, 'keyrelay_live_tail_dropped_total');
      const socket = connect(env.gateway.port, '127.0.0.1');
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.on('error', () => {});
      socket.write(`GET ${STREAM} HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: ${alice.cookie}\r\n\r\n`);
      // Its first bytes are read, then nothing more.
      const first = await new Promise<Buffer>((resolve) => socket.once('data', resolve));
      expect(first.toString('utf8')).toMatch(/^HTTP\/1\.1 200/);
      socket.pause();
      const reader = await tailOf(alice.cookie);
      await reader.until(() => reader.text().length > 0, 'opening comment');

      const big = 'x'.repeat(64 * 1024);
      const ids: string[] = [];
      const dropped = async () => (await metric(env.gateway, 'keyrelay_live_tail_dropped_total')) > droppedBefore;
      // Sent until the silent client is dropped: some 25 MB at most, ten requests at a time.
      for (let round = 0; round < 40 && !(await dropped()); round++) {
        const sent = await Promise.all(Array.from({ length: 10 }, (_, i) => chatAs(aliceKey, `${big}${round}-${i}`)));
        ids.push(...sent.map((s) => s.id));
      }
      expect(await metric(env.gateway, 'keyrelay_live_tail_dropped_total')).toBe(droppedBefore + 1);
      const later = (await Promise.all(Array.from({ length: 10 }, (_, i) => chatAs(aliceKey, `${big}later-${i}`)))).map((s) => s.id);
      ids.push(...later);
      await reader.until((events) => ids.every((id) => events.some((e) => e.requestId === id)), 'every event for the reader');
      // Read now, the silent client finds its connection closed after what was already on its way.
      let received = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        received += chunk;
      });
      socket.resume();
      await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the dropped connection stayed open')), TAIL_BOUND_MS))]);
      expect(later.filter((id) => received.includes(id))).toEqual([]);
      reader.close();
      socket.destroy();
    }, 120_000);
  });

  describe('GET /me/usage/series', () => {
    it('totals equal her own /me/usage over the same days, for every range', async () => {
      for (const range of ['hour', 'day', 'month']) {
        const series = await call(url, 'GET', `/console/api/me/usage/series?range=${range}&by=model`, { cookie: alice.cookie });
        expect(series.status, range).toBe(200);
        const buckets = series.json.buckets as string[];
        const from = (buckets[0] as string).slice(0, 10);
        const to = (buckets[buckets.length - 1] as string).slice(0, 10);
        const usage = await call(url, 'GET', `/console/api/me/usage?from=${from}&to=${to}`, { cookie: alice.cookie });
        expect(usage.status).toBe(200);
        // An hour's or a day's buckets may begin yesterday (UTC) and still be only part of it.
        if (range === 'month') expect(totals(series.json.total)).toEqual(totals(usage.json.total));
        expect(series.json.total.requests, range).toBeGreaterThanOrEqual(2);
        const admins = await env.gateway.admin('GET', `/usage/series?range=${range}&by=model&user=alice`);
        expect(totals(series.json.total), range).toEqual(totals(admins.json.total));
        expect(series.json.top.users.map((u: { name: string }) => u.name)).toEqual(['alice']);
        expect(series.text).not.toContain('bob');
      }
    });

    it('`user=bob` cannot widen it; `by=user` and parameters that would are 400 naming them', async () => {
      const own = await call(url, 'GET', '/console/api/me/usage/series?range=month&by=model', { cookie: alice.cookie });
      const forced = await call(url, 'GET', '/console/api/me/usage/series?range=month&by=model&user=bob', { cookie: alice.cookie });
      expect(forced.status).toBe(200);
      expect(totals(forced.json.total)).toEqual(totals(own.json.total));
      expect(forced.text).not.toContain('bob');
      const bobs = await env.gateway.admin('GET', '/usage/series?range=month&user=bob');
      expect(bobs.json.total.requests).toBeGreaterThan(0);
      const byPoolKey = await call(url, 'GET', '/console/api/me/usage/series?range=month&by=poolKey', { cookie: alice.cookie });
      expect(byPoolKey.status).toBe(200);
      expect(totals(byPoolKey.json.total)).toEqual(totals(own.json.total));

      const cases = [
        ['?by=user', 'by'],
        ['?range=month&by=user&user=alice', 'by'],
        ['?by=USER', 'by'],
        ['?by=user&by=model', 'by'],
        ['?user=bob&user=alice', 'user'],
        ['?user[]=bob', 'user[]'],
        ['?groupBy=user', 'groupBy'],
        ['?range=year', 'range'],
      ] as const;
      for (const [query, param] of cases) {
        const res = await call(url, 'GET', `/console/api/me/usage/series${query}`, { cookie: alice.cookie });
        expect(res.status, query).toBe(400);
        expect(res.json.error.param, query).toBe(param);
      }
    });
  });

  it('an admin session gets 403 on each of these routes, no session 401, a bearer key 401', async () => {
    const paths = [`/console/api/me/requests/${aliceSent.id}`, STREAM, '/console/api/me/usage/series'];
    for (const path of paths) {
      const asAdmin = await call(url, 'GET', path, { cookie: admin.cookie });
      expect(asAdmin.status, path).toBe(403);
      expect(asAdmin.json.error.code, path).toBe('route_not_allowed');
      const none = await call(url, 'GET', path);
      expect(none.status, path).toBe(401);
      expect(none.json.error.code, path).toBe('no_session');
      const bearer = await call(url, 'GET', path, { headers: { authorization: `Bearer ${aliceKey}` } });
      expect(bearer.status, path).toBe(401);
      const forged = await call(url, 'GET', path, { cookie: 'keyrelay_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
      expect(forged.status, path).toBe(401);
    }
  });

  it('puts no admin token or key in any answer', () => {
    for (const answer of consoleAnswers) {
      expect(answer.text).not.toContain(ADMIN_TOKEN);
      expect(answer.text).not.toContain(bobKey);
      expect(answer.text).not.toContain(aliceKey);
      expect(answer.text).not.toContain(POOL_KEY);
    }
  });
});

describe('the live tail asks a client\'s `holds` again', () => {
  const opened = (holds: () => Promise<boolean>) => {
    const tail = new LiveTail(createMemoryRequestLog(10), { keepAliveMs: 60_000, recheckMs: 20, maxBufferedBytes: 1024 * 1024 });
    const stream = tail.open({}, holds);
    let text = '';
    stream.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    const ended = new Promise<void>((resolve) => stream.once('end', () => resolve()));
    return { tail, stream, ended, text: () => text };
  };
  const within = <T>(promise: Promise<T>, what: string) =>
    Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} not within ${TAIL_BOUND_MS} ms`)), TAIL_BOUND_MS))]);

  it('ends the stream once it answers false, after what was already sent', async () => {
    let holding = true;
    let asked = 0;
    const { tail, ended, text } = opened(async () => {
      asked += 1;
      return holding;
    });
    while (asked < 3) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(tail.size).toBe(1);
    holding = false;
    await within(ended, 'the end');
    expect(text()).toBe(': connected\n\n');
    expect(tail.size).toBe(0);
  });

  it('ends it when the check fails (the store unreachable), and never runs two checks of one client at once', async () => {
    let running = 0;
    let most = 0;
    let calls = 0;
    const { tail, ended } = opened(async () => {
      running += 1;
      most = Math.max(most, running);
      calls += 1;
      // Slower than the timer: a check still running is not started again.
      await new Promise((resolve) => setTimeout(resolve, 100));
      running -= 1;
      if (calls >= 2) throw new Error('store unreachable');
      return true;
    });
    await within(ended, 'the end');
    expect(most).toBe(1);
    expect(tail.size).toBe(0);
  });
});
