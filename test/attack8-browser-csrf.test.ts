// Attack from another origin's page, in a real browser (Chromium): login CSRF (signing the
// victim's browser in to the attacker's account by a form or a no-cors fetch) and CSRF on /admin
// with the victim's admin session. And the console's own page, whose Referrer-Policy is
// no-referrer, must still sign in and make changes (its POSTs' Origin is checked).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './helpers/chromium.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { type PageServer, startPageServer } from './helpers/page-server.js';

registerSecret(ADMIN_TOKEN);

// The attacker's page: `window.attack(kind, target, token)` fires one cross-site request.
const ATTACK_PAGE = `<!doctype html><title>attacker</title><p>attacker</p>
<script>
window.attack = async (kind, target, token) => {
  if (kind === 'form-text') {
    // enctype text/plain writes name=value: the name and value together are JSON.
    const form = document.createElement('form');
    form.method = 'POST'; form.action = target; form.enctype = 'text/plain'; form.target = 'sink';
    const input = document.createElement('input');
    input.name = '{"token":"' + token + '","x":"'; input.value = '"}';
    form.appendChild(input); document.body.appendChild(form); form.submit();
  } else if (kind === 'form-urlencoded') {
    const form = document.createElement('form');
    form.method = 'POST'; form.action = target; form.target = 'sink';
    const input = document.createElement('input');
    input.name = 'id'; input.value = 'mallory';
    form.appendChild(input); document.body.appendChild(form); form.submit();
  } else {
    await fetch(target, { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: JSON.stringify(token === undefined ? { id: 'mallory' } : { token }) }).catch(() => {});
  }
};
</script><iframe name="sink"></iframe>`;

let gw: TestGateway;
let pages: PageServer;
let browser: Browser;
let root: string;
let attackerKey: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kr-console-'));
  await writeFile(join(root, 'index.html'), '<!doctype html><title>console</title><p>console</p>');
  gw = await startGateway({ consoleRoot: root });
  attackerKey = await gw.createUserKey('attacker');
  registerSecret(attackerKey);
  pages = await startPageServer(ATTACK_PAGE);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await pages?.close();
  await gw?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

async function sessionCookies(context: BrowserContext): Promise<string[]> {
  return (await context.cookies(gw.url)).filter((c) => c.name === 'keyrelay_session').map((c) => c.value);
}

/** Signs the context in as the admin from the console's own page; resolves its CSRF token. */
async function adminSignsIn(context: BrowserContext): Promise<string> {
  const page = await context.newPage();
  await page.goto(`${gw.url}/console/`);
  const answer = await page.evaluate(async (token) => {
    const res = await fetch('/console/api/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) });
    return { status: res.status, json: await res.json() };
  }, ADMIN_TOKEN);
  expect(answer.status).toBe(200);
  registerSecret(answer.json.csrfToken);
  for (const value of await sessionCookies(context)) registerSecret(value);
  await page.close();
  return answer.json.csrfToken as string;
}

async function attack(context: BrowserContext, kind: string, path: string, token?: string): Promise<void> {
  const page = await context.newPage();
  // localhost is another site than 127.0.0.1 for the browser.
  await page.goto(`${pages.origin('localhost')}/`);
  // Wait for the gateway's answer (a form's lands in the frame; a fetch's is awaited) before looking.
  const answered = page.waitForResponse((res) => res.url() === `${gw.url}${path}`, { timeout: 10_000 });
  await page.evaluate(([k, t, tok]) => (window as any).attack(k, t, tok), [kind, `${gw.url}${path}`, token] as const);
  expect((await answered).status()).toBeGreaterThanOrEqual(400);
  await page.close();
}

describe("the console's own page", () => {
  it('signs in and makes a change with its CSRF token, under Referrer-Policy no-referrer', async () => {
    const context = await browser.newContext();
    const csrf = await adminSignsIn(context);
    const page = await context.newPage();
    await page.goto(`${gw.url}/console/users`);
    const made = await page.evaluate(async (token) => {
      const res = await fetch('/admin/users', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': token }, body: JSON.stringify({ id: 'made-by-page' }) });
      return res.status;
    }, csrf);
    expect(made).toBe(201);
    await context.close();
  });
});

describe("another site's page", () => {
  it('cannot sign a browser in to the attacker\'s account, by a text/plain form or a no-cors fetch', async () => {
    for (const kind of ['form-text', 'fetch']) {
      const context = await browser.newContext();
      await attack(context, kind, '/console/api/session', attackerKey);
      expect(await sessionCookies(context)).toEqual([]);
      await context.close();
    }
  });

  it("cannot replace the victim's admin session with the attacker's", async () => {
    const context = await browser.newContext();
    await adminSignsIn(context);
    const before = await sessionCookies(context);
    await attack(context, 'form-text', '/console/api/session', attackerKey);
    await attack(context, 'fetch', '/console/api/session', attackerKey);
    expect(await sessionCookies(context)).toEqual(before);
    await context.close();
  });

  it("cannot change anything on /admin with the victim's admin session", async () => {
    const context = await browser.newContext();
    await adminSignsIn(context);
    await attack(context, 'form-urlencoded', '/admin/users');
    await attack(context, 'fetch', '/admin/users');
    await attack(context, 'form-urlencoded', '/console/api/me/keys');
    expect((await gw.admin('GET', '/users/mallory')).status).toBe(404);
    expect((await gw.admin('GET', '/users')).json.data.map((u: { id: string }) => u.id).sort()).toEqual(['attacker', 'made-by-page']);
    await context.close();
  });
});
