// Hostile clients of metered WebSocket sessions: a client that hangs up mid-response, sends a
// message past the limit, floods response.create, hides a response.create behind a duplicate or
// escaped `type`, and an upstream that reports absurd usage. The ledger is never negative, never
// past the limit, and no reservation outlives its session.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matchOperation } from '../src/operations/match.js';
import { estimateRequest } from '../src/quota/estimate.js';
import { Client, type Json, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const REALTIME = '/v1/realtime?model=gpt-realtime';
const MAX_OUTPUT = 100;
const WORST = estimateRequest(matchOperation('POST', '/v1/responses').cost, 'gpt-realtime', { input: [] }, {}, 1).promptTokens + MAX_OUTPUT;
const LIMIT = 256 * 1024;
const create = (fields: Json = {}): Json => ({ type: 'response.create', response: { conversation: 'none', max_output_tokens: MAX_OUTPUT, ...fields } });
const relayed = (m: Metered, text: string) => m.fake.wsMessages.filter((x) => x.data.includes(text)).length;

describe.each(WS_BACKENDS)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make, { websocket: { clientMessageBytes: LIMIT, upstreamMessageBytes: 64 * 1024 * 1024, maxResponsesInFlight: 8 } });
  }, 60_000);
  afterAll(() => m.close());

  async function settled(id: string): Promise<Json> {
    return eventually(async () => {
      const u = await m.usage(id);
      expect(u.day.reservedTokens).toBe(0);
      expect(u.concurrent.inFlight).toBe(0);
      return u;
    });
  }

  it('charges a realtime response cut by the client what streamed, marked estimated', async () => {
    const { id, key } = await m.user('h-cut', { limits: { tokensPerDay: 100_000 } });
    const client = await Client.open(m.gateway, REALTIME, key);
    client.send(create({ metadata: { fake: 'hang' } }));
    await client.next((e) => e.type === 'response.output_audio.delta');
    client.ws.terminate();
    const usage = await settled(id);
    expect(usage.day.estimatedRequests).toBe(1);
    // Its prompt and the text and audio that streamed: more than nothing, never past its worst case.
    expect(usage.day.tokens).toBeGreaterThan(0);
    expect(usage.day.tokens).toBeLessThanOrEqual(WORST);
  });

  it('charges a Responses socket response cut by the client what streamed, marked estimated', async () => {
    const { id, key } = await m.user('h-cut-rs', { limits: { tokensPerDay: 100_000 } });
    const client = await Client.open(m.gateway, '/v1/responses', key);
    client.send({ type: 'response.create', model: 'gpt-4o-mini', input: 'Hi', max_output_tokens: 50, metadata: { fake: 'hang' } });
    await client.next((e) => e.type === 'response.output_text.delta');
    client.ws.terminate();
    const usage = await settled(id);
    expect(usage.day.estimatedRequests).toBe(1);
    expect(usage.day.tokens).toBeGreaterThan(0);
  });

  it('closes sessions with 1001 at the end of a shutdown\'s grace and settles what they held', async () => {
    const { id, key } = await m.user('h-shutdown', { limits: { tokensPerDay: 100_000, maxConcurrent: 5 } });
    const client = await Client.open(m.gateway, REALTIME, key);
    client.send(create({ metadata: { fake: 'hang' } }));
    await client.next((e) => e.type === 'response.output_audio.delta');
    (m.gateway.app as unknown as { interruptStreams(): number }).interruptStreams();
    expect(await client.closed).toBe(1001);
    const usage = await settled(id);
    expect(usage.day.estimatedRequests).toBe(1);
    expect(usage.day.tokens).toBeGreaterThan(0);
  });

  it('charges absurd usage (negative, 1e300) at the response\'s worst case, never negative, never past the limit', async () => {
    const limit = 3 * WORST;
    const { id, key } = await m.user('h-absurd', { limits: { tokensPerDay: limit } });
    const client = await Client.open(m.gateway, REALTIME, key);
    client.send(create({ metadata: { fake: 'absurd' } }));
    await client.next((e) => e.type === 'response.done');
    client.close();
    const usage = await settled(id);
    expect(usage.day.tokens).toBe(WORST);
    expect(usage.day.estimatedRequests).toBe(1);
    expect(usage.day.tokens).toBeLessThanOrEqual(limit);
  });

  it('closes with 1009 a client message past the limit, which never reaches the upstream', async () => {
    const { key } = await m.user('h-big', {});
    const client = await Client.open(m.gateway, REALTIME, key);
    client.send({ type: 'input_audio_buffer.append', audio: 'A'.repeat(LIMIT + 10) });
    expect(await client.closed).toBe(1009);
    expect(relayed(m, 'input_audio_buffer.append')).toBe(0);
  });

  it('closes with 1009 a message whose fragments together pass the limit', async () => {
    const { key } = await m.user('h-frag-big', {});
    const client = await Client.open(m.gateway, REALTIME, key);
    const part = `{"type":"conversation.item.create","x":"${'B'.repeat(LIMIT / 2)}`;
    client.ws.send(part, { fin: false });
    client.ws.send('B'.repeat(LIMIT / 2), { fin: false });
    client.ws.send('"}', { fin: true });
    expect(await client.closed).toBe(1009);
    expect(relayed(m, 'BBBB')).toBe(0);
  });

  it('relays a fragmented response.create with a ping between its fragments, and a 64-bit-length message, whole', async () => {
    const { key } = await m.user('h-frag', {});
    const client = await Client.open(m.gateway, REALTIME, key);
    const text = JSON.stringify(create({ instructions: 'fragmented' }));
    client.ws.send(text.slice(0, 10), { fin: false });
    client.ws.ping();
    client.ws.send(text.slice(10, 30), { fin: false });
    client.ws.send(text.slice(30), { fin: true });
    await client.next((e) => e.type === 'response.done');
    expect(m.fake.wsMessages.map((x) => x.data)).toContain(text);
    const big = JSON.stringify({ type: 'input_audio_buffer.append', audio: 'C'.repeat(100_000) });
    client.send(big);
    await client.next((e) => e.type === 'echo' && e.data.length === big.length);
    client.close();
  });

  it('refuses a response.create hidden behind a duplicate `type`, meters one behind an escaped `type` as the upstream reads it, and relays none it cannot read', async () => {
    const { key } = await m.user('h-disguise', { limits: { tokensPerDay: WORST - 1 } });
    const client = await Client.open(m.gateway, REALTIME, key);
    const before = relayed(m, 'max_output_tokens');
    const body = '"response":{"conversation":"none","max_output_tokens":100}';
    // A key given twice (however it is escaped) is refused, as over HTTP: parsers disagree on which counts.
    client.send(`{"type":"session.update",${body},"type":"response.create"}`);
    client.send(`{"type":"session.update",${body},"typ\\u0065":"response.create"}`);
    await eventually(async () => expect(client.count((e) => e.type === 'error' && e.error.code === 'invalid_request' && e.error.param === 'type')).toBe(2));
    client.send(`{"type":"response\\u002ecreate",${body}}`);
    await eventually(async () => expect(client.count((e) => e.type === 'error' && e.error.code === 'insufficient_quota')).toBe(1));
    // NaN: Python's json reads it, JavaScript's does not; what the gateway cannot read is not relayed.
    client.send(`{"type":"response.create",${body.replace('100', 'NaN')}}`);
    await eventually(async () => expect(client.count((e) => e.type === 'error' && e.error.code === 'invalid_json')).toBe(1));
    expect(relayed(m, 'max_output_tokens')).toBe(before);
    client.close();
  });

  it('answers a flood of 1,000 response.create with error events and lets through no more than rpm admits', async () => {
    const rpm = 10;
    const { id, key } = await m.user('h-flood', { limits: { rpm } });
    const client = await Client.open(m.gateway, REALTIME, key);
    const before = relayed(m, '"response.create"');
    const started = Date.now();
    for (let n = 0; n < 1000; n++) client.send({ ...create(), event_id: `flood_${n}` });
    await eventually(async () => {
      const answered = client.count((e) => e.type === 'error') + client.count((e) => e.type === 'response.done');
      expect(answered).toBe(1000);
    }, 60_000);
    const minutes = (Date.now() - started) / 60_000;
    const through = relayed(m, '"response.create"') - before;
    expect(through).toBe(client.count((e) => e.type === 'response.done'));
    // The upgrade took one unit of the bucket; it refills at rpm a minute.
    expect(through).toBeLessThanOrEqual(rpm - 1 + Math.ceil(minutes * rpm));
    expect(client.count((e) => e.type === 'error' && e.error.code === 'rate_limit_exceeded')).toBe(1000 - through);
    // The session still works after it.
    client.send({ type: 'session.update', session: {} });
    await client.next((e) => e.type === 'echo');
    client.close();
    await settled(id);
  }, 90_000);
});
