// How each fresh start of keyrelay collects garbage under a steady load: what found the slow
// starts of docs/performance.md ("Slow starts: V8's pretenuring"). Each start is a new
// `node --trace-gc bin/keyrelay.js serve` (memory store), loaded with --warm JSON requests, then
// --requests more; the collections during the second part are summed from its own trace:
//
//   node bench/gc-starts.js [--starts N] [--baseline DIR] [--warm N] [--requests N] [--concurrency N]
//
// Per start: the young collections and how much of what was made since the one before each
// survived it and moved to the old generation (a fast start: a few percent; a slow one: a quarter
// and more), the old-generation collections, and the collector's milliseconds per 1,000 requests
// (wall time, so moved by the machine's load; the promoted share is not). A start is called slow
// when more than a tenth is promoted (bench/lib/gc-trace.js).
//
// --baseline DIR: as many starts of another built checkout, alternating with this one's.
// Builds nothing: run `npm run build` first. Uses 127.0.0.1 only and stops all it started.
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAllNow, stopAll } from './lib/children.js';
import { sendRequests, startCountedKeyrelay } from './lib/count-load.js';
import { gcSummary } from './lib/gc-trace.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const { values } = parseArgs({
  options: {
    starts: { type: 'string', default: '6' },
    baseline: { type: 'string' },
    warm: { type: 'string', default: '30000' },
    requests: { type: 'string', default: '30000' },
    concurrency: { type: 'string', default: '16' },
  },
});
const starts = Number(values.starts);
const warm = Number(values.warm);
const measured = Number(values.requests);
const concurrency = Number(values.concurrency);
const baseline = values.baseline === undefined ? undefined : resolve(values.baseline);

const dir = join(ROOT, 'bench/results/gc-starts');
mkdirSync(dir, { recursive: true });

async function oneStart(name, checkout) {
  // Warnings only: the trace is the log's content.
  const k = await startCountedKeyrelay({ name, checkout, dir, prefix: ['--trace-gc'], env: { LOG_LEVEL: 'warn' } });
  try {
    const { origin, authorization } = k;
    await sendRequests({ origin, authorization, workload: 'json', count: warm, concurrency });
    const from = statSync(k.logFile).size;
    await sendRequests({ origin, authorization, workload: 'json', count: measured, concurrency });
    return gcSummary(readFileSync(k.logFile).subarray(from).toString('utf8'));
  } finally {
    await k.close();
  }
}

function line(name, s) {
  const slow = s.slow ? '  slow' : '';
  return (
    `${name}: ${s.young} young collections, ${(s.promoted * 100).toFixed(1)} % promoted, ${s.old} old, ` +
    `${((s.ms * 1000) / measured).toFixed(1)} ms per 1,000 requests${slow}\n`
  );
}

async function main() {
  const slow = { keyrelay: 0, baseline: 0 };
  for (let i = 1; i <= starts; i++) {
    for (const [name, checkout] of [['keyrelay', ROOT], ...(baseline ? [['baseline', baseline]] : [])]) {
      const s = await oneStart(`${name}-${i}`, checkout);
      if (s.slow) slow[name] += 1;
      process.stdout.write(line(`${name} start ${i}`, s));
    }
  }
  process.stdout.write(`slow starts: keyrelay ${slow.keyrelay} of ${starts}${baseline ? `, baseline ${slow.baseline} of ${starts}` : ''}\n`);
}

main()
  .then(() => stopAll())
  .catch(async (err) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killAllNow();
    process.exitCode = 1;
  });
