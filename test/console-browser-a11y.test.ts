// What the console promises about access, read from real Chromium against a real gateway: every
// control's accessible name as Chromium's accessibility tree computes it (fields named by a
// <label>, never by a placeholder alone), the keyboard alone signs in, moves between pages and
// leaves every form and in-place question, focus is always visible, times are in the browser's
// zone with UTC on hover, numbers carry the locale's separators, and empty lists say what to do.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObservedGateway } from './helpers/observability-fixture.js';
import { registerSecret } from './helpers/log-capture.js';
import { type Watched, expectCleanConsole, launchChromium, openPage, signIn, startConsoleGateway } from './helpers/console-browser.js';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import type { Config } from '../src/config.js';

let observed: ObservedGateway;
let browser: Browser;
let url: string;
let key = '';
let bigRequest = '';

// One chat the fake upstream answers with a usage past a thousand tokens.
const BIG = 'count many tokens';
const SECRET = 'c3'.repeat(32);
const BIG_USAGE = { prompt_tokens: 100_000, completion_tokens: 23_456, total_tokens: 123_456 };

beforeAll(async () => {
  // A secret to seal the pool keys added at run time (the Upstreams page's Rotate and Remove).
  registerSecret(SECRET);
  observed = await startConsoleGateway({ secret: SECRET } as Partial<Config>);
  url = observed.gateway.url;
  observed.fake.handle((req) => {
    const content = (req.json as { messages?: Array<{ content?: unknown }> } | undefined)?.messages?.[0]?.content;
    if (content !== BIG) return undefined;
    return {
      body: {
        id: 'chatcmpl-big',
        object: 'chat.completion',
        created: 1,
        model: 'gpt-4o-mini',
        choices: [{ index: 0, message: { role: 'assistant', content: 'many' }, finish_reason: 'stop' }],
        usage: BIG_USAGE,
      },
    };
  });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await observed?.close();
});

async function adminPage(options: Parameters<Browser['newContext']>[0] = {}): Promise<{ context: BrowserContext; watched: Watched }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', ...options });
  const watched = await openPage(context);
  await signIn(watched.page, url);
  return { context, watched };
}

/** Goes to a console path and waits until its title is shown and nothing is loading. */
async function open(page: Page, path: string): Promise<void> {
  await page.goto(`${url}/console${path}`);
  await page.locator('h1').waitFor({ timeout: 10_000 });
  await page.getByRole('status').filter({ hasText: 'Loading…' }).first().waitFor({ state: 'detached', timeout: 10_000 });
}

interface Named {
  tag: string;
  text: string;
  ignored: boolean;
  name: string;
  /** Where Chromium took the name from: the winning source of the accessible name computation. */
  from: string;
}

const CONTROLS = 'button, a[href], input:not([type=hidden]), select, textarea';

/** Every control of the page with the accessible name Chromium's accessibility tree gives it. */
async function namesOf(page: Page): Promise<Named[]> {
  const cdp = await page.context().newCDPSession(page);
  try {
    await cdp.send('DOM.enable');
    await cdp.send('Accessibility.enable');
    const { root } = await cdp.send('DOM.getDocument', { depth: 0 });
    const { nodeIds } = await cdp.send('DOM.querySelectorAll', { nodeId: root.nodeId, selector: CONTROLS });
    const out: Named[] = [];
    for (const nodeId of nodeIds) {
      const { node } = await cdp.send('DOM.describeNode', { nodeId });
      const { object } = await cdp.send('DOM.resolveNode', { nodeId });
      const text = await cdp.send('Runtime.callFunctionOn', {
        objectId: object.objectId as string,
        functionDeclaration: 'function () { return (this.innerText || "").replace(/\\s+/g, " ").trim(); }',
        returnByValue: true,
      });
      const { nodes } = await cdp.send('Accessibility.getPartialAXTree', { nodeId, fetchRelatives: false });
      const ax = nodes.find((n) => n.backendDOMNodeId === node.backendNodeId) ?? nodes[0];
      const winner = ax?.name?.sources?.find((s) => s.value !== undefined && !s.superseded && String(s.value.value ?? '') !== '');
      out.push({
        tag: node.localName,
        text: String(text.result.value ?? ''),
        ignored: ax?.ignored ?? true,
        name: String(ax?.name?.value ?? '').trim(),
        from: winner ? [winner.type, winner.attribute, winner.nativeSource].filter(Boolean).join(':') : 'none',
      });
    }
    return out;
  } finally {
    await cdp.detach();
  }
}

