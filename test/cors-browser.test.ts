// A real browser against the gateway (README, "The relay"; docs/browsers.md): Chromium
// on a page of another origin streams a chat answer through the gateway with fetch and with the
// official SDK, reading it as it arrives; a page of an origin not listed is stopped by the browser;
// preflights never reach the upstream; realtime WebSockets open from the listed page only.
// Two origins from one page server: http://localhost:<port> is listed, http://127.0.0.1:<port> not.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sseEvents } from '../src/dev/fake-upstream.js';
import { launchChromium } from './helpers/chromium.js';
import { registerSecret } from './helpers/log-capture.js';
import { type PageServer, startPageServer } from './helpers/page-server.js';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';

const TOKENS = ['One', ' two', ' three', ' four', ' five'];
// Far enough apart that each token reaches the page in a read of its own, even on a busy machine.
const TOKEN_GAP_MS = 250;

let pages: PageServer;
let relay: RelayFixture;
let browser: Browser;
let listed: string;
let unlisted: string;

/** A streamed chat answer, one token per SSE event, TOKEN_GAP_MS apart. */
function streamedChat() {
  const chunk = (delta: object, finish: string | null = null) => ({
    id: 'chatcmpl-browser',
    object: 'chat.completion.chunk',
    created: 0,
    model: 'gpt-4o-mini',
    choices: [{ index: 0, delta, finish_reason: finish }],
  });
  const events = [chunk({ role: 'assistant', content: '' }), ...TOKENS.map((content) => chunk({ content })), chunk({}, 'stop')];
  return { headers: { 'content-type': 'text/event-stream' }, chunks: sseEvents(events, { done: true }), chunkIntervalMs: TOKEN_GAP_MS };
}

/** What the page server's page (test/helpers/page-server.ts) puts on `window`: the SDK's class. */
interface SdkWindow {
  OpenAI: new (options: object) => {
    chat: { completions: { create(body: object): Promise<AsyncIterable<{ choices: Array<{ delta?: { content?: string } }> }>> } };
    models: { list(): Promise<unknown> };
  };
}

async function openPage(origin: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => 'OpenAI' in window);
  return page;
}

const closePage = (page: Page) => page.context().close();

const upstreamPreflights = () => relay.fake.requests.filter((r) => r.method === 'OPTIONS').length;

beforeAll(async () => {
  pages = await startPageServer();
  listed = pages.origin('localhost');
  unlisted = pages.origin('127.0.0.1');
  relay = await startRelay('sk-pool-cors-browser-1', {}, { cors: { origins: [listed] } });
  relay.fake.handle((req) => (req.path === '/v1/chat/completions' && (req.json as { stream?: boolean } | undefined)?.stream ? streamedChat() : undefined));
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await relay?.close();
  await pages?.close();
});

