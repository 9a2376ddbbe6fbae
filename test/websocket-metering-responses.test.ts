// The Responses socket is metered and checked as POST /v1/responses is (docs/websockets.md): each
// response.create reserves its worst case and is settled by response.completed (or .failed,
// .incomplete); its model is checked against the user's list; a previous_response_id of another
// user is answered with an error event and never relayed; the responses made are the user's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_RESPONSES_USAGE } from '../src/dev/fake-upstream.js';
import { matchOperation } from '../src/operations/match.js';
import { estimateRequest } from '../src/quota/estimate.js';
import { PriceTable, costMicros } from '../src/quota/prices.js';
import { normalizeUsage } from '../src/quota/usage.js';
import { factsOf } from '../src/relay/body.js';
import { Client, type Json, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const PATH = '/v1/responses';
const CREATE = { type: 'response.create', model: 'gpt-4o-mini', input: 'Say hello.', max_output_tokens: 100 };
const WORST = (() => {
  const e = estimateRequest(matchOperation('POST', '/v1/responses').cost, 'gpt-4o-mini', CREATE, factsOf(CREATE), 16_384);
  return e.promptTokens + e.maxOutputTokens;
})();
const USED = FAKE_RESPONSES_USAGE.input_tokens + FAKE_RESPONSES_USAGE.output_tokens;
const relayedCreates = (m: Metered) => m.fake.wsMessages.filter((x) => x.path === PATH && x.data.includes('"response.create"'));

describe.each(WS_BACKENDS)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make);
  }, 60_000);
  afterAll(() => m.close());

  it('gives a user with tokensPerDay for exactly three responses three, and the admin sees their usage', async () => {
    const { id, key } = await m.user('rs-three', { limits: { tokensPerDay: 3 * USED + WORST - 1, usdPerDay: 100 }, models: ['gpt-4o-mini'] });
    const client = await Client.open(m.gateway, PATH, key);
    const before = relayedCreates(m).length;
    const completed: Json[] = [];
    for (let n = 0; n < 3; n++) {
      const from = client.events.length;
      client.send(CREATE);
      completed.push(await client.next((e) => e.type === 'response.completed', from));
    }
    const from = client.events.length;
    client.send({ ...CREATE, stream_id: 'lane_4' });
    expect(await client.next((e) => e.type === 'error', from)).toEqual({
      type: 'error',
      code: 'insufficient_quota',
      message: expect.stringContaining('tokensPerDay'),
      param: null,
      sequence_number: 0,
      stream_id: 'lane_4',
    });
    expect(relayedCreates(m).length - before).toBe(3);

    const price = new PriceTable().lookup('gpt-4o-mini')!;
    const tokens = completed.reduce((sum, e) => sum + e.response.usage.input_tokens + e.response.usage.output_tokens, 0);
    const micros = completed.reduce((sum, e) => sum + costMicros(price, normalizeUsage(e.response.usage)!), 0);
    client.close();
    const usage = await eventually(async () => {
      const u = await m.usage(id);
      expect(u.concurrent.inFlight).toBe(0);
      return u;
    });
    expect(usage.day).toMatchObject({ tokens, usdMicros: micros, reservedTokens: 0, estimatedRequests: 0 });
  });

  it('refuses a model off the list and another user\'s previous_response_id with error events, relaying neither', async () => {
    const alice = await m.user('rs-alice', {});
    const mallory = await m.user('rs-mallory', { models: ['gpt-4o-mini'] });
    const a = await Client.open(m.gateway, PATH, alice.key);
    a.send(CREATE);
    const made = await a.next((e) => e.type === 'response.completed');
    const aliceResponse: string = made.response.id;

    const b = await Client.open(m.gateway, PATH, mallory.key);
    const before = relayedCreates(m).length;
    b.send({ ...CREATE, model: 'gpt-4o' });
    expect(await b.next((e) => e.type === 'error')).toMatchObject({ code: 'model_not_allowed', param: 'model' });
    const from = b.events.length;
    b.send({ ...CREATE, previous_response_id: aliceResponse });
    expect(await b.next((e) => e.type === 'error', from)).toMatchObject({ type: 'error', code: 'not_found', message: `No such object: ${aliceResponse}` });
    expect(relayedCreates(m).length).toBe(before);

    // Alice continues her own, on the same session.
    const next = a.events.length;
    a.send({ ...CREATE, previous_response_id: aliceResponse });
    expect(await a.next((e) => e.type === 'response.completed', next)).toMatchObject({ response: { previous_response_id: aliceResponse } });
    // And her responses are hers over HTTP too: the record was made from the socket.
    expect((await m.backend.store.objectOwners.lookup(aliceResponse))?.userId).toBe(alice.id);
    a.close();
    b.close();
  });

  it('settles response.failed with its usage', async () => {
    const { id, key } = await m.user('rs-failed', { limits: { tokensPerDay: 100_000 } });
    const client = await Client.open(m.gateway, PATH, key);
    client.send({ ...CREATE, metadata: { fake: 'fail' } });
    await client.next((e) => e.type === 'response.failed');
    client.close();
    const usage = await eventually(async () => {
      const u = await m.usage(id);
      expect(u.day.reservedTokens).toBe(0);
      return u;
    });
    expect(usage.day.tokens).toBe(USED);
  });
});

describe('two pool keys', () => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(WS_BACKENDS[0]![1], {}, 2);
  }, 60_000);
  afterAll(() => m.close());

  it('answers a previous_response_id made with the other pool key with an error event, and relays it on a session of its key', async () => {
    const { key } = await m.user('rs-pinned', {});
    const keyOf = (n: number) => m.gateway.logs.filter((l) => l.msg === 'websocket opened')[n]?.poolKeyId;
    const first = await Client.open(m.gateway, PATH, key);
    first.send(CREATE);
    const made = (await first.next((e) => e.type === 'response.completed')).response.id as string;
    // Round-robin: the next session is on the other key, the one after on the first again.
    const other = await Client.open(m.gateway, PATH, key);
    const same = await Client.open(m.gateway, PATH, key);
    expect(keyOf(1)).not.toBe(keyOf(0));
    expect(keyOf(2)).toBe(keyOf(0));
    const before = relayedCreates(m).length;
    other.send({ ...CREATE, previous_response_id: made });
    expect(await other.next((e) => e.type === 'error')).toMatchObject({ code: 'invalid_request', param: 'previous_response_id' });
    expect(relayedCreates(m).length).toBe(before);
    same.send({ ...CREATE, previous_response_id: made });
    expect(await same.next((e) => e.type === 'response.completed')).toMatchObject({ response: { previous_response_id: made } });
    for (const c of [first, other, same]) c.close();
  });
});
