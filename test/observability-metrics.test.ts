// GET /metrics: Prometheus text that a strict parser reads, whose counters move as requests pass:
// requests by route, status and outcome; time-to-first-byte and duration histograms; tokens and
// cost; quota rejections; in-flight requests and open streams; pool key states; retries. Label values stay
// bounded: no user label unless enabled, routes are the spec's path templates. The series every
// request moves read exactly as prom-client's own Counter and Histogram would write them.
import { Counter, Histogram, Registry } from 'prom-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS, promptTokens } from '../src/dev/fake-openai-answers.js';
import { startFakeUpstream } from '../src/dev/fake-upstream.js';
import { createMetrics } from '../src/metrics.js';
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
    await (await fetch(`${env.gateway.url}/v1/files/file-abc123/content`, { headers: { authorization: `Bearer ${alice}` } })).arrayBuffer();
    await until(async () => sampleValue(await scrape(), 'keyrelay_requests_total', { route: '/v1/files/{file_id}/content' }) > 0, 'the files request');
    // A path the spec does not have adds no series of its own.
    await post(env.gateway, alice, '/files/file-abc123/content', {});
    await until(async () => sampleValue(await scrape(), 'keyrelay_requests_total', { route: 'other' }) > 0, 'the unknown request');
    expect(env.gateway.logs.some((l) => l.route === '/metrics')).toBe(false);
  });

  it('counts retries on another key by the failed attempt, and logs the keys tried', async () => {
    const keys = ['sk-pool-metrics-A-0123456789abcdef', 'sk-pool-metrics-B-0123456789abcdef'];
    for (const key of keys) registerSecret(key);
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

describe('the series every request moves', () => {
  const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

  it('read as the Counter and Histogram of prom-client write the same counts', async () => {
    const metrics = createMetrics({ userLabels: true });
    const help = new Map((await metrics.registry.getMetricsAsJSON()).map((m) => [m.name, m.help]));
    const reference = new Registry();
    const about = (name: string) => ({ name, help: help.get(name) ?? '', registers: [reference] });
    const requests = new Counter({ ...about('keyrelay_requests_total'), labelNames: ['route', 'status', 'outcome'] });
    const ttfb = new Histogram({ ...about('keyrelay_time_to_first_byte_seconds'), labelNames: ['stream'], buckets: SECONDS });
    const duration = new Histogram({ ...about('keyrelay_request_duration_seconds'), labelNames: ['stream'], buckets: SECONDS });
    const tokens = new Counter({ ...about('keyrelay_tokens_total'), labelNames: ['model', 'kind', 'user'] });
    const cost = new Counter({ ...about('keyrelay_cost_usd_total'), labelNames: ['model'] });

    const calls: Array<[string, number, string, boolean, number | undefined, number, string, number, number, number, string | undefined]> = [
      ['/v1/chat/completions', 200, 'ok', false, 3.4, 4.1, 'gpt-4o-mini', 25, 12, 0.000011, 'alice'],
      ['/v1/files/{file_id}/content', 404, 'ok', true, 5, 5, 'gpt-4o', 0, 7, 0, undefined],
      ['/v1/chat/completions', 200, 'ok', true, undefined, 301_000, 'gpt-4o-mini', 3, 0, 0.1 + 0.2, 'bob'],
      ['/v1/files/{file_id}/content', 502, 'upstream_error', false, 1000, 2500.5, 'a "quoted"\\ model', 1, 1, 1e-7, 'alice'],
      ['/v1/chat/completions', 200, 'ok', false, 0.001, 0.01, 'gpt-4o-mini', 4, 4, 0.000011, 'alice'],
    ];
    for (const [route, status, outcome, stream, ttfbMs, durationMs, model, input, output, usd, user] of calls) {
      metrics.request(route, status, outcome);
      metrics.timing(stream, ttfbMs, durationMs);
      metrics.usage(model, input, output, usd, user);
      requests.inc({ route, status: String(status), outcome });
      const label = { stream: String(stream) };
      if (ttfbMs !== undefined) ttfb.observe(label, ttfbMs / 1000);
      duration.observe(label, durationMs / 1000);
      const by = user === undefined ? {} : { user };
      if (input > 0) tokens.inc({ model, kind: 'input', ...by }, input);
      if (output > 0) tokens.inc({ model, kind: 'output', ...by }, output);
      if (usd > 0) cost.inc({ model }, usd);
    }
    for (const name of help.keys()) {
      if (!reference.getSingleMetric(name)) continue;
      expect(await metrics.registry.getSingleMetricAsString(name)).toBe(await reference.getSingleMetricAsString(name));
    }
    expect([...help.keys()].filter((name) => reference.getSingleMetric(name))).toHaveLength(5);
  });

  it('counts models past the cap as other, in one series with a model named other', async () => {
    const metrics = createMetrics();
    metrics.usage('other', 1, 0, 0);
    for (let i = 0; i < 250; i++) metrics.usage(`model-${i}`, 1, 0, 0);
    const samples = parsePrometheusText(await metrics.registry.metrics()).get('keyrelay_tokens_total')?.samples ?? [];
    expect(samples).toHaveLength(200);
    expect(samples.filter((s) => s.labels.model === 'other')).toEqual([{ name: 'keyrelay_tokens_total', labels: { model: 'other', kind: 'input' }, value: 52 }]);
  });

  it('starts each series again after a reset of the registry', async () => {
    const metrics = createMetrics();
    metrics.request('/v1/chat/completions', 200, 'ok');
    metrics.timing(false, 1, 2);
    metrics.registry.resetMetrics();
    const empty = parsePrometheusText(await metrics.registry.metrics());
    expect(empty.get('keyrelay_requests_total')?.samples).toEqual([]);
    expect(empty.get('keyrelay_request_duration_seconds')?.samples).toEqual([]);
    metrics.request('/v1/chat/completions', 200, 'ok');
    metrics.timing(false, undefined, 20);
    const again = parsePrometheusText(await metrics.registry.metrics());
    expect(sampleValue(again, 'keyrelay_requests_total', CHAT_OK)).toBe(1);
    expect(sampleValue(again, 'keyrelay_request_duration_seconds_bucket', { stream: 'false', le: '0.01' })).toBe(0);
    expect(sampleValue(again, 'keyrelay_request_duration_seconds_bucket', { stream: 'false', le: '0.025' })).toBe(1);
    expect(sampleValue(again, 'keyrelay_request_duration_seconds_sum', { stream: 'false' })).toBe(0.02);
  });
});
