// The console in real Chromium against a real gateway (real Redis, the fake upstream): an admin
// signs in, creates a user with limits and a key (shown once, gone after a reload), streams a chat
// with that key in the Playground and sees the tokens arrive one by one, sees the request in the
// live tail, reads the same numbers on Overview and Usage as GET /admin/usage, revokes the key,
// and the next call with it fails. Screenshots of every page at 375 px and 1280 px.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObservedGateway } from './helpers/observability-fixture.js';
import { sseEvents } from '../src/dev/fake-upstream.js';
import { registerSecret } from './helpers/log-capture.js';
import { type Watched, expectCleanConsole, formatted, launchChromium, openPage, screenshot, signIn, startConsoleGateway, visit } from './helpers/console-browser.js';

let observed: ObservedGateway;
let browser: Browser;
let context: BrowserContext;
let admin: Watched;
let url: string;
let key = '';

// The chat the Playground streams: 30 words, one every 40 ms, then the usage the client asked for.
const WORDS = 'thirty words, slowly';
function wordStream(): object {
  const base = { id: 'chatcmpl-words', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini' };
  const words = Array.from({ length: 30 }, (_, i) => ({ ...base, choices: [{ index: 0, delta: { content: ` word${i}` }, finish_reason: null }] }));
  const usage = { ...base, choices: [], usage: { prompt_tokens: 9, completion_tokens: 30, total_tokens: 39 } };
  return { headers: { 'content-type': 'text/event-stream' }, chunks: sseEvents([...words, usage], { done: true }), chunkIntervalMs: 40 };
}

beforeAll(async () => {
  observed = await startConsoleGateway();
  url = observed.gateway.url;
  observed.fake.handle((req) => {
    const content = (req.json as { messages?: Array<{ content?: unknown }> } | undefined)?.messages?.[0]?.content;
    return content === WORDS ? wordStream() : undefined;
  });
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });
  admin = await openPage(context);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await observed?.close();
});

const today = () => new Date().toISOString().slice(0, 10);

