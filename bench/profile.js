// Where keyrelay's CPU goes, next to the bare relay: steady-state CPU per request of each, over
// rounds in turn, and (with --profile) a V8 CPU profile of keyrelay over the measured window only,
// summarised by package and by function. What bench/analysis.md is written from.
//
//   node bench/profile.js [--store memory|redis] [--workload json|stream|stream-plain|users] [--seconds N]
//                         [--rounds N] [--connections N] [--profile DIR] [--leases off|on|both]
//                         [--baseline DIR]
//
// --workload: stream-plain is a stream without stream_options.include_usage (keyrelay asks the
// upstream for usage and takes it out again); users is JSON chat over 100 users' keys in turn.
//
// Besides the steady-state figure (the measured rounds only), it prints CPU per request over the
// whole run, warm-up included, as bench/run.js reports it.
//
// --leases both (Redis only) runs a second keyrelay with quota leases on (docs/quota.md) beside
// the first, and measures the three in turn.
//
// --baseline DIR runs the same keyrelay from another built checkout (`git worktree add DIR <commit>`,
// then `npx tsc -p tsconfig.build.json` there) beside this one, measured in turn with it: one change
// against the code before it, in one run. Then as many rounds again with both
// under load at the same moment: the ratio least moved by a machine whose speed changes from one
// moment to the next. With --profile, each keyrelay writes its own profile.
//
// Builds nothing: run `npm run build` first. Uses 127.0.0.1 only and stops all it started.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAllNow, stopAll } from './lib/children.js';
import { startLoadgen } from './lib/loadgen-client.js';
import { cpuMs } from './lib/proc.js';
import { summariseProfile } from './lib/profile-summary.js';
import { startRedis } from './lib/redis.js';
import { startBare, startKeyrelay, startUpstream } from './lib/targets.js';
import { requestSpec, sanityCheck, warmUp } from './lib/workloads.js';

const HOOK = fileURLToPath(new URL('./lib/profile-hook.js', import.meta.url));

const { values } = parseArgs({
  options: {
    store: { type: 'string', default: 'redis' },
    workload: { type: 'string', default: 'json' },
    seconds: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    profile: { type: 'string' },
    leases: { type: 'string', default: 'off' },
    baseline: { type: 'string' },
  },
});
if (!['memory', 'redis'].includes(values.store ?? '')) throw new Error('--store: memory or redis');
if (!['json', 'stream', 'stream-plain', 'users'].includes(values.workload ?? '')) throw new Error('--workload: json, stream, stream-plain or users');
const specFor = (target) => (values.workload === 'users' ? requestSpec(target, 'json', { users: true }) : requestSpec(target, values.workload));
if (!['off', 'on', 'both'].includes(values.leases ?? '')) throw new Error('--leases: off, on or both');
if (values.leases !== 'off' && values.store !== 'redis') throw new Error('--leases: with --store redis only');
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const profileDir = values.profile === undefined ? undefined : resolve(values.profile);
const baselineDir = values.baseline === undefined ? undefined : resolve(values.baseline);
if (baselineDir && !existsSync(join(baselineDir, 'dist/server.js'))) throw new Error(`--baseline: ${baselineDir} has no dist/: build it first`);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (share) => `${(share * 100).toFixed(1).padStart(5)}%`;

