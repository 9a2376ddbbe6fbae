// `npm run bench`: one run, on loopback, every target side by side (docs/performance.md).
//
//   node bench/run.js [--quick] [--rounds N] [--json PATH] [--no-docs] [--baseline DIR]
//
// --quick    tiny counts, one round, about half a minute: checks that the harness works, measures nothing
// --rounds   rounds of every workload on every target (default 3); the order changes every round
// --json     where the results go (default bench/results/latest.json; the logs go beside it)
// --no-docs  leave docs/performance.md alone (a --quick run never rewrites it)
// --baseline another checkout of keyrelay, built (`git worktree add /tmp/before <commit>`, then
//            `npx tsc -p tsconfig.build.json` there): measured beside this one in the same run, as
//            'baseline memory' and 'baseline Redis'; implies --no-docs
//
// It stops everything it started (child processes, redis-server) when it ends, fails or is
// interrupted, and uses no address but 127.0.0.1.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAllNow, stopAll } from './lib/children.js';
import { startLoadgen } from './lib/loadgen-client.js';
import { machine } from './lib/machine.js';
import { cpuMs } from './lib/proc.js';
import { startRedis } from './lib/redis.js';
import { renderMarkdown, renderText } from './lib/report.js';
import { summarise } from './lib/summary.js';
import {
  TARGETS,
  directTarget,
  peerTarget,
  startBare,
  startBaseline,
  startKeyrelay,
  startKeyrelayRedis,
  startKeyrelayWorkers,
  startUpstream,
  unavailable,
} from './lib/targets.js';
import { WORKLOADS, measure, sanityCheck, warmUp } from './lib/workloads.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

const FULL = {
  rounds: 3,
  connections: 32,
  warmupMs: 500,
  rateMs: 4000,
  sequentialWarmup: 50,
  sequentialMs: 3000,
  ttfbStreams: 32,
  ttfbConnections: 4,
  heldStreams: 1000,
  memoryWarmup: 20,
  cpuConnections: 16,
  cpuWarmupRequests: 2000,
  cpuJsonRequests: 6000,
  cpuStreamRequests: 4000,
  warmUpMs: 1000,
};
const QUICK = {
  rounds: 1,
  connections: 8,
  warmupMs: 100,
  rateMs: 600,
  sequentialWarmup: 10,
  sequentialMs: 500,
  ttfbStreams: 4,
  ttfbConnections: 2,
  heldStreams: 50,
  memoryWarmup: 20,
  cpuConnections: 4,
  cpuWarmupRequests: 50,
  cpuJsonRequests: 200,
  cpuStreamRequests: 100,
  warmUpMs: 200,
};

const progress = (line) => process.stderr.write(`bench: ${line}\n`);

/** Round r: the targets rotated by r, and reversed every other round, so no target is always first or last. */
function orderFor(round, targets) {
  const k = round % targets.length;
  const rotated = [...targets.slice(k), ...targets.slice(0, k)];
  return round % 2 ? rotated.reverse() : rotated;
}

