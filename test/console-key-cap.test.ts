// Attack: one user filling the store with keys. Each key is a store entry, so a user who may
// create keys from the console without bound could fill Redis for everyone. A user holds at most
// maxKeysPerUser live keys, whoever creates them (the console, the admin API): past it a 409
// `too_many_keys` and nothing stored, also when the creations are sent all at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENDED_KEYS_KEPT } from '../src/plugins/admin.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { SESSION_BACKENDS, call, signIn } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';
import type { RedisServer } from './helpers/redis-server.js';

registerSecret(ADMIN_TOKEN);
const CAP = 5;

describe.each(SESSION_BACKENDS)('the cap on a user\'s keys on the %s store', (_name, startBackend) => {
  let redis: RedisServer | undefined;
  let gw: TestGateway;

  beforeAll(async () => {
    redis = await startBackend();
    gw = await startGateway({ env: { REDIS_URL: redis?.url, KEYRELAY_MAX_KEYS_PER_USER: String(CAP) } });
  });

  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  const liveKeys = async (userId: string) =>
    ((await gw.admin('GET', `/users/${userId}/keys`)).json.data as Array<{ revokedAt: string | null; expiresAt: string | null }>).filter(
      (k) => !k.revokedAt && (!k.expiresAt || Date.parse(k.expiresAt) > Date.now()),
    );

  it('refuses a user\'s key past the cap from the console, 20 sent at once, and stores none of them', async () => {
    const key = await gw.createUserKey('mallory');
    registerSecret(key);
    const session = await signIn(gw.url, key);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => call(gw.url, 'POST', '/console/api/me/keys', { cookie: session.cookie, csrf: session.csrf, body: { name: `k${i}` } })),
    );
    for (const a of answers) if (a.status === 201) registerSecret(a.json.key);
    // The key signed in with is one of the CAP.
    expect(answers.filter((a) => a.status === 201)).toHaveLength(CAP - 1);
    const refused = answers.filter((a) => a.status !== 201);
    expect(refused).toHaveLength(20 - (CAP - 1));
    for (const a of refused) {
      expect(a.status).toBe(409);
      expect(a.json).toEqual({
        error: {
          message: `User mallory already holds ${CAP} live keys, as many as a user may (maxKeysPerUser). Revoke one before creating another.`,
          type: 'invalid_request_error',
          param: null,
          code: 'too_many_keys',
        },
      });
    }
    expect(await liveKeys('mallory')).toHaveLength(CAP);
    if (redis) {
      // Nothing of a refused key was written: CAP key records and CAP digests in all.
      expect((await redis.cli('--scan', '--pattern', 'kr:key:*')).split('\n').filter(Boolean)).toHaveLength(CAP);
      expect((await redis.cli('--scan', '--pattern', 'kr:digest:*')).split('\n').filter(Boolean)).toHaveLength(CAP);
    }
  });

  it('gives a place back when a key is revoked, and one when a key expires', async () => {
    const key = await gw.createUserKey('trudy');
    registerSecret(key);
    const session = await signIn(gw.url, key);
    const made: string[] = [];
    for (let i = 0; i < CAP - 1; i++) {
      const a = await call(gw.url, 'POST', '/console/api/me/keys', { cookie: session.cookie, csrf: session.csrf, body: { name: `k${i}` } });
      expect(a.status).toBe(201);
      registerSecret(a.json.key);
      made.push(a.json.id);
    }
    const past = await call(gw.url, 'POST', '/console/api/me/keys', { cookie: session.cookie, csrf: session.csrf, body: { name: 'one more' } });
    expect(past.status).toBe(409);
    expect((await call(gw.url, 'DELETE', `/console/api/me/keys/${made[0]}`, { cookie: session.cookie, csrf: session.csrf })).status).toBe(200);
    const again = await call(gw.url, 'POST', '/console/api/me/keys', { cookie: session.cookie, csrf: session.csrf, body: { name: 'in its place' } });
    expect(again.status).toBe(201);
    registerSecret(again.json.key);
    expect((await call(gw.url, 'POST', '/console/api/me/keys', { cookie: session.cookie, csrf: session.csrf, body: {} })).status).toBe(409);
    // A key made already expired (the admin's allowPast) holds no place once its time is past.
    expect((await gw.admin('DELETE', `/keys/${made[1]}`)).status).toBe(200);
    const short = await gw.admin('POST', '/users/trudy/keys?allowPast=true', { expiresAt: new Date(Date.now() - 1000).toISOString() });
    expect(short.status).toBe(201);
    registerSecret(short.json.key);
    const after = await call(gw.url, 'POST', '/console/api/me/keys', { cookie: session.cookie, csrf: session.csrf, body: {} });
    expect(after.status).toBe(201);
    registerSecret(after.json.key);
    expect(await liveKeys('trudy')).toHaveLength(CAP);
  });

  it('holds for the admin API too, with the same answer, 20 at once', async () => {
    expect((await gw.admin('POST', '/users', { id: 'carol' })).status).toBe(201);
    const answers = await Promise.all(Array.from({ length: 20 }, () => gw.admin('POST', '/users/carol/keys', {})));
    for (const a of answers) if (a.status === 201) registerSecret(a.json.key);
    expect(answers.filter((a) => a.status === 201)).toHaveLength(CAP);
    expect(answers.filter((a) => a.status === 409 && a.json.error.code === 'too_many_keys')).toHaveLength(20 - CAP);
    expect(await liveKeys('carol')).toHaveLength(CAP);
  });

  it('keeps a bounded number of ended keys: making and revoking keys in a loop does not fill the store', async () => {
    const key = await gw.createUserKey('looper');
    registerSecret(key);
    const session = await signIn(gw.url, key);
    const rounds = ENDED_KEYS_KEPT + 30;
    let first = '';
    for (let i = 0; i < rounds; i++) {
      const made = await call(gw.url, 'POST', '/console/api/me/keys', { cookie: session.cookie, csrf: session.csrf, body: { name: `loop ${i}` } });
      expect(made.status).toBe(201);
      registerSecret(made.json.key);
      first ||= made.json.key;
      expect((await call(gw.url, 'DELETE', `/console/api/me/keys/${made.json.id}`, { cookie: session.cookie, csrf: session.csrf })).status).toBe(200);
    }
    const listed = (await call(gw.url, 'GET', '/console/api/me/keys', { cookie: session.cookie })).json.data as Array<{ name?: string; revokedAt?: string }>;
    // The key signed in with, and the ENDED_KEYS_KEPT ended keys before the last one made (which
    // was revoked after its creation forgot the older ones).
    expect(listed).toHaveLength(ENDED_KEYS_KEPT + 2);
    expect(listed.filter((k) => k.revokedAt === undefined)).toHaveLength(1);
    expect(listed.some((k) => k.name === 'loop 0')).toBe(false);
    expect(listed.some((k) => k.name === `loop ${rounds - 1}`)).toBe(true);
    if (redis) {
      expect(Number(await redis.cli('scard', 'kr:{u:looper}:keys'))).toBe(ENDED_KEYS_KEPT + 2);
      const digests = (await redis.cli('--scan', '--pattern', 'kr:digest:*')).split('\n').filter(Boolean);
      const records = (await redis.cli('--scan', '--pattern', 'kr:key:*')).split('\n').filter(Boolean);
      expect(digests.length).toBe(records.length);
    }
    // A forgotten key is still no key; the session of the live one goes on.
    expect((await call(gw.url, 'POST', '/console/api/session', { body: { token: first } })).json.error.code).toBe('invalid_api_key');
    expect((await call(gw.url, 'GET', '/console/api/me', { cookie: session.cookie })).status).toBe(200);
  });

  it('forgets a deleted user\'s places with their keys', async () => {
    expect((await gw.admin('DELETE', '/users/carol')).status).toBe(200);
    expect((await gw.admin('GET', '/users/carol/keys')).status).toBe(404);
    if (redis) expect((await redis.cli('--scan', '--pattern', '*carol*')).split('\n').filter((k) => k.includes('live-keys'))).toEqual([]);
  });
});

describe('the setting', () => {
  it('defaults to 20 live keys a user', async () => {
    const gw = await startGateway();
    try {
      expect((await gw.admin('POST', '/users', { id: 'erin' })).status).toBe(201);
      const answers = [];
      for (let i = 0; i < 21; i++) answers.push(await gw.admin('POST', '/users/erin/keys', {}));
      for (const a of answers) if (a.status === 201) registerSecret(a.json.key);
      expect(answers.map((a) => a.status)).toEqual([...Array(20).fill(201), 409]);
    } finally {
      await gw.close();
    }
  });
});
