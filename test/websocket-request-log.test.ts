// Each response made over a WebSocket session is a record of the kept request log (GET
// /admin/requests, the console's request view), as a POST /v1/responses is: who, which model, the
// tokens and cost charged, how it ended and how long it took; a create the gateway refused is one
// too, with its status and code. No record holds a key or a secret.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_REALTIME_USAGE, FAKE_RESPONSES_USAGE } from '../src/dev/fake-upstream.js';
import { PriceTable, costMicros } from '../src/quota/prices.js';
import { normalizeUsage } from '../src/quota/usage.js';
import { Client, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const PATH = '/v1/responses';
const CREATE = { type: 'response.create', model: 'gpt-4o-mini', input: 'Say hello.', max_output_tokens: 100 };
const MICROS = costMicros(new PriceTable().lookup('gpt-4o-mini')!, normalizeUsage(FAKE_RESPONSES_USAGE)!);

describe.each(WS_BACKENDS)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make, { aliases: { fast: 'gpt-4o-mini' } });
  }, 60_000);
  afterAll(() => m.close());

  /** The user's records, newest first, once there are `count` of them. */
  async function records(user: string, count: number): Promise<any[]> {
    return eventually(async () => {
      const page = await m.gateway.admin('GET', `/requests?user=${user}`);
      expect(page.status).toBe(200);
      expect(page.json.data).toHaveLength(count);
      return page.json.data as any[];
    });
  }

  it('keeps one record per response, with its model, tokens, cost, status and duration', async () => {
    const { id, key } = await m.user('wslog-two', { models: ['gpt-4o-mini', 'fast'] });
    const client = await Client.open(m.gateway, PATH, key);
    client.send(CREATE);
    await client.next((e) => e.type === 'response.completed');
    const from = client.events.length;
    client.send({ ...CREATE, model: 'fast', metadata: { fake: 'fail' } });
    await client.next((e) => e.type === 'response.failed', from);
    client.close();
    await client.closed;

    const [failed, completed] = await records(id, 2);
    const tokens = { input: FAKE_RESPONSES_USAGE.input_tokens, cachedInput: FAKE_RESPONSES_USAGE.input_tokens_details.cached_tokens, output: FAKE_RESPONSES_USAGE.output_tokens, estimated: false };
    expect(completed).toMatchObject({ userId: id, method: 'GET', route: PATH, model: 'gpt-4o-mini', stream: true, status: 200, outcome: 'ok', tokens, costMicros: MICROS, poolKeyId: expect.any(String), upstream: 'default' });
    expect(completed.upstreamModel).toBeUndefined();
    expect(completed.durationMs).toBeGreaterThanOrEqual(0);
    expect(completed.requestId).toMatch(/\.r1$/);
    // An alias is logged as the client named it, priced as the model it stands for.
    expect(failed).toMatchObject({ model: 'fast', upstreamModel: 'gpt-4o-mini', status: 200, outcome: 'ok', tokens, costMicros: MICROS, errorMessage: expect.stringContaining('response.failed') });
    expect(failed.requestId).toMatch(/\.r2$/);
    // One by one, by the gateway's id, as an HTTP request's.
    const one = await m.gateway.admin('GET', `/requests/${encodeURIComponent(completed.requestId)}`);
    expect(one.json).toMatchObject({ requestId: completed.requestId, costMicros: MICROS });
    // The usage report counts them.
    await eventually(async () => {
      const usage = await m.gateway.admin('GET', `/usage?user=${id}`);
      expect(usage.status).toBe(200);
      expect(JSON.stringify(usage.json)).toContain(`"requests":2`);
    });
  });

  it('keeps a response cut by its session\'s end, charged what streamed, estimated', async () => {
    const { id, key } = await m.user('wslog-cut', {});
    const client = await Client.open(m.gateway, PATH, key);
    client.send({ ...CREATE, metadata: { fake: 'hang' } });
    await client.next((e) => e.type === 'response.output_text.delta');
    client.ws.terminate();
    const [cut] = await records(id, 1);
    expect(cut).toMatchObject({ model: 'gpt-4o-mini', status: 499, outcome: 'stream_interrupted', tokens: { estimated: true } });
    expect(cut.tokens.output).toBeGreaterThan(0);
    expect(cut.costMicros).toBeGreaterThan(0);
  });

  it('keeps a refused create with its status and code, charged nothing, its model escaped, no key in it', async () => {
    const { id, key } = await m.user('wslog-refused', { models: ['gpt-4o-mini'] });
    const client = await Client.open(m.gateway, PATH, key);
    client.send({ ...CREATE, model: 'evil\n{"forged":1}\u202e' });
    expect(await client.next((e) => e.type === 'error')).toMatchObject({ code: 'model_not_allowed' });
    client.close();
    const [refused] = await records(id, 1);
    expect(refused).toMatchObject({ userId: id, route: PATH, status: 403, outcome: 'forbidden', errorCode: 'model_not_allowed' });
    expect(refused.tokens).toBeUndefined();
    expect(refused.costMicros).toBeUndefined();
    expect(refused.model).toBe('evil\\x0a{"forged":1}\\u202e');
    const kept = JSON.stringify(refused);
    expect(kept).not.toContain(key);
    expect(kept).not.toContain(key.slice(6, -4));
  });

  it('keeps each realtime response too, on the realtime route', async () => {
    const { id, key } = await m.user('wslog-realtime', {});
    const client = await Client.open(m.gateway, '/v1/realtime?model=gpt-realtime', key);
    await client.next((e) => e.type === 'session.created');
    client.send({ type: 'response.create', response: { instructions: 'Say hello.' } });
    await client.next((e) => e.type === 'response.done');
    client.close();
    const [done] = await records(id, 1);
    expect(done).toMatchObject({ route: '/v1/realtime', model: 'gpt-realtime', status: 200, outcome: 'ok', tokens: { input: FAKE_REALTIME_USAGE.input_tokens, output: FAKE_REALTIME_USAGE.output_tokens, estimated: false } });
    expect(done.costMicros).toBeGreaterThan(0);
  });
});
