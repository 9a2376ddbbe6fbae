// The hostile-upstream tests' common setup: a gateway whose one upstream is a raw socket server
// (raw-upstream.ts) with one pool key, short upstream timeouts, a user key, and ways to read the
// key's health and to set it back to active between cases.
import type { Config } from '../../src/config.js';
import { type TestGateway, startGateway } from './gateway.js';
import { NO_WARM_CONNECTION } from './proxy-faults.js';
import { registerPoolKey, registerSecret } from './log-capture.js';
import { type RawUpstream, startRawUpstream } from './raw-upstream.js';

export const POOL_KEY = 'sk-proj-hostileUpstream0123456789abcdefghijKLMNOPqrstuv';
export const UPSTREAM_ID = 'main';
export const KEY_ID = 'a';
/** The upstream's silence mid-body the gateway waits out; short, so a stall is seen quickly. */
export const BODY_IDLE_MS = 800;
export const HEADERS_MS = 2_000;

export interface HostileFixture {
  upstream: RawUpstream;
  gateway: TestGateway;
  userKey: string;
  /** The pool key as GET /admin/upstreams shows it (state, failures, ...). */
  key(): Promise<any>;
  /** Sets the key back to active, its failures in a row forgotten. */
  enableKey(): Promise<void>;
  close(): Promise<void>;
}

/** `proxy`: the outbound proxy of the upstream, as its `proxy` setting takes it. */
export async function startHostile(options: { proxy?: string } = {}): Promise<HostileFixture> {
  registerPoolKey(POOL_KEY);
  const upstream = await startRawUpstream();
  const gateway = await startGateway({
    config: {
      timeouts: { connectMs: 2_000, headersMs: HEADERS_MS, bodyIdleMs: BODY_IDLE_MS },
      // One attempt: each case is about what one hostile answer does.
      pool: { retry: { maxAttempts: 1 } } as Config['pool'],
      // The raw upstream answers every connection as the case scripts it, the moment it opens: a
      // warm connection opened in the background would take the case's answer before its request.
      upstreamConnections: NO_WARM_CONNECTION,
      upstreams: [{ id: UPSTREAM_ID, baseUrl: upstream.baseUrl, proxy: options.proxy, keys: [{ id: KEY_ID, key: POOL_KEY }] }] as Config['upstreams'],
    },
  });
  const userKey = await gateway.createUserKey('hostile-user');
  registerSecret(userKey);
  return {
    upstream,
    gateway,
    userKey,
    async key() {
      const { json } = await gateway.admin('GET', '/upstreams');
      return json.data.find((u: { id: string }) => u.id === UPSTREAM_ID).keys.find((k: { id: string }) => k.id === KEY_ID);
    },
    async enableKey() {
      await gateway.admin('POST', `/upstreams/${UPSTREAM_ID}/keys/${KEY_ID}/enable`);
    },
    async close() {
      await gateway.close();
      await upstream.close();
    },
  };
}

export interface ClientAnswer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/** A request as the user, its whole answer read (a cut answer: status 0 and the error's name). */
export async function call(f: HostileFixture, path: string, init: { method?: string; body?: unknown; redirect?: RequestRedirect } = {}): Promise<ClientAnswer> {
  const res = await fetch(`${f.gateway.baseUrl}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: { authorization: `Bearer ${f.userKey}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    redirect: init.redirect ?? 'manual',
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };
