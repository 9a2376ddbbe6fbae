// WebSocket messages past their bounds, on both dialects: a client message past
// `websocket.clientMessageBytes` gets the API's error event `request_too_large`, then close 1009,
// and never reaches the upstream; an upstream message past `websocket.upstreamMessageBytes` gets
// the client an error event `upstream_invalid_response`, then close 1014 (bad gateway). Neither is
// buffered past its bound, and the session's place among the user's requests is given back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_BACKENDS } from './helpers/store-backends.js';
import { Client, type Json, type Metered, eventually, startMetered } from './helpers/ws-metering.js';

const CLIENT_LIMIT = 64 * 1024;
const UPSTREAM_LIMIT = 32 * 1024;
const MEMORY = STORE_BACKENDS.filter(([name]) => name === 'memory');

/** The error event's code, whichever dialect wrote it. */
const codeOf = (e: Json): string | undefined => (e.type === 'error' ? (e.error?.code ?? e.code) : undefined);

describe.each(MEMORY)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make, { websocket: { clientMessageBytes: CLIENT_LIMIT, upstreamMessageBytes: UPSTREAM_LIMIT, maxResponsesInFlight: 8 } });
  }, 60_000);
  afterAll(() => m.close());

  async function free(id: string): Promise<void> {
    await eventually(async () => expect((await m.usage(id)).concurrent.inFlight).toBe(0));
  }

  describe.each([
    ['realtime', '/v1/realtime?model=gpt-realtime'],
    ['Responses socket', '/v1/responses'],
  ])('%s', (dialect, path) => {
    it('answers a client message past the limit with an error event request_too_large, then 1009, and relays none of it', async () => {
      const { id, key } = await m.user(`big-client-${dialect.length}`, { limits: { maxConcurrent: 5 } });
      const client = await Client.open(m.gateway, path, key);
      const marker = `client-too-big-${dialect.length}`;
      client.send({ type: 'conversation.item.create', marker, pad: 'A'.repeat(CLIENT_LIMIT) });
      expect(await client.closed).toBe(1009);
      const refusal = client.events.find((e) => codeOf(e) === 'request_too_large');
      expect(refusal).toBeDefined();
      expect(JSON.stringify(refusal)).toContain(`larger than the gateway takes (${CLIENT_LIMIT} bytes)`);
      if (dialect === 'realtime') expect(refusal?.error.type).toBe('invalid_request_error');
      expect(m.fake.wsMessages.some((x) => x.data.includes(marker))).toBe(false);
      await free(id);
    });

    it('ends the session on an upstream message past the limit with an error event upstream_invalid_response, then 1014', async () => {
      const { id, key } = await m.user(`big-upstream-${dialect.length}`, { limits: { maxConcurrent: 5 } });
      const client = await Client.open(m.gateway, path, key);
      // Under the client's limit, so relayed; the fake echoes it inside a larger event, past the upstream's.
      client.send({ type: 'conversation.item.create', pad: 'B'.repeat(UPSTREAM_LIMIT + 100) });
      expect(await client.closed).toBe(1014);
      const refusal = client.events.find((e) => codeOf(e) === 'upstream_invalid_response');
      expect(refusal).toBeDefined();
      expect(JSON.stringify(refusal)).toContain(`larger than the gateway takes (${UPSTREAM_LIMIT} bytes)`);
      if (dialect === 'realtime') expect(refusal?.error.type).toBe('server_error');
      // Nothing of the oversized event reached the client.
      expect(client.events.some((e) => e.type === 'echo')).toBe(false);
      await free(id);
    });

    it('relays messages just under both limits', async () => {
      const { key } = await m.user(`under-${dialect.length}`, {});
      const client = await Client.open(m.gateway, path, key);
      const text = JSON.stringify({ type: 'conversation.item.create', pad: 'C'.repeat(UPSTREAM_LIMIT - 200) });
      client.send(text);
      const echo = await client.next((e) => e.type === 'echo');
      expect(echo.data).toBe(text);
      client.close();
    });
  });
});