/** Asserts the promise of docs/console.md: buttons and links named by their visible text, fields by a label. */
async function expectNamed(page: Page, where: string): Promise<number> {
  const controls = (await namesOf(page)).filter((c) => !c.ignored);
  expect(controls.length, `${where}: controls found`).toBeGreaterThan(0);
  for (const c of controls) {
    const what = `${where}: <${c.tag}> "${c.text}" named "${c.name}" from ${c.from}`;
    expect(c.name, what).not.toBe('');
    if (c.tag === 'button' || c.tag === 'a') {
      expect(c.text, what).not.toBe('');
      expect(c.name.toLowerCase(), what).toContain(c.text.toLowerCase());
    } else {
      // A <label for>, a wrapping <label> or aria-labelledby: visible text, not a placeholder or title.
      expect(c.from, what).toMatch(/^relatedElement(:aria-labelledby|:labelfor|:labelwrapped)/);
    }
  }
  return controls.length;
}

const cellsOf = (page: Page, tableClass: string) => page.locator(`table.${tableClass} tbody tr`);

describe('a fresh gateway: no users, no requests', () => {
  it('says on Users, Requests, Usage and Audit what to do next', async () => {
    const { context, watched } = await adminPage();
    const { page } = watched;
    const expected: Array<[string, RegExp]> = [
      ['/users', /No users yet\. Create one with “Create user”/],
      ['/requests', /No requests logged yet\. Send one to \/v1 with a user key, or try the Playground/],
      ['/usage', /No usage in these days\. Pick a wider range, or send requests with a user key first/],
      ['/audit', /No changes recorded yet\. Creating a user or a key records one here/],
      ['/', /No requests in this period\. Create a user and a key on the Users page/],
    ];
    for (const [path, sentence] of expected) {
      await open(page, path);
      await expect.poll(() => page.locator('p.empty').allTextContents(), { timeout: 10_000 }).toContainEqual(expect.stringMatching(sentence));
    }
    // Usage says it once per table, and each table is empty.
    await open(page, '/usage');
    await expect.poll(() => page.locator('p.empty').count(), { timeout: 10_000 }).toBe(3);
    expectCleanConsole(watched);
    await context.close();
  });
});

