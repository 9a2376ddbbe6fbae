// A realtime create the gateway admitted and relayed, whose session ends before the gateway has
// read the upstream's `response.created`, was released in full (src/relay/ws-meter.ts close), as
// if the upstream had refused it; now it is charged its prompt. The upstream got it and ran it. A client
// makes that window as wide as it likes: it stops reading, so that the gateway stops reading the
// upstream (its answers back up), sends its create, waits for the upstream to have it, and
// hangs up. Over HTTP a request that reached the upstream is charged at least its prompt when the
// client leaves; the socket must do the same.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const MEMORY = WS_BACKENDS.filter(([name]) => name === 'memory');
const PATH = '/v1/realtime?model=gpt-realtime';
// A quarter MB of base64 "audio" per append; the fake echoes each back, filling the way back.
const APPEND = JSON.stringify({ type: 'input_audio_buffer.append', audio: 'A'.repeat(256 * 1024) });
const APPENDS = 64;

describe.each(MEMORY)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make);
  }, 60_000);
  afterAll(() => m.close());

  it('charges a relayed create at least its prompt when the session ends before its response.created is read', async () => {
    const { id, key } = await m.user('close-race', { limits: { tokensPerDay: 1_000_000, usdPerDay: 100 } });
    const client = await Client.open(m.gateway, PATH, key);
    await client.next((e) => e.type === 'session.created');
    client.ws.pause();
    const appends = () => m.fake.wsMessages.filter((x) => x.data.startsWith('{"type":"input_audio_buffer.append"')).length;
    const before = appends();
    for (let i = 0; i < APPENDS; i++) client.send(APPEND);
    await eventually(async () => expect(appends() - before).toBe(APPENDS), 20_000);

    client.send({ type: 'response.create', event_id: 'evt_race', response: { max_output_tokens: 100 } });
    await eventually(async () => expect(m.fake.wsMessages.some((x) => x.data.includes('evt_race'))).toBe(true));
    client.ws.terminate();

    const day = await eventually(async () => {
      const u = await m.usage(id);
      expect(u.concurrent.inFlight).toBe(0);
      expect(u.day.reservedTokens).toBe(0);
      return u.day;
    });
    // The conversation alone: 64 appends of 196,608 bytes of PCM16 at 20 tokens a second.
    const prompt = APPENDS * Math.ceil(((APPEND.length - 48) * 3) / 4 / 48000 * 20);
    expect(day.tokens).toBeGreaterThanOrEqual(prompt);
  }, 60_000);
});
