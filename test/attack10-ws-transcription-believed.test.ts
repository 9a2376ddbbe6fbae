// A user with a dollar limit plays the realtime session's input transcription against the
// gateway's reservations (docs/websockets.md "Input audio transcription"):
// - an update turning transcription off, or to a cheaper model, that the upstream refuses (it goes
//   on transcribing with the dearer model) must not lower what the audio reserves: the gateway
//   believes a cheaper setting only from the upstream's own account (`session.updated`);
// - `transcription_session.update` (the transcription-only dialect) turns transcription on as
//   `session.update` does, and `conversation.item.create` carries input audio the upstream may
//   transcribe: both are judged and reserved as an append is;
// - a block reserved for longer than `quota.leaseMs` must not lapse (charged whole, estimated)
//   while the session still uses it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_TRANSCRIPTION_USAGE } from '../src/dev/fake-upstream.js';
import { PriceTable, costMicros, worstCostMicros } from '../src/quota/prices.js';
import { normalizeUsage } from '../src/quota/usage.js';
import { Client, type Json, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const PATH = '/v1/realtime?model=gpt-realtime';
const DEAR = 'gpt-4o-transcribe';
const CHEAP = 'gpt-4o-mini-transcribe';
const prices = new PriceTable();
const USAGE = normalizeUsage(FAKE_TRANSCRIPTION_USAGE)!;
const usedMicros = (model: string) => costMicros(prices.lookup(model)!, USAGE);
const USED_TOKENS = FAKE_TRANSCRIPTION_USAGE.input_tokens + FAKE_TRANSCRIPTION_USAGE.output_tokens;
// A second of PCM16 at 24 kHz; its worst case is 20 audio tokens in and 20 text tokens out.
const SECOND = Buffer.alloc(48_000, 3).toString('base64');
const worstSeconds = (model: string, seconds: number) => worstCostMicros(prices.lookup(model)!, { input: 20 * seconds, output: 20 * seconds });

const update = (session: Json, eventId?: string): Json => ({ type: 'session.update', ...(eventId ? { event_id: eventId } : {}), session });
const transcribeWith = (transcription: Json | null, more: Json = {}): Json => ({ audio: { input: { transcription, turn_detection: null } }, ...more });
const append = (audio = SECOND): Json => ({ type: 'input_audio_buffer.append', audio });
const relayed = (m: Metered, marker: string) => m.fake.wsMessages.filter((x) => x.data.includes(marker)).length;

describe.each(WS_BACKENDS)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make);
  }, 60_000);
  afterAll(() => m.close());

  async function settled(id: string): Promise<Json> {
    return eventually(async () => {
      const u = await m.usage(id);
      expect(u.day.reservedUsdMicros).toBe(0);
      expect(u.day.reservedTokens).toBe(0);
      return u.day;
    });
  }

  /** A session of a dollar-limited user with transcription on at the dearer model, confirmed. */
  async function dearSession(name: string): Promise<{ id: string; client: Client }> {
    const { id, key } = await m.user(name, { limits: { usdPerDay: 1 } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send(update(transcribeWith({ model: DEAR }), 'evt_on'));
    await client.next((e) => e.type === 'session.updated');
    return { id, client };
  }

  /** One second appended and committed: the upstream's transcription, and what the ledger then holds. */
  async function transcribeOneSecond(client: Client, id: string): Promise<Json> {
    const from = client.events.length;
    client.send(append());
    client.send({ type: 'input_audio_buffer.commit' });
    await client.next((e) => e.type === 'conversation.item.input_audio_transcription.completed', from);
    return settled(id);
  }

  it.each([
    ['off', null, 'evt_refused_off'],
    ['off, the update naming no event_id', null, undefined],
    ['to a cheaper model', { model: CHEAP }, 'evt_refused_cheap'],
  ])('keeps reserving at the dearer model when the upstream refuses an update turning transcription %s', async (_what, transcription, eventId) => {
    const { id, client } = await dearSession('refused');
    client.send(update(transcribeWith(transcription, { instructions: 'fake:refuse' }), eventId));
    await client.next((e) => e.type === 'error' && e.error?.message === 'Refused by the fake.');
    client.send(append());
    await eventually(async () => expect((await m.usage(id)).day.reservedUsdMicros).toBe(worstSeconds(DEAR, 10)));
    const from = client.events.length;
    client.send({ type: 'input_audio_buffer.commit' });
    await client.next((e) => e.type === 'conversation.item.input_audio_transcription.completed', from);
    const day = await settled(id);
    // Charged as the dearer model bills it, within what was reserved: no unreserved audio, no close.
    expect(day).toMatchObject({ usdMicros: usedMicros(DEAR), estimatedRequests: 0 });
    client.send(update({ instructions: 'still here' }));
    await client.next((e) => e.type === 'echo' && String(e.data).includes('still here'));
    expect(client.count((e) => e.type === 'error' && e.error?.code === 'insufficient_quota')).toBe(0);
    client.close();
  });

  it('believes a cheaper model once the upstream took it, and turns off with nothing reserved', async () => {
    const { id, client } = await dearSession('taken');
    client.send(update(transcribeWith({ model: CHEAP }), 'evt_cheap'));
    await client.next((e) => e.type === 'echo' && String(e.data).includes('evt_cheap'));
    expect(await transcribeOneSecond(client, id)).toMatchObject({ usdMicros: usedMicros(CHEAP), estimatedRequests: 0 });
    client.send(update(transcribeWith(null), 'evt_off'));
    await client.next((e) => e.type === 'echo' && String(e.data).includes('evt_off'));
    client.send(append());
    client.send(update({ instructions: 'after the append' }));
    await client.next((e) => e.type === 'echo' && String(e.data).includes('after the append'));
    expect((await m.usage(id)).day.reservedUsdMicros).toBe(0);
    client.close();
    await client.closed;
    expect(await settled(id)).toMatchObject({ usdMicros: usedMicros(CHEAP), estimatedRequests: 0 });
  });

  it('meters transcription_session.update as session.update: its model is judged, its audio reserved and charged', async () => {
    const { id, key } = await m.user('tx-session', { limits: { usdPerDay: 1 }, models: ['gpt-realtime', DEAR] });
    const client = await Client.open(m.gateway, PATH, key);
    client.send({ type: 'transcription_session.update', event_id: 'marker_tx_off_list', session: { input_audio_transcription: { model: 'whisper-1' } } });
    expect(await client.next((e) => e.type === 'error')).toMatchObject({ error: { code: 'model_not_allowed', event_id: 'marker_tx_off_list' } });
    expect(relayed(m, 'marker_tx_off_list')).toBe(0);
    client.send({ type: 'transcription_session.update', session: { input_audio_transcription: { model: DEAR }, turn_detection: null } });
    await client.next((e) => e.type === 'transcription_session.updated');
    client.send(append());
    await eventually(async () => expect((await m.usage(id)).day.reservedUsdMicros).toBe(worstSeconds(DEAR, 10)));
    expect(await transcribeOneSecond(client, id)).toMatchObject({ usdMicros: usedMicros(DEAR), estimatedRequests: 0 });
    expect(client.count((e) => e.type === 'error')).toBe(1);
    client.close();
  });

  const itemCreate = (marker: string, seconds: number, id?: string): Json => ({
    type: 'conversation.item.create',
    event_id: marker,
    item: {
      ...(id ? { id } : {}),
      type: 'message',
      role: 'user',
      content: [{ type: 'input_audio', audio: Buffer.alloc(48_000 * seconds, 5).toString('base64'), transcript: 'fake:transcribe' }],
    },
  });

  it('refuses, unrelayed, an item whose input audio would transcribe past a dollar limit', async () => {
    const limit = worstSeconds(DEAR, 3);
    const { id, key } = await m.user('item-past', { limits: { usdPerDay: limit / 1_000_000 } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send(update(transcribeWith({ model: DEAR })));
    await client.next((e) => e.type === 'session.updated');
    client.send(itemCreate('marker_item_past', 4));
    expect(await client.next((e) => e.type === 'error')).toMatchObject({ error: { code: 'insufficient_quota', event_id: 'marker_item_past' } });
    expect(relayed(m, 'marker_item_past')).toBe(0);
    expect(await settled(id)).toMatchObject({ usdMicros: 0 });
    client.close();
  });

  it.each([
    ['named by the client', 'item_client_named'],
    ['named by the upstream', undefined],
  ])('reserves an item\'s input audio and charges the transcription reported for it (%s)', async (_what, itemId) => {
    const { id, client } = await dearSession('item');
    client.send(itemCreate('marker_item', 2, itemId));
    const done = await client.next((e) => e.type === 'conversation.item.input_audio_transcription.completed');
    if (itemId) expect(done.item_id).toBe(itemId);
    expect(await settled(id)).toMatchObject({ usdMicros: usedMicros(DEAR), estimatedRequests: 0 });
    client.send(update({ instructions: 'still here' }));
    await client.next((e) => e.type === 'echo' && String(e.data).includes('still here'));
    expect(client.count((e) => e.type === 'error')).toBe(0);
    client.close();
  });

  it('holds an item\'s audio reserved while no transcription came for it, and releases it when the session ends', async () => {
    const { id, client } = await dearSession('item-quiet');
    const item = itemCreate('marker_item_quiet', 2);
    item.item.content[0].transcript = 'hello';
    client.send(item);
    await eventually(async () => expect((await m.usage(id)).day.reservedUsdMicros).toBe(worstSeconds(DEAR, 2)));
    client.close();
    await client.closed;
    expect(await settled(id)).toMatchObject({ usdMicros: 0 });
  });
});

describe.each(WS_BACKENDS)('the %s store, with a lease of a second', (_name, make) => {
  const LEASE_MS = 1000;
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make, { quota: { leaseMs: LEASE_MS, redisCommandTimeoutMs: 1000, defaultMaxOutputTokens: 16_384 } });
  }, 60_000);
  afterAll(() => m.close());

  it('keeps a block of audio held three leases long from lapsing: charged what was reported, not its worst case', async () => {
    const { id, key } = await m.user('lease', { limits: { tokensPerDay: 100_000 } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send(update(transcribeWith({ model: DEAR })));
    await client.next((e) => e.type === 'session.updated');
    client.send(append());
    await eventually(async () => expect((await m.usage(id)).day.reservedTokens).toBe(400));
    await new Promise((resolve) => setTimeout(resolve, 3 * LEASE_MS));
    // Another admission of the user's: what lapsed is swept (charged whole) by it.
    const other = await Client.open(m.gateway, PATH, key);
    other.close();
    await other.closed;
    expect((await m.usage(id)).day).toMatchObject({ reservedTokens: 400, estimatedRequests: 0 });
    const from = client.events.length;
    client.send({ type: 'input_audio_buffer.commit' });
    await client.next((e) => e.type === 'conversation.item.input_audio_transcription.completed', from);
    const day = await eventually(async () => {
      const u = await m.usage(id);
      expect(u.day.reservedTokens).toBe(0);
      return u.day;
    });
    expect(day).toMatchObject({ tokens: USED_TOKENS, estimatedRequests: 0 });
    client.close();
  }, 30_000);
});

// whisper-1 priced at a dollar a second: dearer in money than gpt-4o-transcribe, and no tokens.
describe.each(WS_BACKENDS.filter(([name]) => name === 'memory'))('the %s store, with a price table where no model is dearer in both', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make, { prices: { 'gpt-realtime': { input: 4, cachedInput: 0.4, output: 16 }, 'whisper-1': { input: 0, perMinute: 60 } } });
  }, 60_000);
  afterAll(() => m.close());

  it('refuses a switch straight to a model no reservation covers along with the one in force, and takes it once transcription is off', async () => {
    const { key } = await m.user('incomparable', { limits: { usdPerDay: 100, tokensPerDay: 100_000 } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send(update(transcribeWith({ model: DEAR })));
    await client.next((e) => e.type === 'session.updated');
    client.send(update(transcribeWith({ model: 'whisper-1' }), 'marker_switch'));
    expect(await client.next((e) => e.type === 'error')).toMatchObject({ error: { code: 'invalid_request', event_id: 'marker_switch' } });
    expect(relayed(m, 'marker_switch')).toBe(0);
    client.send(update(transcribeWith(null), 'evt_off'));
    await client.next((e) => e.type === 'echo' && String(e.data).includes('evt_off'));
    client.send(update(transcribeWith({ model: 'whisper-1' }), 'marker_after_off'));
    await client.next((e) => e.type === 'echo' && String(e.data).includes('marker_after_off'));
    expect(client.count((e) => e.type === 'error')).toBe(1);
    client.close();
  });
});
