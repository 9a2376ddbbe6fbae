// Input audio transcription in a realtime session is metered (docs/websockets.md): the audio the
// client appends is reserved at the transcription model's worst case before the upstream has it,
// each transcription's usage settles its reservation, audio never reported is charged its worst
// case when the session ends, and an unpriced transcription model is refused under a dollar limit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_TRANSCRIPTION_USAGE } from '../src/dev/fake-upstream.js';
import { PriceTable, costMicros, worstCostMicros } from '../src/quota/prices.js';
import { normalizeUsage } from '../src/quota/usage.js';
import { Client, type Json, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const PATH = '/v1/realtime?model=gpt-realtime';
const TRANSCRIBE = 'gpt-4o-transcribe';
const prices = new PriceTable();
const transcribePrice = prices.lookup(TRANSCRIBE)!;
// A second of PCM16 at 24 kHz is 48,000 bytes; its worst case is 20 audio tokens in, 20 text tokens out.
const SECOND = Buffer.alloc(48_000, 3).toString('base64');
const worstOf = (tokens: number) => worstCostMicros(transcribePrice, { input: tokens, output: tokens });
const WORST_SECOND = worstOf(20);
const USAGE = normalizeUsage(FAKE_TRANSCRIPTION_USAGE)!;
const USED_MICROS = costMicros(transcribePrice, USAGE);
const USED_TOKENS = FAKE_TRANSCRIPTION_USAGE.input_tokens + FAKE_TRANSCRIPTION_USAGE.output_tokens;

/** Turns transcription on with this model (GA shape), and turn detection off: commits are the client's. */
const transcribeWith = (transcription: Json | null): Json => ({
  type: 'session.update',
  event_id: 'evt_update',
  session: { type: 'realtime', audio: { input: { transcription, turn_detection: null } } },
});
const append = (audio = SECOND): Json => ({ type: 'input_audio_buffer.append', audio });
const appendsRelayed = (m: Metered) => m.fake.wsMessages.filter((x) => x.data.includes('"input_audio_buffer.append"')).length;
const echoes = (c: Client, kind: string) => c.count((e) => e.type === 'echo' && String(e.data).includes(kind));

describe.each(WS_BACKENDS)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make);
  }, 60_000);
  afterAll(() => m.close());

  async function settledUsage(id: string): Promise<Json> {
    return eventually(async () => {
      const u = await m.usage(id);
      expect(u.concurrent.inFlight).toBe(0);
      expect(u.day.reservedUsdMicros).toBe(0);
      expect(u.day.reservedTokens).toBe(0);
      return u;
    });
  }

  it('lets a dollar limit that fits three seconds of transcription transcribe three, refuses the fourth, and charges what was reported', async () => {
    const limit = 3 * WORST_SECOND + WORST_SECOND - 1;
    const { id, key } = await m.user('tr-three', { limits: { usdPerDay: limit / 1_000_000 } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send(transcribeWith({ model: TRANSCRIBE }));
    await client.next((e) => e.type === 'echo');
    const before = appendsRelayed(m);
    const withinLimit = async () => {
      const { day } = await m.usage(id);
      expect(day.usdMicros + day.reservedUsdMicros).toBeLessThanOrEqual(limit);
      return day;
    };
    for (let n = 1; n <= 3; n++) {
      client.send(append());
      await eventually(async () => expect(echoes(client, 'input_audio_buffer.append')).toBe(n));
      const day = await withinLimit();
      expect(day.reservedUsdMicros).toBe(n * WORST_SECOND);
    }
    const from = client.events.length;
    client.send(append());
    const refused = await client.next((e) => e.type === 'error', from);
    expect(refused).toMatchObject({ type: 'error', error: { type: 'insufficient_quota', code: 'insufficient_quota', param: null } });
    expect(refused.event_id).toEqual(expect.any(String));
    await withinLimit();
    // A message sent after the refused append still arrives: the refused one was judged, and dropped.
    client.send({ type: 'session.update', session: { instructions: 'Be brief.' } });
    await client.next((e) => e.type === 'echo' && String(e.data).includes('Be brief'), from);
    expect(appendsRelayed(m) - before).toBe(3);

    // The buffer's transcription reports its usage: the reservations settle, charged what it used.
    client.send({ type: 'input_audio_buffer.commit' });
    const completed = await client.next((e) => e.type === 'conversation.item.input_audio_transcription.completed');
    expect(completed.usage).toEqual(FAKE_TRANSCRIPTION_USAGE);
    const day = await eventually(async () => {
      const d = await withinLimit();
      expect(d.reservedUsdMicros).toBe(0);
      return d;
    });
    expect(day).toMatchObject({ usdMicros: USED_MICROS, tokens: USED_TOKENS, estimatedRequests: 0 });
    expect(USED_MICROS).toBeGreaterThan(0);
    // What was reserved is free again: one more second fits.
    client.send(append());
    await eventually(async () => expect(echoes(client, 'input_audio_buffer.append')).toBe(4));
    await withinLimit();
    client.close();
    const usage = await settledUsage(id);
    // The last second was never committed: charged its worst case when the session ended.
    expect(usage.day).toMatchObject({ usdMicros: USED_MICROS + WORST_SECOND, estimatedRequests: 1 });
    expect(usage.day.usdMicros).toBeLessThanOrEqual(limit);
    const metrics = await fetch(`${m.gateway.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/keyrelay_tokens_total\{[^}]*model="gpt-4o-transcribe"[^}]*\} [1-9]/);
  });

  it('charges the worst case of audio whose transcription never reported when the session is cut', async () => {
    const { id, key } = await m.user('tr-cut', { limits: { usdPerDay: 1 } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send(transcribeWith({ model: TRANSCRIBE, prompt: 'fake:hang' }));
    await client.next((e) => e.type === 'echo');
    client.send(append());
    client.send(append());
    await eventually(async () => expect(echoes(client, 'input_audio_buffer.append')).toBe(2));
    // Audio is reserved ahead, a block at a time: ten seconds at the worst case.
    expect((await m.usage(id)).day.reservedUsdMicros).toBe(10 * WORST_SECOND);
    client.send({ type: 'input_audio_buffer.commit' });
    await client.next((e) => e.type === 'input_audio_buffer.committed');
    client.close();
    const usage = await settledUsage(id);
    // Two seconds and the prompt's text (a token a byte at most), each at the worst case.
    const tokens = 2 * 20 + Buffer.byteLength('fake:hang');
    expect(usage.day).toMatchObject({ usdMicros: worstOf(tokens), tokens: 2 * tokens, estimatedRequests: 1 });
  });

  it('charges a transcription that completes without a usage the worst case of its audio, marked estimated', async () => {
    const { id, key } = await m.user('tr-nousage', { limits: { usdPerDay: 1 } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send(transcribeWith({ model: TRANSCRIBE, prompt: 'fake:nousage' }));
    await client.next((e) => e.type === 'echo');
    client.send(append());
    client.send({ type: 'input_audio_buffer.commit' });
    const completed = await client.next((e) => e.type === 'conversation.item.input_audio_transcription.completed');
    expect(completed.usage).toBeUndefined();
    const tokens = 20 + Buffer.byteLength('fake:nousage');
    await eventually(async () => expect((await m.usage(id)).day).toMatchObject({ usdMicros: worstOf(tokens), tokens: 2 * tokens, estimatedRequests: 1, reservedUsdMicros: 0 }));
    client.close();
    expect((await settledUsage(id)).day).toMatchObject({ usdMicros: worstOf(tokens), estimatedRequests: 1 });
  });

  it("reserves the transcription prompt's tokens with each buffer's first audio: a long prompt is refused where the audio alone fits", async () => {
    const prompt = 'x'.repeat(100);
    const limit = worstOf(20 + 100) - 1;
    const { id, key } = await m.user('tr-prompt', { limits: { usdPerDay: limit / 1_000_000 } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send(transcribeWith({ model: TRANSCRIBE, prompt }));
    await client.next((e) => e.type === 'echo');
    const before = appendsRelayed(m);
    let from = client.events.length;
    client.send(append());
    expect(await client.next((e) => e.type === 'error', from)).toMatchObject({ error: { code: 'insufficient_quota' } });
    expect(appendsRelayed(m)).toBe(before);
    from = client.events.length;
    client.send(transcribeWith({ model: TRANSCRIBE }));
    await client.next((e) => e.type === 'echo', from);
    client.send(append());
    await eventually(async () => expect(appendsRelayed(m)).toBe(before + 1));
    const { day } = await m.usage(id);
    expect(day.usdMicros + day.reservedUsdMicros).toBeLessThanOrEqual(limit);
    client.close();
    await settledUsage(id);
  });

  it('counts the transcriptions of a user with no limits, refusing none', async () => {
    const { id, key } = await m.user('tr-free', {});
    const client = await Client.open(m.gateway, PATH, key);
    client.send(transcribeWith({ model: TRANSCRIBE }));
    await client.next((e) => e.type === 'echo');
    for (let turn = 1; turn <= 3; turn++) {
      for (let n = 0; n < 4; n++) client.send(append());
      client.send({ type: 'input_audio_buffer.commit' });
      await eventually(async () => expect(client.count((e) => e.type === 'conversation.item.input_audio_transcription.completed')).toBe(turn));
    }
    expect(client.count((e) => e.type === 'error')).toBe(0);
    // Each turn's usage shows once it is reported, before the session ends.
    await eventually(async () => expect((await m.usage(id)).day).toMatchObject({ usdMicros: 3 * USED_MICROS, tokens: 3 * USED_TOKENS }));
    client.close();
    const usage = await settledUsage(id);
    expect(usage.day).toMatchObject({ usdMicros: 3 * USED_MICROS, tokens: 3 * USED_TOKENS, estimatedRequests: 0 });
  });

  it('charges whisper-1 by the seconds it reports (beta shape), and nothing for a failed transcription', async () => {
    const { id, key } = await m.user('tr-whisper', { limits: { usdPerDay: 1 } });
    const whisper = prices.lookup('whisper-1')!;
    const client = await Client.open(m.gateway, PATH, key);
    client.send({ type: 'session.update', session: { input_audio_transcription: { model: 'whisper-1' }, turn_detection: null } });
    await client.next((e) => e.type === 'echo');
    client.send(append(Buffer.alloc(96_000, 3).toString('base64')));
    client.send({ type: 'input_audio_buffer.commit' });
    const completed = await client.next((e) => e.type === 'conversation.item.input_audio_transcription.completed');
    expect(completed.usage).toEqual({ type: 'duration', seconds: 2 });
    const expected = costMicros(whisper, { input: 0, cachedInput: 0, output: 0, seconds: 2 });
    await eventually(async () => expect((await m.usage(id)).day).toMatchObject({ usdMicros: expected, reservedUsdMicros: 0 }));

    const from = client.events.length;
    client.send({ type: 'session.update', session: { input_audio_transcription: { model: 'whisper-1', prompt: 'fake:fail' } } });
    await client.next((e) => e.type === 'echo', from);
    client.send(append());
    client.send({ type: 'input_audio_buffer.commit' });
    await client.next((e) => e.type === 'conversation.item.input_audio_transcription.failed', from);
    await eventually(async () => expect((await m.usage(id)).day).toMatchObject({ usdMicros: expected, reservedUsdMicros: 0 }));
    client.close();
    const usage = await settledUsage(id);
    expect(usage.day).toMatchObject({ usdMicros: expected, estimatedRequests: 0 });
  });

  it('refuses a session.update naming an unpriced transcription model under a dollar limit, and relays nothing of it', async () => {
    const { key } = await m.user('tr-unpriced', { limits: { usdPerDay: 1 } });
    const client = await Client.open(m.gateway, PATH, key);
    const before = m.fake.wsMessages.length;
    client.send(transcribeWith({ model: 'whisper-9' }));
    expect(await client.next((e) => e.type === 'error')).toMatchObject({
      error: { code: 'model_not_allowed', param: 'session.audio.input.transcription.model', event_id: 'evt_update' },
    });
    const from = client.events.length;
    client.send({ type: 'session.update', event_id: 'evt_beta', session: { input_audio_transcription: { model: 'whisper-9' } } });
    expect(await client.next((e) => e.type === 'error', from)).toMatchObject({
      error: { code: 'model_not_allowed', param: 'session.input_audio_transcription.model', event_id: 'evt_beta' },
    });
    // Nor one that names no model: under a dollar limit its audio is priced by it.
    client.send({ type: 'session.update', event_id: 'evt_none', session: { input_audio_transcription: {} } });
    await client.next((e) => e.type === 'error' && e.error.event_id === 'evt_none', from);
    expect(m.fake.wsMessages.length).toBe(before);
    // Audio appended meanwhile is not transcribed, so not reserved.
    client.send(append());
    await client.next((e) => e.type === 'echo', from);
    client.close();
  });

  it('refuses transcription with no model named to a user with a model list, and relays it named', async () => {
    const { key } = await m.user('tr-list', { models: ['gpt-realtime', TRANSCRIBE] });
    const client = await Client.open(m.gateway, PATH, key);
    const before = m.fake.wsMessages.length;
    client.send(transcribeWith({ language: 'en' }));
    expect(await client.next((e) => e.type === 'error')).toMatchObject({ error: { code: 'model_not_allowed', param: 'session.audio.input.transcription.model' } });
    expect(m.fake.wsMessages.length).toBe(before);
    client.send(transcribeWith({ model: TRANSCRIBE, language: 'en' }));
    await client.next((e) => e.type === 'echo');
    expect(m.fake.wsMessages.length).toBe(before + 1);
    client.close();
  });

  it('refuses a transcription session (?intent=), which it does not meter, to a user with a dollar or a token limit', async () => {
    const upgrades = m.fake.wsConnections.length;
    for (const limits of [{ usdPerDay: 1 }, { tokensPerDay: 1_000_000 }, { tpm: 1_000_000 }]) {
      const { key } = await m.user('tr-intent', { limits });
      expect(await Client.refusal(m.gateway, '/v1/realtime?intent=transcription', key)).toBe(403);
      expect(await Client.refusal(m.gateway, '/v1/realtime?model=gpt-realtime&intent=transcription', key)).toBe(403);
    }
    expect(m.fake.wsConnections.length).toBe(upgrades);
    // A user with no such limits is relayed (unmetered, as documented).
    const { key } = await m.user('tr-intent-free', {});
    expect(await Client.refusal(m.gateway, '/v1/realtime?intent=transcription', key)).toBe(101);
  });
});
