// Attack on the sign-in throttle from the two sides the address alone missed: a guesser rotating
// client addresses against one key (never slowed when only addresses count), and a reverse proxy
// in front (every user then shares its address, so one guesser would lock everyone out). The
// throttle counts per client address as the gateway decides it (the connection's, or under
// inbound.trustedProxies the client the proxy names) and per key tried, on the store: in memory
// with bounded windows, on Redis shared by every process.
import { type IncomingHttpHeaders, type Server, createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryFailureCounter, beginSignIn, signInBuckets } from '../src/console-server/throttle.js';
import { loadConfig } from '../src/config.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { SESSION_BACKENDS } from './helpers/console-client.js';
import { registerSecret } from './helpers/log-capture.js';
import type { RedisServer } from './helpers/redis-server.js';

registerSecret(ADMIN_TOKEN);

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  json: any;
}

/** Signs in over a socket bound to `localAddress`, to `port` on 127.0.0.1. */
function signInFrom(port: number, localAddress: string, token: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const body = JSON.stringify({ token });
    const req = httpRequest(
      { host: '127.0.0.1', port, localAddress, method: 'POST', path: '/console/api/session', headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const json = text ? JSON.parse(text) : undefined;
          if (res.statusCode === 200) registerSecret(json.csrfToken);
          for (const c of [res.headers['set-cookie'] ?? []].flat()) registerSecret(/=([^;]+)/.exec(c)?.[1] ?? '');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A wrong key with the first characters (`sk-kr-` and 4) of `key`, as a guesser who saw it listed sends. */
const guessAt = (key: string, i: number) => `${key.slice(0, 10)}${String(i).padStart(36, 'Z')}`;

describe.each(SESSION_BACKENDS)('guesses against one key from rotating addresses on the %s store', (_name, startBackend) => {
  let redis: RedisServer | undefined;
  let gw: TestGateway;
  let aliceKey: string;
  let bobKey: string;

  beforeAll(async () => {
    redis = await startBackend();
    gw = await startGateway({ env: { REDIS_URL: redis?.url } });
    aliceKey = await gw.createUserKey('alice');
    bobKey = await gw.createUserKey('bob');
    registerSecret(aliceKey);
    registerSecret(bobKey);
  });

  afterAll(async () => {
    await gw?.close();
    await redis?.stop();
  });

  it('slows the key after 10 failures whatever address each came from; other keys and the admin still sign in', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 25; i++) statuses.push((await signInFrom(gw.port, `127.0.1.${i + 1}`, guessAt(aliceKey, i))).status);
    expect(statuses).toEqual([...Array(10).fill(401), ...Array(15).fill(429)]);
    const refused = await signInFrom(gw.port, '127.0.1.100', aliceKey);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(refused.json).toEqual({
      error: {
        message: `Too many failed sign-ins from this address or with this key. Try again in ${refused.headers['retry-after']} s.`,
        type: 'requests',
        param: null,
        code: 'rate_limit_exceeded',
      },
    });
    expect((await signInFrom(gw.port, '127.0.1.101', bobKey)).status).toBe(200);
    expect((await signInFrom(gw.port, '127.0.1.102', ADMIN_TOKEN)).status).toBe(200);
  });

  it('still slows one address trying many keys', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await signInFrom(gw.port, '127.0.2.1', `sk-kr-${String(i).padStart(4, 'q')}${'Q'.repeat(36)}`)).status);
    expect(statuses).toEqual([...Array(10).fill(401), 429, 429]);
    expect((await signInFrom(gw.port, '127.0.2.1', bobKey)).status).toBe(429);
  });

  it('does not count a right key against it: its owner signs in again and again', async () => {
    for (let i = 0; i < 15; i++) expect((await signInFrom(gw.port, `127.0.3.${i + 1}`, bobKey)).status).toBe(200);
  });
});

describe('two gateway processes on one Redis', () => {
  let redis: RedisServer;
  let a: TestGateway;
  let b: TestGateway;
  let key: string;

  beforeAll(async () => {
    redis = (await SESSION_BACKENDS[1]![1]()) as RedisServer;
    a = await startGateway({ env: { REDIS_URL: redis.url } });
    b = await startGateway({ env: { REDIS_URL: redis.url } });
    key = await a.createUserKey('carol');
    registerSecret(key);
  });

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await redis?.stop();
  });

  it('count the same failures: guesses spread over both are slowed together, per key and per address', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await signInFrom((i % 2 ? a : b).port, `127.0.4.${i + 1}`, guessAt(key, i))).status);
    expect(statuses).toEqual([...Array(10).fill(401), 429, 429]);
    const byAddress: number[] = [];
    for (let i = 0; i < 12; i++) byAddress.push((await signInFrom((i % 2 ? a : b).port, '127.0.5.1', `wrong-token-${i}-0123456789`)).status);
    expect(byAddress).toEqual([...Array(10).fill(401), 429, 429]);
    // Each counter ends with its window, by Redis's own expiry.
    const counters = (await redis.cli('--scan', '--pattern', 'kr:console:throttle:*')).split('\n').filter(Boolean).sort();
    expect(counters).toContain(`kr:console:throttle:key:${key.slice(0, 10)}`);
    expect(counters).toContain('kr:console:throttle:address:127.0.5.1');
    for (const counter of counters) {
      const pttl = Number(await redis.cli('pttl', counter));
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(60_000);
    }
  });
});

