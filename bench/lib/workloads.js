// The workloads, each measured the same way on every target. A measurement returns the metrics of
// one round and the failed requests it saw (by status; "bytes" = a 200 of the wrong length).
import { setTimeout as delay } from 'node:timers/promises';
import { collectGarbage } from './gc.js';
import { cpuMs, rssKb } from './proc.js';

export const WORKLOADS = [
  { id: 'json', title: 'JSON chat completion (500 B answer)', metrics: ['jsonRps'] },
  { id: 'stream', title: 'streamed chat completion (20 events), the client asking for usage', metrics: ['streamRps'] },
  { id: 'stream-plain', title: 'streamed chat completion without include_usage (keyrelay asks for usage and takes it out)', metrics: ['streamPlainRps'] },
  { id: 'users', title: 'JSON chat spread over 100 users, one key each', metrics: ['usersRps'] },
  { id: 'sequential', title: 'JSON chat at concurrency 1', metrics: ['seqP50Ms', 'seqP99Ms'] },
  { id: 'ttfb', title: 'first byte of a stream whose events come 20 ms apart', metrics: ['ttfbP50Ms', 'ttfbP99Ms'] },
  { id: 'memory', title: 'resident memory per open stream', metrics: ['rssPerStreamKB'] },
  {
    id: 'cpu',
    title: 'CPU time of the relay process per request',
    metrics: ['cpuPerJsonMs', 'cpuPerStreamMs', 'cpuPerStreamPlainMs', 'cpuWholeRunMs'],
  },
];

const MESSAGES = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Write a few sentences about a quick brown fox and a lazy dog.' },
];

/** The request bodies; `metadata.bench` picks the answer of bench/upstream.js. `stream-plain` is
 * the stream most clients ask for: without stream_options, so keyrelay asks the upstream for usage
 * on its behalf and takes it out of what the client gets. */
const BODIES = Object.fromEntries(
  ['json', 'stream', 'stream-plain', 'paced', 'hold'].map((bench) => [
    bench,
    JSON.stringify({
      model: 'gpt-4o-mini',
      messages: MESSAGES,
      max_tokens: 100,
      ...(bench === 'json' ? {} : bench === 'stream-plain' ? { stream: true } : { stream: true, stream_options: { include_usage: true } }),
      metadata: { bench },
    }),
  ]),
);

const EXPECT = { json: 'json', stream: 'stream', paced: 'stream', 'stream-plain': 'streamPlain' };

/**
 * The request of a workload (`json`, `stream`, `stream-plain`, `paced`, `hold`) against a target,
 * as the load generator takes it. `users`: one request after another over the target's 100 keys.
 */
export function requestSpec(target, bench, { users = false } = {}) {
  const authorizations = users ? target.userAuthorizations : [target.authorization];
  if (!authorizations?.length) throw new Error(`${target.label}: no keys of many users`);
  const headerSets = authorizations.map((authorization) => ({ authorization, 'content-type': 'application/json' }));
  return {
    origin: target.origin,
    path: '/v1/chat/completions',
    headers: headerSets[0],
    ...(users ? { headerSets } : {}),
    body: BODIES[bench],
    expectBytes: EXPECT[bench] === undefined ? undefined : target.expect?.[EXPECT[bench]],
  };
}

async function post(target, bench) {
  const s = requestSpec(target, bench);
  const res = await fetch(`${s.origin}${s.path}`, { method: 'POST', headers: s.headers, body: s.body });
  return { status: res.status, type: res.headers.get('content-type') ?? '', bytes: Buffer.from(await res.arrayBuffer()) };
}

