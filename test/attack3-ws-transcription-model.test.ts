// A realtime session can make OpenAI transcribe every committed audio buffer with a transcription
// model of the client's choosing (`audio.input.transcription.model`, or `session.type:
// "transcription"`), billed per token or per minute with no `response.create` at all. A user whose
// model list holds only the realtime model must not be able to switch that on: the gateway checked
// `session.model` only, so the update reached the upstream (the transcription itself is not
// metered, docs/websockets.md "Not metered"; the model list at least must hold).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type Metered, WS_BACKENDS, startMetered } from './helpers/ws-metering.js';

const MEMORY = WS_BACKENDS.filter(([name]) => name === 'memory');
const PATH = '/v1/realtime?model=gpt-realtime';

describe.each(MEMORY)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make);
  }, 60_000);
  afterAll(() => m.close());

  const relayed = (marker: string) => m.fake.wsMessages.filter((x) => x.data.includes(marker)).length;

  it.each([
    ['GA shape', { type: 'realtime', audio: { input: { transcription: { model: 'whisper-1' } } } }, 'marker_ga'],
    ['beta shape', { input_audio_transcription: { model: 'gpt-4o-transcribe' } }, 'marker_beta'],
    ['a transcription session', { type: 'transcription', audio: { input: { transcription: { model: 'gpt-4o-transcribe' } } } }, 'marker_tx'],
  ])('refuses a session.update that turns on a transcription model off the list (%s), relaying nothing', async (_what, session, marker) => {
    const { key } = await m.user('tx', { limits: { tokensPerDay: 100_000, usdPerDay: 100 }, models: ['gpt-realtime'] });
    const client = await Client.open(m.gateway, PATH, key);
    client.send({ type: 'session.update', event_id: marker, session });
    const answer = await client.next((e) => e.type === 'error' || e.type === 'echo');
    expect(answer).toMatchObject({ type: 'error', error: { code: 'model_not_allowed', event_id: marker } });
    expect(relayed(marker)).toBe(0);
    client.close();
  });
});