describe('with users, keys and requests', () => {
  beforeAll(async () => {
    key = await observed.gateway.createUserKey('alice', { name: 'Alice', limits: { tokensPerDay: 10_000_000 } });
    registerSecret(key);
    const named = await observed.gateway.admin('POST', '/users/alice/keys', { name: 'laptop' });
    registerSecret(named.json.key);
    const res = await fetch(`${observed.gateway.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: BIG }] }),
    });
    await res.arrayBuffer();
    expect(res.status).toBe(200);
    bigRequest = res.headers.get('x-keyrelay-request-id') ?? '';
    // An upstream added at run time, so the Upstreams page has its Rotate and Remove controls too.
    expect((await observed.gateway.admin('POST', '/upstreams', { id: 'spare', baseUrl: observed.fake.baseUrl })).status).toBe(201);
    const spareKey = 'sk-spare-a11y-0123456789abcdef';
    registerSecret(spareKey);
    expect((await observed.gateway.admin('POST', '/upstreams/spare/keys', { id: 'spare-1', key: spareKey })).status).toBe(201);
    // The counters are written in the background: wait until the big request is counted.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const usage = await observed.gateway.admin('GET', `/usage?from=${new Date().toISOString().slice(0, 10)}`);
      if ((usage.json.total?.totalTokens ?? 0) >= BIG_USAGE.total_tokens) break;
      if (Date.now() > deadline) throw new Error(`usage not counted: ${JSON.stringify(usage.json.total)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }, 60_000);

  it('names every control of the sign-in page from its accessibility tree', async () => {
    const context = await browser.newContext({ locale: 'en-US' });
    const page = await context.newPage();
    await page.goto(`${url}/console/`);
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    expect(await expectNamed(page, 'sign-in')).toBeGreaterThanOrEqual(2);
    // The token field's name is its label, not its hint.
    expect(await page.getByRole('textbox', { name: 'Admin token or API key' }).count()).toBe(1);
    await context.close();
  });

  it('names every control of every page, with its forms and questions open', { timeout: 120_000 }, async () => {
    const { context, watched } = await adminPage();
    const { page } = watched;
    const counts: Record<string, number> = {};

    await open(page, '/');
    await page.locator('[data-total="requests"]').waitFor();
    counts.overview = await expectNamed(page, 'Overview');

    await open(page, '/users');
    await page.getByRole('link', { name: 'alice', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByLabel('User id').waitFor();
    counts.users = await expectNamed(page, 'Users');

    await open(page, '/users/alice');
    await page.getByRole('button', { name: 'Revoke laptop' }).waitFor();
    await page.getByRole('button', { name: 'Edit user' }).click();
    await page.getByRole('button', { name: 'Revoke laptop' }).click();
    await page.getByRole('button', { name: 'Revoke laptop now' }).waitFor();
    counts.user = await expectNamed(page, 'user alice');

    await open(page, '/upstreams');
    await page.getByRole('button', { name: 'Rotate spare-1' }).click();
    await page.getByRole('button', { name: 'Add upstream' }).click();
    await page.getByLabel('Upstream id').waitFor();
    counts.upstreams = await expectNamed(page, 'Upstreams');

    await open(page, '/requests');
    await page.getByRole('button', { name: 'Start live tail' }).click();
    await page.locator('table.requests tbody tr').first().waitFor();
    counts.requests = await expectNamed(page, 'Requests');

    await open(page, `/requests/${encodeURIComponent(bigRequest)}`);
    await page.getByText(bigRequest).first().waitFor();
    counts.request = await expectNamed(page, 'a request');

    await open(page, '/usage');
    await page.locator('table.usage-day').waitFor();
    counts.usage = await expectNamed(page, 'Usage');

    await open(page, '/audit');
    await page.locator('table tbody tr').first().waitFor();
    counts.audit = await expectNamed(page, 'Audit');

    await open(page, '/playground');
    await page.getByLabel(/API key/).fill(key);
    await page.getByRole('button', { name: 'Load models' }).click();
    await page.getByLabel('Model').waitFor();
    counts.playground = await expectNamed(page, 'Playground');

    // Each page has its navigation (7 links), the skip link and Sign out at least.
    for (const [name, n] of Object.entries(counts)) expect(n, name).toBeGreaterThanOrEqual(9);
    expectCleanConsole(watched);
    await context.close();
  });

  it('signs in, moves between pages and shows where the focus is, from the keyboard alone', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    const watched = await openPage(context);
    const { page } = watched;
    await page.goto(`${url}/console/`);
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await tabUntil(page, (el) => el.id === 'sign-in-token');
    await page.keyboard.type(ADMIN_TOKEN);
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: 10_000 });
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();

    // The new page's title has the focus, so Tab goes on into the page's content.
    await expect.poll(() => page.evaluate(() => document.activeElement?.id), { timeout: 5_000 }).toBe('page-title');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => !!document.activeElement?.closest('main'))).toBe(true);
    // Back to the skip link: shown on screen while focused, and Enter moves on to the content.
    await tabUntil(page, (el) => el.text === 'Skip to content', 'Shift+Tab');
    const box = await page.evaluate(() => document.activeElement?.getBoundingClientRect().toJSON() as DOMRect);
    expect(box.x).toBeGreaterThanOrEqual(0);
    await page.keyboard.press('Enter');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => !!document.activeElement?.closest('main'))).toBe(true);
    // The navigation: a link by Tab, opened by Enter.
    await tabUntil(page, (el) => el.tag === 'A' && el.text === 'Users' && el.within.includes('nav'));
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Users' }).waitFor({ timeout: 10_000 });
    expect(new URL(page.url()).pathname).toBe('/console/users');
    await expect.poll(() => page.evaluate(() => document.activeElement?.id), { timeout: 5_000 }).toBe('page-title');

    // Every stop of the Tab order on the Requests page shows the focus: its outline or shadow while
    // focused differs from the same element's once the focus has moved on.
    await page.goto(`${url}/console/requests`);
    await page.locator('table.requests tbody tr').first().waitFor({ timeout: 10_000 });
    const stops = await walkTabOrder(page, 40);
    expect(stops.length).toBeGreaterThanOrEqual(10);
    const unchanged = await page.evaluate(() => {
      const seen = (window as unknown as { stops: Array<{ el: Element; look: string }> }).stops;
      const look = (el: Element) => {
        const s = getComputedStyle(el);
        return `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor} ${s.boxShadow}`;
      };
      (document.activeElement as HTMLElement | null)?.blur();
      return seen.filter((stop) => look(stop.el) === stop.look).map((stop) => stop.el.outerHTML.slice(0, 80));
    });
    expect(unchanged).toEqual([]);
    expectCleanConsole(watched);
    await context.close();
  });

  it('has no keyboard trap in the Playground: load models, send and leave, all by keyboard', async () => {
    const { context, watched } = await adminPage();
    const { page } = watched;
    await open(page, '/playground');
    await tabUntil(page, (el) => el.tag === 'INPUT' && el.type === 'password');
    await page.keyboard.type(key);
    await page.keyboard.press('Tab');
    await expect.poll(() => activeText(page), { timeout: 5_000 }).toBe('Load models');
    await page.keyboard.press('Enter');
    await page.getByLabel('Model').waitFor({ timeout: 10_000 });
    await tabUntil(page, (el) => el.tag === 'TEXTAREA');
    // Tab leaves the message box (it types no tab character) and reaches Send; Enter sends.
    await page.keyboard.press('Control+A');
    await page.keyboard.type('hello from the keyboard');
    await page.keyboard.press('Tab');
    await expect.poll(() => activeText(page), { timeout: 5_000 }).toBe('Send');
    await page.keyboard.press('Enter');
    await page.locator('dl.facts a').waitFor({ timeout: 15_000 });
    // Backwards out of the form too.
    await tabUntil(page, (el) => el.tag === 'TEXTAREA', 'Shift+Tab');
    await page.keyboard.press('Shift+Tab');
    expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('SELECT');
    // Forwards past the form and the answer: the focus reaches the request's link, then leaves the page's content.
    await tabUntil(page, (el) => el.within.includes('dl.facts'));
    await tabUntil(page, (el) => !el.within.includes('main'));
    expectCleanConsole(watched);
    await context.close();
  });

  it('asks in place from the keyboard: the question takes the focus, Tab leaves it, Cancel and Escape give the focus back', async () => {
    const { context, watched } = await adminPage();
    const { page } = watched;
    await open(page, '/users/alice');
    await page.getByRole('button', { name: 'Revoke laptop' }).waitFor();
    await tabUntil(page, (el) => el.text === 'Revoke laptop');
    await page.keyboard.press('Enter');
    await expect.poll(() => activeText(page), { timeout: 5_000 }).toBe('Revoke laptop now');
    await page.keyboard.press('Tab');
    await expect.poll(() => activeText(page), { timeout: 5_000 }).toBe('Cancel');
    // Not a trap: Tab goes on past the question, and Shift+Tab comes back.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => !!document.activeElement?.closest('.confirm'))).toBe(false);
    await page.keyboard.press('Shift+Tab');
    await expect.poll(() => activeText(page), { timeout: 5_000 }).toBe('Cancel');
    await page.keyboard.press('Enter');
    await expect.poll(() => activeText(page), { timeout: 5_000 }).toBe('Revoke laptop');
    // Escape answers no as well, and the key is still active.
    await page.keyboard.press('Enter');
    await expect.poll(() => activeText(page), { timeout: 5_000 }).toBe('Revoke laptop now');
    await page.keyboard.press('Escape');
    await expect.poll(() => activeText(page), { timeout: 5_000 }).toBe('Revoke laptop');
    const keys = await observed.gateway.admin('GET', '/users/alice/keys');
    expect(keys.json.data.every((k: { revokedAt?: string | null }) => !k.revokedAt)).toBe(true);
    expectCleanConsole(watched);
    await context.close();
  });

  it('shows a request time in the browser zone (Asia/Kolkata) with the UTC time on hover, and its locale separators (en-IN)', async () => {
    const { context, watched } = await adminPage({ timezoneId: 'Asia/Kolkata', locale: 'en-IN' });
    const { page } = watched;
    const record = (await observed.gateway.admin('GET', `/requests/${encodeURIComponent(bigRequest)}`)).json as { time: string };
    await open(page, '/requests');
    const link = page.locator(`a[href="/console/requests/${encodeURIComponent(bigRequest)}"]`);
    const time = link.locator('time');
    await time.waitFor({ timeout: 10_000 });
    expect(await time.getAttribute('datetime')).toBe(record.time);
    expect(await time.getAttribute('title')).toBe(`${record.time.slice(0, 10)} ${record.time.slice(11, 19)} UTC`);
    const shown = (await time.textContent()) ?? '';
    const [inZone, inUtc] = await page.evaluate((iso) => {
      const as = (timeZone: string) => new Intl.DateTimeFormat('en-IN', { dateStyle: 'medium', timeStyle: 'medium', timeZone }).format(new Date(iso));
      return [as('Asia/Kolkata'), as('UTC')];
    }, record.time);
    expect(shown).toBe(inZone);
    expect(shown).not.toBe(inUtc);
    // Indian grouping: the locale's own separators, not a fixed comma every three digits.
    const row = page.locator('table.requests tbody tr').filter({ has: link });
    await expect.poll(() => row.locator('td.n').allTextContents()).toContain('1,23,456');
    expectCleanConsole(watched);
    await context.close();
  });

  it('writes numbers past a thousand with separators on every page that shows them', async () => {
    const { context, watched } = await adminPage();
    const { page } = watched;
    await open(page, '/');
    await expect.poll(() => page.locator('[data-total="tokens"]').textContent(), { timeout: 10_000 }).toMatch(/^\d{1,3}(,\d{3})+$/);
    expect(Number((await page.locator('[data-total="tokens"]').textContent())?.replace(/,/g, ''))).toBeGreaterThanOrEqual(123_456);
    await page.getByRole('region', { name: 'Top users' }).getByRole('cell', { name: /^\d{3},\d{3}$/ }).first().waitFor();

    await open(page, '/requests');
    await page.locator('table.requests').getByRole('cell', { name: '123,456', exact: true }).first().waitFor({ timeout: 10_000 });

    await open(page, `/requests/${encodeURIComponent(bigRequest)}`);
    await page.getByText('100,000', { exact: true }).waitFor({ timeout: 10_000 });
    await page.getByText('23,456', { exact: true }).waitFor();

    await open(page, '/usage');
    await expect.poll(() => page.locator('table.usage-day [data-total="tokens"]').textContent(), { timeout: 10_000 }).toMatch(/^\d{3},\d{3}$/);
    // alice's input tokens: the 100,000 of the big request and the few of the others.
    expect((await cellsOf(page, 'usage-user').first().locator('td.n').allTextContents())[2]).toMatch(/^100,\d{3}$/);

    await open(page, '/users/alice');
    await page.getByText(/^\d{3},\d{3} of 10,000,000$/).waitFor({ timeout: 10_000 });
    expectCleanConsole(watched);
    await context.close();
  });
});

