// A user with a dollar limit gets a transcription of audio no append reserved: a commit with
// nothing appended (which the fake upstream transcribes anyway), as an update the upstream did
// not take (transcription turned "off" by an update it refused) would give. The usage the
// upstream reports is charged, and a limited user's session is closed (docs/websockets.md).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_TRANSCRIPTION_USAGE } from '../src/dev/fake-upstream.js';
import { PriceTable, costMicros } from '../src/quota/prices.js';
import { normalizeUsage } from '../src/quota/usage.js';
import { Client, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const PATH = '/v1/realtime?model=gpt-realtime';
const USED_MICROS = costMicros(new PriceTable().lookup('gpt-4o-transcribe')!, normalizeUsage(FAKE_TRANSCRIPTION_USAGE)!);
const on = { type: 'session.update', session: { input_audio_transcription: { model: 'gpt-4o-transcribe' }, turn_detection: null } };

describe.each(WS_BACKENDS)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make);
  }, 60_000);
  afterAll(() => m.close());

  it('charges a transcription of audio no append reserved, and closes the session of a user with limits', async () => {
    const { id, key } = await m.user('unreserved', { limits: { usdPerDay: 1 } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send(on);
    await client.next((e) => e.type === 'echo');
    client.send({ type: 'input_audio_buffer.commit' });
    expect(await client.next((e) => e.type === 'error')).toMatchObject({ error: { type: 'insufficient_quota', code: 'insufficient_quota' } });
    expect(await client.closed).toBe(1008);
    await eventually(async () => expect((await m.usage(id)).day).toMatchObject({ usdMicros: USED_MICROS, reservedUsdMicros: 0, estimatedRequests: 0 }));
  });

  it('charges it to a user with no limits too, and keeps the session', async () => {
    const { id, key } = await m.user('unreserved-free', {});
    const client = await Client.open(m.gateway, PATH, key);
    client.send(on);
    await client.next((e) => e.type === 'echo');
    client.send({ type: 'input_audio_buffer.commit' });
    await client.next((e) => e.type === 'conversation.item.input_audio_transcription.completed');
    await eventually(async () => expect((await m.usage(id)).day).toMatchObject({ usdMicros: USED_MICROS }));
    client.send({ type: 'session.update', session: { instructions: 'still here' } });
    await client.next((e) => e.type === 'echo' && String(e.data).includes('still here'));
    expect(client.count((e) => e.type === 'error')).toBe(0);
    client.close();
  });
});
