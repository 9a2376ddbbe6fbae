// The Requests page over a big log: 100,000 requests written through the store's request log (the
// Redis Stream every gateway process shares). The page asks the gateway for one page at a time:
// its first page shows in a few seconds, and paging on keeps the page's JS heap under 100 MB.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createMetrics } from '../src/metrics.js';
import { createObservability } from '../src/observability/index.js';
import type { RequestRecord } from '../src/observability/record.js';
import type { ObservedGateway } from './helpers/observability-fixture.js';
import { capturingLogger } from './helpers/log-capture.js';
import { expectCleanConsole, launchChromium, openPage, signIn, startConsoleGateway } from './helpers/console-browser.js';

const COUNT = 100_000;
const MB = 1024 * 1024;
let observed: ObservedGateway;
let browser: Browser;

/** Writes COUNT records into the gateway's Redis request log, through the log store itself. */
async function seed(redisUrl: string): Promise<void> {
  const config = loadConfig({ KEYRELAY_CONFIG: undefined, REDIS_URL: redisUrl }, { logging: { requestLogSize: 200_000, bodies: false, bodyBytes: 0, userLabelsInMetrics: false, pretty: false } } as never);
  const observability = createObservability(config, capturingLogger('warn'), createMetrics());
  const start = Date.now() - COUNT * 10;
  for (let i = 0; i < COUNT; i++) {
    const record: RequestRecord = {
      requestId: `req_seed${String(i).padStart(8, '0')}`,
      time: new Date(start + i * 10).toISOString(),
      userId: `user${i % 50}`,
      keyId: `key_seed${i % 50}`,
      poolKeyId: 'env-1',
      upstream: 'default',
      method: 'POST',
      route: '/v1/chat/completions',
      operation: 'createChatCompletion',
      model: i % 3 ? 'gpt-4o-mini' : 'gpt-4o',
      stream: i % 2 === 0,
      status: i % 20 ? 200 : 429,
      outcome: i % 20 ? 'ok' : 'quota_rejected',
      retries: 0,
      ttfbMs: 120,
      durationMs: 340,
      tokens: { input: 12, cachedInput: 0, output: 30, estimated: false },
      costMicros: 27,
      bytesOut: 900,
    };
    observability.requests.append(record);
    // The writer keeps at most 10,000 records waiting; flushing every 5,000 never drops one.
    if (i % 5000 === 4999) await observability.requests.flush();
  }
  await observability.requests.flush();
  await observability.close();
}

beforeAll(async () => {
  observed = await startConsoleGateway();
  await seed(observed.redis?.url as string);
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await observed?.close();
});

describe('the Requests page over 100,000 requests', () => {
  it('shows its first page quickly and keeps the JS heap under 100 MB while paging', async () => {
    const newest = await observed.gateway.admin('GET', '/requests?limit=1');
    expect(newest.json.data[0].requestId).toBe(`req_seed${String(COUNT - 1).padStart(8, '0')}`);

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const watched = await openPage(context);
    const { page } = watched;
    await signIn(page, observed.gateway.url);
    const started = Date.now();
    await page.goto(`${observed.gateway.url}/console/requests`);
    await page.getByRole('region', { name: 'Request log' }).getByRole('row').nth(50).waitFor({ timeout: 10_000 });
    // A generous bound that still fails on a page that reads the whole log.
    expect(Date.now() - started).toBeLessThan(10_000);

    const cdp = await context.newCDPSession(page);
    const heap = async () => {
      await cdp.send('HeapProfiler.collectGarbage');
      return ((await cdp.send('Runtime.getHeapUsage')) as { usedSize: number }).usedSize;
    };
    const sizes: number[] = [await heap()];
    const firstTime = await page.getByRole('region', { name: 'Request log' }).locator('time').first().getAttribute('datetime');
    for (let i = 0; i < 30; i++) {
      const before = await page.getByRole('region', { name: 'Request log' }).locator('time').first().getAttribute('datetime');
      await page.getByRole('button', { name: 'Next page' }).click();
      await expect.poll(() => page.getByRole('region', { name: 'Request log' }).locator('time').first().getAttribute('datetime'), { timeout: 10_000 }).not.toBe(before);
      if (i % 10 === 9) sizes.push(await heap());
    }
    const lastTime = await page.getByRole('region', { name: 'Request log' }).locator('time').first().getAttribute('datetime');
    // Thirty pages of fifty further back in time.
    expect(Date.parse(lastTime ?? '')).toBeLessThan(Date.parse(firstTime ?? ''));
    for (const size of sizes) expect(size).toBeLessThan(100 * MB);
    expectCleanConsole(watched);
    await context.close();
  }, 120_000);
});
