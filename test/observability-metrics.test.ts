// GET /metrics: Prometheus text that a strict parser reads, whose counters move as requests pass:
// requests by route, status and outcome; time-to-first-byte and duration histograms; tokens and
// cost; quota rejections; in-flight requests and open streams; pool key states; retries. Label values stay
// bounded: no user label unless enabled, ids in routes folded into a template.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS, promptTokens } from '../src/dev/fake-openai-answers.js';
import { startFakeUpstream } from '../src/dev/fake-upstream.js';
import { startGateway } from './helpers/gateway.js';
import { type Family, parsePrometheusText, sampleValue } from './helpers/prometheus-text.js';
import { registerSecret } from './helpers/log-capture.js';
import { SLOW, type ObservedGateway, chat, keptRecords, post, startObservedGateway } from './helpers/observability-fixture.js';
import { until } from './helpers/quota-fixture.js';

const POOL_KEY = 'sk-pool-metrics-0123456789abcdef';

let env: ObservedGateway;
let alice: string;

beforeAll(async () => {
  env = await startObservedGateway(POOL_KEY, 'memory');
  alice = await env.gateway.createUserKey('alice', { limits: { rpm: 3 } });
  registerSecret(alice);
});
afterAll(async () => {
  await env.close();
});

async function scrape(): Promise<Map<string, Family>> {
  const res = await fetch(`${env.gateway.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await res.text());
}

const CHAT_OK = { route: '/v1/chat/completions', status: '200', outcome: 'ok' };

describe('/metrics', () => {
  it('counts requests, timings, tokens and cost as they pass', async () => {
    const before = await scrape();
    const messages = (content: string) => [{ role: 'user', content }];
    expect((await post(env.gateway, alice, '/chat/completions', chat('one'))).status).toBe(200);
    expect((await post(env.gateway, alice, '/chat/completions', chat('two', { stream: true }))).status).toBe(200);
    expect((await post(env.gateway, 'sk-kr-NoSuchKey0123456789abcdefghijklmn', '/chat/completions', chat('x'))).status).toBe(401);
    await keptRecords(env.gateway, 3);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => sampleValue(after, name, labels) - sampleValue(before, name, labels);

    expect(after.get('keyrelay_requests_total')?.type).toBe('counter');
    expect(delta('keyrelay_requests_total', CHAT_OK)).toBe(2);
    expect(delta('keyrelay_requests_total', { route: '/v1/chat/completions', status: '401', outcome: 'auth_failed' })).toBe(1);
    expect(delta('keyrelay_request_duration_seconds_count', { stream: 'false' })).toBe(1);
    expect(delta('keyrelay_request_duration_seconds_count', { stream: 'true' })).toBe(1);
    expect(delta('keyrelay_time_to_first_byte_seconds_count', { stream: 'true' })).toBe(1);
    expect(sampleValue(after, 'keyrelay_request_duration_seconds_bucket', { stream: 'true', le: '+Inf' })).toBe(1);
    const input = promptTokens(messages('one')) + promptTokens(messages('two'));
    expect(delta('keyrelay_tokens_total', { model: 'gpt-4o-mini', kind: 'input' })).toBe(input);
    expect(delta('keyrelay_tokens_total', { model: 'gpt-4o-mini', kind: 'output' })).toBe(2 * FAKE_COMPLETION_TOKENS);
    expect(delta('keyrelay_cost_usd_total', { model: 'gpt-4o-mini' })).toBeGreaterThan(0);
    expect(after.get('keyrelay_tokens_total')?.samples.every((s) => !('user' in s.labels))).toBe(true);
  });

  it('counts quota rejections by code', async () => {
    const before = await scrape();
    let status = 200;
    while (status === 200) status = (await post(env.gateway, alice, '/chat/completions', chat('again'))).status;
    expect(status).toBe(429);
    await until(async () => sampleValue(await scrape(), 'keyrelay_quota_rejections_total', { code: 'rate_limit_exceeded' }) > 0, 'the rejection');
    const after = await scrape();
    expect(sampleValue(after, 'keyrelay_quota_rejections_total', { code: 'rate_limit_exceeded' }) - sampleValue(before, 'keyrelay_quota_rejections_total', { code: 'rate_limit_exceeded' })).toBe(1);
    expect(sampleValue(after, 'keyrelay_requests_total', { route: '/v1/chat/completions', status: '429', outcome: 'quota_rejected' })).toBe(1);
  });

  it('shows a stream in flight while it is open, and none once it ends', async () => {
    const bob = await env.gateway.createUserKey('bob');
    registerSecret(bob);
    const res = await request(`${env.gateway.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bob}`, 'content-type': 'application/json' },
      body: JSON.stringify(chat(SLOW, { stream: true })),
    });
    const ended = new Promise((resolve) => res.body.on('end', resolve));
    await new Promise((resolve) => res.body.once('data', resolve));
    res.body.on('data', () => {});
    const during = await scrape();
    expect(sampleValue(during, 'keyrelay_requests_in_flight')).toBe(1);
    expect(sampleValue(during, 'keyrelay_open_streams')).toBe(1);
    await ended;
    await until(async () => sampleValue(await scrape(), 'keyrelay_open_streams') === 0, 'the stream to close');
    expect(sampleValue(await scrape(), 'keyrelay_requests_in_flight')).toBe(0);
  });

  it('shows each pool key state, folds ids in routes, and is not logged', async () => {
    const scraped = await scrape();
    expect(sampleValue(scraped, 'keyrelay_pool_key_state', { upstream: 'default', key: 'env-1', state: 'active' })).toBe(1);
    expect(sampleValue(scraped, 'keyrelay_pool_key_state', { upstream: 'default', key: 'env-1', state: 'cooling' })).toBe(0);
    await post(env.gateway, alice, '/files/file-abc123/content', {});
    await until(async () => sampleValue(await scrape(), 'keyrelay_requests_total', { route: '/v1/files/{id}/content' }) > 0, 'the files request');
    expect(env.gateway.logs.some((l) => l.route === '/metrics')).toBe(false);
  });

  it('counts retries on another key by the failed attempt, and logs the keys tried', async () => {
    const keys = ['sk-pool-metrics-A-0123456789abcdef', 'sk-pool-metrics-B-0123456789abcdef'];
    keys.forEach(registerSecret);
    const fake = await startFakeUpstream();
    fake.handle((req) => (req.headers.authorization === `Bearer ${keys[0]}` ? { status: 503, body: { error: { message: 'overloaded' } } } : undefined));
    const gateway = await startGateway({ env: { OPENAI_API_KEYS: keys.join(','), KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
    try {
      const key = await gateway.createUserKey('carol');
      registerSecret(key);
      // Round robin: at least one of two requests starts on the failing key.
      for (let i = 0; i < 2; i++) expect((await post(gateway, key, '/chat/completions', chat(`try ${i}`))).status).toBe(200);
      await keptRecords(gateway, 2);
      const scraped = parsePrometheusText(await (await fetch(`${gateway.url}/metrics`)).text());
      const retried = gateway.logs.filter((l) => l.msg === 'request' && l.retries === 1);
      expect(retried.length).toBeGreaterThanOrEqual(1);
      for (const line of retried) expect([line.poolKeyId, line.tried]).toEqual(['env-2', [{ poolKeyId: 'env-1', status: 503 }]]);
      expect(sampleValue(scraped, 'keyrelay_upstream_retries_total', { reason: '503' })).toBe(retried.length);
    } finally {
      await gateway.close();
      await fake.close();
    }
  });
});
