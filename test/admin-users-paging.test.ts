// GET /admin/users with search, limit and offset, and the total, through a real gateway on the
// memory store and on Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

describe.each(['memory', 'redis'] as const)('the users list on %s', (backend) => {
  let gateway: TestGateway;
  let redis: RedisServer | undefined;
  const ids = ['alice', 'bob', 'carol', 'dave', 'Alina'];

  beforeAll(async () => {
    redis = backend === 'redis' ? await startRedis() : undefined;
    gateway = await startGateway({ env: { REDIS_URL: redis?.url } });
    for (const id of ids) {
      const res = await gateway.admin('POST', '/users', { id, name: id === 'dave' ? 'David ALIson' : null });
      expect(res.status).toBe(201);
      // Creation times order the list: a millisecond apart at least.
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  });
  afterAll(async () => {
    await gateway.close();
    await redis?.stop();
  });

  const listed = (json: { data: Array<{ id: string }> }) => json.data.map((u) => u.id);

  it('without parameters lists every user, as before, with the total', async () => {
    const res = await gateway.admin('GET', '/users');
    expect(res.status).toBe(200);
    expect(listed(res.json)).toEqual(ids);
    expect(res.json.total).toBe(5);
    expect(res.json.data[0]).toMatchObject({ id: 'alice', createdAt: expect.any(String) });
  });

  it('pages with limit and offset', async () => {
    const first = await gateway.admin('GET', '/users?limit=2');
    expect([listed(first.json), first.json.total]).toEqual([['alice', 'bob'], 5]);
    const second = await gateway.admin('GET', '/users?limit=2&offset=2');
    expect([listed(second.json), second.json.total]).toEqual([['carol', 'dave'], 5]);
    const last = await gateway.admin('GET', '/users?limit=2&offset=4');
    expect(listed(last.json)).toEqual(['Alina']);
    const past = await gateway.admin('GET', '/users?offset=10');
    expect([listed(past.json), past.json.total]).toEqual([[], 5]);
  });

  it('searches ids and names, whatever the case, and counts what it found', async () => {
    const res = await gateway.admin('GET', '/users?search=ALI');
    expect([listed(res.json), res.json.total]).toEqual([['alice', 'dave', 'Alina'], 3]);
    const paged = await gateway.admin('GET', '/users?search=ali&limit=1&offset=1');
    expect([listed(paged.json), paged.json.total]).toEqual([['dave'], 3]);
    const none = await gateway.admin('GET', '/users?search=zzz');
    expect(none.json).toEqual({ data: [], total: 0 });
  });

  it('answers 400 naming a bad parameter', async () => {
    const cases: Array<[string, string]> = [
      ['/users?limit=0', 'limit'],
      ['/users?limit=1001', 'limit'],
      ['/users?limit=1e2', 'limit'],
      ['/users?offset=-1', 'offset'],
      ['/users?offset=%205', 'offset'],
      ['/users?search=' + 's'.repeat(201), 'search'],
      ['/users?page=2', 'page'],
    ];
    for (const [path, param] of cases) {
      const res = await gateway.admin('GET', path);
      expect(res.status, path).toBe(400);
      expect(res.json.error.param, path).toBe(param);
    }
  });
});
