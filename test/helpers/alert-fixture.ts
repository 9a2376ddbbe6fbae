// The alert tests' common setup: a fake upstream that reports a fixed usage per chat completion,
// so that a user's token windows fill at a known pace, and the calls those tests make.
import { request } from 'undici';
import type { FakeUpstream } from '../../src/dev/fake-upstream.js';
import { ADMIN_TOKEN } from './gateway.js';

/** Makes every chat completion report `tokens` tokens used (half prompt, half completion). */
export function fixedUsage(fake: FakeUpstream, tokens: number): void {
  fake.handle((req) => {
    if (req.path !== '/v1/chat/completions') return undefined;
    const half = Math.floor(tokens / 2);
    return {
      body: {
        id: 'chatcmpl-alerts',
        object: 'chat.completion',
        created: 1,
        model: 'gpt-4o-mini',
        choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, logprobs: null, finish_reason: 'stop' }],
        usage: { prompt_tokens: half, completion_tokens: tokens - half, total_tokens: tokens },
      },
    };
  });
}

/** One small chat completion; resolves its status and how long it took. */
export async function chat(url: string, key: string): Promise<{ status: number; ms: number }> {
  const started = Date.now();
  const res = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 }),
  });
  await res.body.dump();
  return { status: res.statusCode, ms: Date.now() - started };
}

export async function admin(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await request(`${url}/admin${path}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text ? JSON.parse(text) : undefined };
}
