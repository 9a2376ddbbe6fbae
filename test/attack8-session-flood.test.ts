// Attack as a user with a valid key: sign in over and over (a sign-in with a right token is not
// slowed) until the in-memory session store is full, to push the admin's session out. The
// gateway runs with a store whose session cap is small, so the flood is a few hundred sign-ins.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemorySessionStore } from '../src/console-server/sessions.js';
import { createMemoryStore } from '../src/store/memory.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { call, signIn } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';

registerSecret(ADMIN_TOKEN);

const CAP = 40;

describe('a flood of sign-ins with a valid key', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    const store = Object.assign(createMemoryStore(), { consoleSessions: new MemorySessionStore(CAP) });
    gw = await startGateway({ store });
  });

  afterAll(() => gw?.close());

  it("does not push the admin's session out; the flooder's oldest sessions go instead", async () => {
    const key = await gw.createUserKey('flooder');
    registerSecret(key);
    const victim = await gw.createUserKey('victim');
    registerSecret(victim);
    const admin = await signIn(gw.url, ADMIN_TOKEN);
    const first = await signIn(gw.url, key);
    let last = first;
    for (let i = 0; i < CAP * 3; i++) last = await signIn(gw.url, key);

    expect((await call(gw.url, 'GET', '/admin/users', { cookie: admin.cookie })).status).toBe(200);
    expect((await call(gw.url, 'POST', '/admin/users', { cookie: admin.cookie, csrf: admin.csrf, body: { id: 'after-flood' } })).status).toBe(201);
    expect((await call(gw.url, 'GET', '/console/api/me', { cookie: last.cookie })).status).toBe(200);
    expect((await call(gw.url, 'GET', '/console/api/me', { cookie: first.cookie })).status).toBe(401);
  });
});
