// Realtime sessions are metered (docs/websockets.md): the upgrade is admitted against rpm and
// maxConcurrent, each response.create reserves its worst case, response.done settles its usage,
// and a refusal is the realtime API's own error event, never sent upstream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_REALTIME_USAGE } from '../src/dev/fake-upstream.js';
import { matchOperation } from '../src/operations/match.js';
import { estimateRequest } from '../src/quota/estimate.js';
import { PriceTable, costMicros } from '../src/quota/prices.js';
import { normalizeUsage } from '../src/quota/usage.js';
import { Client, type Json, type Metered, REALTIME_PRICE, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const PATH = '/v1/realtime?model=gpt-realtime';
const MAX_OUTPUT = 100;
// A create with no conversation, no input and no instructions: its prompt is the framing of an
// empty item list, its output cap MAX_OUTPUT.
const WORST = estimateRequest(matchOperation('POST', '/v1/responses').cost, 'gpt-realtime', { input: [] }, {}, 1).promptTokens + MAX_OUTPUT;
const USED = FAKE_REALTIME_USAGE.input_tokens + FAKE_REALTIME_USAGE.output_tokens;
const create = (n: number): Json => ({ type: 'response.create', event_id: `evt_${n}`, response: { conversation: 'none', max_output_tokens: MAX_OUTPUT } });
const creates = (m: Metered) => m.fake.wsMessages.filter((x) => x.data.includes('"response.create"')).length;

describe.each(WS_BACKENDS)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make);
  }, 60_000);
  afterAll(() => m.close());

  it('gives a user with tokensPerDay for exactly three responses three; the fourth is an error event the upstream never sees', async () => {
    const { id, key } = await m.user('rt-three', { limits: { tokensPerDay: 3 * USED + WORST - 1, usdPerDay: 100 } });
    const client = await Client.open(m.gateway, PATH, key);
    const before = creates(m);
    const done: Json[] = [];
    for (let n = 1; n <= 3; n++) {
      const from = client.events.length;
      client.send(create(n));
      done.push(await client.next((e) => e.type === 'response.done', from));
    }
    const from = client.events.length;
    client.send(create(4));
    const refused = await client.next((e) => e.type === 'error', from);
    expect(refused).toMatchObject({ type: 'error', error: { type: 'insufficient_quota', code: 'insufficient_quota', param: null, event_id: 'evt_4' } });
    expect(refused.event_id).toEqual(expect.any(String));
    // A message sent after the refused one still arrives, so the refused one was judged before it.
    client.send({ type: 'session.update', session: { instructions: 'Be brief.' } });
    await client.next((e) => e.type === 'echo', from);
    expect(creates(m) - before).toBe(3);

    // What the admin sees is the sum of what the upstream reported, in tokens and in dollars.
    const price = new PriceTable({ 'gpt-realtime': REALTIME_PRICE }).lookup('gpt-realtime')!;
    const tokens = done.reduce((sum, e) => sum + e.response.usage.input_tokens + e.response.usage.output_tokens, 0);
    const micros = done.reduce((sum, e) => sum + costMicros(price, normalizeUsage(e.response.usage)!), 0);
    client.close();
    const usage = await eventually(async () => {
      const u = await m.usage(id);
      expect(u.concurrent.inFlight).toBe(0);
      return u;
    });
    expect(usage.day).toMatchObject({ tokens, usdMicros: micros, reservedTokens: 0, reservedUsdMicros: 0, estimatedRequests: 0 });
    expect(micros).toBeGreaterThan(0);
    // And the token metrics count them.
    const metrics = await fetch(`${m.gateway.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/keyrelay_tokens_total\{[^}]*model="gpt-realtime"[^}]*\} [1-9]/);
    // The session and its three responses; the refused fourth is not a request that counts tokens.
    expect(usage.day.requests).toBeGreaterThanOrEqual(4);
  });

  it('refuses a second session at the upgrade with 429 under maxConcurrent 1, and opens one once the first closed', async () => {
    const { key } = await m.user('rt-one', { limits: { maxConcurrent: 1 } });
    const first = await Client.open(m.gateway, PATH, key);
    const upgrades = m.fake.wsConnections.length;
    expect(await Client.refusal(m.gateway, PATH, key)).toBe(429);
    expect(m.fake.wsConnections.length).toBe(upgrades);
    // The session's own responses run inside its slot.
    first.send(create(1));
    await first.next((e) => e.type === 'response.done');
    first.close();
    await first.closed;
    const third = await eventually(() => Client.open(m.gateway, PATH, key));
    third.close();
  });

  it('refuses a session.update to a model off the user\'s list, and relays one on it', async () => {
    const { key } = await m.user('rt-models', { models: ['gpt-realtime'] });
    const client = await Client.open(m.gateway, PATH, key);
    const before = m.fake.wsMessages.length;
    client.send({ type: 'session.update', event_id: 'evt_m', session: { model: 'gpt-4o-realtime-preview' } });
    expect(await client.next((e) => e.type === 'error')).toMatchObject({ error: { code: 'model_not_allowed', event_id: 'evt_m' } });
    client.send({ type: 'session.update', session: { model: 'gpt-realtime' } });
    await client.next((e) => e.type === 'echo');
    expect(m.fake.wsMessages.length - before).toBe(1);
    client.close();
  });

  it('admits a response the upstream starts by itself (server VAD) and charges its usage', async () => {
    const { id, key } = await m.user('rt-vad', { limits: { tokensPerDay: 100_000 } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(48_000).toString('base64') });
    client.send({ type: 'input_audio_buffer.commit' });
    await client.next((e) => e.type === 'response.done');
    client.close();
    const usage = await eventually(async () => {
      const u = await m.usage(id);
      expect(u.concurrent.inFlight).toBe(0);
      return u;
    });
    expect(usage.day.tokens).toBe(USED);
    expect(usage.day.estimatedRequests).toBe(0);
  });

  it('cancels a server VAD response its user cannot afford, tells the client, and still charges what it used', async () => {
    const { id, key } = await m.user('rt-vad-poor', { limits: { tokensPerDay: 10 } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send({ type: 'input_audio_buffer.commit' });
    const created = await client.next((e) => e.type === 'response.created');
    expect(await client.next((e) => e.type === 'error')).toMatchObject({ error: { code: 'insufficient_quota', event_id: null } });
    await eventually(async () => {
      const cancels = m.fake.wsMessages.filter((x) => x.data.includes('"response.cancel"')).map((x) => JSON.parse(x.data));
      expect(cancels).toContainEqual({ type: 'response.cancel', response_id: created.response.id });
    });
    await client.next((e) => e.type === 'response.done');
    client.close();
    const usage = await eventually(async () => {
      const u = await m.usage(id);
      expect(u.concurrent.inFlight).toBe(0);
      return u;
    });
    // The upstream began it before the gateway could refuse: the one way past a limit.
    expect(usage.day.tokens).toBe(USED);
  });
});
