// A hostile user makes the upstream read a prompt the gateway cannot see (a stored file, a stored
// prompt template, a realtime item referenced by id with conversation "none") over a WebSocket.
// The gateway believes it "saw the whole prompt" and caps the charge at its own small worst case,
// so the upstream's reported usage (what OpenAI bills) is never charged. Over HTTP the same body is
// charged what the upstream reports; the socket must charge it too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_REALTIME_USAGE, FAKE_RESPONSES_USAGE } from '../src/dev/fake-upstream.js';
import { Client, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const MEMORY = WS_BACKENDS.filter(([name]) => name === 'memory');
const RESPONSES_USED = FAKE_RESPONSES_USAGE.input_tokens + FAKE_RESPONSES_USAGE.output_tokens;
const REALTIME_USED = FAKE_REALTIME_USAGE.input_tokens + FAKE_REALTIME_USAGE.output_tokens;

describe.each(MEMORY)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make);
  }, 60_000);
  afterAll(() => m.close());

  async function settledDay(id: string) {
    return eventually(async () => {
      const u = await m.usage(id);
      expect(u.concurrent.inFlight).toBe(0);
      expect(u.day.reservedTokens).toBe(0);
      return u.day;
    });
  }

  async function upload(key: string): Promise<string> {
    const form = new FormData();
    form.append('purpose', 'user_data');
    form.append('file', new Blob([Buffer.alloc(4096, 'a')], { type: 'application/pdf' }), 'big.pdf');
    const res = await fetch(`${m.gateway.url}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form });
    expect(res.status).toBe(200);
    return ((await res.json()) as { id: string }).id;
  }

  it.each([
    ['a stored file of its own as input', 'file'],
    ['a stored prompt template', 'prompt'],
    ['a tool that fetches (web search)', 'tool'],
  ])('Responses socket: %s is charged the usage the upstream reports, not a worst case that never saw it', async (_what, kind) => {
    const { id, key } = await m.user('unseen-resp', { limits: { tokensPerDay: 100_000, usdPerDay: 100 }, models: ['gpt-4o-mini'] });
    const bodies: Record<string, () => Promise<object>> = {
      file: async () => ({ input: [{ role: 'user', content: [{ type: 'input_file', file_id: await upload(key) }] }] }),
      prompt: async () => ({ prompt: { id: 'pmpt_abc123' } }),
      tool: async () => ({ input: 'news?', tools: [{ type: 'web_search' }], max_output_tokens: 1 }),
    };
    const body = await (bodies[kind] as () => Promise<object>)();
    const client = await Client.open(m.gateway, '/v1/responses', key);
    client.send({ type: 'response.create', model: 'gpt-4o-mini', max_output_tokens: 16, ...body });
    const done = await client.next((e) => e.type === 'response.completed');
    expect(done.response.usage.input_tokens + done.response.usage.output_tokens).toBe(RESPONSES_USED);
    client.close();
    const day = await settledDay(id);
    // Today: charged the gateway's worst case (16 to 23 tokens), marked estimated.
    expect(day.tokens).toBe(RESPONSES_USED);
  });

  it('realtime: a response whose input references conversation items by id is charged the usage the upstream reports', async () => {
    const { id, key } = await m.user('unseen-rt', { limits: { tokensPerDay: 100_000, usdPerDay: 100 }, models: ['gpt-realtime'] });
    const client = await Client.open(m.gateway, '/v1/realtime?model=gpt-realtime', key);
    // conversation "none" tells the gateway to count no conversation, yet the references pull
    // earlier items (here: any item the session holds) into the prompt.
    const input = Array.from({ length: 3 }, () => ({ type: 'item_reference', id: 'item_big' }));
    client.send({ type: 'response.create', event_id: 'evt_ref', response: { conversation: 'none', input, max_output_tokens: 1 } });
    const done = await client.next((e) => e.type === 'response.done');
    expect(done.response.usage.input_tokens + done.response.usage.output_tokens).toBe(REALTIME_USED);
    client.close();
    const day = await settledDay(id);
    expect(day.tokens).toBe(REALTIME_USED);
  });

  it('realtime: a session whose conversation holds a stored file, or whose tools fetch, is charged the usage the upstream reports', async () => {
    for (const setup of [
      { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_image', file_id: 'file_big' }] } },
      { type: 'session.update', session: { tools: [{ type: 'mcp', server_label: 'docs', server_url: 'https://mcp.example.com' }] } },
    ]) {
      const { id, key } = await m.user('unseen-rt-session', { limits: { tokensPerDay: 100_000, usdPerDay: 100 }, models: ['gpt-realtime'] });
      const client = await Client.open(m.gateway, '/v1/realtime?model=gpt-realtime', key);
      client.send(setup);
      client.send({ type: 'response.create', response: { max_output_tokens: 1 } });
      await client.next((e) => e.type === 'response.done');
      client.close();
      expect((await settledDay(id)).tokens).toBe(REALTIME_USED);
    }
  });

  it('still caps a response whose whole prompt the gateway saw inline at its worst case', async () => {
    const { id, key } = await m.user('seen-rt', { limits: { tokensPerDay: 100_000, usdPerDay: 100 }, models: ['gpt-realtime'] });
    const client = await Client.open(m.gateway, '/v1/realtime?model=gpt-realtime', key);
    const input = [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] }];
    client.send({ type: 'response.create', response: { conversation: 'none', input, max_output_tokens: 1 } });
    await client.next((e) => e.type === 'response.done');
    client.close();
    const day = await settledDay(id);
    expect(day.tokens).toBeLessThan(REALTIME_USED);
  });
});
