// Attack: guessing tokens past the sign-in throttle. The throttle counts failures per client
// address (10 a minute); a guesser sends many sign-ins at once, so that each is looked up before
// any failure is counted, or names other addresses in X-Forwarded-For. And the other way round:
// a flood of bad sign-ins from one address must not lock the admin out from another.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { call } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

registerSecret(ADMIN_TOKEN);

const backends: Array<[string, () => Promise<RedisServer | undefined>]> = [
  ['memory', async () => undefined],
  ['redis', () => startRedis()],
];

describe.each(backends)('sign-in guesses on the %s store', (_name, startBackend) => {
  let redis: RedisServer | undefined;
  let gw: TestGateway;

  beforeAll(async () => {
    redis = await startBackend();
    gw = await startGateway({ env: { REDIS_URL: redis?.url } });
  });

  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  it('looks up at most 10 tokens from one address however many are sent at once', async () => {
    const guesses = Array.from({ length: 60 }, (_, i) => `sk-kr-guess${String(i).padStart(40, '0')}`);
    const answers = await Promise.all(guesses.map((token) => call(gw.url, 'POST', '/console/api/session', { body: { token } })));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(10);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(50);
    expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
    // The right token from that address waits too.
    expect((await call(gw.url, 'POST', '/console/api/session', { body: { token: ADMIN_TOKEN } })).status).toBe(429);
  });
});

describe('the throttle and forwarded addresses', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw?.close());

  it('does not trust X-Forwarded-For: a new forwarded address each time is still one address', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 15; i++) {
      const res = await call(gw.url, 'POST', '/console/api/session', {
        body: { token: `wrong-token-${i}-0123456789` },
        headers: { 'x-forwarded-for': `203.0.113.${i + 1}`, 'x-real-ip': `198.51.100.${i + 1}` },
      });
      statuses.push(res.status);
    }
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses.slice(10)).toEqual(Array(5).fill(429));
  });
});

describe('a flood of bad sign-ins against the admin', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // Listening on every local address: the flood comes from 127.0.0.2, the admin from 127.0.0.1.
    gw = await startGateway({ config: { host: '0.0.0.0' } });
  });
  afterAll(() => gw?.close());

  it('slows only the flooding address: the admin signs in from another one', async () => {
    const { request } = await import('node:http');
    const fromAddress = (localAddress: string, token: string) =>
      new Promise<number>((resolve, reject) => {
        const body = JSON.stringify({ token });
        const req = request(
          { host: '127.0.0.1', port: gw.port, localAddress, method: 'POST', path: '/console/api/session', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    const flood: number[] = [];
    for (let i = 0; i < 30; i++) flood.push(await fromAddress('127.0.0.2', `wrong-token-${i}-0123456789`));
    expect(flood.filter((s) => s === 429).length).toBe(20);
    expect(await fromAddress('127.0.0.2', ADMIN_TOKEN)).toBe(429);
    expect(await fromAddress('127.0.0.1', ADMIN_TOKEN)).toBe(200);
  });
});
