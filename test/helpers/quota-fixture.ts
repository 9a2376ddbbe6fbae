// The quota tests' common setup: a fake upstream, gateways in front of it (sharing a Redis when
// given one), users with limits, and a look at their ledger through the admin API.
import { request } from 'undici';
import { type FakeUpstream, startFakeUpstream } from '../../src/dev/fake-upstream.js';
import type { Config } from '../../src/config.js';
import type { Limits } from '../../src/store/types.js';
import { type TestGateway, startGateway } from './gateway.js';
import { registerPoolKey, registerSecret } from './log-capture.js';

export const POOL_KEY = 'sk-pool-quota-0123456789';
registerPoolKey(POOL_KEY, 'pool key (quota-fixture)');

// A command timeout roomy enough for a machine busy with the whole suite, short enough for the
// frozen-Redis tests to wait it out.
export const QUOTA_SETTINGS: Config['quota'] = { redisCommandTimeoutMs: 1000, leaseMs: 600_000, defaultMaxOutputTokens: 4096 };

/** `redis`: a Redis URL, or the `host:port` of each master of a Redis Cluster; absent: the memory store. */
export function startQuotaGateway(fake: FakeUpstream, redis?: string | string[], quota: Partial<Config['quota']> = {}): Promise<TestGateway> {
  const store = Array.isArray(redis) ? { REDIS_CLUSTER_NODES: redis.join(',') } : { REDIS_URL: redis };
  return startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl, ...store },
    // Some tests break the upstream again and again on the one key: its circuit breaker stays
    // closed, so that no test meets a 503 for its neighbours' breaks.
    config: { quota: { ...QUOTA_SETTINGS, ...quota }, pool: { health: { failureThreshold: 1_000_000 } } as Config['pool'] },
  });
}

export async function startFake(): Promise<FakeUpstream> {
  return startFakeUpstream();
}

/** Creates a user with these limits and one key; registers the key as a secret. */
export async function userWithKey(gateway: TestGateway, id: string, limits: Limits, extra: Record<string, unknown> = {}): Promise<string> {
  const key = await gateway.createUserKey(id, { limits, ...extra });
  registerSecret(key, `user key of ${id} (quota-fixture)`);
  return key;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json?: any;
}

export async function post(baseUrl: string, key: string, path: string, body: unknown): Promise<Answer> {
  const res = await request(`${baseUrl}/v1${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

/** The user's ledger as GET /admin/users/{id} shows it. */
export async function usageOf(gateway: TestGateway, id: string): Promise<any> {
  const answer = await gateway.admin('GET', `/users/${id}`);
  if (answer.status !== 200) throw new Error(`GET /admin/users/${id}: ${answer.status} ${JSON.stringify(answer.json)}`);
  return answer.json.usage;
}

/** A latch: `wait` resolves once `open()` is called. */
export function latch(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/**
 * Resolves once `condition` holds, checking every few ms, for conditions no event announces
 * (a settle that completes after the client has its answer). A check that throws counts as not
 * yet (Redis may still be coming back). Fails after `ms`.
 */
export async function until(condition: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      if (await condition()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`, { cause: last });
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
