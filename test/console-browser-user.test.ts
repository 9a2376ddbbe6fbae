// A user signs in to the console with their own sk-kr- key and sees only their own things: their
// requests, usage and keys; another user's request is 404 to them, the admin API 401, and the
// admin's pages are not in their navigation. Their Playground has their key already, in memory.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObservedGateway } from './helpers/observability-fixture.js';
import { registerSecret } from './helpers/log-capture.js';
import { expectCleanConsole, launchChromium, openPage, signIn, startConsoleGateway } from './helpers/console-browser.js';

let observed: ObservedGateway;
let browser: Browser;
let aliceKey = '';
let bobKey = '';
let aliceRequest = '';
let bobRequest = '';

async function chat(key: string, model: string): Promise<string> {
  const res = await fetch(`${observed.gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }] }),
  });
  await res.arrayBuffer();
  expect(res.status).toBe(200);
  return res.headers.get('x-keyrelay-request-id') ?? '';
}

beforeAll(async () => {
  observed = await startConsoleGateway();
  aliceKey = await observed.gateway.createUserKey('alice');
  bobKey = await observed.gateway.createUserKey('bob', { limits: { tokensPerDay: 50_000 } });
  registerSecret(aliceKey);
  registerSecret(bobKey);
  aliceRequest = await chat(aliceKey, 'gpt-4o');
  bobRequest = await chat(bobKey, 'gpt-4o-mini');
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await observed?.close();
});

describe('the console, as a user', () => {
  it('signs in with their key and sees only their own requests, usage and keys', async () => {
    const context = await browser.newContext({ viewport: { width: 375, height: 800 } });
    const watched = await openPage(context);
    const { page } = watched;
    const url = observed.gateway.url;
    await signIn(page, url, bobKey);

    // Their Overview counts their one request, not alice's.
    await expect.poll(() => page.locator('[data-total="requests"]').textContent(), { timeout: 10_000 }).toBe('1');
    const nav = page.getByRole('navigation', { name: 'Pages' });
    for (const name of ['Overview', 'Keys', 'Requests', 'Usage', 'Playground']) await nav.getByRole('link', { name, exact: true }).waitFor();
    for (const name of ['Users', 'Upstreams', 'Audit']) expect(await nav.getByRole('link', { name, exact: true }).count()).toBe(0);

    await nav.getByRole('link', { name: 'Requests', exact: true }).click();
    await page.getByRole('cell', { name: 'gpt-4o-mini' }).first().waitFor({ timeout: 10_000 });
    expect(await page.getByRole('cell', { name: 'gpt-4o', exact: true }).count()).toBe(0);

    await nav.getByRole('link', { name: 'Keys', exact: true }).click();
    await page.getByText(`of ${await page.evaluate(() => new Intl.NumberFormat().format(50000))}`).waitFor({ timeout: 10_000 });

    // Another user's request, and the admin API, from inside the signed-in page.
    await page.goto(`${url}/console/requests/${encodeURIComponent(aliceRequest)}`);
    await page.getByRole('alert').waitFor({ timeout: 10_000 });
    expect(await page.getByText('gpt-4o', { exact: true }).count()).toBe(0);
    const statuses = await page.evaluate(async ([other, own]) => {
      const get = async (path: string) => (await fetch(path)).status;
      return {
        users: await get('/admin/users'),
        requests: await get('/admin/requests'),
        other: await get(`/console/api/me/requests/${other}`),
        own: await get(`/console/api/me/requests/${own}`),
        series: await get('/console/api/me/usage/series?range=day&by=model'),
        seriesByUser: await get('/console/api/me/usage/series?range=day&by=user'),
      };
    }, [aliceRequest, bobRequest]);
    expect(statuses).toEqual({ users: 401, requests: 401, other: 404, own: 200, series: 200, seriesByUser: 400 });

    // The live tail shows their requests as they finish, never another user's.
    await page.goto(`${url}/console/requests`);
    await page.getByRole('button', { name: 'Start live tail' }).click();
    await page.getByText('connected', { exact: false }).waitFor({ timeout: 10_000 });
    await chat(aliceKey, 'gpt-4o');
    await chat(bobKey, 'gpt-4.1');
    await page.getByRole('log').getByRole('cell', { name: 'gpt-4.1', exact: true }).waitFor({ timeout: 10_000 });
    expect(await page.getByRole('log').getByRole('cell', { name: 'gpt-4o', exact: true }).count()).toBe(0);
    await page.goto(`${url}/console/users`);
    await page.getByRole('heading', { level: 1, name: 'Not found' }).waitFor();

    // The Playground holds the key they signed in with, in memory only: a full load forgets it.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(page, url, bobKey);
    await nav.getByRole('link', { name: 'Playground', exact: true }).click();
    expect(await page.getByLabel(/API key/).inputValue()).toBe(bobKey);
    expect(await page.evaluate(() => JSON.stringify({ ...localStorage, ...sessionStorage }) + document.cookie)).not.toContain(bobKey);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Playground' }).waitFor();
    expect(await page.getByLabel(/API key/).inputValue()).toBe('');
    expectCleanConsole(watched);
    await context.close();
  });
});