async function chatWith(userKey: string): Promise<number> {
  const res = await fetch(`${observed.gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] }),
  });
  await res.arrayBuffer();
  return res.status;
}

describe('the console, as an admin', () => {
  it('signs in with the admin token through the form', async () => {
    await signIn(admin.page, url);
    await admin.page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    expectCleanConsole(admin);
  });

  it('creates a user with limits', async () => {
    const { page } = admin;
    await visit(page, 'Users');
    await page.getByText('No users yet').waitFor();
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByLabel('User id').fill('alice');
    await page.getByLabel('Name', { exact: true }).fill('Alice Example');
    await page.getByLabel('Tokens per day').fill('100000');
    await page.getByLabel('Requests per minute').fill('60');
    await page.getByLabel('US dollars per month').fill('5');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'User alice' }).waitFor();
    const stored = await observed.gateway.admin('GET', '/users/alice');
    expect(stored.json.limits).toEqual({ tokensPerDay: 100000, rpm: 60, usdPerMonth: 5 });
    expect(stored.json.name).toBe('Alice Example');
    await page.getByText(`of ${await formatted(page, 100000)}`).waitFor();
  });

  it('creates a key, shows it once with a copy button, and never again after a reload', async () => {
    const { page } = admin;
    await page.getByLabel('Key name (optional)').fill('laptop');
    await page.getByRole('button', { name: 'Create key' }).click();
    const shown = page.getByRole('status').locator('output');
    key = (await shown.textContent({ timeout: 10_000 })) ?? '';
    expect(key).toMatch(/^sk-kr-[A-Za-z0-9]{32,}$/);
    registerSecret(key);
    await page.getByRole('button', { name: 'Copy key' }).click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(key);
    // Kept nowhere in the browser.
    const kept = await page.evaluate(() => JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie }));
    expect(kept).not.toContain(key);

    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'User alice' }).waitFor();
    await page.getByRole('cell', { name: /laptop/ }).first().waitFor();
    expect(await page.content()).not.toContain(key);
    expect(await page.content()).not.toContain(key.slice(10));
  });

  it('streams a chat in the Playground with that key: tokens arrive one by one, and the request shows in the live tail', async () => {
    // A second tab with the live tail on, before the call.
    const tail = await openPage(context);
    await tail.page.goto(`${url}/console/requests`);
    await tail.page.getByRole('button', { name: 'Start live tail' }).click();
    await tail.page.getByText('connected', { exact: false }).waitFor({ timeout: 10_000 });

    const { page } = admin;
    await visit(page, 'Playground');
    await page.getByLabel(/API key/).fill(key);
    await page.getByRole('button', { name: 'Load models' }).click();
    await page.getByLabel('Model').selectOption('gpt-4o-mini');
    await page.getByLabel('Message').fill(WORDS);
    // Every change of the answer's text, as the page makes it.
    await page.evaluate(() => {
      const answer = document.querySelector('pre.answer') as HTMLElement;
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      new MutationObserver(() => seen.push(answer.textContent ?? '')).observe(answer, { childList: true, characterData: true, subtree: true });
    });
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await page.getByText('word29').waitFor({ timeout: 20_000 });
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    const distinct = [...new Set(seen)];
    // 30 words, one every 40 ms: the text grew many times, by a word at a time.
    expect(distinct.length).toBeGreaterThanOrEqual(10);
    expect(distinct.some((text) => text.includes('word3') && !text.includes('word25'))).toBe(true);
    for (let i = 1; i < distinct.length; i++) expect((distinct[i] as string).startsWith(distinct[i - 1] as string)).toBe(true);
    await expect.poll(() => page.locator('[data-fact="ttfb"]').textContent(), { timeout: 5_000 }).toMatch(/ms$/);
    await expect.poll(() => page.locator('[data-fact="tokens"]').textContent(), { timeout: 5_000 }).toBe(`${await formatted(page, 9)} / ${await formatted(page, 30)}`);
    await expect.poll(() => page.locator('[data-fact="cost"]').textContent(), { timeout: 15_000 }).toMatch(/\$/);

    // In the tail within a few seconds of finishing: a row of alice's.
    await tail.page.getByRole('log').getByRole('cell', { name: 'alice' }).first().waitFor({ timeout: 10_000 });
    expectCleanConsole(tail);
    await tail.page.close();
  });

  it('shows on Overview and Usage the numbers GET /admin/usage answers', { timeout: 60_000 }, async () => {
    const { page } = admin;
    for (let i = 0; i < 3; i++) expect(await chatWith(key)).toBe(200);
    const month = new Date(Date.now() - 29 * 86_400_000).toISOString().slice(0, 10);
    // The counters are written in the background: wait until they hold every request of the log
    // (the Playground's model list and chat, and the three above).
    let usage: { json: { total: { requests: number; totalTokens: number; costUsd: number } } } = { json: { total: { requests: 0, totalTokens: 0, costUsd: 0 } } };
    await expect
      .poll(async () => {
        usage = await observed.gateway.admin('GET', `/usage?from=${month}&to=${today()}`);
        const log = await observed.gateway.admin('GET', '/requests?user=alice&limit=1000');
        return usage.json.total.requests === log.json.data.length && usage.json.total.requests >= 4;
      }, { timeout: 10_000 })
      .toBe(true);

    await visit(page, 'Overview');
    await page.getByLabel('Period', { exact: true }).selectOption('month');
    await expect.poll(() => page.locator('[data-total="requests"]').textContent(), { timeout: 10_000 }).toBe(await formatted(page, usage.json.total.requests));
    expect(await page.locator('[data-total="tokens"]').textContent()).toBe(await formatted(page, usage.json.total.totalTokens));
    await page.getByRole('region', { name: 'Top users' }).getByRole('link', { name: 'alice' }).waitFor();

    await visit(page, 'Usage');
    await page.getByLabel('From (UTC day)').fill(month);
    const byDay = page.locator('table.usage-day');
    await expect.poll(() => byDay.locator('[data-total="requests"]').textContent(), { timeout: 10_000 }).toBe(await formatted(page, usage.json.total.requests));
    expect(await byDay.locator('[data-total="tokens"]').textContent()).toBe(await formatted(page, usage.json.total.totalTokens));
    const byUser = page.locator('table.usage-user');
    await byUser.getByRole('cell', { name: 'alice', exact: true }).waitFor();
    // The CSV holds the same rows.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download by day as CSV' }).click()]);
    const csv = await new Promise<string>((resolve, reject) => {
      void download.createReadStream().then((stream) => {
        let text = '';
        stream.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
        stream.on('end', () => resolve(text));
        stream.on('error', reject);
      }, reject);
    });
    expect(csv.split('\r\n')[0]).toBe('"Day (UTC)","Requests","Errors","Input tokens","Output tokens","Total tokens","Cost (USD)"');
    expect(csv).toContain(`"total","${usage.json.total.requests}"`);
  });

  it('revokes the key, after which the next call with it fails', async () => {
    const { page } = admin;
    expect(await chatWith(key)).toBe(200);
    await page.goto(`${url}/console/users/alice`);
    await page.getByRole('button', { name: 'Revoke laptop' }).click();
    await page.getByRole('button', { name: 'Revoke laptop now' }).click();
    await page.getByRole('cell', { name: /^revoked/ }).waitFor({ timeout: 10_000 });
    expect(await chatWith(key)).toBe(401);
    expectCleanConsole(admin);
  });

  it('lays out every page from 375 px to desktop, and writes screenshots of each', async () => {
    const pages: Array<[string, string]> = [
      ['overview', '/console/'],
      ['users', '/console/users'],
      ['user', '/console/users/alice'],
      ['upstreams', '/console/upstreams'],
      ['requests', '/console/requests'],
      ['usage', '/console/usage'],
      ['audit', '/console/audit'],
      ['playground', '/console/playground'],
    ];
    const { page } = admin;
    const records = await observed.gateway.admin('GET', '/requests?limit=1');
    pages.push(['request', `/console/requests/${encodeURIComponent(records.json.data[0].requestId)}`]);
    for (const width of [375, 1280]) {
      await page.setViewportSize({ width, height: 900 });
      for (const [name, path] of pages) {
        await page.goto(`${url}${path}`);
        await page.locator('h1').waitFor();
        await page.getByRole('status').filter({ hasText: 'Loading…' }).first().waitFor({ state: 'detached', timeout: 10_000 });
        // Nothing wider than the screen but what scrolls inside its own box (tables).
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        expect(overflow, `${name} at ${width} px`).toBeLessThanOrEqual(0);
        await screenshot(page, `${name}-${width}`);
      }
    }
    expectCleanConsole(admin);
  }, 180_000);
});
