// `npm run soak`: one keyrelay gateway, run as a user runs it (bench/lib/targets.js), under constant
// mixed traffic (bench/lib/soak-traffic.js: JSON chat, SSE streams, multipart uploads, realtime and
// Responses WebSocket sessions, failovers off a pool key the fake upstream makes fail 25% of the
// time) for a while, sampled every few seconds: heap used after a full GC and event-loop delay
// (bench/lib/soak-hook.js, loaded with --import), RSS and open descriptors (/proc). After the
// warm-up, each metric's least-squares slope must stay under its threshold (bench/lib/trend.js);
// the exit code is 1 when one grows, when a kind of traffic never succeeded, or when the gateway
// died. The point is growth over a long run, not throughput: the rate is moderate.
//
//   node bench/soak.js [--minutes 10] [--warmup-seconds 60] [--interval-seconds 5]
//                      [--threshold heap=1,rss=2,fds=1,loop=2] [--json FILE]
//
// Thresholds are per minute: heap and rss in MB, fds in descriptors, loop in ms of p99 delay.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { forkReady, killAllNow, stopAll } from './lib/children.js';
import { fdCount, rssKb } from './lib/proc.js';
import { runTraffic } from './lib/soak-traffic.js';
import { cleanEnv, startKeyrelay } from './lib/targets.js';
import { judge } from './lib/trend.js';

const HOOK = fileURLToPath(new URL('./lib/soak-hook.js', import.meta.url));
const UPSTREAM = fileURLToPath(new URL('./upstream.js', import.meta.url));
const GOOD_KEY = 'sk-soak-steady-0000000000000000';
const FLAKY_KEY = 'sk-soak-flaky-00000000000000000';
const METRICS = {
  heap: { label: 'heap used after GC', unit: 'MB' },
  rss: { label: 'RSS', unit: 'MB' },
  fds: { label: 'open descriptors', unit: '' },
  loop: { label: 'event-loop delay p99', unit: 'ms' },
};

function options(argv) {
  const value = (name, fallback) => {
    const i = argv.indexOf(name);
    return i === -1 ? fallback : argv[i + 1];
  };
  const thresholds = { heap: 1, rss: 2, fds: 1, loop: 2 };
  for (const pair of String(value('--threshold', '')).split(',').filter(Boolean)) {
    const [name, n] = pair.split('=');
    if (!(name in thresholds) || !Number.isFinite(Number(n))) throw new Error(`--threshold: ${pair} is not one of heap, rss, fds, loop = a number`);
    thresholds[name] = Number(n);
  }
  const minutes = Number(value('--minutes', 10));
  const warmupSeconds = Number(value('--warmup-seconds', 60));
  const intervalSeconds = Number(value('--interval-seconds', 5));
  if (!(minutes > 0 && warmupSeconds >= 0 && intervalSeconds > 0 && warmupSeconds < minutes * 60)) {
    throw new Error('--minutes, --warmup-seconds and --interval-seconds must be positive, the warm-up shorter than the run');
  }
  return { minutes, warmupSeconds, intervalSeconds, thresholds, json: value('--json', undefined) };
}

/** Asks the hook for a sample and waits for it (at most 10 s: the machine may be busy). */
async function hookSample(pid, file, seq) {
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 200; i++) {
    await delay(50);
    if (!existsSync(file)) continue;
    const sample = JSON.parse(readFileSync(file, 'utf8'));
    if (sample.seq >= seq) return sample;
  }
  throw new Error('the gateway did not write its sample within 10 s');
}

function faultsServed(upstreamChild) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 5000);
    upstreamChild.once('message', (m) => {
      clearTimeout(timer);
      resolve(m.faults);
    });
    upstreamChild.send('faults');
  });
}

const fmt = (n) => (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2));

function report(opts, samples, verdicts, counts, faults) {
  const lines = [];
  const measured = samples.filter((s) => s.minute * 60 >= opts.warmupSeconds);
  lines.push(`keyrelay soak: ${opts.minutes} min, ${samples.length} samples every ${opts.intervalSeconds} s, ${measured.length} after a ${opts.warmupSeconds} s warm-up`);
  lines.push('');
  lines.push('metric                    first    last     min      max      slope/min  rise/min  threshold/min  verdict');
  for (const [name, v] of Object.entries(verdicts)) {
    const { label, unit } = METRICS[name];
    const cells = [v.first, v.last, v.min, v.max].map((n) => fmt(n).padEnd(8)).join(' ');
    lines.push(`${`${label} (${unit || 'n'})`.padEnd(25)} ${cells} ${fmt(v.slope).padEnd(10)} ${fmt(v.rise).padEnd(9)} ${String(v.threshold).padEnd(14)} ${v.grows ? 'GROWS' : 'ok'}`);
  }
  lines.push('');
  lines.push('traffic (ok / refused / failed):');
  for (const [kind, c] of Object.entries(counts)) {
    const refused = Object.entries(c.refused).map(([k, n]) => `${k}: ${n}`).join(', ');
    lines.push(`  ${kind.padEnd(13)} ${c.ok} / ${Object.values(c.refused).reduce((a, b) => a + b, 0)}${refused ? ` (${refused})` : ''} / ${c.failed}${c.errors.length ? `  e.g. ${c.errors[0]}` : ''}`);
  }
  if (faults) lines.push(`flaky pool key faults served by the upstream (the gateway failed over from them): 429 ${faults[429]}, 500 ${faults[500]}`);
  return lines.join('\n');
}

