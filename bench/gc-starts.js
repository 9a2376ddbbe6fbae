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
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, killAllNow, spawnTracked, stop, stopAll } from './lib/children.js';
import { sendRequests } from './lib/count-load.js';
import { gcSummary } from './lib/gc-trace.js';
import { benchUser, keyrelayEnv, startUpstream, waitHealthy } from './lib/targets.js';

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
  const upstream = await startUpstream();
  const port = await freePort();
  const poolKey = `sk-bench-${randomBytes(16).toString('hex')}`;
  const adminToken = randomBytes(24).toString('base64url');
  const settings = join(dir, 'keyrelay.yaml');
  writeFileSync(settings, '# the benchmark configures keyrelay through the environment only\n');
  const logFile = join(dir, `${name}.log`);
  const fd = openSync(logFile, 'w');
  const child = spawnTracked(process.execPath, ['--trace-gc', join(checkout, 'bin/keyrelay.js'), 'serve'], {
    cwd: checkout,
    stdio: ['ignore', fd, fd],
    // Warnings only: the trace is the log's content.
    env: keyrelayEnv({ port, settings, upstream, poolKey, adminToken }, { LOG_LEVEL: 'warn' }),
  });
  closeSync(fd);
  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(child, origin, logFile, 60_000);
    const authorization = `Bearer ${await benchUser(origin, adminToken, name)}`;
    await sendRequests({ origin, authorization, workload: 'json', count: warm, concurrency });
    const from = statSync(logFile).size;
    await sendRequests({ origin, authorization, workload: 'json', count: measured, concurrency });
    return gcSummary(readFileSync(logFile).subarray(from).toString('utf8'));
  } finally {
    await stop(child, 10_000);
    await stop(upstream.child);
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
