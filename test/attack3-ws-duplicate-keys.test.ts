// Over HTTP a JSON body with a key given twice is refused (src/relay/json-shape.ts): "read one way
// here and maybe another upstream". A parser that keeps the first of equal keys (several do, or
// refuse) runs another model than the one the gateway checked. Over the WebSocket the same event is
// parsed with JSON.parse (the last key wins), checked against that, and relayed as sent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type Metered, WS_BACKENDS, startMetered } from './helpers/ws-metering.js';

const MEMORY = WS_BACKENDS.filter(([name]) => name === 'memory');

describe.each(MEMORY)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make);
  }, 60_000);
  afterAll(() => m.close());

  const body = (marker: string) => `{"type":"response.create","model":"o1-pro","model":"gpt-4o-mini","input":"${marker}","max_output_tokens":16}`;

  it('refuses a Responses socket create whose model is given twice, as HTTP refuses the same body', async () => {
    const { key } = await m.user('dup', { limits: { tokensPerDay: 100_000, usdPerDay: 100 }, models: ['gpt-4o-mini'] });
    // HTTP: the same body (less its type) is a 400.
    const http = await fetch(`${m.gateway.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: body('over-http').replace('"type":"response.create",', ''),
    });
    expect(http.status).toBe(400);

    const client = await Client.open(m.gateway, '/v1/responses', key);
    client.send(body('dup_marker_ws'));
    const answer = await client.next((e) => e.type === 'error' || e.type === 'response.completed');
    expect(answer).toMatchObject({ type: 'error', code: 'invalid_request', param: 'model' });
    expect(m.fake.wsMessages.filter((x) => x.data.includes('dup_marker_ws'))).toHaveLength(0);
    client.close();
  });

  it('refuses a realtime session.update whose model is given twice', async () => {
    const { key } = await m.user('dup-rt', { limits: { tokensPerDay: 100_000, usdPerDay: 100 }, models: ['gpt-realtime'] });
    const client = await Client.open(m.gateway, '/v1/realtime?model=gpt-realtime', key);
    client.send('{"type":"session.update","event_id":"dup_rt_marker","session":{"model":"gpt-4o-realtime-preview","model":"gpt-realtime"}}');
    const answer = await client.next((e) => e.type === 'error' || e.type === 'echo');
    expect(answer).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_request', param: 'session' } });
    expect(m.fake.wsMessages.filter((x) => x.data.includes('dup_rt_marker'))).toHaveLength(0);
    client.close();
  });
});
