// docs/reliability.md, case 36: newlines, ANSI codes and 100 KB strings in model, user and User-Agent give
// one escaped, truncated log line per request, and the kept request log and the usage report
// hold the same bounded, escaped values.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { capturedLines, registerSecret } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';

const POOL_KEY = 'sk-pool-hostile-0123456789abcdef';
registerSecret(POOL_KEY);

const HUNDRED_KB = 100 * 1024;
// Raw characters that must never reach a line: C0 (newline, ESC, BEL), C1 (CSI), U+2028, bidi.
const RAW_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
// A line stays small whatever was sent: every client value is cut to a few hundred characters.
const LINE_BOUND = 4096;

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
  key = await gateway.createUserKey('hostile');
  registerSecret(key);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});

async function send(model: string, user: string, userAgent: string) {
  const res = await request(`${gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'user-agent': userAgent },
    body: JSON.stringify({ model, user, messages: [{ role: 'user', content: 'hi' }] }),
  });
  await res.body.text();
  return { status: res.statusCode, id: String(res.headers['x-keyrelay-request-id']) };
}

/** The raw text of the one line that names this request. */
async function rawLineOf(id: string): Promise<string> {
  await until(() => capturedLines().some((l) => l.includes(id)), `the line of ${id}`);
  const lines = capturedLines().filter((l) => l.includes(id));
  expect(lines).toHaveLength(1);
  return lines[0] as string;
}

describe('hostile values', () => {
  it('a forged log line in the model, ANSI and 100 KB in the user field, C1 and 60 KB in User-Agent: one escaped, bounded line', async () => {
    // A model name is at most 256 characters (longer is a 400): this one is that long, and still cut.
    const model = `gpt-4o-mini\n{"level":60,"msg":"forged"}\r\n\u001b[31m${'m'.repeat(200)}`;
    const user = `\u2028\u202eevil\u001b]0;title\u0007${'u'.repeat(HUNDRED_KB)}`;
    // Header bytes 0x80-0xff are obs-text: Node reads them as latin1, so 0x9b arrives as U+009B (CSI).
    const userAgent = `agent\u009b2J\u0085${'a'.repeat(60 * 1024)}`;
    const sent = await send(model, user, userAgent);
    const raw = await rawLineOf(sent.id);
    expect(raw.length).toBeLessThan(LINE_BOUND);
    expect(raw).not.toMatch(RAW_CONTROL);
    expect(capturedLines().some((l) => l.includes('"forged"') && !l.includes(sent.id))).toBe(false);

    const line = JSON.parse(raw);
    const escaped = (value: string, start: string, filler: string, length: number) => {
      expect(value.startsWith(`${start}${filler.repeat(20)}`), value.slice(0, 80)).toBe(true);
      expect(value.endsWith(`${filler}…[${length} chars]`), value.slice(-40)).toBe(true);
      expect(value.length).toBeLessThan(400);
    };
    escaped(line.model, 'gpt-4o-mini\\x0a{"level":60,"msg":"forged"}\\x0d\\x0a\\x1b[31m', 'm', model.length);
    escaped(line.endUser, '\\u2028\\u202eevil\\x1b]0;title\\x07', 'u', user.length);
    escaped(line.userAgent, 'agent\\x9b2J\\x85', 'a', userAgent.length);
  });

  it('a relayed request with a hostile model: the kept record and the usage report hold the escaped, bounded model', async () => {
    const model = `gpt-4o-mini\u001b[2J\u009b${'x'.repeat(240)}`;
    const sent = await send(model, 'plain-user', 'plain-agent');
    expect(sent.status).toBe(200);
    const line = JSON.parse(await rawLineOf(sent.id));
    expect(line.outcome).toBe('ok');
    expect(line.model.length).toBeLessThan(300);

    await until(async () => (await gateway.admin('GET', '/requests?user=hostile&limit=10')).json.data.some((r: { requestId: string }) => r.requestId === sent.id), 'the kept record');
    const kept = (await gateway.admin('GET', '/requests?user=hostile&limit=10')).json.data.find((r: { requestId: string }) => r.requestId === sent.id);
    expect(kept).toMatchObject({ model: line.model, endUser: 'plain-user', userAgent: 'plain-agent' });

    const report = await gateway.admin('GET', '/usage?groupBy=model&user=hostile');
    expect(report.json.data.map((d: { model: string }) => d.model)).toContain(line.model);
    for (const d of report.json.data as Array<{ model: string }>) expect(d.model).not.toMatch(RAW_CONTROL);
  });
});