async function startTargets(logDir, baseline) {
  const upstream = await startUpstream();
  const redis = await startRedis(logDir);
  const poolKey = `sk-bench-${randomBytes(16).toString('hex')}`;
  const adminToken = randomBytes(24).toString('base64url');
  const options = { upstream, poolKey, adminToken, dir: logDir };
  const direct = directTarget(upstream, poolKey);
  const bare = await startBare(upstream, poolKey);
  const memory = await startKeyrelay({ ...options, id: 'keyrelay-memory' });
  const onRedis = await startKeyrelayRedis(options, redis);
  const workers = await startKeyrelayWorkers(options, onRedis, redis);
  const targets = [direct, bare, memory, onRedis, workers, peerTarget()];
  if (baseline) targets.push(...(await startBaseline(options, redis, baseline)));
  for (const [i, target] of targets.entries()) {
    if (target.status !== 'ok') continue;
    try {
      await sanityCheck(target);
    } catch (err) {
      targets[i] = unavailable(target.id, `failed its sanity check: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return targets;
}

/** Line count of each keyrelay log, and whether any secret the run used shows up in it. */
function inspectLogs(targets) {
  const out = {};
  for (const t of targets) {
    if (!t.logFile) continue;
    const text = readFileSync(t.logFile, 'utf8');
    const lines = text.split('\n').filter(Boolean);
    // Access lines: one per request, at info level (LOG_LEVEL=info, as keyrelay runs by default).
    const accessLines = lines.filter((l) => l.includes('"level":30') && l.includes('"msg":"request"')).length;
    out[t.id] = { file: t.logFile, lines: lines.length, accessLines, leaksSecret: t.secrets.some((s) => text.includes(s)) };
  }
  return out;
}

async function main() {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean' }, rounds: { type: 'string' }, json: { type: 'string' }, 'no-docs': { type: 'boolean' }, baseline: { type: 'string' } },
  });
  const settings = { ...(values.quick ? QUICK : FULL) };
  if (values.rounds !== undefined) {
    if (!/^[1-9][0-9]*$/.test(values.rounds)) throw new Error(`--rounds: expected a whole number from 1, got "${values.rounds}"`);
    settings.rounds = Number(values.rounds);
  }
  const jsonPath = resolve(values.json ?? join(ROOT, 'bench/results/latest.json'));
  const logDir = join(dirname(jsonPath), 'logs');
  mkdirSync(logDir, { recursive: true });
  const startedAt = new Date();
  const machineAtStart = machine();

  progress('starting the fake upstream, redis-server and the targets');
  const baseline = values.baseline === undefined ? undefined : resolve(values.baseline);
  const targets = await startTargets(logDir, baseline);
  for (const t of targets) if (t.status !== 'ok') progress(`${t.label}: unavailable: ${t.reason}`);
  const measured = targets.filter((t) => t.status === 'ok');
  const loadgen = startLoadgen();
  // CPU per request over the whole run, warm-up included: from here to the end of the last round.
  const cpuAtStart = Object.fromEntries(measured.map((t) => [t.id, cpuMs(t.pids())]));
  for (const target of measured) await warmUp(target, loadgen, settings);

  const rows = targets.map((t) => ({
    target: t.id,
    label: t.label,
    status: t.status,
    ...(t.reason ? { reason: t.reason } : {}),
    ...(t.store ? { store: t.store, workers: t.workers } : {}),
    rounds: [],
  }));
  const rowOf = (id) => rows.find((r) => r.target === id);
  for (let round = 0; round < settings.rounds; round++) {
    const order = orderFor(round, measured);
    for (const target of order) rowOf(target.id).rounds[round] = { round, position: order.indexOf(target), metrics: {}, errors: {}, notes: {} };
    for (const workload of WORKLOADS) {
      for (const target of order) {
        const r = await measure[workload.id](target, loadgen, settings, round).catch((err) => ({
          metrics: Object.fromEntries(workload.metrics.map((m) => [m, Number.NaN])),
          errors: { failed: 1 },
          notes: { error: err instanceof Error ? err.message : String(err) },
        }));
        const entry = rowOf(target.id).rounds[round];
        Object.assign(entry.metrics, r.metrics);
        if (Object.keys(r.errors).length) entry.errors[workload.id] = r.errors;
        if (r.notes) entry.notes[workload.id] = r.notes;
        const shown = Object.entries(r.metrics).map(([k, v]) => `${k} ${Number(v).toFixed(3)}`).join(', ');
        progress(`round ${round + 1}/${settings.rounds} ${workload.id} ${target.label}: ${shown}`);
      }
    }
  }

  const sent = await loadgen.call('sent');
  for (const target of measured) {
    rowOf(target.id).whole = { cpuMs: cpuMs(target.pids()) - cpuAtStart[target.id], requests: sent[target.origin] ?? 0 };
  }
  await stopAll();
  const result = {
    version: 1,
    mode: values.quick ? 'quick' : 'full',
    startedAt: startedAt.toISOString(),
    durationS: Math.round((Date.now() - startedAt.getTime()) / 1000),
    rounds: settings.rounds,
    settings,
    machine: machineAtStart,
    loadAverageAtEnd: machine().loadAverage,
    workloads: WORKLOADS,
    targets: targets.map((t) => t.id),
    rows,
    logs: inspectLogs(targets),
  };
  Object.assign(result, summarise(rows));

  writeFileSync(jsonPath, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(renderText(result));
  process.stdout.write(`\nresults: ${jsonPath}\n`);
  if (!values.quick && !values['no-docs'] && !baseline) {
    writeFileSync(join(ROOT, 'docs/performance.md'), renderMarkdown(result, readAnalysis()));
    process.stdout.write(`table written to docs/performance.md\n`);
  }
}

/** bench/analysis.md: what the profile of the relay shows, written by hand, kept on the page. */
function readAnalysis() {
  try {
    return readFileSync(join(ROOT, 'bench/analysis.md'), 'utf8');
  } catch {
    return undefined;
  }
}

let interrupted = false;
process.once('exit', killAllNow);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    interrupted = true;
    progress(`${signal}: stopping everything the run started`);
    void stopAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

main().catch(async (err) => {
  // Stopping the children makes the run fail; that is no news after Ctrl-C.
  if (interrupted) return;
  progress(`failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  await stopAll();
  process.exit(1);
});
