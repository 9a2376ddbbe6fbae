// A user with a dollar limit tries to have a buffer transcribed free: audio appended under one
// transcription model (or with transcription off, reserved by none) and committed under another,
// so that the report does not fit what was reserved. A change of the setting while the input
// buffer holds audio is refused (docs/websockets.md, "Input audio transcription").
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_TRANSCRIPTION_USAGE } from '../src/dev/fake-upstream.js';
import { PriceTable, costMicros } from '../src/quota/prices.js';
import { normalizeUsage } from '../src/quota/usage.js';
import { Client, type Json, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const PATH = '/v1/realtime?model=gpt-realtime';
const prices = new PriceTable();
const SECOND = Buffer.alloc(48_000, 3).toString('base64');
const USED_MICROS = costMicros(prices.lookup('gpt-4o-transcribe')!, normalizeUsage(FAKE_TRANSCRIPTION_USAGE)!);
const WHISPER_SECOND = costMicros(prices.lookup('whisper-1')!, { input: 0, cachedInput: 0, output: 0, seconds: 1 });
const update = (transcription: Json | null, n: string): Json => ({ type: 'session.update', event_id: n, session: { input_audio_transcription: transcription, turn_detection: null } });

describe.each(WS_BACKENDS)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make);
  }, 60_000);
  afterAll(() => m.close());

  async function settled(id: string): Promise<Json> {
    return eventually(async () => {
      const { day } = await m.usage(id);
      expect(day.reservedUsdMicros).toBe(0);
      return day;
    });
  }

  for (const [what, first, second] of [
    ['whisper-1 to gpt-4o-transcribe', { model: 'whisper-1' }, { model: 'gpt-4o-transcribe' }],
    ['off to gpt-4o-transcribe', null, { model: 'gpt-4o-transcribe' }],
  ] as const) {
    it(`refuses a change from ${what} while the buffer holds audio, and charges the buffer's transcription`, async () => {
      const { id, key } = await m.user(`switch-${first === null ? 'off' : 'whisper'}`, { limits: { usdPerDay: 1 } });
      const client = await Client.open(m.gateway, PATH, key);
      client.send(update(first, 'evt_first'));
      await client.next((e) => e.type === 'echo' && String(e.data).includes('evt_first'));
      client.send({ type: 'input_audio_buffer.append', audio: SECOND });
      client.send(update(second, 'evt_second'));
      const refused = await client.next((e) => e.type === 'error');
      expect(refused).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_request', event_id: 'evt_second', param: 'session.input_audio_transcription.model' } });
      expect(m.fake.wsMessages.some((x) => x.data.includes('evt_second'))).toBe(false);
      // Committed under the setting it was appended with, then the change is taken.
      client.send({ type: 'input_audio_buffer.commit' });
      await client.next((e) => e.type === 'input_audio_buffer.committed');
      const from = client.events.length;
      client.send(update(second, 'evt_third'));
      await client.next((e) => e.type === 'echo' && String(e.data).includes('evt_third'), from);
      client.send({ type: 'input_audio_buffer.append', audio: SECOND });
      client.send({ type: 'input_audio_buffer.commit' });
      await client.next((e) => e.type === 'conversation.item.input_audio_transcription.completed', from);
      client.close();
      const day = await settled(id);
      // The first buffer: whisper-1's second, or nothing (off); the second: gpt-4o-transcribe's report.
      expect(day.usdMicros).toBe((first === null ? 0 : WHISPER_SECOND) + USED_MICROS);
      expect(day.estimatedRequests).toBe(0);
    });
  }

  it('refuses a longer transcription prompt while the buffer holds audio (its tokens were reserved with the first audio), and takes it after the commit', async () => {
    const { id, key } = await m.user('switch-prompt', { limits: { usdPerDay: 1 } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send(update({ model: 'gpt-4o-transcribe' }, 'evt_first'));
    await client.next((e) => e.type === 'echo' && String(e.data).includes('evt_first'));
    client.send({ type: 'input_audio_buffer.append', audio: SECOND });
    client.send(update({ model: 'gpt-4o-transcribe', prompt: 'x'.repeat(10_000) }, 'evt_long'));
    expect(await client.next((e) => e.type === 'error')).toMatchObject({ error: { code: 'invalid_request', event_id: 'evt_long' } });
    // The same model and no longer a prompt is no change: taken mid-buffer.
    client.send(update({ model: 'gpt-4o-transcribe', language: 'en' }, 'evt_same'));
    await client.next((e) => e.type === 'echo' && String(e.data).includes('evt_same'));
    client.send({ type: 'input_audio_buffer.commit' });
    await client.next((e) => e.type === 'conversation.item.input_audio_transcription.completed');
    const from = client.events.length;
    client.send(update({ model: 'gpt-4o-transcribe', prompt: 'x'.repeat(10_000) }, 'evt_after'));
    await client.next((e) => e.type === 'echo' && String(e.data).includes('evt_after'), from);
    client.close();
    expect((await settled(id)).usdMicros).toBe(USED_MICROS);
  });

  it('lets a user with no limits change the model mid-buffer (unmetered by limits, nothing refused)', async () => {
    const { key } = await m.user('switch-free', {});
    const client = await Client.open(m.gateway, PATH, key);
    client.send(update({ model: 'whisper-1' }, 'evt_a'));
    client.send({ type: 'input_audio_buffer.append', audio: SECOND });
    client.send(update({ model: 'gpt-4o-transcribe' }, 'evt_b'));
    await client.next((e) => e.type === 'echo' && String(e.data).includes('evt_b'));
    expect(client.count((e) => e.type === 'error')).toBe(0);
    client.close();
  });
});