describe('behind a reverse proxy listed in KEYRELAY_TRUSTED_PROXIES', () => {
  let gw: TestGateway;
  let proxy: Server;
  let proxyPort: number;

  beforeAll(async () => {
    gw = await startGateway({ env: { KEYRELAY_TRUSTED_PROXIES: '127.0.0.1' } });
    // What nginx does with `proxy_add_x_forwarded_for` behind TLS: the client's address appended to
    // whatever the client sent, and the scheme and host the browser used.
    proxy = createServer((req, res) => {
      const forwarded = [req.headers['x-forwarded-for'], req.socket.remoteAddress].filter(Boolean).join(', ');
      const up = httpRequest(
        {
          host: '127.0.0.1',
          port: gw.port,
          localAddress: '127.0.0.1',
          method: req.method,
          path: req.url,
          headers: { ...req.headers, 'x-forwarded-for': forwarded, 'x-forwarded-proto': 'https', 'x-forwarded-host': 'relay.example.com' },
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyPort = (proxy.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => proxy?.close(resolve));
    await gw?.close();
  });

  it('slows the guesser by the address the proxy names, not everyone behind it, whatever X-Forwarded-For it sends', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 15; i++) {
      const spoofed = { 'x-forwarded-for': `203.0.113.${i + 1}` };
      statuses.push((await signInFrom(proxyPort, '127.0.6.1', `wrong-token-${i}-0123456789`, spoofed)).status);
    }
    expect(statuses).toEqual([...Array(10).fill(401), ...Array(5).fill(429)]);
    expect((await signInFrom(proxyPort, '127.0.6.1', ADMIN_TOKEN)).status).toBe(429);
    // Another user behind the same proxy signs in.
    const admin = await signInFrom(proxyPort, '127.0.6.2', ADMIN_TOKEN);
    expect(admin.status).toBe(200);
    // The proxy says https: the cookie is the __Host- one.
    expect(String(admin.headers['set-cookie'])).toMatch(/^__Host-keyrelay_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200; Secure$/);
  });

  it('records in the audit log the client the proxy names', async () => {
    const body = JSON.stringify({ id: 'behind-proxy' });
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: proxyPort,
          localAddress: '127.0.6.3',
          method: 'POST',
          path: '/admin/users',
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-forwarded-for': '203.0.113.77' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(status).toBe(201);
    const audit = await gw.admin('GET', '/audit?target=user:behind-proxy');
    expect(audit.json.data.map((e: { ip: string }) => e.ip)).toEqual(['127.0.6.3']);
  });

  it('believes no X-Forwarded-For from an address it does not list', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await signInFrom(gw.port, '127.0.7.1', `wrong-token-${i}-0123456789`, { 'x-forwarded-for': `198.51.100.${i + 1}` })).status);
    expect(statuses).toEqual([...Array(10).fill(401), 429, 429]);
  });
});

describe('the throttle\'s memory', () => {
  it('stays bounded while addresses rotate by the thousand, and they never push out the key they try', async () => {
    const counter = new MemoryFailureCounter({ limit: 10, windowMs: 60_000, maxEntries: 1000 });
    const key = `sk-kr-abcd${'x'.repeat(36)}`;
    let allowed = 0;
    for (let i = 0; i < 50_000; i++) {
      if ((await beginSignIn(counter, signInBuckets(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, key), 1000)) === 0) allowed++;
    }
    expect(allowed).toBe(10);
    expect(counter.windows.address.size).toBe(1000);
    expect(counter.windows.key.size).toBe(1);
    // Guesses at 50,000 other keys are bounded too.
    for (let i = 0; i < 50_000; i++) await beginSignIn(counter, signInBuckets('10.9.9.9', `sk-kr-${i.toString(36).padStart(4, '0')}${'y'.repeat(36)}`), 2000);
    expect(counter.windows.key.size).toBeLessThanOrEqual(1000);
  });
});

describe('the trusted proxies setting', () => {
  const load = (value: string) => loadConfig({ KEYRELAY_CONFIG: undefined, KEYRELAY_TRUSTED_PROXIES: value });

  it('takes addresses, CIDR blocks and proxy-addr\'s range names, comma-separated', () => {
    expect(load('10.0.0.1, 192.168.0.0/16,::1,fd00::/8,loopback').inbound.trustedProxies).toEqual(['10.0.0.1', '192.168.0.0/16', '::1', 'fd00::/8', 'loopback']);
    expect(loadConfig({ KEYRELAY_CONFIG: undefined }).inbound.trustedProxies).toBeUndefined();
  });

  it('stops the start on an entry that is none of them, naming it', () => {
    expect(() => load('10.0.0.0/33')).toThrow('setting inbound/trustedProxies: "10.0.0.0/33": the prefix length must be 0 to 32');
    expect(() => load('proxy.internal')).toThrow('setting inbound/trustedProxies: "proxy.internal" is not an IP address, a CIDR block (10.0.0.0/8) nor loopback, linklocal or uniquelocal');
    expect(() => load('10.0.0.1/8/2')).toThrow('is not an IP address');
  });
});
