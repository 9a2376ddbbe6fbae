// The relay tests' common setup: a fake upstream, a gateway whose default upstream it is with one
// pool key, and one user key, all registered as secrets for the log scan.
import type { Config } from '../../src/config.js';
import { type FakeUpstream, type FakeUpstreamOptions, startFakeUpstream } from '../../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './gateway.js';
import { registerPoolKey, registerSecret } from './log-capture.js';

export interface RelayFixture {
  fake: FakeUpstream;
  gateway: TestGateway;
  poolKey: string;
  userKey: string;
  close(): Promise<void>;
}

/**
 * These tests break the upstream on purpose, one request after another, and are about what the
 * client gets, not about the key's health: the one key's circuit breaker stays closed, so that a
 * test never meets a 503 for its neighbours' breaks (the pool-*.test.ts files test the breaker).
 */
export const NO_CIRCUIT: Partial<Config> = { pool: { health: { failureThreshold: 1_000_000 } } as Config['pool'] };

export async function startRelay(poolKey: string, fakeOptions: FakeUpstreamOptions = {}, config: Partial<Config> = {}): Promise<RelayFixture> {
  registerPoolKey(poolKey, 'pool key (relay-fixture)');
  const fake = await startFakeUpstream(fakeOptions);
  const gateway = await startGateway({
    env: { OPENAI_API_KEYS: poolKey, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: { ...NO_CIRCUIT, ...config, pool: { ...NO_CIRCUIT.pool, ...config.pool } as Config['pool'] },
  });
  const userKey = await gateway.createUserKey('relay-user');
  registerSecret(userKey, 'user key of relay-user (relay-fixture)');
  return {
    fake,
    gateway,
    poolKey,
    userKey,
    async close() {
      await gateway.close();
      await fake.close();
    },
  };
}

/** Cuts bytes into pieces of `size` bytes, without regard for lines or UTF-8 characters. */
export function cutEvery(bytes: Buffer | string, size: number): Buffer[] {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'utf8');
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}
