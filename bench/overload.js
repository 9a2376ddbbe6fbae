// Overload: what one keyrelay process does under twice the load it can serve (docs/connections.md,
// "Measuring it"). Not part of `npm test` nor of `npm run bench`.
//
//   node bench/overload.js [--pin] [--seconds N] [--cap-factor F] [--loop-delay MS] [--utilization U]
//                          [--runs default,cap,delay,utilization] [--capacity N] [--json PATH]
//
// 1. capacity: closed loops of rising concurrency against keyrelay (memory store) in front of the
//    fake upstream, whose answers take 20 ms; the best rate of 200s is the capacity.
// 2. light load: an open loop at a tenth of the capacity, for the latency of an idle process.
// 3. twice the capacity, open loop (requests sent on a fixed schedule, whatever the answers do),
//    first with the default cap (5,000 requests in flight: nothing is refused at this scale, so
//    every request queues), then with `inbound.maxRequestsInFlight` set to the capacity times the
//    light-load p50 times `--cap-factor` (default 2), then with the default cap and
//    `inbound.maxEventLoopDelayMs` set to `--loop-delay` (default 50), then with
//    `inbound.maxEventLoopUtilization` set to `--utilization` (default 0.9): what is admitted, at
//    what latency, and how fast the rest are refused. `--runs` picks some of the four;
//    `--capacity N` takes N as the capacity instead of searching for it.
// With `--pin` (two cores or more, `taskset`), keyrelay runs on the first core and this script and
// the upstream on the second: the capacity is then keyrelay's alone, not the whole harness's, and
// at twice that load the generator does not take its extra CPU from keyrelay. Only on a machine
// doing nothing else: where other work runs, a pinned process cannot move off a busy core.
// Latency is counted from the moment a request was due, not from when it was sent, so a load
// generator that falls behind shows as latency rather than hiding it; the report also says how
// late the generator was at worst. Needs a build (`npx tsc -p tsconfig.build.json`). Everything
// runs on 127.0.0.1; every process it starts is stopped when it ends.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { availableParallelism } from 'node:os';
import { killAllNow, stopAll } from './lib/children.js';
import { machine } from './lib/machine.js';
import { startKeyrelay, startUpstream } from './lib/targets.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    'cap-factor': { type: 'string', default: '2' },
    'loop-delay': { type: 'string', default: '50' },
    utilization: { type: 'string', default: '0.9' },
    runs: { type: 'string', default: 'default,cap,delay,utilization' },
    capacity: { type: 'string' },
    pin: { type: 'boolean', default: false },
    json: { type: 'string', default: join(ROOT, 'bench/results/overload.json') },
  },
});
const SECONDS = Number(values.seconds);
const CAP_FACTOR = Number(values['cap-factor']);
const LOOP_DELAY = Number(values['loop-delay']);
const UTILIZATION = Number(values.utilization);
const RUNS = new Set(values.runs.split(','));
const CONCURRENCY = [8, 16, 32, 64, 128, 256];
const MAX_CONNECTIONS = 512;
const BODY = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 100, metadata: { bench: 'delayed' } });

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

function summary(samples) {
  const sorted = Float64Array.from(samples).sort();
  const round = (x) => Math.round(x * 10) / 10;
  return { count: sorted.length, p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(percentile(sorted, 100)) };
}

// The load generator is a few raw keep-alive sockets rather than an HTTP client library: it shares
// two cores with keyrelay and the upstream here, and must stay the cheapest of the three, or the
// run measures the generator.

/** One keep-alive connection that carries one request at a time. */
class Connection {
  constructor(port) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.buffer = Buffer.alloc(0);
    this.done = undefined;
    this.alive = true;
    this.socket.on('data', (chunk) => this.read(chunk));
    const gone = () => {
      this.alive = false;
      this.finish(0);
    };
    this.socket.on('close', gone).on('error', gone);
  }

  send(bytes, done) {
    this.done = done;
    this.socket.write(bytes);
  }

  read(chunk) {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const headEnd = this.buffer.indexOf('\r\n\r\n');
    if (headEnd === -1) return;
    const head = this.buffer.subarray(0, headEnd).toString('latin1');
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    const whole = length ? this.buffer.length >= headEnd + 4 + Number(length[1]) : this.buffer.subarray(-5).toString('latin1') === '0\r\n\r\n';
    if (!whole) return;
    this.buffer = Buffer.alloc(0);
    if (/\r\nconnection: *close/i.test(head)) this.alive = false;
    this.finish(Number(head.slice(9, 12)));
  }

  finish(status) {
    const done = this.done;
    this.done = undefined;
    done?.(status);
  }
}