describe('a page of a listed origin', () => {
  it('streams a chat answer with fetch, reading each token as it arrives, and reads the exposed headers', async () => {
    const page = await openPage(listed);
    try {
      const seen = await page.evaluate(
        async ({ base, key }) => {
          const res = await fetch(`${base}/chat/completions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-stainless-lang': 'js', 'x-stainless-retry-count': '0' },
            body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'count' }] }),
          });
          const reader = (res.body as ReadableStream<Uint8Array>).getReader();
          const decoder = new TextDecoder();
          const reads: string[] = [];
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            reads.push(decoder.decode(value, { stream: true }));
          }
          return {
            status: res.status,
            requestId: res.headers.get('x-request-id'),
            gatewayId: res.headers.get('x-keyrelay-request-id'),
            limit: res.headers.get('x-ratelimit-limit-requests'),
            reads,
          };
        },
        { base: relay.gateway.baseUrl, key: relay.userKey },
      );
      expect(seen.status).toBe(200);
      expect(seen.requestId).toBeTruthy();
      expect(seen.gatewayId).toMatch(/^[0-9a-f-]{36}$/);
      // Each token came in a read of its own, in order: the page saw the answer as it was made.
      const tokensPerRead = seen.reads.map((text) => TOKENS.filter((token) => text.includes(`"content":"${token}"`)));
      const withTokens = tokensPerRead.filter((found) => found.length > 0);
      expect(withTokens.length).toBeGreaterThanOrEqual(3);
      expect(withTokens.flat()).toEqual(TOKENS);
      expect(seen.reads.join('')).toContain('data: [DONE]');
      // The browser asked first (authorization makes it a preflighted request); the gateway answered.
      expect(relay.gateway.logs.some((l) => l.method === 'OPTIONS' && l.status === 204)).toBe(true);
      expect(upstreamPreflights()).toBe(0);
    } finally {
      await closePage(page);
    }
  }, 120_000);

  it('streams with the official SDK (its x-stainless-* headers pass the preflight)', async () => {
    const page = await openPage(listed);
    try {
      const tokens = await page.evaluate(
        async ({ base, key }) => {
          const OpenAI = (window as unknown as SdkWindow).OpenAI;
          const client = new OpenAI({ apiKey: key, baseURL: base, dangerouslyAllowBrowser: true, maxRetries: 0 });
          const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'count' }] });
          const out: string[] = [];
          for await (const chunk of stream) out.push(chunk.choices[0]?.delta?.content ?? '');
          return out.filter(Boolean);
        },
        { base: relay.gateway.baseUrl, key: relay.userKey },
      );
      expect(tokens).toEqual(TOKENS);
      expect(upstreamPreflights()).toBe(0);
    } finally {
      await closePage(page);
    }
  }, 120_000);

  it("reads the gateway's own refusal of a key whose user allows other pages (403 origin_not_allowed)", async () => {
    const key = await relay.gateway.createUserKey('browser-elsewhere-user', { origins: ['https://elsewhere.example'] });
    registerSecret(key);
    const page = await openPage(listed);
    try {
      const sent = relay.fake.requests.length;
      const error = await page.evaluate(
        async ({ base, key }) => {
          const OpenAI = (window as unknown as SdkWindow).OpenAI;
          const client = new OpenAI({ apiKey: key, baseURL: base, dangerouslyAllowBrowser: true, maxRetries: 0 });
          try {
            await client.models.list();
            return undefined;
          } catch (err) {
            const e = err as { status?: number; code?: string; constructor: { name: string } };
            return { status: e.status, code: e.code, name: e.constructor.name };
          }
        },
        { base: relay.gateway.baseUrl, key },
      );
      expect(error).toEqual({ status: 403, code: 'origin_not_allowed', name: 'PermissionDeniedError' });
      expect(relay.fake.requests.length).toBe(sent);
    } finally {
      await closePage(page);
    }
  }, 120_000);

  it('opens a realtime WebSocket with the key as subprotocol', async () => {
    const page = await openPage(listed);
    try {
      const first = await page.evaluate(
        ({ url, key }) =>
          new Promise<string>((resolve, reject) => {
            const ws = new WebSocket(url, ['realtime', `openai-insecure-api-key.${key}`]);
            ws.onmessage = (event) => {
              resolve(String(event.data));
              ws.close();
            };
            ws.onclose = () => reject(new Error('closed before a message'));
          }),
        { url: `${relay.gateway.baseUrl.replace('http://', 'ws://')}/realtime?model=gpt-4o-realtime-preview`, key: relay.userKey },
      );
      expect(JSON.parse(first).type).toBe('session.created');
    } finally {
      await closePage(page);
    }
  }, 120_000);
});

describe('a page of an origin not listed', () => {
  it('is stopped by the browser: fetch and the SDK fail, and nothing reaches the upstream', async () => {
    const page = await openPage(unlisted);
    try {
      const sent = relay.fake.requests.length;
      const outcome = await page.evaluate(
        async ({ base, key }) => {
          let fetched: string;
          try {
            const res = await fetch(`${base}/chat/completions`, {
              method: 'POST',
              headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
              body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
            });
            fetched = `answered ${res.status}`;
          } catch (err) {
            fetched = (err as Error).name;
          }
          const OpenAI = (window as unknown as SdkWindow).OpenAI;
          const client = new OpenAI({ apiKey: key, baseURL: base, dangerouslyAllowBrowser: true, maxRetries: 0 });
          let sdk: string;
          try {
            await client.models.list();
            sdk = 'answered';
          } catch (err) {
            sdk = (err as Error).constructor.name;
          }
          return { fetched, sdk };
        },
        { base: relay.gateway.baseUrl, key: relay.userKey },
      );
      expect(outcome).toEqual({ fetched: 'TypeError', sdk: 'APIConnectionError' });
      expect(relay.fake.requests.length).toBe(sent);
      expect(relay.gateway.logs.some((l) => l.method === 'OPTIONS' && l.status === 403 && l.errorCode === 'origin_not_allowed')).toBe(true);
      expect(upstreamPreflights()).toBe(0);
    } finally {
      await closePage(page);
    }
  }, 120_000);

  it('cannot open a realtime WebSocket: refused before the 101, no upstream connection', async () => {
    const page = await openPage(unlisted);
    try {
      const before = relay.fake.wsConnections.length;
      const outcome = await page.evaluate(
        ({ url, key }) =>
          new Promise<string>((resolve) => {
            const ws = new WebSocket(url, ['realtime', `openai-insecure-api-key.${key}`]);
            ws.onopen = () => resolve('opened');
            ws.onclose = (event) => resolve(`closed ${event.code}`);
          }),
        { url: `${relay.gateway.baseUrl.replace('http://', 'ws://')}/realtime?model=gpt-4o-realtime-preview`, key: relay.userKey },
      );
      expect(outcome).toBe('closed 1006');
      expect(relay.fake.wsConnections.length).toBe(before);
      expect(relay.gateway.logs.some((l) => l.msg === 'websocket refused' && l.code === 'origin_not_allowed')).toBe(true);
    } finally {
      await closePage(page);
    }
  }, 120_000);
});
