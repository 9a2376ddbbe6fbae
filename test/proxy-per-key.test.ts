// A pool key may have its own egress: two keys, two proxies (one HTTP CONNECT, one SOCKS5), and each
// key's traffic leaves only through its own, while the upstream's proxy, which both keys override,
// sees nothing. The settings come from a YAML file, as an operator writes them.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { type TestHttpProxy, startHttpProxy } from './helpers/http-proxy.js';
import { registerSecret } from './helpers/log-capture.js';
import { NO_WARM_CONNECTION } from './helpers/proxy-faults.js';
import { type TestSocks5Server, startSocks5Server } from './helpers/socks5-server.js';

const KEY_A = 'sk-pool-key-a-0123456789abcdefAAAA';
const KEY_B = 'sk-pool-key-b-0123456789abcdefBBBB';
const SOCKS_PASSWORD = 'Key-B-S0cks-Passw0rd';
registerSecret(KEY_A);
registerSecret(KEY_B);
registerSecret(SOCKS_PASSWORD);

let up: FakeUpstream;
let proxyA: TestHttpProxy;
let socksB: TestSocks5Server;
let upstreamProxy: TestHttpProxy;
let gw: TestGateway;
let userKey: string;

beforeAll(async () => {
  up = await startFakeUpstream({ keys: [KEY_A, KEY_B] });
  // One tunnel per request, so that every request shows on the proxy it took.
  up.handle(() => ({ body: { ok: true }, headers: { connection: 'close' } }));
  proxyA = await startHttpProxy();
  socksB = await startSocks5Server({ auth: { username: 'key-b', password: SOCKS_PASSWORD } });
  upstreamProxy = await startHttpProxy();
  const dir = mkdtempSync(join(tmpdir(), 'keyrelay-per-key-'));
  const file = join(dir, 'keyrelay.yaml');
  writeFileSync(
    file,
    [
      // The same chat each time: round robin, not the prompt cache, must spread it over both keys.
      'pool:',
      '  cacheAffinity: false',
      'upstreams:',
      '  - id: openai',
      `    baseUrl: ${up.baseUrl}`,
      `    proxy: ${upstreamProxy.url}`,
      '    keys:',
      '      - id: key-a',
      '        key: env:KEY_A',
      `        proxy: ${proxyA.url}`,
      '      - id: key-b',
      '        key: env:KEY_B',
      '        proxy:',
      '          - env:KEY_B_PROXY',
    ].join('\n'),
  );
  gw = await startGateway({
    env: {
      KEYRELAY_CONFIG: file,
      KEY_A,
      KEY_B,
      KEY_B_PROXY: `socks5://key-b:${SOCKS_PASSWORD}@127.0.0.1:${socksB.port}`,
    },
    config: { upstreamConnections: NO_WARM_CONNECTION },
  });
  userKey = await gw.createUserKey('per-key-user');
});
afterAll(async () => {
  await gw.close();
  await Promise.all([up.close(), proxyA.close(), socksB.close(), upstreamProxy.close()]);
});

async function chat(): Promise<number> {
  const res = await fetch(`${gw.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
  });
  await res.arrayBuffer();
  return res.status;
}

it("sends each pool key's traffic through that key's own proxy", async () => {
  const seen: Array<{ key: string | undefined; viaA: number; viaB: number }> = [];
  for (let i = 0; i < 4; i++) {
    expect(await chat()).toBe(200);
    seen.push({ key: up.requests.at(-1)?.headers.authorization, viaA: proxyA.connects.length, viaB: socksB.connects.length });
  }
  // Round robin over the two keys; each request adds one tunnel on its key's proxy and none on the other.
  expect(seen).toEqual([
    { key: `Bearer ${KEY_A}`, viaA: 1, viaB: 0 },
    { key: `Bearer ${KEY_B}`, viaA: 1, viaB: 1 },
    { key: `Bearer ${KEY_A}`, viaA: 2, viaB: 1 },
    { key: `Bearer ${KEY_B}`, viaA: 2, viaB: 2 },
  ]);
  expect(new Set(socksB.connects.map((c) => `${c.addressType} ${c.host}:${c.port} as ${c.username}`))).toEqual(
    new Set([`ipv4 127.0.0.1:${up.port} as key-b`]),
  );
  expect(upstreamProxy.connects).toEqual([]);
});