async function main() {
  const opts = options(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'keyrelay-soak-'));
  const sampleFile = join(dir, 'sample.json');
  const failures = [];
  try {
    const { child: upstreamChild, port } = await forkReady(UPSTREAM, ['--flaky-key', FLAKY_KEY], { env: cleanEnv() });
    const upstream = { child: upstreamChild, port, url: `http://127.0.0.1:${port}` };
    const leak = process.env.KEYRELAY_SOAK_LEAK_MB_PER_S;
    // The request log is a ring of logging.requestLogSize records (10,000 by default): at this rate
    // it would fill for about seven minutes, growth by design that hides a leak. A small ring is
    // full within the warm-up, and every record still goes through it.
    const settings = join(dir, 'soak.yaml');
    writeFileSync(settings, 'logging:\n  requestLogSize: 500\n');
    const gateway = await startKeyrelay({
      id: 'soak',
      upstream,
      poolKey: `${GOOD_KEY},${FLAKY_KEY}`,
      adminToken: 'soak-admin-token-000000000000',
      dir,
      env: { KEYRELAY_CONFIG: settings, NODE_OPTIONS: `--import=${HOOK}`, KEYRELAY_SOAK_FILE: sampleFile, ...(leak ? { KEYRELAY_SOAK_LEAK_MB_PER_S: leak } : {}) },
    });
    if (gateway.status !== 'ok') throw new Error(gateway.reason);
    const pid = gateway.child.pid;
    let died = false;
    gateway.child.once('exit', () => (died = true));

    const stopTraffic = new AbortController();
    const traffic = runTraffic(gateway.origin, gateway.authorization, stopTraffic.signal);
    const started = performance.now();
    const samples = [];
    for (let n = 1; ; n++) {
      const due = started + n * opts.intervalSeconds * 1000;
      if (due > started + opts.minutes * 60_000 + 1) break;
      await delay(Math.max(0, due - performance.now()));
      if (died) break;
      const hook = await hookSample(pid, sampleFile, n);
      const minute = (performance.now() - started) / 60_000;
      samples.push({ minute, heapMb: hook.memory.heapUsed / 2 ** 20, rssMb: rssKb([pid]) / 1024, fds: fdCount(pid) ?? NaN, loopP99Ms: hook.loop.p99, loopMaxMs: hook.loop.max });
    }
    stopTraffic.abort();
    const counts = await traffic;
    const faults = await faultsServed(upstreamChild);
    if (died) failures.push(`the gateway exited (${gateway.child.exitCode ?? gateway.child.signalCode}) during the run; its log: ${gateway.logFile}`);

    const after = samples.filter((s) => s.minute * 60 >= opts.warmupSeconds);
    const series = { heap: 'heapMb', rss: 'rssMb', fds: 'fds', loop: 'loopP99Ms' };
    const verdicts = Object.fromEntries(Object.entries(series).map(([name, field]) => [name, judge(after.map((s) => ({ x: s.minute, y: s[field] })), opts.thresholds[name])]));
    if (after.length < 6) failures.push(`only ${after.length} samples after the warm-up: too few to fit a line`);
    for (const [name, v] of Object.entries(verdicts)) {
      if (v.grows) failures.push(`${METRICS[name].label} grows: ${fmt(v.slope)} ${METRICS[name].unit}/min (rise ${fmt(v.rise)}), over ${v.threshold}`);
    }
    for (const [kind, c] of Object.entries(counts)) if (c.ok === 0) failures.push(`no ${kind} request succeeded: ${c.errors[0] ?? 'none ran'}`);

    process.stdout.write(`${report(opts, samples, verdicts, counts, faults)}\n\n`);
    if (opts.json) writeFileSync(opts.json, JSON.stringify({ options: opts, samples, verdicts, counts, faults, failures }, null, 2));
  } catch (err) {
    failures.push(err instanceof Error ? err.message : String(err));
  } finally {
    await stopAll();
    if (failures.length === 0) rmSync(dir, { recursive: true, force: true });
  }
  for (const f of failures) process.stdout.write(`FAIL: ${f}\n`);
  if (failures.length === 0) process.stdout.write('PASS: nothing grows past its threshold\n');
  return failures.length === 0 ? 0 : 1;
}

process.once('exit', killAllNow);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => void stopAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143)));
}
process.exitCode = await main();
