// keyrelay against another built checkout, counted in machine instructions per request rather than
// in CPU time: each keyrelay runs under Valgrind's callgrind, which counts the instructions the
// process executes (its JIT-compiled JavaScript, V8, Node, the libraries and the garbage collector)
// whatever else the machine is doing. It takes the machine's noise out of the comparison, not V8's:
// what a start compiles, when, and how often it collects garbage still differ from one start to the
// next, so the counts are split into the program, the garbage collector and the compilers, and
// several runs (fresh starts) are needed. What it does not see: cache misses, time in the kernel
// and time spent waiting. It measures the work a request adds, not its latency.
//
//   node bench/instructions.js --baseline DIR [--store memory|redis] [--workload json|stream]
//                              [--warm N] [--requests N] [--concurrency N] [--runs N]
//
// Both keyrelays run at once, each with its own upstream, under callgrind with counting off while
// they start and serve --warm requests, then counting on for --requests requests, then the counts
// are dumped. Needs `valgrind` (Debian's package) and both checkouts built (`npx tsc -p
// tsconfig.build.json`). Uses 127.0.0.1 only and stops all it started. About 10 minutes a run at
// the defaults on 2 cores.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAllNow, stopAll } from './lib/children.js';
import { countsOf } from './lib/callgrind.js';
import { sendRequests, startCountedKeyrelay } from './lib/count-load.js';
import { startRedis } from './lib/redis.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    baseline: { type: 'string' },
    store: { type: 'string', default: 'memory' },
    workload: { type: 'string', default: 'json' },
    warm: { type: 'string', default: '20000' },
    requests: { type: 'string', default: '4000' },
    concurrency: { type: 'string', default: '8' },
    runs: { type: 'string', default: '3' },
  },
});
if (values.baseline === undefined) throw new Error('--baseline DIR: a built checkout to compare with');
const baseline = resolve(values.baseline);
if (!existsSync(join(baseline, 'dist/server.js'))) throw new Error(`--baseline: ${baseline} has no dist/: build it first`);
if (!['memory', 'redis'].includes(values.store)) throw new Error('--store: memory or redis');
if (!['json', 'stream'].includes(values.workload)) throw new Error('--workload: json or stream');
const warm = Number(values.warm);
const measured = Number(values.requests);
const concurrency = Number(values.concurrency);
const runs = Number(values.runs);
try {
  execFileSync('valgrind', ['--version']);
} catch {
  throw new Error('valgrind is not installed (apt-get install -y valgrind)');
}

// V8 optimises hot functions on a thread of its own. Under Valgrind that thread gets a small share
// of the time, so the code would still be compiling (and running unoptimised) thousands of requests
// after it would be done natively. Compiled on the main thread instead, each function is optimised
// after as many calls as natively, and the warm-up reaches the steady state it reaches natively.
const NODE_FLAGS = ['--no-concurrent-recompilation'];

const dir = join(ROOT, 'bench/results/instructions');
mkdirSync(dir, { recursive: true });

/** Sends `count` requests, `concurrency` at a time; throws on any answer but a 200. */
const load = (origin, authorization, count) => sendRequests({ origin, authorization, workload: values.workload, count, concurrency });

/**
 * Sends callgrind a command. Valgrind names the pipes it listens on after $HOST, which keyrelay's
 * environment sets to its listening address: callgrind_control must be given the same.
 */
function control(...args) {
  execFileSync('callgrind_control', args.map(String), { env: { ...process.env, HOST: '127.0.0.1' }, stdio: 'ignore' });
}

/** One keyrelay of `checkout` under callgrind: instructions per measured request. */
async function measure(name, checkout, redisUrl) {
  const out = join(dir, `${name}.callgrind`);
  const k = await startCountedKeyrelay({
    name,
    checkout,
    dir,
    command: 'valgrind',
    prefix: ['--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${out}`, process.execPath, ...NODE_FLAGS],
    env: redisUrl ? { REDIS_URL: redisUrl } : {},
    // Under Valgrind a start takes minutes, not seconds.
    healthMs: 5 * 60_000,
  });
  try {
    await load(k.origin, k.authorization, warm);
    control('-i', 'on', k.child.pid);
    await load(k.origin, k.authorization, measured);
    control('-d', k.child.pid);
    const dumps = readdirSync(dir).filter((f) => f.startsWith(`${name}.callgrind`) && f !== `${name}.callgrind`);
    const last = dumps.sort().at(-1) ?? `${name}.callgrind`;
    const counts = countsOf(join(dir, last));
    return Object.fromEntries(Object.entries(counts).map(([part, v]) => [part, v / measured]));
  } finally {
    await k.close();
  }
}

async function main() {
  let redisUrl;
  if (values.store === 'redis') {
    const redis = await startRedis(dir);
    if (redis.unavailable) throw new Error(redis.unavailable);
    redisUrl = redis.url;
  }
  const rows = [];
  const m = (n) => `${(n / 1e6).toFixed(3)} M`;
  for (let run = 1; run <= runs; run++) {
    // This run's dumps start empty (a dump of an earlier run by the same name must not be read).
    for (const f of readdirSync(dir)) if (f.startsWith(`keyrelay-${run}.callgrind`) || f.startsWith(`baseline-${run}.callgrind`)) writeFileSync(join(dir, f), '');
    const [mine, theirs] = await Promise.all([
      measure(`keyrelay-${run}`, ROOT, redisUrl && `${redisUrl}/0`),
      measure(`baseline-${run}`, baseline, redisUrl && `${redisUrl}/2`),
    ]);
    const row = { all: mine.total / theirs.total, work: (mine.rest + mine.gc) / (theirs.rest + theirs.gc), rest: mine.rest / theirs.rest };
    rows.push(row);
    for (const [name, c] of [['keyrelay', mine], ['baseline', theirs]]) {
      process.stdout.write(`run ${run} ${name}: ${m(c.total)} instructions per request: ${m(c.rest)} the program, ${m(c.gc)} GC, ${m(c.compile)} compiling\n`);
    }
    process.stdout.write(`run ${run}: keyrelay / baseline ${row.all.toFixed(3)} in all, ${row.work.toFixed(3)} without the compilers, ${row.rest.toFixed(3)} the program alone\n`);
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  process.stdout.write(
    `${values.workload} on ${values.store}, ${measured} requests counted after ${warm}, ${concurrency} at a time, ${runs} runs: ` +
      `instructions per request keyrelay / baseline, median: ${median(rows.map((r) => r.all)).toFixed(3)} in all, ` +
      `${median(rows.map((r) => r.work)).toFixed(3)} without the compilers, ${median(rows.map((r) => r.rest)).toFixed(3)} the program alone\n`,
  );
}

main()
  .then(() => stopAll())
  .catch(async (err) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    killAllNow();
    process.exitCode = 1;
  });
