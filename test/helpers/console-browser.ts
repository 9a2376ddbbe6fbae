// Real Chromium against a real gateway for the console's tests: the gateway on a real Redis with
// the fake upstream (observability-fixture.ts), a browser launched once per file, and the steps
// every test takes (sign in, watch for dialogs and CSP refusals, screenshots).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { expect } from 'vitest';
import type { Config } from '../../src/config.js';
import { ROOT } from './console-build.js';
import { ADMIN_TOKEN } from './gateway.js';
import { type ObservedGateway, startObservedGateway } from './observability-fixture.js';

export const SHOTS = join(ROOT, 'test-output/console');
export const POOL_KEY = 'sk-pool-console-0123456789abcdef';

// One launcher for every browser test (chromium.ts).
export { launchChromium } from './chromium.js';

/** The gateway on a real Redis, with a request log big enough for the tests that fill it. */
export function startConsoleGateway(config: Partial<Config> = {}): Promise<ObservedGateway> {
  return startObservedGateway(POOL_KEY, 'redis', {
    logging: { requestLogSize: 200_000, bodies: false, bodyBytes: 0, userLabelsInMetrics: false, pretty: false },
    ...config,
  } as Partial<Config>);
}

export interface Watched {
  page: Page;
  /** Every dialog a page opened (alert, confirm, prompt): an injected script's first sign. */
  dialogs: string[];
  /** Console errors and page errors: CSP refusals among them. */
  errors: string[];
}

export async function openPage(context: BrowserContext): Promise<Watched> {
  const page = await context.newPage();
  const watched: Watched = { page, dialogs: [], errors: [] };
  page.on('dialog', (dialog) => {
    watched.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    void dialog.dismiss();
  });
  page.on('pageerror', (err) => watched.errors.push(`pageerror: ${err.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') watched.errors.push(message.text());
  });
  return watched;
}

/** Signs in through the form, as a person would: the password field labelled with "token" or "key". */
export async function signIn(page: Page, url: string, token: string = ADMIN_TOKEN): Promise<void> {
  await page.goto(`${url}/console/`);
  await page.getByLabel(/token|key/i).fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: 10_000 });
}

/** Goes to a console page by its link in the navigation, and waits for its title. */
export async function visit(page: Page, name: string, title: string | RegExp = name): Promise<void> {
  await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: title }).waitFor({ timeout: 10_000 });
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** The page's own formatting of a whole number (the browser's locale: thousands separators). */
export function formatted(page: Page, n: number): Promise<string> {
  return page.evaluate((value) => new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 }).format(value), n);
}

/** No CSP refusal and no script error on the page so far. */
export function expectCleanConsole(watched: Watched): void {
  // A 4xx answer the page reads and shows (a refused call) is logged by Chromium as a failed resource.
  const errors = watched.errors.filter((e) => !/Failed to load resource: the server responded with a status of 4\d\d/.test(e));
  expect(errors).toEqual([]);
  expect(watched.dialogs).toEqual([]);
}
