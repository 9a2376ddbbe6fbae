// GET /admin/requests filtered by model and by time, one record by its request id, and the 400s
// and 404s, through a real gateway on the memory store and on Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerSecret } from './helpers/log-capture.js';
import { type ObservedGateway, type Sent, chat, keptRecords, post, startObservedGateway } from './helpers/observability-fixture.js';

const POOL_KEY = 'sk-pool-requestfilters-0123456789abcdef';

describe.each(['memory', 'redis'] as const)('request log filters and detail on %s', (backend) => {
  let env: ObservedGateway;
  const sent: Sent[] = [];
  let between = '';

  beforeAll(async () => {
    env = await startObservedGateway(POOL_KEY, backend);
    const alice = await env.gateway.createUserKey('alice');
    registerSecret(alice);
    sent.push(await post(env.gateway, alice, '/chat/completions', chat('one')));
    sent.push(await post(env.gateway, alice, '/chat/completions', chat('two', { model: 'gpt-4o' })));
    await keptRecords(env.gateway, 2);
    // Times are kept to the millisecond: a later request starts strictly after this.
    await new Promise((resolve) => setTimeout(resolve, 5));
    between = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 5));
    sent.push(await post(env.gateway, alice, '/chat/completions', chat('three')));
    await keptRecords(env.gateway, 3);
  });
  afterAll(async () => {
    await env.close();
  });

  it('filters by model', async () => {
    const page = await env.gateway.admin('GET', '/requests?model=gpt-4o');
    expect(page.status).toBe(200);
    expect(page.json.data.map((r: { requestId: string }) => r.requestId)).toEqual([sent[1]?.id]);
    const mini = await env.gateway.admin('GET', '/requests?model=gpt-4o-mini');
    expect(mini.json.data.map((r: { requestId: string }) => r.requestId)).toEqual([sent[2]?.id, sent[0]?.id]);
    const none = await env.gateway.admin('GET', '/requests?model=no-such-model');
    expect(none.json).toEqual({ data: [], next: null, nextBefore: null, hasMore: false });
  });

  it('filters by time, from and to both included', async () => {
    const after = await env.gateway.admin('GET', `/requests?from=${between}`);
    expect(after.json.data.map((r: { requestId: string }) => r.requestId)).toEqual([sent[2]?.id]);
    const before = await env.gateway.admin('GET', `/requests?to=${between}`);
    expect(before.json.data.map((r: { requestId: string }) => r.requestId)).toEqual([sent[1]?.id, sent[0]?.id]);
    const third = (await env.gateway.admin('GET', `/requests?from=${between}`)).json.data[0];
    const exact = await env.gateway.admin('GET', `/requests?from=${third.time}&to=${third.time}`);
    expect(exact.json.data.map((r: { requestId: string }) => r.requestId)).toEqual([sent[2]?.id]);
    const today = new Date().toISOString().slice(0, 10);
    const day = await env.gateway.admin('GET', `/requests?from=${today}&model=gpt-4o-mini`);
    expect(day.json.data).toHaveLength(2);
  });

  it('pages with nextBefore and hasMore', async () => {
    const first = await env.gateway.admin('GET', '/requests?limit=2');
    expect(first.json.data).toHaveLength(2);
    expect(first.json.hasMore).toBe(true);
    expect(first.json.nextBefore).toBe(first.json.data[1].id);
    expect(first.json.next).toBe(first.json.nextBefore);
    const second = await env.gateway.admin('GET', `/requests?limit=2&before=${first.json.nextBefore}`);
    expect(second.json.data.map((r: { requestId: string }) => r.requestId)).toEqual([sent[0]?.id]);
    expect(second.json).toMatchObject({ hasMore: false, nextBefore: null });
  });

  it('answers one record by its request id, or by its log id, as the list shows it', async () => {
    const listed = (await env.gateway.admin('GET', '/requests?limit=3')).json.data as Array<{ id: string; requestId: string }>;
    for (const record of listed) {
      const byRequest = await env.gateway.admin('GET', `/requests/${record.requestId}`);
      expect(byRequest.status).toBe(200);
      expect(byRequest.json).toEqual(record);
      const byEntry = await env.gateway.admin('GET', `/requests/${record.id}`);
      expect(byEntry.json).toEqual(record);
    }
  });

  it('answers 404 request_not_found for an id it does not keep', async () => {
    for (const id of ['00000000-0000-4000-8000-000000000000', '1-0', 'nothing-like-an-id']) {
      const res = await env.gateway.admin('GET', `/requests/${id}`);
      expect(res.status).toBe(404);
      expect(res.json.error).toMatchObject({ code: 'request_not_found', param: 'requestId', type: 'invalid_request_error' });
    }
  });

  it('answers 400 naming a bad parameter', async () => {
    const cases: Array<[string, string]> = [
      ['/requests?from=yesterday', 'from'],
      ['/requests?to=2030-02-30T00:00:00Z', 'to'],
      ['/requests?from=2030-01-02&to=2030-01-01', 'from'],
      ['/requests?model=' + 'm'.repeat(300), 'model'],
      ['/requests/export?from=soon', 'from'],
    ];
    for (const [path, param] of cases) {
      const res = await env.gateway.admin('GET', path);
      expect(res.status, path).toBe(400);
      expect(res.json.error.param, path).toBe(param);
    }
  });

  it('exports only the records of a model and time span', async () => {
    const res = await fetch(`${env.gateway.url}/admin/requests/export?model=gpt-4o-mini&from=${between}`, {
      headers: { authorization: 'Bearer test-admin-token-0123456789' },
    });
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as { requestId: string });
    expect(lines.map((r) => r.requestId)).toEqual([sent[2]?.id]);
  });
});