/** One JSON and one streamed answer, checked whole; sets target.expect, or throws why the target is unfit. */
export async function sanityCheck(target) {
  const json = await post(target, 'json');
  if (json.status !== 200) throw new Error(`JSON request answered ${json.status}: ${json.bytes.toString('utf8').slice(0, 200)}`);
  const answer = JSON.parse(json.bytes.toString('utf8'));
  if (answer.object !== 'chat.completion') throw new Error('JSON request: not a chat.completion');
  const stream = await post(target, 'stream');
  const text = stream.bytes.toString('utf8');
  if (stream.status !== 200 || !stream.type.startsWith('text/event-stream')) {
    throw new Error(`streamed request answered ${stream.status} ${stream.type}: ${text.slice(0, 200)}`);
  }
  const events = text.split('\n\n').filter(Boolean);
  if (events.length !== 20 || events[19] !== 'data: [DONE]') throw new Error(`streamed request: ${events.length} events, not 20 ending in [DONE]`);
  // Without include_usage the client gets what OpenAI would send it: no usage chunk, no "usage":null.
  const plain = await post(target, 'stream-plain');
  const plainText = plain.bytes.toString('utf8');
  const plainEvents = plainText.split('\n\n').filter(Boolean);
  if (plain.status !== 200 || plainEvents.length !== 19 || plainEvents[18] !== 'data: [DONE]' || plainText.includes('"usage"')) {
    throw new Error(`streamed request without include_usage answered ${plain.status}, ${plainEvents.length} events: not 19 ending in [DONE] without usage`);
  }
  target.expect = { json: json.bytes.length, stream: stream.bytes.length, streamPlain: plain.bytes.length };
}

const merge = (into, errors) => {
  for (const [k, n] of Object.entries(errors)) into[k] = (into[k] ?? 0) + n;
  return into;
};

/** Median of three readings a little apart: one reading can land in the middle of a GC. */
async function steadyRss(pids) {
  const readings = [];
  for (let i = 0; i < 3; i++) {
    if (i > 0) await delay(100);
    readings.push(rssKb(pids));
  }
  return readings.sort((a, b) => a - b)[1];
}

/** Completed requests per second at fixed connections, and the load generator's own CPU share. */
async function rate(target, loadgen, s, spec, metric) {
  const before = cpuMs([loadgen.pid]);
  const r = await loadgen.call('rate', { spec, connections: s.connections, warmupMs: s.warmupMs, durationMs: s.rateMs });
  const loadgenCpu = (cpuMs([loadgen.pid]) - before) / (s.warmupMs + s.rateMs);
  return { metrics: { [metric]: r.rps }, errors: r.errors, notes: { loadgenCpu } };
}