async function main() {
  const logDir = join(fileURLToPath(new URL('./results/', import.meta.url)), 'profile-logs');
  mkdirSync(logDir, { recursive: true });
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const upstream = await startUpstream();
  const poolKey = `sk-bench-${randomBytes(16).toString('hex')}`;
  const adminToken = randomBytes(24).toString('base64url');
  const env = profileDir ? { NODE_OPTIONS: `--import=${HOOK}`, KEYRELAY_PROFILE_DIR: profileDir } : {};
  if (values.store === 'redis') {
    const redis = await startRedis(logDir);
    if (redis.unavailable) throw new Error(redis.unavailable);
    env.REDIS_URL = redis.url;
  }
  const bare = await startBare(upstream, poolKey);
  const leased = { ...env, KEYRELAY_QUOTA_LEASES: 'on' };
  const keyrelay = await startKeyrelay({ upstream, poolKey, adminToken, dir: logDir, id: `keyrelay-${values.store}`, env: values.leases === 'on' ? leased : env });
  if (keyrelay.status !== 'ok') throw new Error(keyrelay.reason);
  const withLeases = values.leases === 'both' ? await startKeyrelay({ upstream, poolKey, adminToken, dir: logDir, id: 'keyrelay-leases', env: leased }) : undefined;
  if (withLeases && withLeases.status !== 'ok') throw new Error(withLeases.reason);
  const before = baselineDir ? await startKeyrelay({ upstream, poolKey, adminToken, dir: logDir, id: 'keyrelay-baseline', env, checkout: baselineDir }) : undefined;
  if (before && before.status !== 'ok') throw new Error(before.reason);
  const loadgen = startLoadgen();
  const targets = [bare, keyrelay, ...(withLeases ? [withLeases] : []), ...(before ? [before] : [])];
  for (const t of targets) await sanityCheck(t);
  const cpuAtStart = targets.map((t) => cpuMs(t.pids()));
  for (const t of targets) await warmUp(t, loadgen, { warmUpMs: 1000, connections });
  const signal = () => {
    for (const t of targets.slice(1)) for (const pid of t.pids()) process.kill(pid, 'SIGUSR2');
  };
  if (profileDir) signal();

  const named = [['bare', bare], ['keyrelay', keyrelay], ...(withLeases ? [['leases', withLeases]] : []), ...(before ? [['baseline', before]] : [])];
  const perRequest = Object.fromEntries(named.map(([name]) => [name, []]));
  const rates = Object.fromEntries(named.map(([name]) => [name, []]));
  // Requests each answered in the measured rounds: what a profile's samples are divided by.
  const served = Object.fromEntries(named.map(([name]) => [name, 0]));
  for (let round = 0; round < rounds; round++) {
    // Each round in another order, so that no target always runs first.
    const order = named.map((_, i) => named[(i + round) % named.length]);
    for (const [name, t] of round % 2 ? order.reverse() : order) {
      const pids = t.pids();
      const before = cpuMs(pids);
      const r = await loadgen.call('rate', { spec: specFor(t), connections, warmupMs: 0, durationMs: seconds * 1000 });
      perRequest[name].push((cpuMs(pids) - before) / Math.max(1, r.requests));
      served[name] += r.requests;
      rates[name].push(r.rps);
      process.stderr.write(`round ${round + 1} ${name}: ${r.rps.toFixed(0)} req/s, ${perRequest[name].at(-1).toFixed(3)} ms CPU per request\n`);
    }
  }
  // Side by side: keyrelay and the baseline under load at the same moment, each from its own
  // connections, so that a phase of a busy or slow machine falls on both alike. Their CPU per
  // request over the same window is the fairest comparison a shared machine allows.
  const together = [];
  if (before) {
    for (let round = 0; round < rounds; round++) {
      const pairs = [['keyrelay', keyrelay], ['baseline', before]];
      const cpu = pairs.map(([, t]) => cpuMs(t.pids()));
      const done = await Promise.all(
        pairs.map(([, t]) => loadgen.call('rate', { spec: specFor(t), connections, warmupMs: 0, durationMs: seconds * 1000 })),
      );
      const [k, b] = pairs.map(([, t], i) => (cpuMs(t.pids()) - cpu[i]) / Math.max(1, done[i].requests));
      together.push(k / b);
      served.keyrelay += done[0].requests;
      served.baseline += done[1].requests;
      process.stderr.write(`side by side ${round + 1}: keyrelay ${k.toFixed(3)} ms, baseline ${b.toFixed(3)} ms CPU per request, keyrelay / baseline ${(k / b).toFixed(2)}\n`);
    }
  }
  const sent = await loadgen.call('sent');
  const whole = targets.map((t, i) => (cpuMs(t.pids()) - cpuAtStart[i]) / Math.max(1, sent[t.origin] ?? 0));
  const ratio = (name, of = 'bare', xs = perRequest) => median(xs[name].map((k, i) => k / xs[of][i]));
  const leaseLine = withLeases
    ? `keyrelay with quota leases ${median(perRequest.leases).toFixed(3)} ms, leases / bare ${ratio('leases').toFixed(2)}, ` +
      `leases / keyrelay ${ratio('leases', 'keyrelay').toFixed(2)}; req/s, median: bare ${median(rates.bare).toFixed(0)}, keyrelay ${median(rates.keyrelay).toFixed(0)}, ` +
      `leases ${median(rates.leases).toFixed(0)}, leases / keyrelay ${ratio('leases', 'keyrelay', rates).toFixed(2)} (medians of the rounds' ratios)\n`
    : '';
  process.stdout.write(
    `${values.workload} on keyrelay ${values.store}${values.leases === 'on' ? ' with quota leases' : ''}, ${connections} connections, ${rounds} rounds of ${seconds} s\n` +
      `CPU per request, median: bare ${median(perRequest.bare).toFixed(3)} ms, keyrelay ${median(perRequest.keyrelay).toFixed(3)} ms, ` +
      `keyrelay / bare ${ratio('keyrelay').toFixed(2)} (median of the rounds' ratios)\n` +
      `CPU per request over the whole run, warm-up included: ${named.map(([name], i) => `${name} ${whole[i].toFixed(3)} ms`).join(', ')}, ` +
      `keyrelay / bare ${(whole[1] / whole[0]).toFixed(2)}\n` +
      leaseLine +
      (before
        ? `baseline ${median(perRequest.baseline).toFixed(3)} ms, baseline / bare ${ratio('baseline').toFixed(2)}, keyrelay / baseline ${ratio('keyrelay', 'baseline').toFixed(2)}; ` +
          `req/s, median: baseline ${median(rates.baseline).toFixed(0)}, keyrelay / baseline ${ratio('keyrelay', 'baseline', rates).toFixed(2)} (medians of the rounds' ratios)\n` +
          (together.length > 0
            ? `side by side (both under load at once, ${together.length} rounds): CPU per request keyrelay / baseline ${median(together).toFixed(2)} (median), rounds ${together.map((r) => r.toFixed(2)).join(' ')}\n`
            : '')
        : ''),
  );

  if (profileDir) {
    signal();
    await new Promise((r) => setTimeout(r, 1500));
    const profiles = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
    // One profile per keyrelay, named by its pid: this one's, then the baseline's.
    const files = targets.slice(1).map((t) => profiles.find((f) => f.endsWith(`-${t.pids()[0]}.cpuprofile`))).filter((f) => f !== undefined);
    for (const file of files.map((f) => join(profileDir, f))) {
      const summary = summariseProfile(file);
      const name = named.find(([, t]) => file.endsWith(`-${t.pids()[0]}.cpuprofile`))?.[0];
      process.stdout.write(`\nprofile: ${file} (${summary.busy} busy samples, ${served[name] ?? '?'} requests of ${name} measured)\nby package or module:\n`);
      for (const [name, share] of summary.groups) process.stdout.write(`  ${pct(share)}  ${name}\n`);
      process.stdout.write('functions, self time:\n');
      for (const [name, share] of summary.functions) process.stdout.write(`  ${pct(share)}  ${name}\n`);
    }
  }
  await stopAll();
}

process.once('exit', killAllNow);
main().catch(async (err) => {
  process.stderr.write(`profile: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  await stopAll();
  process.exit(1);
});
