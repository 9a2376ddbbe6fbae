// Request and response bodies are never kept unless an operator turns `logging.bodies` on; then
// the kept record holds them with key material masked, cut to `logging.bodyBytes`. They never
// reach the log line either way.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerSecret } from './helpers/log-capture.js';
import { type ObservedGateway, chat, keptRecords, post, startObservedGateway } from './helpers/observability-fixture.js';

const POOL_KEY = 'sk-pool-bodies-0123456789abcdef';
// A key a careless user pasted into a prompt: masked in the kept body like any OpenAI-shaped key.
const PASTED = 'sk-proj-PastedIntoPrompt0123456789WXYZ';
registerSecret(PASTED);

describe('bodies off (the default)', () => {
  let env: ObservedGateway;
  beforeAll(async () => {
    env = await startObservedGateway(POOL_KEY, 'memory');
  });
  afterAll(async () => {
    await env.close();
  });

  it('keeps neither body', async () => {
    const key = await env.gateway.createUserKey('quiet');
    registerSecret(key);
    expect((await post(env.gateway, key, '/chat/completions', chat('nothing kept'))).status).toBe(200);
    const [record] = await keptRecords(env.gateway, 1);
    expect(record).not.toHaveProperty('requestBody');
    expect(record).not.toHaveProperty('responseBody');
  });
});

describe('bodies on', () => {
  let env: ObservedGateway;
  beforeAll(async () => {
    env = await startObservedGateway(POOL_KEY, 'memory', {
      logging: { requestLogSize: 100, bodies: true, bodyBytes: 80, userLabelsInMetrics: false, pretty: false },
    });
  });
  afterAll(async () => {
    await env.close();
  });

  it('keeps both, masked and cut to bodyBytes, and logs neither', async () => {
    const key = await env.gateway.createUserKey('kept');
    registerSecret(key);
    const body = chat(`my key is ${PASTED}, please keep it safe`);
    const sent = await post(env.gateway, key, '/chat/completions', body);
    expect(sent.status).toBe(200);
    const [record] = await keptRecords(env.gateway, 1);

    const json = JSON.stringify(body);
    // Masked first, then cut: a key that straddles the cut is never half shown.
    expect(record?.requestBody).toBe(`${json.replace(PASTED, 'sk-***WXYZ').slice(0, 80)}…[${json.length} bytes]`);
    expect(record?.responseBody).toBe(`${sent.text.slice(0, 80)}…[${Buffer.byteLength(sent.text)} bytes]`);

    const line = env.gateway.logs.find((l) => l.requestId === sent.id && l.msg === 'request');
    expect(line).toBeDefined();
    expect(line).not.toHaveProperty('requestBody');
    expect(line).not.toHaveProperty('responseBody');
  });

  it('describes a binary answer instead of keeping it', async () => {
    const key = await env.gateway.createUserKey('speaker');
    registerSecret(key);
    const sent = await post(env.gateway, key, '/audio/speech', { model: 'gpt-4o-mini-tts', input: 'hello', voice: 'alloy' });
    expect(sent.status).toBe(200);
    const records = await keptRecords(env.gateway, 2);
    expect(records[0]?.responseBody).toBe('[binary, 4096 bytes]');
  });
});