/** measure[workload](target, loadgen, settings) -> {metrics, errors, notes?} */
export const measure = {
  json: (target, loadgen, s) => rate(target, loadgen, s, requestSpec(target, 'json'), 'jsonRps'),

  stream: (target, loadgen, s) => rate(target, loadgen, s, requestSpec(target, 'stream'), 'streamRps'),
  'stream-plain': (target, loadgen, s) => rate(target, loadgen, s, requestSpec(target, 'stream-plain'), 'streamPlainRps'),
  // Per-user state (the key's lookup, the user's limits and counters) is hot for one user: over
  // 100, each is touched once in 100 requests.
  users: (target, loadgen, s) => rate(target, loadgen, s, requestSpec(target, 'json', { users: true }), 'usersRps'),

  async sequential(target, loadgen, s) {
    const r = await loadgen.call('sequence', { spec: requestSpec(target, 'json'), warmup: s.sequentialWarmup, durationMs: s.sequentialMs });
    return { metrics: { seqP50Ms: r.p50, seqP99Ms: r.p99 }, errors: r.errors, notes: { samples: r.count } };
  },

  async ttfb(target, loadgen, s) {
    const r = await loadgen.call('ttfb', { spec: requestSpec(target, 'paced'), count: s.ttfbStreams, connections: s.ttfbConnections });
    return { metrics: { ttfbP50Ms: r.p50, ttfbP99Ms: r.p99 }, errors: r.errors, notes: { samples: r.count } };
  },

  async memory(target, loadgen, s, round) {
    // A process of its own, started for this: one that has served the other workloads has heap
    // to spare (and garbage to collect), and a thousand streams can fit in it without moving RSS.
    const fresh = await target.fresh(round + 1);
    if (fresh.status !== 'ok') throw new Error(fresh.reason);
    fresh.expect = target.expect;
    const hold = (count) => loadgen.call('hold', { spec: requestSpec(fresh, 'hold'), count, batch: 100 });
    const collected = async () => {
      const urls = fresh.inspectorUrls();
      if (urls.length === 0) throw new Error(`${fresh.label}: no inspector to collect garbage with`);
      await Promise.all(urls.map(collectGarbage));
      return steadyRss(fresh.pids());
    };
    const settled = async () => {
      // Every stream has had its second event (500 ms later) and the buffers that go with it.
      await delay(700);
      return collected();
    };
    try {
      for (const bench of ['json', 'stream']) {
        await loadgen.call('fixed', { spec: requestSpec(fresh, bench), count: s.memoryWarmup, connections: 4 });
      }
      const idle = await collected();
      // The first fifth absorbs what a process allocates once when it starts serving streams (code,
      // caches, pools); the figure is the slope over the rest.
      const first = Math.round(s.heldStreams / 5);
      const base = await hold(first);
      const atBase = await settled();
      const all = await hold(s.heldStreams - first);
      const atAll = await settled();
      const added = all.open - base.open;
      const errors = all.failed ? { failed: all.failed } : {};
      const perStream = added > 0 ? (atAll - atBase) / added : Number.NaN;
      const fromIdle = all.open > 0 ? (atAll - idle) / all.open : Number.NaN;
      return {
        metrics: { rssPerStreamKB: perStream },
        errors,
        notes: { open: all.open, rssIdleKB: idle, rssBaseKB: atBase, rssAllKB: atAll, fromIdlePerStreamKB: fromIdle, openingMs: base.openingMs + all.openingMs },
      };
    } finally {
      await loadgen.call('release').catch(() => undefined);
      await fresh.close();
    }
  },

  async cpu(target, loadgen, s) {
    // Redis's own CPU is not the relay's, but it is part of what keyrelay on Redis costs: kept as a note.
    const redis = target.redisPid ? [target.redisPid] : [];
    const run = async (bench, count) => {
      const pids = target.pids();
      const before = cpuMs(pids);
      const redisBefore = cpuMs(redis);
      const r = await loadgen.call('fixed', { spec: requestSpec(target, bench), count, connections: s.cpuConnections });
      const requests = Math.max(1, r.requests);
      return { perRequest: (cpuMs(pids) - before) / requests, redisPerRequest: (cpuMs(redis) - redisBefore) / requests, errors: r.errors };
    };
    // Warmed first, unmeasured: a target that sat idle through the memory workload may have had its
    // compiled code dropped, and recompiling it is no part of what a request costs in steady use.
    for (const bench of ['json', 'stream', 'stream-plain']) {
      await loadgen.call('fixed', { spec: requestSpec(target, bench), count: s.cpuWarmupRequests, connections: s.cpuConnections });
    }
    const json = await run('json', s.cpuJsonRequests);
    const stream = await run('stream', s.cpuStreamRequests);
    const plain = await run('stream-plain', s.cpuStreamRequests);
    const notes = redis.length
      ? { redisCpuPerJsonMs: json.redisPerRequest, redisCpuPerStreamMs: stream.redisPerRequest, redisCpuPerStreamPlainMs: plain.redisPerRequest }
      : undefined;
    return {
      // cpuWholeRunMs is the whole run's, not this workload's: run.js fills it in (summary.js).
      metrics: { cpuPerJsonMs: json.perRequest, cpuPerStreamMs: stream.perRequest, cpuPerStreamPlainMs: plain.perRequest },
      errors: merge(merge(merge({}, json.errors), stream.errors), plain.errors),
      notes,
    };
  },
};

/** A short run of each streamed and JSON workload, so the JIT and connection pools are warm before round 1. */
export async function warmUp(target, loadgen, s) {
  for (const bench of ['json', 'stream', 'stream-plain']) {
    await loadgen.call('rate', { spec: requestSpec(target, bench), connections: s.connections, warmupMs: 0, durationMs: s.warmUpMs });
  }
}
