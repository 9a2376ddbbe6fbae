// A user with a dollar limit tries to have appended audio sized as fewer seconds than the upstream
// transcribes: by naming a slow format the gateway does not see (GA and beta shapes at once, an
// unknown name, a PCM rate below 24 kHz), or by going back to a fast format with an update the
// upstream may refuse or answer late. Each append must be reserved as the slowest format the
// session may be in (docs/websockets.md, "Input audio transcription").
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_TRANSCRIPTION_USAGE } from '../src/dev/fake-upstream.js';
import { PriceTable, costMicros, worstCostMicros } from '../src/quota/prices.js';
import { normalizeUsage } from '../src/quota/usage.js';
import { Client, type Json, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const PATH = '/v1/realtime?model=gpt-realtime';
const TRANSCRIBE = 'gpt-4o-transcribe';
const price = new PriceTable().lookup(TRANSCRIBE)!;
const worstOf = (tokens: number) => worstCostMicros(price, { input: tokens, output: tokens });
// 240,000 bytes: 5 s of PCM16 at 24 kHz (a 10 s block is reserved), 15 s of PCM at 8 kHz, 30 s of G.711.
const AUDIO = Buffer.alloc(240_000, 3).toString('base64');
const append = { type: 'input_audio_buffer.append', audio: AUDIO };
const PCM16_BLOCK = worstOf(10 * 20);
const PCM_8K = worstOf(15 * 20);
const G711 = worstOf(30 * 20);
const USED_MICROS = costMicros(price, normalizeUsage(FAKE_TRANSCRIPTION_USAGE)!);
const transcription = { model: TRANSCRIBE };

describe.each(WS_BACKENDS)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make);
  }, 60_000);
  afterAll(() => m.close());

  /** Opens a session of a dollar-limited user, sends these updates, appends AUDIO once: what is reserved. */
  async function reservedAfter(name: string, updates: Json[], send: (c: Client) => void = (c) => c.send(append)): Promise<number> {
    const { id, key } = await m.user(name, { limits: { usdPerDay: 5 } });
    const client = await Client.open(m.gateway, PATH, key);
    for (const [n, session] of updates.entries()) {
      const from = client.events.length;
      client.send({ type: 'session.update', event_id: `evt_${n}`, session });
      await client.next((e) => e.type === 'echo' && String(e.data).includes(`evt_${n}`), from);
    }
    const before = m.fake.wsMessages.length;
    send(client);
    await eventually(async () => expect(m.fake.wsMessages.slice(before).some((x) => x.data.includes(AUDIO.slice(0, 64)) && x.data.length > AUDIO.length)).toBe(true));
    const reserved = (await m.usage(id)).day.reservedUsdMicros as number;
    client.close();
    await eventually(async () => expect((await m.usage(id)).day.reservedUsdMicros).toBe(0));
    return reserved;
  }

  it('sizes PCM16 (the default, beta and GA names) at 48,000 bytes a second: the baseline holds', async () => {
    expect(await reservedAfter('fmt-default', [{ input_audio_transcription: transcription, turn_detection: null }])).toBe(PCM16_BLOCK);
    const ga = { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription, turn_detection: null } } };
    expect(await reservedAfter('fmt-ga', [ga])).toBe(PCM16_BLOCK);
  });

  it('sizes a session naming PCM16 (GA) and G.711 (beta) in one update as G.711', async () => {
    const session = { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription, turn_detection: null } }, input_audio_format: 'g711_ulaw' };
    expect(await reservedAfter('fmt-mixed', [session])).toBe(G711);
  });

  it('keeps sizing as G.711 after an update back to PCM16, which the upstream may refuse or answer after a later one', async () => {
    const updates = [{ input_audio_format: 'g711_alaw', input_audio_transcription: transcription, turn_detection: null }, { input_audio_format: 'pcm16', tools: 'not a list' }];
    expect(await reservedAfter('fmt-back', updates)).toBe(G711);
  });

  it('sizes GA PCM at a rate below 24 kHz by its rate, and an unknown format or rate as G.711', async () => {
    const at = (format: unknown) => ({ type: 'realtime', audio: { input: { format, transcription, turn_detection: null } } });
    expect(await reservedAfter('fmt-rate', [at({ type: 'audio/pcm', rate: 8000 })])).toBe(PCM_8K);
    expect(await reservedAfter('fmt-rate-text', [at({ type: 'audio/pcm', rate: '8000' })])).toBe(G711);
    expect(await reservedAfter('fmt-unknown', [at({ type: 'audio/opus' })])).toBe(G711);
    expect(await reservedAfter('fmt-unknown-beta', [{ input_audio_format: 'G711_ULAW', input_audio_transcription: transcription }])).toBe(G711);
  });

  it('sizes an append sent in many fragments as the whole (held)', async () => {
    const fragmented = (c: Client) => {
      const text = JSON.stringify(append);
      const step = Math.ceil(text.length / 7);
      for (let i = 0; i < text.length; i += step) c.ws.send(text.slice(i, i + step), { fin: i + step >= text.length, binary: false });
    };
    expect(await reservedAfter('fmt-fragments', [{ input_audio_format: 'g711_ulaw', input_audio_transcription: transcription }], fragmented)).toBe(G711);
  });

  it('leaves a user with no limits, in a session beside these, transcribing and charged what was reported', async () => {
    const { id, key } = await m.user('fmt-free', {});
    const client = await Client.open(m.gateway, PATH, key);
    client.send({ type: 'session.update', session: { input_audio_format: 'g711_ulaw', input_audio_transcription: transcription, turn_detection: null } });
    await client.next((e) => e.type === 'echo');
    client.send(append);
    client.send({ type: 'input_audio_buffer.commit' });
    await client.next((e) => e.type === 'conversation.item.input_audio_transcription.completed');
    await eventually(async () => expect((await m.usage(id)).day).toMatchObject({ usdMicros: USED_MICROS, reservedUsdMicros: 0 }));
    expect(client.count((e) => e.type === 'error')).toBe(0);
    client.close();
  });
});
