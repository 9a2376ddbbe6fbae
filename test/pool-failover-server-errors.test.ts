// docs/reliability.md, case 13: a 5xx goes on to another key, over distinct keys, a bounded number of times,
// inside one deadline and a pool-wide retry budget; repeated 5xx open the key's circuit; 400, 404
// and 422 are the request's own fault: passed on at once, at no cost to the key.
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { FAKE_COMPLETION_TOKENS } from '../src/dev/fake-openai-answers.js';
import { CHAT, type PoolFixture, type PoolFixtureOptions, openaiError, startPool } from './helpers/pool-fixture.js';

const SERVER_ERROR = openaiError('The server had an error while processing your request. Sorry about that!', 'server_error', null);

let pool: PoolFixture | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

async function start(options: PoolFixtureOptions): Promise<PoolFixture> {
  pool = await startPool(options);
  return pool;
}

function retrySettings(retry: Partial<Config['pool']['retry']>): Partial<Config> {
  return { pool: { retry } as Config['pool'] };
}

describe('a 5xx', () => {
  it('is retried on another key, and the client gets that key’s answer, charged once', async () => {
    const p = await start({ keys: ['a', 'b', 'c'] });
    p.script('a', { status: 502, body: SERVER_ERROR });
    const answer = await p.post('/chat/completions', CHAT);
    expect(answer.status).toBe(200);
    expect(p.keysUsed()).toEqual(['a', 'b']);
    expect(await p.charged()).toMatchObject({ requests: 1, tokens: 3 + FAKE_COMPLETION_TOKENS, reservedTokens: 0 });
  });

  it('is retried over distinct keys up to the attempt limit; the last answer is passed on', async () => {
    const p = await start({ keys: ['a', 'b', 'c', 'd'], config: retrySettings({ maxAttempts: 3 }) });
    for (const id of ['a', 'b', 'c', 'd']) p.script(id, { status: 500, body: SERVER_ERROR });
    const answer = await p.post('/chat/completions', CHAT);
    expect(answer.status).toBe(500);
    expect(answer.json).toEqual(SERVER_ERROR);
    expect(p.keysUsed()).toEqual(['a', 'b', 'c']);
    expect(await p.charged()).toMatchObject({ requests: 0, tokens: 0, reservedTokens: 0 });
  });

  it('is not retried once the deadline has passed', async () => {
    const p = await start({ keys: ['a', 'b'], config: retrySettings({ deadlineMs: 50 }) });
    p.script('a', { status: 503, body: SERVER_ERROR, headersDelayMs: 100 });
    const answer = await p.post('/chat/completions', CHAT);
    expect(answer.status).toBe(503);
    expect(p.keysUsed()).toEqual(['a']);
  });

  it('is not retried when the pool-wide retry budget is spent', async () => {
    // A budget of one retry over the window: the first request fails over, the second cannot.
    const p = await start({ keys: ['a', 'b', 'c', 'd'], config: retrySettings({ budgetRatio: 0, budgetMinPerSecond: 0.1, budgetWindowMs: 10_000 }) });
    for (const id of ['a', 'c']) p.script(id, { status: 500, body: SERVER_ERROR });
    expect((await p.post('/chat/completions', CHAT)).status).toBe(200);
    expect((await p.post('/chat/completions', CHAT)).status).toBe(500);
    expect(p.keysUsed()).toEqual(['a', 'b', 'c']);
  });

  it('three times in a row on a key opens that key’s circuit', async () => {
    const p = await start({ keys: ['a', 'b'] });
    p.script('a', { status: 500, body: SERVER_ERROR });
    for (let i = 0; i < 3; i++) {
      expect((await p.post('/chat/completions', CHAT)).status).toBe(200);
    }
    expect(p.keysUsed()).toEqual(['a', 'b', 'a', 'b', 'a', 'b']);
    expect(await p.poolKey('a')).toMatchObject({ state: 'cooling', reason: 'circuit_open', until: expect.any(String), failures: 3 });
    expect((await p.post('/chat/completions', CHAT)).status).toBe(200);
    expect(p.keysUsed().slice(6)).toEqual(['b']);
  });
});

describe.each([400, 404, 422])('a %i', (status) => {
  it('is passed on at once, and costs the key nothing', async () => {
    const p = await start({ keys: ['a', 'b'] });
    const body = openaiError(`Upstream says ${status}.`, 'invalid_request_error', null);
    p.script('a', { status, body });
    const answer = await p.post('/chat/completions', CHAT);
    expect(answer.status).toBe(status);
    expect(answer.json).toEqual(body);
    expect(p.keysUsed()).toEqual(['a']);
    expect(await p.poolKey('a')).toMatchObject({ state: 'active', requests: 1, failures: 0, consecutiveFailures: 0 });
    expect(await p.charged()).toMatchObject({ requests: 0, tokens: 0, reservedTokens: 0 });
  });
});
