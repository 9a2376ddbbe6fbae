// docs/websockets.md: a response the upstream starts by itself (server VAD, a commit) that the
// user cannot afford is cancelled and still charged, "the only way a session can spend past a
// limit, by at most one cut response". A user already past the limit commits again and again:
// every commit was relayed, every response the upstream started was charged past the limit again
// (and with real OpenAI each one reads the whole conversation before the cancel lands). The first
// such refusal now closes the session, and a new one is refused at the upgrade.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_REALTIME_USAGE } from '../src/dev/fake-upstream.js';
import { Client, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const MEMORY = WS_BACKENDS.filter(([name]) => name === 'memory');
const PATH = '/v1/realtime?model=gpt-realtime';
const USED = FAKE_REALTIME_USAGE.input_tokens + FAKE_REALTIME_USAGE.output_tokens;
const LIMIT = 10;

describe.each(MEMORY)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make);
  }, 60_000);
  afterAll(() => m.close());

  it('lets a user past the limit spend by at most one cut response, however often they commit', async () => {
    const { id, key } = await m.user('vad-loop', { limits: { tokensPerDay: LIMIT } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send({ type: 'input_audio_buffer.commit', event_id: 'commit_0' });
    // The response the commit started is refused, cancelled and charged; the session is closed
    // (1008), so the client's audio cannot start another.
    const refusal = await client.next((e) => e.type === 'error');
    expect(refusal.error.code).toBe('insufficient_quota');
    expect(await client.closed).toBe(1008);
    await eventually(async () => {
      const u = await m.usage(id);
      expect(u.concurrent.inFlight).toBe(0);
      expect(u.day.tokens).toBeGreaterThan(LIMIT);
    });
    // Coming back for more: each new session is refused at the upgrade, before any upstream.
    const relayed = m.fake.wsMessages.length;
    for (let i = 1; i < 5; i++) expect(await Client.refusal(m.gateway, PATH, key)).toBe(429);
    expect(m.fake.wsMessages.length).toBe(relayed);
    const usage = await m.usage(id);
    expect(usage.concurrent.inFlight).toBe(0);
    // Before: 5 × USED = 350 tokens charged against a limit of 10.
    expect(usage.day.tokens).toBeLessThanOrEqual(LIMIT + USED);
  });
});
