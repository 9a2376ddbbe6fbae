// The key pool tests' common setup: one fake upstream, a gateway whose one upstream has several
// pool keys (`a`, `b`, `c` ...), a user with a key, and ways to script the fake per pool key and to
// tell which key made each upstream request. Every key is registered for the log scan.
import type { Config } from '../../src/config.js';
import {
  type FakeHandler,
  type FakeResponse,
  type FakeUpstream,
  type FakeUpstreamOptions,
  type RecordedRequest,
  startFakeUpstream,
} from '../../src/dev/fake-upstream.js';
import type { StrategyName } from '../../src/pool/strategies.js';
import { type TestGateway, startGateway } from './gateway.js';
import { captureAnswer, registerPoolKey, registerSecret } from './log-capture.js';
import { until, usageOf } from './quota-fixture.js';

/** The secret of pool key `id`: an OpenAI-looking key, so that the log scan would catch it. */
export function poolSecret(id: string): string {
  return `sk-pool-${id}-${'0123456789abcdefghijklmnopqrstuv'.slice(0, 24)}${id.toUpperCase()}x`;
}

export interface PoolFixture {
  fake: FakeUpstream;
  gateway: TestGateway;
  userId: string;
  userKey: string;
  /** The pool key id whose secret an upstream request carried. */
  keyOf(req: RecordedRequest): string;
  /** The pool key ids of the upstream requests so far, in order. */
  keysUsed(): string[];
  /** Answers requests made with pool key `id` as `answer` says (undefined: the next handler). */
  script(id: string, answer: FakeResponse | ((req: RecordedRequest) => FakeResponse | undefined)): void;
  /** POST a JSON body as the user. */
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Answer>;
  get(path: string): Promise<Answer>;
  /** The user's day window once every request of theirs has settled. */
  charged(): Promise<any>;
  /** The pool key as GET /admin/upstreams shows it. */
  poolKey(id: string): Promise<any>;
  close(): Promise<void>;
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

export interface PoolFixtureOptions {
  keys?: string[];
  strategy?: StrategyName;
  /** Settings laid over the pool's (health, retry, shareUnknownObjects), and any other. */
  config?: Partial<Config>;
  env?: Record<string, string | undefined>;
  userId?: string;
  /** The fake upstream's own options (`keys`: the only ones it accepts). */
  fakeOptions?: FakeUpstreamOptions;
  /**
   * `pool.cacheAffinity`. Off unless asked for: the tests of strategies, failover and health
   * count keys in the strategy's order, and their requests all share one prompt, which affinity
   * would send to one key (test/pool-cache-affinity.test.ts tests it).
   */
  cacheAffinity?: boolean;
}

export const UPSTREAM_ID = 'main';

async function answer(res: Response, sent?: string): Promise<Answer> {
  const text = await res.text();
  captureAnswer(`${sent === undefined ? 'GET' : 'POST'} ${res.url}`, { status: res.status, headers: res.headers, body: text, sent });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export async function startPool(options: PoolFixtureOptions = {}): Promise<PoolFixture> {
  const ids = options.keys ?? ['a', 'b'];
  for (const id of ids) registerPoolKey(poolSecret(id), `pool key ${id} (pool-fixture)`);
  const byAuth = new Map(ids.map((id) => [`Bearer ${poolSecret(id)}`, id]));
  const fake = await startFakeUpstream(options.fakeOptions);
  const upstreams = [{ id: UPSTREAM_ID, baseUrl: fake.baseUrl, strategy: options.strategy ?? 'round-robin', keys: ids.map((id) => ({ id, key: poolSecret(id) })) }];
  const pool = { ...options.config?.pool, cacheAffinity: options.cacheAffinity ?? false };
  const gateway = await startGateway({ env: options.env, config: { ...options.config, pool, upstreams } as Partial<Config> });
  const userId = options.userId ?? 'pool-user';
  const userKey = await gateway.createUserKey(userId, { limits: { tokensPerDay: 1_000_000 } });
  registerSecret(userKey, `user key of ${userId} (pool-fixture)`);
  const auth = { authorization: `Bearer ${userKey}` };
  const keyOf = (req: RecordedRequest): string => byAuth.get(req.headers.authorization ?? '') ?? '?';

  return {
    fake,
    gateway,
    userId,
    userKey,
    keyOf,
    keysUsed: () => fake.requests.map(keyOf),
    script(id, scripted) {
      const handler: FakeHandler = (req) => {
        if (keyOf(req) !== id) return undefined;
        return typeof scripted === 'function' ? scripted(req) : scripted;
      };
      fake.handle(handler);
    },
    post: async (path, body, headers = {}) => {
      const sent = JSON.stringify(body);
      return answer(await fetch(`${gateway.baseUrl}${path}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', ...headers }, body: sent }), sent);
    },
    get: async (path) => answer(await fetch(`${gateway.baseUrl}${path}`, { headers: auth })),
    async charged() {
      await until(async () => (await usageOf(gateway, userId)).concurrent.inFlight === 0, 'the request to settle');
      return (await usageOf(gateway, userId)).day;
    },
    async poolKey(id) {
      const { json } = await gateway.admin('GET', '/upstreams');
      return json.data.find((u: { id: string }) => u.id === UPSTREAM_ID).keys.find((k: { id: string }) => k.id === id);
    },
    async close() {
      await gateway.close();
      await fake.close();
    },
  };
}

export const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 20 };

/** An OpenAI-shaped error body. */
export function openaiError(message: string, type: string, code: string | null): object {
  return { error: { message, type, param: null, code } };
}
