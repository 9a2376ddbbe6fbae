// "Does this key work from here?": one `GET /models` with the key, through the egress its requests
// would take (its own proxy, its upstream's, the settings'). The answer names the models the key
// sees and, when it fails, why, with the key masked wherever the upstream quoted it. Nothing about
// the key's health changes: a test is the admin's question, not traffic. At Azure the key goes as
// `api-key`: the v1 API lists at `…/openai/v1/models`, the classic one at
// `…/openai/models?api-version=…` (the models the resource offers, not its deployments).
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { PoolKey, Upstream } from '../pool/pool.js';
import { poolKeyHeaders } from './credentials.js';
import { mapUpstreamError } from './upstream-errors.js';
import { withApiVersion } from './upstream-target.js';

export interface KeyTestResult {
  ok: boolean;
  /** The upstream's status; null when no answer came. */
  status: number | null;
  latencyMs: number;
  /** The model ids the answer listed (at most MAX_MODELS); empty when it failed. */
  models: string[];
  error: { code: string; message: string } | null;
}

const TIMEOUT_MS = 15_000;
const MAX_BODY = 4 * 1024 * 1024;
const MAX_MODELS = 1000;

export interface KeyTestDeps {
  dispatcher: Dispatcher;
  /** Masks key material in the upstream's words (src/relay/mask.ts) */
  mask: (text: string) => string;
}

async function readCapped(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) {
      body.destroy();
      break;
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function testKey(upstream: Upstream, key: PoolKey, deps: KeyTestDeps): Promise<KeyTestResult> {
  const hide = (text: string): string => deps.mask(key.secret.length >= 4 ? text.split(key.secret).join('***') : text);
  const headers: Record<string, string> = { ...poolKeyHeaders(upstream, key), accept: 'application/json' };
  const version = upstream.azure?.apiVersion;
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  try {
    const answer = await deps.dispatcher.request({
      origin: upstream.origin,
      path: `${upstream.basePath}/models${version === undefined ? '' : withApiVersion('', version)}`,
      method: 'GET',
      headers,
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    const text = await readCapped(answer.body);
    const latencyMs = latency();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (answer.statusCode >= 200 && answer.statusCode < 300) {
      const data = (parsed as { data?: unknown } | undefined)?.data;
      const models = Array.isArray(data) ? data.flatMap((m) => (typeof (m as { id?: unknown })?.id === 'string' ? [(m as { id: string }).id] : [])).slice(0, MAX_MODELS) : [];
      return { ok: true, status: answer.statusCode, latencyMs, models, error: null };
    }
    const upstreamError = (parsed as { error?: { message?: unknown; code?: unknown } } | undefined)?.error;
    const message = typeof upstreamError?.message === 'string' ? upstreamError.message : `The upstream answered ${answer.statusCode}.`;
    const code = typeof upstreamError?.code === 'string' ? upstreamError.code : `http_${answer.statusCode}`;
    return { ok: false, status: answer.statusCode, latencyMs, models: [], error: { code: hide(code).slice(0, 100), message: hide(message).slice(0, 1000) } };
  } catch (err) {
    // The test's own deadline is the upstream's slowness, like any other timeout.
    const error = (err as Error).name === 'TimeoutError' ? { code: 'upstream_timeout', message: 'The upstream did not answer in time.' } : mapUpstreamError(err);
    const { code, message } = error;
    return { ok: false, status: null, latencyMs: latency(), models: [], error: { code, message: hide(message) } };
  }
}
