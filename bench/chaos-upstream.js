// The upstream of `npm run chaos` (bench/chaos.js): the project's fake OpenAI upstream with its
// default answers (usage counted from the request), streams paced so that faults land in the
// middle of some, and a fault per pool key that the parent sets over IPC:
//
//   {key, mode: 'ok'}     the default answer
//   {key, mode: '429'}    OpenAI's rate-limit answer, retry-after 1 s
//   {key, mode: '500'}    OpenAI's server error
//   {key, mode: 'reset'}  the connection reset before any answer
//
// Forked by bench/chaos.js, it tells the parent its port; each change is acknowledged.
import { startFakeUpstream } from '../dist/dev/fake-upstream.js';
import { defaultAnswer } from '../dist/dev/fake-openai-answers.js';

const STREAM_PACE_MS = 60;

const FAULTS = {
  429: {
    status: 429,
    headers: { 'retry-after': '1' },
    body: { error: { message: 'Rate limit reached for requests (chaos).', type: 'requests', param: null, code: 'rate_limit_exceeded' } },
  },
  500: {
    status: 500,
    body: { error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null } },
  },
  reset: { destroyBeforeHeaders: true },
};

/** Pool key -> its fault; a key not here answers normally. */
const modes = new Map();
const served = { ok: 0, 429: 0, 500: 0, reset: 0 };

const upstream = await startFakeUpstream({ host: '127.0.0.1', port: 0, record: false });
upstream.handle((req) => {
  const key = (req.headers.authorization ?? '').replace(/^Bearer /, '');
  const mode = modes.get(key) ?? 'ok';
  served[mode]++;
  if (mode !== 'ok') return FAULTS[mode];
  const answer = defaultAnswer(req, req.body.length);
  // A stream's events some way apart: a proxy stall or a killed gateway then finds streams open.
  return answer.chunks ? { ...answer, chunkIntervalMs: STREAM_PACE_MS } : answer;
});

const stop = () => void upstream.close().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
process.once('disconnect', stop);
process.on('message', (m) => {
  if (m?.mode !== undefined) {
    if (m.mode === 'ok') modes.delete(m.key);
    else modes.set(m.key, m.mode);
    process.send?.({ ack: m.seq });
  } else if (m?.served) {
    process.send?.({ ack: m.seq, served });
  }
});
process.send?.({ ready: true, port: upstream.port });
