// An alias must cost what its target costs (docs/models.md, "Prices and quotas use the upstream
// model"), whichever way the work starts. A realtime session opened on an alias whose name has no
// price: a response the upstream starts by itself (server VAD, a commit) was priced by the alias's
// name, so a dollar-limited user had it refused, cancelled and charged nothing, and a user without
// one was charged nothing in dollars. And a session.update naming a cheaper model the user may
// use: OpenAI keeps a realtime session on the model it opened with ("once a session has been
// initialized with a particular model, it can't be changed"), but the gateway priced the session's
// next responses at the cheaper model's price.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type Metered, REALTIME_PRICE, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const MEMORY = WS_BACKENDS.filter(([name]) => name === 'memory');

describe.each(MEMORY)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make, {
      aliases: { 'rt-alias': 'gpt-realtime' },
      prices: { 'gpt-realtime': REALTIME_PRICE, 'gpt-realtime-mini': { input: 0.01, output: 0.01 } },
    });
  }, 60_000);
  afterAll(() => m.close());

  /** What one response costs the user in a session on `model`: one the upstream starts on a commit,
   * or one the client creates after asking the session to change to `update`. */
  async function committedResponseCost(model: string, fields: Record<string, unknown>, update?: string): Promise<number> {
    const { id, key } = await m.user(`attack7-vad-${model}`, fields);
    const client = await Client.open(m.gateway, `/v1/realtime?model=${model}`, key);
    if (update === undefined) client.send({ type: 'input_audio_buffer.commit', event_id: 'commit_0' });
    else {
      client.send({ type: 'session.update', session: { model: update } });
      client.send({ type: 'response.create', event_id: 'create_0', response: { max_output_tokens: 200 } });
    }
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

  it('keeps pricing a session at the model it opened with after a session.update names a cheaper one', async () => {
    const fields = { models: ['gpt-realtime', 'gpt-realtime-mini'], limits: { usdPerDay: 10 } };
    const direct = await committedResponseCost('gpt-realtime', fields, 'gpt-realtime');
    expect(direct).toBeGreaterThan(0);
    expect(await committedResponseCost('gpt-realtime', fields, 'gpt-realtime-mini')).toBe(direct);
  });
});
