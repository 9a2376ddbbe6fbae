// docs/websockets.md: a response the upstream starts by itself (server VAD, a commit) that the
// user cannot afford is cancelled and still charged, "the only way a session can spend past a
// limit, by at most one cut response". A user already past the limit commits again and again:
// every commit is relayed, every response the upstream starts is charged past the limit again
// (and with real OpenAI each one reads the whole conversation before the cancel lands).
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
    for (let i = 0; i < 5; i++) {
      const from = client.events.length;
      client.send({ type: 'input_audio_buffer.commit', event_id: `commit_${i}` });
      // Each commit is answered: a refusal, or (today) a response cancelled after it ran.
      await client.next((e) => e.type === 'error' || e.type === 'response.done', from);
    }
    client.close();
    const usage = await eventually(async () => {
      const u = await m.usage(id);
      expect(u.concurrent.inFlight).toBe(0);
      return u;
    });
    // Today: 5 × USED = 350 tokens charged against a limit of 10.
    expect(usage.day.tokens).toBeLessThanOrEqual(LIMIT + USED);
  });
});