/**
 * At most MAX_CONNECTIONS connections, reused while they live, as an SDK's or a load balancer's
 * pool would: a request that finds none free waits for one (and its wait counts in its latency).
 * Without a bound, a generator opens a connection per request once answers slow down, overflows
 * the listen backlog, and measures the kernel's SYN retries instead.
 */
function connections(target) {
  const port = Number(new URL(target.origin).port);
  const request = Buffer.from(
    `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: ${target.authorization}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(BODY)}\r\n\r\n${BODY}`,
  );
  const free = [];
  const all = new Set();
  const waiting = [];
  const take = () => {
    let c = free.pop();
    while (c && !c.alive) c = free.pop();
    if (c) return c;
    if (all.size >= MAX_CONNECTIONS) return undefined;
    c = new Connection(port);
    all.add(c);
    return c;
  };
  const run = (connection, resolve) => {
    connection.send(request, (status) => {
      if (connection.alive) free.push(connection);
      else all.delete(connection);
      resolve(status);
      const next = waiting.length > 0 ? take() : undefined;
      if (next) run(next, waiting.shift());
    });
  };
  return {
    /** Resolves the answer's status (0: the connection failed). */
    exchange() {
      return new Promise((resolve) => {
        const connection = take();
        if (connection) run(connection, resolve);
        else waiting.push(resolve);
      });
    },
    close() {
      for (const c of all) c.socket.destroy();
    },
  };
}

/** Closed loop: `concurrency` requests at a time for `ms`; completed 200s per second. */
async function closedLoop(target, concurrency, ms) {
  const pool = connections(target);
  const end = performance.now() + ms;
  let ok = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) if ((await pool.exchange()) === 200) ok++;
    }),
  );
  pool.close();
  return ok / (ms / 1000);
}

/**
 * Open loop: `rate` requests a second for `ms`, each sent when due. Resolves the latencies of the
 * 200s and of the 503s, other outcomes by status, and how late the generator was at worst.
 */
async function openLoop(target, rate, ms) {
  const pool = connections(target);
  const total = Math.round((rate * ms) / 1000);
  const admitted = [];
  const refused = [];
  const other = {};
  const pending = [];
  let sent = 0;
  let worstLag = 0;
  const start = performance.now();
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - start) * rate) / 1000));
      while (sent < due) {
        const at = start + (sent * 1000) / rate;
        worstLag = Math.max(worstLag, now - at);
        sent++;
        pending.push(
          pool.exchange().then((status) => {
            const took = performance.now() - at;
            if (status === 200) admitted.push(took);
            else if (status === 503) refused.push(took);
            else other[status] = (other[status] ?? 0) + 1;
          }),
        );
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(pending);
  pool.close();
  const seconds = ms / 1000;
  return {
    offeredPerSecond: rate,
    admittedPerSecond: Math.round(admitted.length / seconds),
    admitted: summary(admitted),
    refused: summary(refused),
    other,
    generatorWorstLagMs: Math.round(worstLag),
  };
}

