// One client request of bench/chaos.js and the judgement of its answer: a complete 200 JSON, a
// complete stream (ending in [DONE], or in one SSE error event), or an OpenAI-shaped error with a
// status and code of the README's error table. Anything else, and any request still open at its
// deadline, is a failure.

/** The status and code pairs a client may be answered with (README, Errors), and the upstream's
 * own errors that the chaos upstream sends (passed on as they came when every attempt failed). */
const DOCUMENTED = new Set([
  '401 invalid_api_key',
  '429 rate_limit_exceeded',
  '429 insufficient_quota',
  '500 null', // the upstream's own 500, passed on
  '502 upstream_proxy_error',
  '502 upstream_unreachable',
  '502 upstream_invalid_response',
  '503 no_upstream_key_available',
  '503 quota_backend_unavailable',
  '503 server_overloaded',
  '503 shutting_down',
  '504 upstream_proxy_error',
  '504 upstream_timeout',
]);

/** The codes an SSE error event may carry: a stream cut by the upstream, its silence, a shutdown. */
const STREAM_CODES = new Set(['upstream_stream_interrupted', 'upstream_timeout', 'upstream_unreachable', 'upstream_proxy_error', 'shutting_down']);

const isErrorShape = (v) =>
  v !== null &&
  typeof v === 'object' &&
  typeof v.error === 'object' &&
  v.error !== null &&
  typeof v.error.message === 'string' &&
  typeof v.error.type === 'string' &&
  'param' in v.error &&
  'code' in v.error;

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The data of each SSE event, in order. */
function sseData(text) {
  return text
    .split(/\r?\n\r?\n/)
    .filter((block) => block.trim() !== '')
    .map((block) =>
      block
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n'),
    )
    .filter((data) => data !== '');
}

/**
 * {ok: true, kind} for a well-formed answer, {ok: false, kind, detail} otherwise. `kind` names
 * the answer for the counts: `200 json`, `200 stream`, `200 stream error <code>`, `<status> <code>`.
 */
export function judge(status, contentType, text, streamed) {
  if (status === 200 && !streamed) {
    const body = parseJson(text);
    const ok = body?.object === 'chat.completion' && typeof body.choices?.[0]?.message?.content === 'string' && typeof body.usage?.total_tokens === 'number';
    return ok ? { ok, kind: '200 json' } : { ok: false, kind: '200 json malformed', detail: text.slice(0, 200) };
  }
  if (status === 200) {
    if (!contentType.startsWith('text/event-stream')) return { ok: false, kind: '200 stream not SSE', detail: contentType };
    const events = sseData(text);
    const last = events[events.length - 1];
    const body = events.slice(0, -1);
    if (body.some((d) => parseJson(d)?.object !== 'chat.completion.chunk')) return { ok: false, kind: '200 stream bad event', detail: text.slice(-300) };
    if (last === '[DONE]') return { ok: true, kind: '200 stream' };
    const error = parseJson(last ?? '');
    if (isErrorShape(error) && STREAM_CODES.has(error.error.code)) return { ok: true, kind: `200 stream error ${error.error.code}` };
    return { ok: false, kind: '200 stream incomplete', detail: text.slice(-300) };
  }
  const body = parseJson(text);
  if (!isErrorShape(body)) return { ok: false, kind: `${status} not OpenAI-shaped`, detail: text.slice(0, 200) };
  const kind = `${status} ${body.error.code}`;
  return DOCUMENTED.has(kind) ? { ok: true, kind } : { ok: false, kind: `${kind} undocumented`, detail: body.error.message };
}

/** Every secret (and the proxy's Basic credentials as sent) found in `text`, by its name. */
export function leaks(text, secrets) {
  const found = [];
  for (const [name, value] of secrets) if (text.includes(value)) found.push(name);
  return found;
}
