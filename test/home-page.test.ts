// GET / names the gateway's version and its useful routes, as JSON, or as a small page for a
// browser, instead of a 404; it needs no token and hides nothing it should not show.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestGateway, startGateway } from './helpers/gateway.js';

const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
let gateway: TestGateway;
let guarded: TestGateway;

beforeAll(async () => {
  gateway = await startGateway();
  guarded = await startGateway({ config: { metrics: { token: 'metrics-token-0123456789' } } as never });
});
afterAll(async () => {
  await gateway?.close();
  await guarded?.close();
});

const ROUTES = [
  { path: '/v1', what: 'the OpenAI API: give this URL to an OpenAI SDK as its base URL, with a key issued by this gateway (sk-kr-…)' },
  { path: '/healthz', what: 'liveness, no token' },
  { path: '/readyz', what: 'readiness (store reachable, a usable pool key, not saturated, not shutting down), no token' },
  { path: '/metrics', what: 'Prometheus metrics, no token' },
];

describe('GET /', () => {
  it('answers JSON naming the version and the routes, with no token', async () => {
    const res = await fetch(`${gateway.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.headers.get('vary')).toBe('accept');
    expect(await res.json()).toEqual({ name: 'keyrelay', version, routes: ROUTES });
  });

  it('says /metrics needs its token when metrics.token is set', async () => {
    const body = (await (await fetch(`${guarded.url}/`)).json()) as { routes: typeof ROUTES };
    expect(body.routes.at(-1)).toEqual({ path: '/metrics', what: 'Prometheus metrics, with the metrics token' });
  });

  it('answers a small HTML page to a browser, and JSON to a client that prefers it', async () => {
    const browser = await fetch(`${gateway.url}/`, { headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' } });
    expect(browser.status).toBe(200);
    expect(browser.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await browser.text();
    expect(html).toContain(`<title>keyrelay ${version}</title>`);
    expect(html).toContain('<li><code>/v1</code>: the OpenAI API: give this URL to an OpenAI SDK as its base URL, with a key issued by this gateway (sk-kr-…)</li>');
    expect(html).toContain('<li><code>/healthz</code>: liveness, no token</li>');

    const either = await fetch(`${gateway.url}/`, { headers: { accept: 'application/json, text/html' } });
    expect(either.headers.get('content-type')).toBe('application/json; charset=utf-8');
  });

  it('lists neither the admin API nor a console, and paths below / stay a 404 in OpenAI shape', async () => {
    const body = JSON.stringify(await (await fetch(`${gateway.url}/`)).json());
    expect(body).not.toContain('/admin');
    expect(body).not.toContain('/console');
    const res = await fetch(`${gateway.url}/index.html`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: { message: 'Unknown request URL: GET /index.html.', type: 'invalid_request_error', param: null, code: 'unknown_url' },
    });
  });

  it('answers HEAD without a body, and refuses other methods as an unknown URL', async () => {
    const head = await fetch(`${gateway.url}/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const post = await fetch(`${gateway.url}/`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(post.status).toBe(404);
    expect(((await post.json()) as { error: { code: string } }).error.code).toBe('unknown_url');
  });
});
