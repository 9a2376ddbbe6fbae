// The soak's traffic: a few loops per kind of request, each doing one request (or session) after
// another with a pause between, so that the rate stays moderate whatever the machine's load. Each
// kind counts its answers: `ok`, `refused` (an OpenAI-shaped error the client was given, e.g. a
// fault of the flaky pool key passed on when no retry was left) and `failed` (anything else).
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';

// Conversations are kept on one key by their prompt_cache_key (docs/key-pool.md, Prompt cache
// affinity): sixteen of them spread the chats over both pool keys.
let conversation = 0;
const chat = () => ({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Say something short.' }],
  max_tokens: 50,
  prompt_cache_key: `soak-${conversation++ % 16}`,
});

/** A WAV file of `seconds` of 16 kHz mono PCM16 silence. */
function wav(seconds) {
  const data = 16_000 * 2 * seconds;
  const head = Buffer.alloc(44);
  head.write('RIFF', 0);
  head.writeUInt32LE(36 + data, 4);
  head.write('WAVEfmt ', 8);
  head.writeUInt32LE(16, 16);
  head.writeUInt16LE(1, 20); // PCM
  head.writeUInt16LE(1, 22); // mono
  head.writeUInt32LE(16_000, 24);
  head.writeUInt32LE(32_000, 28);
  head.writeUInt16LE(2, 32);
  head.writeUInt16LE(16, 34);
  head.write('data', 36);
  head.writeUInt32LE(data, 40);
  return Buffer.concat([head, Buffer.alloc(data)]);
}
const AUDIO = wav(1);

async function answer(res) {
  const text = await res.text();
  if (res.ok) return 'ok';
  try {
    const body = JSON.parse(text);
    if (typeof body?.error?.code === 'string' || typeof body?.error?.type === 'string') return `refused ${res.status} ${body.error.code ?? body.error.type}`;
  } catch {
    // not JSON: failed
  }
  throw new Error(`${res.status} ${text.slice(0, 120)}`);
}

function post(origin, auth, path, body) {
  const json = !(body instanceof FormData);
  return fetch(`${origin}${path}`, {
    method: 'POST',
    headers: { authorization: auth, ...(json ? { 'content-type': 'application/json' } : {}) },
    body: json ? JSON.stringify(body) : body,
    signal: AbortSignal.timeout(30_000),
  });
}

/** Opens a session, sends each create in turn and waits for its end event, then closes. */
function wsSession(origin, auth, path, creates, endType) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${origin.replace('http', 'ws')}${path}`, [], { headers: { authorization: auth } });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`${path}: no end within 30 s`));
    }, 30_000);
    let next = 0;
    const sendNext = () => (next < creates.length ? ws.send(JSON.stringify(creates[next++])) : ws.close(1000));
    ws.on('open', () => {
      if (!path.startsWith('/v1/realtime')) sendNext(); // realtime waits for session.created
    });
    ws.on('message', (data) => {
      const event = JSON.parse(String(data));
      if (event.type === 'session.created' || event.type === endType) sendNext();
      else if (event.type === 'error') {
        ws.terminate();
        reject(new Error(`${path}: error event ${event.error?.code ?? event.error?.type}`));
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      reject(new Error(`${path}: handshake answered ${res.statusCode}`));
      res.resume();
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.on('close', () => {
      clearTimeout(timer);
      if (next >= creates.length) resolve('ok');
      else reject(new Error(`${path}: closed early`));
    });
  });
}

/** The kinds: how many loops each, the pause after each operation (ms), and the operation. */
export const KINDS = {
  json: { loops: 2, pauseMs: 200, run: async (o, a) => answer(await post(o, a, '/v1/chat/completions', chat())) },
  sse: {
    loops: 2,
    pauseMs: 250,
    run: async (o, a) => answer(await post(o, a, '/v1/chat/completions', { ...chat(), stream: true, stream_options: { include_usage: true } })),
  },
  multipart: {
    loops: 1,
    pauseMs: 300,
    run: async (o, a) => {
      const form = new FormData();
      form.set('model', 'whisper-1');
      form.set('file', new Blob([AUDIO], { type: 'audio/wav' }), 'soak.wav');
      return answer(await post(o, a, '/v1/audio/transcriptions', form));
    },
  },
  realtime: {
    loops: 1,
    pauseMs: 500,
    run: (o, a) =>
      wsSession(o, a, '/v1/realtime?model=gpt-realtime', Array(3).fill({ type: 'response.create', response: { max_output_tokens: 100 } }), 'response.done'),
  },
  'responses-ws': {
    loops: 1,
    pauseMs: 500,
    run: (o, a) =>
      wsSession(o, a, '/v1/responses', Array(2).fill({ type: 'response.create', model: 'gpt-4o-mini', input: 'Say hi.', max_output_tokens: 50 }), 'response.completed'),
  },
};

/** Runs every kind's loops until `signal` aborts; resolves to the counts per kind once all stopped. */
export async function runTraffic(origin, auth, signal) {
  const counts = Object.fromEntries(Object.keys(KINDS).map((k) => [k, { ok: 0, refused: {}, failed: 0, errors: [] }]));
  const loop = async (kind) => {
    const c = counts[kind];
    while (!signal.aborted) {
      try {
        const outcome = await KINDS[kind].run(origin, auth);
        if (outcome === 'ok') c.ok++;
        else c.refused[outcome] = (c.refused[outcome] ?? 0) + 1;
      } catch (err) {
        c.failed++;
        if (c.errors.length < 5) c.errors.push(err instanceof Error ? err.message : String(err));
      }
      await delay(KINDS[kind].pauseMs).catch(() => {});
    }
  };
  const loops = Object.entries(KINDS).flatMap(([kind, { loops }]) => Array.from({ length: loops }, () => loop(kind)));
  await Promise.all(loops);
  return counts;
}
