// GET /: what a person who opens the gateway's address finds, in place of a 404. It names the
// version and the routes worth knowing, as JSON, or as a small page when a browser asks for HTML.
// It needs no token and says nothing a request to those routes would not show.
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

export interface HomeRoute {
  path: string;
  what: string;
}

export interface Home {
  name: 'keyrelay';
  version: string;
  routes: HomeRoute[];
}

// package.json sits two levels up from both src/plugins and dist/plugins.
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function homeOf(options: { metricsToken?: string }): Home {
  const routes: HomeRoute[] = [
    { path: '/v1', what: 'the OpenAI API: give this URL to an OpenAI SDK as its base URL, with a key issued by this gateway (sk-kr-…)' },
    { path: '/healthz', what: 'liveness, no token' },
    { path: '/readyz', what: 'readiness (store reachable, a usable pool key, not saturated, not shutting down), no token' },
    { path: '/metrics', what: options.metricsToken ? 'Prometheus metrics, with the metrics token' : 'Prometheus metrics, no token' },
  ];
  // A web console, when there is one, is listed here too (`/console/`).
  return { name: 'keyrelay', version: VERSION, routes };
}

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

function page(home: Home): string {
  const items = home.routes.map((r) => `<li><code>${escapeHtml(r.path)}</code>: ${escapeHtml(r.what)}</li>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>keyrelay ${escapeHtml(home.version)}</title></head>
<body><h1>keyrelay ${escapeHtml(home.version)}</h1>
<p>A relay gateway for the OpenAI API.</p>
<ul>
${items}
</ul></body></html>
`;
}

/** True when the client prefers HTML to JSON (a browser); a missing or `*\/*` Accept gets JSON. */
function wantsHtml(accept: string | undefined): boolean {
  if (!accept) return false;
  const html = accept.indexOf('text/html');
  if (html === -1) return false;
  const json = accept.indexOf('application/json');
  return json === -1 || html < json;
}

export async function homePlugin(app: FastifyInstance, options: { metricsToken?: string }): Promise<void> {
  const home = homeOf(options);
  const html = page(home);
  app.get('/', async (request, reply) => {
    reply.header('vary', 'accept').header('cache-control', 'no-store');
    if (wantsHtml(request.headers.accept)) return reply.type('text/html; charset=utf-8').send(html);
    return reply.type('application/json; charset=utf-8').send(home);
  });
}
