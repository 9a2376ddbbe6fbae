// Where the upstream's name is resolved: by the gateway for socks5:// (the proxy receives an
// address), by the proxy for socks5h:// (it receives the name). With socks5://, a name the gateway
// cannot resolve fails before the proxy is asked anything, and that is the upstream's failure.
import { lookup } from 'node:dns/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { NO_WARM_CONNECTION } from './helpers/proxy-faults.js';
import { type TestSocks5Server, startSocks5Server } from './helpers/socks5-server.js';

const POOL_KEY = 'sk-pool-socks-resolution-01234567';
registerSecret(POOL_KEY);

let up: FakeUpstream;
let socks: TestSocks5Server;
const gateways: TestGateway[] = [];

beforeAll(async () => {
  up = await startFakeUpstream({ keys: [POOL_KEY] });
  socks = await startSocks5Server({ hosts: { 'api.upstream.test': '127.0.0.1' } });
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await Promise.all([up.close(), socks.close()]);
});
beforeEach(() => {
  up.reset();
  socks.connects.length = 0;
});

async function models(scheme: 'socks5' | 'socks5h', host: string): Promise<{ status: number; body: unknown }> {
  const gw = await startGateway({
    env: {
      OPENAI_API_KEYS: POOL_KEY,
      KEYRELAY_UPSTREAM_URL: `http://${host}:${up.port}/v1`,
      KEYRELAY_PROXY: `${scheme}://127.0.0.1:${socks.port}`,
    },
    config: { upstreamConnections: NO_WARM_CONNECTION },
  });
  gateways.push(gw);
  const userKey = await gw.createUserKey('resolution-user');
  const res = await fetch(`${gw.baseUrl}/models`, { headers: { authorization: `Bearer ${userKey}` } });
  return { status: res.status, body: await res.json() };
}

describe('socks5:// (no authentication)', () => {
  it("sends the address the gateway resolved, not the name", async () => {
    const local = await lookup('localhost');
    const answer = await models('socks5', 'localhost');
    expect(answer.status).toBe(200);
    expect(socks.connects).toEqual([{ addressType: local.family === 6 ? 'ipv6' : 'ipv4', host: local.address, port: up.port }]);
    expect(up.requests[0]?.headers.host).toBe(`localhost:${up.port}`);
  });

  it("fails as upstream_unreachable, without asking the proxy, when the gateway cannot resolve the name", async () => {
    const answer = await models('socks5', 'api.upstream.test');
    expect(answer).toEqual({
      status: 502,
      body: { error: { message: 'The upstream could not be reached.', type: 'server_error', param: null, code: 'upstream_unreachable' } },
    });
    expect(socks.connects).toEqual([]);
    expect(up.requests).toEqual([]);
  });
});

describe('socks5h:// (no authentication)', () => {
  it('sends the name for the proxy to resolve', async () => {
    const answer = await models('socks5h', 'api.upstream.test');
    expect(answer.status).toBe(200);
    expect(socks.connects).toEqual([{ addressType: 'domain', host: 'api.upstream.test', port: up.port }]);
    expect(up.requests[0]?.headers.host).toBe(`api.upstream.test:${up.port}`);
  });
});
