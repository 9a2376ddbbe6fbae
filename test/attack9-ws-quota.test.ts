// A user with a small limit tries to transcribe past it across many realtime sessions at once, with
// binary frames, and by closing while an append waits for its reservation; a user with a token
// limit only tries the same. The limits hold across sessions (docs/websockets.md, "Input audio
// transcription"), and a user with no limits beside them is untouched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PriceTable, worstCostMicros } from '../src/quota/prices.js';
import { Client, type Json, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const PATH = '/v1/realtime?model=gpt-realtime';
const TRANSCRIBE = 'gpt-4o-transcribe';
const price = new PriceTable().lookup(TRANSCRIBE)!;
const WORST_SECOND = worstCostMicros(price, { input: 20, output: 20 });
const SECOND = Buffer.alloc(48_000, 3).toString('base64');
const APPEND = JSON.stringify({ type: 'input_audio_buffer.append', audio: SECOND });
const on: Json = { type: 'session.update', event_id: 'evt_on', session: { input_audio_transcription: { model: TRANSCRIBE }, turn_detection: null } };

describe.each(WS_BACKENDS)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make);
  }, 60_000);
  afterAll(() => m.close());

  async function sessions(key: string, n: number): Promise<Client[]> {
    const clients = await Promise.all(Array.from({ length: n }, () => Client.open(m.gateway, PATH, key)));
    for (const c of clients) {
      c.send(on);
      await c.next((e) => e.type === 'echo');
    }
    return clients;
  }

  /** Each client sends one append; how many were refused. */
  async function appendOnce(clients: Client[]): Promise<number> {
    const from = clients.map((c) => c.events.length);
    for (const c of clients) c.ws.send(APPEND);
    const answers = await Promise.all(
      clients.map((c, i) => c.next((e) => e.type === 'error' || (e.type === 'echo' && String(e.data).includes('input_audio_buffer.append')), from[i])),
    );
    return answers.filter((e) => e.type === 'error').length;
  }

  it('holds a dollar limit across six sessions of one user appending at once', async () => {
    const limit = 3 * WORST_SECOND + WORST_SECOND - 1;
    const { id, key } = await m.user('quota-many', { limits: { usdPerDay: limit / 1_000_000 } });
    const clients = await sessions(key, 6);
    expect(await appendOnce(clients)).toBe(3);
    const { day } = await m.usage(id);
    expect(day.usdMicros + day.reservedUsdMicros).toBeLessThanOrEqual(limit);
    expect(day.reservedUsdMicros).toBe(3 * WORST_SECOND);
    for (const c of clients) c.close();
    // Never committed: each second is charged its worst case, no more than the limit.
    await eventually(async () => expect((await m.usage(id)).day).toMatchObject({ usdMicros: 3 * WORST_SECOND, reservedUsdMicros: 0 }));
  });

  it('holds a token limit across sessions, and sizes an append sent as a binary frame as a text one', async () => {
    // A second's worst case is 40 tokens: 100 fit two.
    const { id, key } = await m.user('quota-tokens', { limits: { tokensPerDay: 100 } });
    const clients = await sessions(key, 3);
    // The fake upstream drops binary frames unanswered: the reservation tells that each was judged.
    for (const c of clients.slice(0, 2)) c.ws.send(Buffer.from(APPEND), { binary: true });
    await eventually(async () => expect((await m.usage(id)).day.reservedTokens).toBe(80));
    clients[2]!.ws.send(Buffer.from(APPEND), { binary: true });
    expect(await clients[2]!.next((e) => e.type === 'error')).toMatchObject({ error: { code: 'insufficient_quota' } });
    expect(clients.slice(0, 2).map((c) => c.count((e) => e.type === 'error'))).toEqual([0, 0]);
    const { day } = await m.usage(id);
    expect(day.tokens + day.reservedTokens).toBeLessThanOrEqual(100);
    for (const c of clients) c.close();
    await eventually(async () => expect((await m.usage(id)).day).toMatchObject({ tokens: 80, reservedTokens: 0 }));
  });

  it("never lets an append cut by the client's close reach the upstream free", async () => {
    const { id, key } = await m.user('quota-cut', { limits: { usdPerDay: 1 } });
    const [client] = await sessions(key, 1);
    const before = m.fake.wsMessages.length;
    client!.ws.send(APPEND);
    client!.ws.terminate();
    await eventually(async () => expect((await m.usage(id)).day.reservedUsdMicros).toBe(0));
    // What reached the upstream is charged its worst case; what the gateway wrote as the sockets
    // went down may or may not have, and is charged as if it did: never relayed free.
    const { day } = await m.usage(id);
    expect([0, WORST_SECOND]).toContain(day.usdMicros);
    await new Promise((resolve) => setTimeout(resolve, 500));
    if (m.fake.wsMessages.slice(before).some((x) => x.data.includes('input_audio_buffer.append'))) expect(day.usdMicros).toBe(WORST_SECOND);
  });

  it('leaves a user with no limits, beside these, appending and transcribing in many sessions', async () => {
    const { key } = await m.user('quota-free', {});
    const clients = await sessions(key, 4);
    expect(await appendOnce(clients)).toBe(0);
    for (const c of clients) c.send({ type: 'input_audio_buffer.commit' });
    await Promise.all(clients.map((c) => c.next((e) => e.type === 'conversation.item.input_audio_transcription.completed')));
    for (const c of clients) c.close();
  });
});