async function activeText(page: Page): Promise<string> {
  return page.evaluate(() => (document.activeElement?.textContent ?? '').trim());
}

interface Focused {
  tag: string;
  id: string;
  type: string;
  text: string;
  within: string[];
}

/** Presses Tab (or Shift+Tab) until the focused element passes `test`; fails after 60 presses. */
async function tabUntil(page: Page, test: (el: Focused) => boolean, press = 'Tab'): Promise<void> {
  for (let i = 0; i < 60; i++) {
    await page.keyboard.press(press);
    const el = await page.evaluate((): Focused | null => {
      const a = document.activeElement;
      if (!a || a === document.body) return null;
      const within = ['nav', 'main', 'dl.facts', '.confirm', 'form'].filter((selector) => !!a.closest(selector));
      return { tag: a.tagName, id: a.id, type: (a as HTMLInputElement).type ?? '', text: (a.textContent ?? '').trim(), within };
    });
    if (el && test(el)) return;
  }
  throw new Error(`${press} never reached ${test.toString()}`);
}

/** Tabs through the page `max` times, keeping each stop and how it looked while focused. */
async function walkTabOrder(page: Page, max: number): Promise<string[]> {
  await page.evaluate(() => ((window as unknown as { stops: unknown[] }).stops = []));
  const names: string[] = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const name = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return '';
      const stops = (window as unknown as { stops: Array<{ el: Element; look: string }> }).stops;
      if (stops.some((s) => s.el === el)) return '';
      const s = getComputedStyle(el);
      stops.push({ el, look: `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor} ${s.boxShadow}` });
      return el.outerHTML.slice(0, 60);
    });
    if (name) names.push(name);
  }
  return names;
}
