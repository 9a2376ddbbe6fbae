// The load generator: one child process, the same for every target, driven over IPC by run.js.
// undici's Pool with fixed connections (no pipelining); every answer is read to its end and
// checked against the status and byte count the target gave in its sanity check.
//
// Commands (each answers {id, result} or {id, error}):
//   rate      {spec, connections, warmupMs, durationMs}  completed requests per second
//   sequence  {spec, warmup, durationMs}                 latency at concurrency 1
//   ttfb      {spec, count, connections}                 time to the first body byte
//   fixed     {spec, count, connections}                 exactly `count` requests (CPU per request)
//   hold      {spec, count, batch}                       opens `count` more streams and keeps them open
//   release   {}                                         closes the held streams
//   sent      {}                                         requests sent so far, by origin (CPU per request over a whole run)
//
// A spec with `headerSets` sends its requests with each set in turn (the keys of many users).
import { Pool } from 'undici';

/**
 * @typedef {{origin: string, path: string, headers: Record<string, string>, headerSets?: Record<string, string>[], turn?: number, body: string, expectBytes?: number}} Spec
 * @typedef {{ok: boolean, ms: number, ttfbMs: number, bytes: number, status: number}} Outcome
 */

/** @type {Map<string, number>} */
const sentTo = new Map();

/** The headers of the next request: the spec's own, or the next of its sets. */
function headersFor(spec) {
  sentTo.set(spec.origin, (sentTo.get(spec.origin) ?? 0) + 1);
  if (!spec.headerSets) return spec.headers;
  spec.turn = ((spec.turn ?? -1) + 1) % spec.headerSets.length;
  return spec.headerSets[spec.turn];
}

/** One request, read to its end. Never rejects: failures are outcomes. */
function exchange(pool, spec) {
  const headers = headersFor(spec);
  return new Promise((resolve) => {
    const t0 = performance.now();
    let firstAt = 0;
    let bytes = 0;
    const fail = (status) => resolve({ ok: false, ms: performance.now() - t0, ttfbMs: firstAt ? firstAt - t0 : 0, bytes, status });
    pool.request({ method: 'POST', path: spec.path, headers, body: spec.body }).then(({ statusCode, body }) => {
      body.on('data', (chunk) => {
        if (bytes === 0) firstAt = performance.now();
        bytes += chunk.length;
      });
      body.once('error', () => fail(statusCode));
      body.once('end', () => {
        const ok = statusCode === 200 && (spec.expectBytes === undefined || bytes === spec.expectBytes);
        resolve({ ok, ms: performance.now() - t0, ttfbMs: firstAt - t0, bytes, status: statusCode });
      });
    }, () => fail(0));
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function latencySummary(samples) {
  const sorted = Float64Array.from(samples).sort();
  return { count: sorted.length, p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: percentile(sorted, 100) };
}

function newPool(origin, connections) {
  return new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 30_000 });
}

/** Errors by status, so a target that answers 429 or 502 says so in the results. */
function countError(errors, outcome) {
  const key = outcome.status === 200 ? 'bytes' : String(outcome.status);
  errors[key] = (errors[key] ?? 0) + 1;
}

async function rate({ spec, connections, warmupMs, durationMs }) {
  const pool = newPool(spec.origin, connections);
  const begin = performance.now();
  const windowStart = begin + warmupMs;
  const windowEnd = windowStart + durationMs;
  let completed = 0;
  const errors = {};
  const worker = async () => {
    while (performance.now() < windowEnd) {
      const outcome = await exchange(pool, spec);
      const at = performance.now();
      if (at < windowStart || at > windowEnd) continue;
      if (outcome.ok) completed++;
      else countError(errors, outcome);
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  await pool.close();
  return { requests: completed, rps: completed / (durationMs / 1000), errors };
}

async function sequence({ spec, warmup, durationMs }) {
  const pool = newPool(spec.origin, 1);
  for (let i = 0; i < warmup; i++) await exchange(pool, spec);
  const samples = [];
  const errors = {};
  const end = performance.now() + durationMs;
  while (performance.now() < end) {
    const outcome = await exchange(pool, spec);
    if (outcome.ok) samples.push(outcome.ms);
    else countError(errors, outcome);
  }
  await pool.close();
  return { ...latencySummary(samples), errors };
}

async function ttfb({ spec, count, connections }) {
  const pool = newPool(spec.origin, connections);
  const samples = [];
  const errors = {};
  let started = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      const outcome = await exchange(pool, spec);
      if (outcome.ok) samples.push(outcome.ttfbMs);
      else countError(errors, outcome);
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  await pool.close();
  return { ...latencySummary(samples), errors };
}

async function fixed({ spec, count, connections }) {
  const pool = newPool(spec.origin, connections);
  let started = 0;
  let ok = 0;
  const errors = {};
  const t0 = performance.now();
  const worker = async () => {
    while (started < count) {
      started++;
      const outcome = await exchange(pool, spec);
      if (outcome.ok) ok++;
      else countError(errors, outcome);
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const elapsedMs = performance.now() - t0;
  await pool.close();
  return { requests: ok, elapsedMs, errors };
}

/** @type {{pool: Pool, open: number, failed: number} | undefined} */
let held;

/** Resolves when the stream's first body byte arrives (true) or it fails first (false); keeps reading after. */
function openStream(pool, spec, state) {
  const headers = headersFor(spec);
  return new Promise((resolve) => {
    pool.request({ method: 'POST', path: spec.path, headers, body: spec.body }).then(({ statusCode, body }) => {
      let first = true;
      body.on('data', () => {
        if (!first) return;
        first = false;
        resolve(statusCode === 200);
      });
      body.on('error', () => resolve(false));
      body.on('end', () => resolve(false));
    }, () => resolve(false));
  }).then((ok) => {
    if (ok) state.open++;
    else state.failed++;
  });
}

/** Opens `count` more streams; a later hold adds to those already held. */
async function hold({ spec, count, batch }) {
  // Connections are opened as needed: the cap only has to be above any count a run asks for.
  held ??= { pool: newPool(spec.origin, 1_000_000), open: 0, failed: 0 };
  const state = held;
  const t0 = performance.now();
  // In batches: a thousand SYNs at once would overflow the listen backlog and measure that instead.
  for (let done = 0; done < count; done += batch) {
    const n = Math.min(batch, count - done);
    await Promise.all(Array.from({ length: n }, () => openStream(state.pool, spec, state)));
  }
  return { open: state.open, failed: state.failed, openingMs: performance.now() - t0 };
}

async function release() {
  if (!held) return { closed: 0 };
  const { pool, open } = held;
  held = undefined;
  await pool.destroy();
  return { closed: open };
}

async function sent() {
  return Object.fromEntries(sentTo);
}

const COMMANDS = { rate, sequence, ttfb, fixed, hold, release, sent };

process.on('message', (message) => {
  const { id, cmd, ...args } = message;
  const command = COMMANDS[cmd];
  const run = command ? command(args) : Promise.reject(new Error(`unknown command ${cmd}`));
  run.then(
    (result) => process.send({ id, result }),
    (err) => process.send({ id, error: err instanceof Error ? err.stack ?? err.message : String(err) }),
  );
});
// The harness is gone: so is the load.
process.once('disconnect', () => process.exit(0));