/** Puts the process on one core; false when it cannot. */
function pin(pid, core) {
  try {
    execFileSync('taskset', ['-pc', String(core), String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const PIN = values.pin && availableParallelism() >= 2;

async function start(upstream, dir, env = {}) {
  const target = await startKeyrelay({
    id: 'keyrelay-memory',
    upstream,
    poolKey: `sk-bench-pool-${randomBytes(12).toString('hex')}`,
    adminToken: randomBytes(24).toString('hex'),
    dir,
    env,
  });
  if (target.status !== 'ok') throw new Error(target.reason);
  if (PIN) pin(target.child.pid, 0);
  return target;
}

function line(label, r) {
  const ms = (s) => (s.count === 0 ? '-' : `p50 ${s.p50} ms, p99 ${s.p99} ms`);
  const others = Object.entries(r.other).map(([status, n]) => `${n}×${status}`).join(', ');
  return [
    `${label}: offered ${r.offeredPerSecond}/s, admitted ${r.admittedPerSecond}/s`,
    `  admitted (200): ${r.admitted.count}, ${ms(r.admitted)}`,
    `  refused (503):  ${r.refused.count}, ${ms(r.refused)} to the refusal`,
    `  other: ${others || 'none'}; generator at worst ${r.generatorWorstLagMs} ms late`,
  ].join('\n');
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'keyrelay-overload-'));
  const upstream = await startUpstream();
  const results = { machine: machine() };
  const pinned = PIN && pin(process.pid, 1) && pin(upstream.child.pid, 1);
  const ms = SECONDS * 1000;
  Object.assign(results, { pinned, seconds: SECONDS, upstreamDelayMs: 20 });
  process.stdout.write(`${pinned ? 'keyrelay on core 0, load generator and upstream on core 1' : 'not pinned to cores'}; load average ${results.machine.loadAverage.join(' ')}\n`);

  const target = await start(upstream, dir);
  await closedLoop(target, 32, 1000); // warm up
  const rates = [];
  for (const concurrency of values.capacity ? [] : CONCURRENCY) {
    const rps = Math.round(await closedLoop(target, concurrency, Math.min(ms, 3000)));
    rates.push({ concurrency, rps });
    process.stdout.write(`capacity: concurrency ${concurrency}: ${rps} requests/s\n`);
  }
  const capacity = values.capacity ? Number(values.capacity) : Math.max(...rates.map((r) => r.rps));
  results.capacity = { perSecond: capacity, byConcurrency: rates };

  const light = await openLoop(target, Math.max(1, Math.round(capacity / 10)), ms);
  results.light = light;
  process.stdout.write(`${line('light load (a tenth of the capacity)', light)}\n`);

  if (RUNS.has('default')) {
    const defaultCap = await openLoop(target, 2 * capacity, ms);
    results.twiceDefaultCap = defaultCap;
    process.stdout.write(`${line('twice the capacity, default cap (5,000)', defaultCap)}\n`);
  }
  await target.close();

  // A fresh process with `env`, warmed, then twice the capacity: its figures, printed under `label`.
  const twiceWith = async (env, label) => {
    const fresh = await start(upstream, dir, env);
    await closedLoop(fresh, 32, 1000);
    const r = await openLoop(fresh, 2 * capacity, ms);
    process.stdout.write(`${line(label, r)}\n`);
    await fresh.close();
    return r;
  };
  if (RUNS.has('cap')) {
    const cap = Math.max(1, Math.ceil((capacity * light.admitted.p50 * CAP_FACTOR) / 1000));
    const capped = await twiceWith({ KEYRELAY_MAX_REQUESTS_IN_FLIGHT: String(cap) }, `twice the capacity, maxRequestsInFlight ${cap} (capacity × light p50 × ${CAP_FACTOR})`);
    results.twiceCapped = { maxRequestsInFlight: cap, ...capped };
  }
  if (RUNS.has('delay')) {
    const shed = await twiceWith({ KEYRELAY_MAX_EVENT_LOOP_DELAY_MS: String(LOOP_DELAY) }, `twice the capacity, maxEventLoopDelayMs ${LOOP_DELAY}`);
    results.twiceLoopDelay = { maxEventLoopDelayMs: LOOP_DELAY, ...shed };
  }
  if (RUNS.has('utilization')) {
    const busy = await twiceWith({ KEYRELAY_MAX_EVENT_LOOP_UTILIZATION: String(UTILIZATION) }, `twice the capacity, maxEventLoopUtilization ${UTILIZATION}`);
    results.twiceUtilization = { maxEventLoopUtilization: UTILIZATION, ...busy };
  }

  mkdirSync(dirname(values.json), { recursive: true });
  writeFileSync(values.json, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`results: ${values.json}\n`);
}

process.once('SIGINT', () => {
  killAllNow();
  process.exit(130);
});
try {
  await main();
} finally {
  await stopAll();
}
