// What the proxy fault tests (HTTP CONNECT and SOCKS5, docs/reliability.md, cases 17 and 18) share: the errors
// they expect, a gateway sending through one proxy with a short connect deadline, a chat call.
import { expect } from 'vitest';
import type { Config } from '../../src/config.js';
import { type TestGateway, startGateway } from './gateway.js';

/**
 * For tests that count the tunnels each request opens: without the warm connection that keyrelay
 * opens beside them in the background (test/upstream-warm-connections.test.ts tests that one).
 */
export const NO_WARM_CONNECTION: Config['upstreamConnections'] = { keepAliveMs: 50_000, warm: false, warmForMs: 900_000, http2: false };

export const PROXY_FAILED = {
  error: { message: 'The outbound proxy failed.', type: 'server_error', param: null, code: 'upstream_proxy_error' },
};
export const PROXY_TIMEOUT = {
  error: { message: 'The outbound proxy did not answer in time.', type: 'server_error', param: null, code: 'upstream_proxy_error' },
};

export interface ChatAnswer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

/** A gateway whose one pool key goes out through `proxyUrl`; it is added to `gateways` to close later. */
export async function gatewayVia(
  gateways: TestGateway[],
  options: { poolKey: string; upstreamUrl: string; proxyUrl: string },
): Promise<{ gw: TestGateway; userKey: string }> {
  const gw = await startGateway({
    env: { OPENAI_API_KEYS: options.poolKey, KEYRELAY_UPSTREAM_URL: options.upstreamUrl, KEYRELAY_PROXY: options.proxyUrl },
    // A short connect deadline: the proxy that never answers must be given up on quickly.
    config: { timeouts: { connectMs: 400, headersMs: 600_000, bodyIdleMs: 300_000 }, upstreamConnections: NO_WARM_CONNECTION },
  });
  gateways.push(gw);
  return { gw, userKey: await gw.createUserKey('user') };
}

/** A chat call; every answer, a proxy fault's included, must come in bounded time: a proxy that
 * hangs must never hang the client (5 s is far above every deadline these gateways are given). */
export async function chat(gw: TestGateway, userKey: string, extra: object = {}): Promise<ChatAnswer> {
  const started = Date.now();
  const res = await fetch(`${gw.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], ...extra }),
  });
  const text = await res.text();
  expect(Date.now() - started, 'answered in bounded time').toBeLessThan(5000);
  return { status: res.status, headers: Object.fromEntries(res.headers), text };
}
