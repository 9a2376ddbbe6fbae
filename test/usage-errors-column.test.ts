// The usage report counts what happened to a user's requests: those the gateway refused (403,
// 429) count as requests and as errors, beside the upstream's errors; a refused key (401) is no
// user's request. On both stores, where the counters live apart from the request log.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ObservedGateway, BREAK, chat, keptRecords, post, startObservedGateway } from './helpers/observability-fixture.js';
import { registerSecret } from './helpers/log-capture.js';

describe.each([['memory'], ['redis']] as const)('on the %s store', (backend) => {
  let env: ObservedGateway;

  beforeAll(async () => {
    env = await startObservedGateway('sk-pool-usage-errors-0123456789', backend, { pool: { health: { failureThreshold: 1_000_000 } } } as never);
  }, 60_000);
  afterAll(async () => {
    await env?.close();
  });

  it('counts refusals (403, 429) and upstream errors in ERRORS, and no 401', async () => {
    const { gateway } = env;
    const key = await gateway.createUserKey('mallory', { models: ['gpt-4o-mini'], limits: { rpm: 3 } });
    registerSecret(key);
    expect((await post(gateway, key, '/chat/completions', chat('fine'))).status).toBe(200);
    expect((await post(gateway, key, '/chat/completions', chat('hi', { model: 'gpt-4o' }))).status).toBe(403);
    expect((await post(gateway, key, '/chat/completions', chat(BREAK))).status).toBe(502);
    // The rpm bucket: the 502 was given back (the upstream never answered); 3 admitted, the 4th refused.
    expect((await post(gateway, key, '/chat/completions', chat('fine'))).status).toBe(200);
    expect((await post(gateway, key, '/chat/completions', chat('fine'))).status).toBe(200);
    expect((await post(gateway, key, '/chat/completions', chat('fine'))).status).toBe(429);
    // Nobody's request: a revoked key (its line names its user, the usage report does not count it).
    const revoked = await gateway.createUserKey('mallory-2');
    registerSecret(revoked);
    const revokedId = (await gateway.admin('GET', '/users/mallory-2/keys')).json.data[0].id as string;
    await gateway.admin('DELETE', `/keys/${revokedId}`);
    expect((await post(gateway, revoked, '/chat/completions', chat('fine'))).status).toBe(401);
    await keptRecords(gateway, 7);

    const report = await until(async () => {
      const answer = await gateway.admin('GET', '/usage?groupBy=user');
      const total = answer.json.total as { requests: number };
      return total.requests >= 6 ? answer.json : undefined;
    });
    expect(report.data.map((line: Record<string, unknown>) => ({ user: line.user, requests: line.requests, errors: line.errors }))).toEqual([
      { user: 'mallory', requests: 6, errors: 3 },
    ]);
  });
});

async function until<T>(read: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('the usage counters did not catch up');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
