// An alias must cost what its target costs (docs/models.md, "Prices and quotas use the upstream
// model"), whichever way the work starts. A realtime session opened on an alias whose name has no
// price: a response the upstream starts by itself (server VAD, a commit) was priced by the alias's
// name, so a dollar-limited user had it refused, cancelled and charged nothing, and a user without
// one was charged nothing in dollars.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const MEMORY = WS_BACKENDS.filter(([name]) => name === 'memory');

describe.each(MEMORY)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make, { aliases: { 'rt-alias': 'gpt-realtime' } });
  }, 60_000);
  afterAll(() => m.close());

  /** What one response the upstream starts on a commit costs the user, in a session on `model`. */
  async function committedResponseCost(model: string, fields: Record<string, unknown>): Promise<number> {
    const { id, key } = await m.user(`attack7-vad-${model}`, fields);
    const client = await Client.open(m.gateway, `/v1/realtime?model=${model}`, key);
    client.send({ type: 'input_audio_buffer.commit', event_id: 'commit_0' });
    await client.next((e) => e.type === 'response.done' || e.type === 'error');
    expect(client.events.filter((e) => e.type === 'error')).toEqual([]);
    client.close();
    expect(await client.closed).toBe(1005);
    return eventually(async () => {
      const usage = await m.usage(id);
      expect(usage.concurrent.inFlight).toBe(0);
      expect(usage.day.tokens).toBeGreaterThan(0);
      return usage.day.usdMicros as number;
    });
  }

  it("charges a response the upstream starts in a session on an alias at the target's price", async () => {
    for (const fields of [{ limits: { usdPerDay: 10 } }, {}]) {
      const direct = await committedResponseCost('gpt-realtime', fields);
      expect(direct).toBeGreaterThan(0);
      expect(await committedResponseCost('rt-alias', fields)).toBe(direct);
    }
    // The upstream was opened on the target both times.
    expect(m.fake.wsConnections.map((c) => new URL(c.url, 'http://x').searchParams.get('model'))).toEqual(['gpt-realtime', 'gpt-realtime', 'gpt-realtime', 'gpt-realtime']);
  });
});
