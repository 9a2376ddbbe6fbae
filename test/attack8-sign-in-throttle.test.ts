// Attack: guessing tokens past the sign-in throttle. The throttle counts failures per client
// address (10 a minute); a guesser sends many sign-ins at once, so that each is looked up before
// any failure is counted, or names other addresses in X-Forwarded-For. And the other way round:
// a flood of bad sign-ins from one address must not lock the admin out from another.
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { throttleKey } from '../src/console-server/throttle.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { SESSION_BACKENDS, call } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';
import type { RedisServer } from './helpers/redis-server.js';

registerSecret(ADMIN_TOKEN);

describe.each(SESSION_BACKENDS)('sign-in guesses on the %s store', (_name, startBackend) => {
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

/** Signs in over a socket bound to `localAddress`; resolves the status. */
function signInFrom(port: number, host: string, localAddress: string, token: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const body = JSON.stringify({ token });
    const req = httpRequest(
      { host, port, localAddress, method: 'POST', path: '/console/api/session', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('a flood of bad sign-ins against the admin', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // The flood comes from 127.0.0.2, the admin from 127.0.0.1 (both reach 127.0.0.1).
    gw = await startGateway();
  });
  afterAll(() => gw?.close());

  it('slows only the flooding address: the admin signs in from another one', async () => {
    const fromAddress = (localAddress: string, token: string) => signInFrom(gw.port, '127.0.0.1', localAddress, token);
    const flood: number[] = [];
    for (let i = 0; i < 30; i++) flood.push(await fromAddress('127.0.0.2', `wrong-token-${i}-0123456789`));
    expect(flood.filter((s) => s === 429).length).toBe(20);
    expect(await fromAddress('127.0.0.2', ADMIN_TOKEN)).toBe(429);
    expect(await fromAddress('127.0.0.1', ADMIN_TOKEN)).toBe(200);
  });
});

describe('addresses the throttle counts by', () => {
  it('counts an IPv6 address by its /64, and an IPv4 one (mapped or not) by itself', () => {
    const sameHost = ['2001:db8:1:2::1', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0db8:0001:0002:0:0:0:9', '2001:DB8:1:2::abcd%eth0'];
    expect(new Set(sameHost.map(throttleKey))).toEqual(new Set(['2001:db8:1:2::/64']));
    expect(throttleKey('2001:db8:1:3::1')).not.toBe(throttleKey('2001:db8:1:2::1'));
    expect(throttleKey('::1')).toBe('0:0:0:0::/64');
    expect(throttleKey('fe80::1')).toBe('fe80:0:0:0::/64');
    expect(throttleKey('::ffff:127.0.0.2')).toBe('127.0.0.2');
    expect(throttleKey('::FFFF:10.1.2.3')).toBe('10.1.2.3');
    expect(throttleKey('203.0.113.9')).toBe('203.0.113.9');
  });

  describe('on a dual-stack listener', () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startGateway({ listenHost: '::' });
    });
    afterAll(() => gw?.close());

    it('slows IPv4 clients (seen as ::ffff:a.b.c.d) one by one, and the IPv6 loopback apart', async () => {
      for (let i = 0; i < 12; i++) await signInFrom(gw.port, '127.0.0.1', '127.0.0.3', `wrong-token-${i}-0123456789`);
      expect(await signInFrom(gw.port, '127.0.0.1', '127.0.0.3', ADMIN_TOKEN)).toBe(429);
      expect(await signInFrom(gw.port, '127.0.0.1', '127.0.0.4', ADMIN_TOKEN)).toBe(200);
      expect(await signInFrom(gw.port, '::1', '::1', ADMIN_TOKEN)).toBe(200);
    });
  });
});
