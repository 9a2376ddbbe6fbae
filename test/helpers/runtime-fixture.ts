// Shared by the run-time pool tests: two KEYRELAY_SECRET values, pool key secrets of recognisable
// shape (each registered for the log and answer scans), an admin client for a gateway at any URL
// (an in-process one or a child process) whose every answer is scanned, and a chat request.
import { createHash } from 'node:crypto';
import { ADMIN_TOKEN } from './gateway.js';
import { captureAnswer, registerPoolKey, registerSecret } from './log-capture.js';

export const SECRET_A = 'a1'.repeat(32);
export const SECRET_B = Buffer.alloc(32, 0xb7).toString('base64');
registerSecret(SECRET_A, 'KEYRELAY_SECRET A (runtime-fixture)');
registerSecret(SECRET_B, 'KEYRELAY_SECRET B (runtime-fixture)');

/** A pool key secret for run-time tests: OpenAI-shaped, unique per label, registered for the scans. */
export function runtimeSecret(label: string): string {
  // The last 4 characters come from the label, so that two keys never show the same last 4.
  const tail = createHash('sha256').update(label).digest('hex').slice(0, 4);
  const secret = `sk-rt-${label}-${'Zq8Lm3Np7Rt2Vx6Bc9Df4Gh1Jk5'.slice(0, 24)}${tail}`;
  registerPoolKey(secret, `run-time pool key ${label}`);
  return secret;
}

export interface AdminAnswer {
  status: number;
  json: any;
  text: string;
}

export function adminAt(url: string) {
  return async (method: string, path: string, body?: unknown): Promise<AdminAnswer> => {
    const res = await fetch(`${url}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    captureAnswer(`${method} ${url}/admin${path}`, { status: res.status, headers: res.headers, body: text });
    return { status: res.status, json: text ? JSON.parse(text) : undefined, text };
  };
}

export async function chat(url: string, userKey: string, model = 'gpt-4o-mini', stream = false): Promise<{ status: number; text: string }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 10, stream }),
  });
  const text = await res.text();
  captureAnswer('chat', { status: res.status, headers: res.headers, body: text });
  return { status: res.status, text };
}

/** The secret's fragments a leak would show: every 8-character slice. */
export function fragments(secret: string, size = 8): string[] {
  const out: string[] = [];
  for (let i = 0; i + size <= secret.length; i++) out.push(secret.slice(i, i + size));
  return out;
}
