// Values that clients chose reach the console as text, never as markup: a request whose model and
// user agent hold `<img src=x onerror=alert(1)>` and `</script>` shows them as text on every page
// that lists it, no dialog opens, no element is injected and no script runs; the pages' CSP
// refuses nothing the console itself does (no inline script or style, no eval).
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObservedGateway } from './helpers/observability-fixture.js';
import { type Watched, expectCleanConsole, launchChromium, openPage, signIn, startConsoleGateway } from './helpers/console-browser.js';

const HOSTILE = '<img src=x onerror=alert(1)></script><script>alert(2)</script>';
// A spreadsheet formula as a model name: the CSV keeps it as text.
const FORMULA = "=HYPERLINK(\"http://x.test\",\"y\")";

let observed: ObservedGateway;
let browser: Browser;
let context: BrowserContext;
let watched: Watched;
let requestId = '';

beforeAll(async () => {
  observed = await startConsoleGateway();
  const key = await observed.gateway.createUserKey('mallory', { name: HOSTILE });
  const res = await fetch(`${observed.gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'user-agent': HOSTILE },
    body: JSON.stringify({ model: HOSTILE, messages: [{ role: 'user', content: 'hello' }] }),
  });
  await res.arrayBuffer();
  requestId = res.headers.get('x-keyrelay-request-id') ?? '';
  await fetch(`${observed.gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: FORMULA, messages: [{ role: 'user', content: 'hello' }] }),
  }).then((r) => r.arrayBuffer());
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  watched = await openPage(context);
  await signIn(watched.page, observed.gateway.url);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await observed?.close();
});

/** The page shows the hostile text as text, and holds no element it would have made as markup. */
async function expectInert(path: string, what: RegExp | string): Promise<void> {
  const { page } = watched;
  await page.goto(`${observed.gateway.url}${path}`);
  await page.locator('h1').waitFor();
  await page.getByText(what).first().waitFor({ timeout: 10_000 });
  expect(await page.locator('img[src="x"]').count(), path).toBe(0);
  expect(await page.locator('body script').count(), path).toBe(0);
  expect(await page.evaluate(() => document.body.innerText)).toContain(HOSTILE);
}

describe('hostile values in the console', () => {
  it('are text on the request log, the live tail, the request page, Usage, Overview and the user page; no dialog opens', async () => {
    expect(requestId).not.toBe('');
    await expectInert('/console/requests', HOSTILE);
    await expectInert(`/console/requests/${encodeURIComponent(requestId)}`, HOSTILE);
    await expectInert('/console/usage', HOSTILE);
    await expectInert('/console/users/mallory', HOSTILE);
    await expectInert('/console/users', HOSTILE);

    const { page } = watched;
    await page.goto(`${observed.gateway.url}/console/`);
    await page.getByLabel('Split by').selectOption('model');
    await page.getByText(HOSTILE).first().waitFor({ timeout: 10_000 });
    expect(await page.locator('img[src="x"]').count()).toBe(0);

    // The live tail: a second hostile request while it is on.
    await page.goto(`${observed.gateway.url}/console/requests`);
    await page.getByRole('button', { name: 'Start live tail' }).click();
    await page.getByText('connected', { exact: false }).waitFor({ timeout: 10_000 });
    const keys = await observed.gateway.admin('POST', '/users/mallory/keys', {});
    await fetch(`${observed.gateway.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.json.key}`, 'content-type': 'application/json', 'user-agent': HOSTILE },
      body: JSON.stringify({ model: HOSTILE, messages: [{ role: 'user', content: 'again' }] }),
    }).then((r) => r.arrayBuffer());
    await page.getByRole('log').getByText(HOSTILE).first().waitFor({ timeout: 10_000 });
    expect(await page.locator('img[src="x"]').count()).toBe(0);

    expect(watched.dialogs).toEqual([]);
    expectCleanConsole(watched);
  });

  it('downloads usage as CSV with the hostile names quoted and a formula kept as text', async () => {
    const { page } = watched;
    await page.goto(`${observed.gateway.url}/console/usage`);
    await page.locator('table.usage-model').getByText(FORMULA).waitFor({ timeout: 10_000 });
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download by model as CSV' }).click()]);
    const stream = await download.createReadStream();
    let csv = '';
    for await (const chunk of stream) csv += (chunk as Buffer).toString('utf8');
    expect(csv).toContain(`"${HOSTILE}"`);
    expect(csv).toContain(`"'${FORMULA.replaceAll('"', '""')}"`);
    expect(csv).not.toMatch(/(^|,)"=/m);
    expect(watched.dialogs).toEqual([]);
  });

  it('serves the console with the strict CSP the pages live under', async () => {
    const res = await fetch(`${observed.gateway.url}/console/`);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(await res.text()).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  });
});
