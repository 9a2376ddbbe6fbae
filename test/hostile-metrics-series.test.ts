// A hostile client sends hundreds of made-up paths, unauthenticated, to fill the route series of
// /metrics so that real routes fall into `other`, and reads /metrics, open to anyone. Only the
// operations of the spec get a series (src/operations/match.ts); every other path shares `other`;
// `metrics.token` closes /metrics to all but the scraper.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { parsePrometheusText } from './helpers/prometheus-text.js';
import { until } from './helpers/quota-fixture.js';

const POOL_KEY = 'sk-pool-metrics-series-000001';
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  registerSecret(METRICS_TOKEN);
  fake = await startFakeUpstream();
  gateway = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl, KEYRELAY_METRICS_TOKEN: METRICS_TOKEN },
  });
  key = await gateway.createUserKey('alice');
  registerSecret(key);
});

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

async function scrape(): Promise<string> {
  const res = await fetch(`${gateway.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  expect(res.status).toBe(200);
  return res.text();
}

function routes(text: string): Set<string> {
  const family = parsePrometheusText(text).get('keyrelay_requests_total');
  return new Set((family?.samples ?? []).map((s) => s.labels.route as string));
}

describe('/metrics', () => {
  it('answers only with the metrics token, when one is set', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789abcdef', `Bearer ${key}`]) {
      const res = await fetch(`${gateway.url}/metrics`, { headers: authorization ? { authorization } : {} });
      const text = await res.text();
      expect(res.status, authorization).toBe(401);
      expect(JSON.parse(text).error.code, text).toBe('invalid_api_key');
    }
    expect(await scrape()).toContain('keyrelay_requests_total');
  });

  it('keeps a series per operation of the spec, however many made-up paths arrive', async () => {
    for (let i = 0; i < 300; i++) {
      const res = await fetch(`${gateway.url}/v1/made_up_${i}/x${i}`, { method: i % 2 ? 'GET' : 'POST' });
      await res.arrayBuffer();
    }
    await (await fetch(`${gateway.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).arrayBuffer();
    await (await fetch(`${gateway.url}/v1/files/file-abc123`, { headers: { authorization: `Bearer ${key}` } })).arrayBuffer();
    await until(async () => routes(await scrape()).has('/v1/files/{file_id}'), 'the files series');
    const seen = routes(await scrape());
    expect(seen.has('/v1/models')).toBe(true);
    expect(seen.has('other')).toBe(true);
    expect([...seen].filter((r) => r !== 'other' && !r.startsWith('/v1/'))).toEqual([]);
    expect([...seen].some((r) => r.includes('made_up'))).toBe(false);
    expect(seen.size).toBeLessThan(10);
  });
});
