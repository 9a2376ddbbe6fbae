// The run as people read it: a table on stdout, and docs/performance.md.
import { GOAL_TARGETS, METRICS } from './summary.js';

const COMPARISON = {
  jsonRps: ['vsBare', 'share of bare'],
  streamRps: ['vsBare', 'share of bare'],
  streamPlainRps: ['vsBare', 'share of bare'],
  usersRps: ['vsBare', 'share of bare'],
  seqP50Ms: ['addedOverDirect', 'added over direct, ms'],
  seqP99Ms: ['addedOverDirect', 'added over direct, ms'],
  ttfbP50Ms: ['addedOverDirect', 'added over direct, ms'],
  ttfbP99Ms: ['addedOverDirect', 'added over direct, ms'],
  rssPerStreamKB: ['vsBare', 'times bare'],
  cpuPerJsonMs: ['vsBare', 'times bare'],
  cpuPerStreamMs: ['vsBare', 'times bare'],
  cpuPerStreamPlainMs: ['vsBare', 'times bare'],
  cpuWholeRunMs: ['vsBare', 'times bare'],
};

function fmt(value, digits) {
  if (value === undefined || !Number.isFinite(value)) return '–';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const signed = (v, digits) => (Number.isFinite(v) && v >= 0 ? `+${fmt(v, digits)}` : fmt(v, digits));

/** Header and rows of the main table: one column per measured target. */
function mainTable(result) {
  const rows = result.rows.filter((r) => r.status === 'ok');
  const header = ['', ...rows.map((r) => r.label)];
  const body = [];
  for (const [metric, { label, digits }] of Object.entries(METRICS)) {
    body.push([label, ...rows.map((r) => fmt(r.metrics[metric], digits))]);
    const [kind, text] = COMPARISON[metric];
    const cell = (r) => {
      const v = r[kind]?.[metric];
      return kind === 'vsBare' ? fmt(v, 2) : signed(v, 3);
    };
    body.push([`  ${text}`, ...rows.map(cell)]);
  }
  return { header, body };
}

function goalsTable(result) {
  const ids = GOAL_TARGETS.filter((id) => result.rows.find((r) => r.target === id)?.status === 'ok');
  const header = ['target', 'limit', ...ids.map((id) => result.rows.find((r) => r.target === id).label)];
  const body = result.goals.map((g) => [
    g.text,
    `${g.op} ${g.limit}`,
    ...ids.map((id) => {
      const r = g.results[id];
      if (!r) return '–';
      if (!Number.isFinite(r.value)) return 'no figure';
      // Three decimals where two would print the limit itself for a value just on the wrong side.
      const digits = g.kind === 'vsBare' && fmt(r.value, 2) !== fmt(g.limit, 2) ? 2 : 3;
      return `${fmt(r.value, digits)} ${r.met ? 'met' : 'missed'}`;
    }),
  ]);
  return { header, body };
}

function errorLines(result) {
  const lines = [];
  for (const row of result.rows) {
    if (row.status !== 'ok') continue;
    for (const round of row.rounds) {
      for (const [workload, errors] of Object.entries(round.errors)) {
        const parts = Object.entries(errors).map(([k, n]) => `${k === 'bytes' ? 'wrong length' : k === '0' ? 'no answer' : k} x${n}`);
        const why = round.notes[workload]?.error;
        if (parts.length) lines.push(`${row.label}, round ${round.round + 1}, ${workload}: ${parts.join(', ')}${why ? ` (${why})` : ''}`);
      }
    }
  }
  return lines;
}

function padded({ header, body }) {
  const all = [header, ...body];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  return all.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}

function markdown({ header, body }) {
  // Markdown drops the indentation that marks a comparison row: italics say it instead.
  const cell = (c) => (c.startsWith('  ') ? `_${c.trim()}_` : c);
  const line = (cells) => `| ${cells.map(cell).join(' | ')} |`;
  return [line(header), line(header.map((_, i) => (i === 0 ? '---' : '---:'))), ...body.map(line)].join('\n');
}

function unavailableLines(result) {
  return result.rows.filter((r) => r.status !== 'ok').map((r) => `${r.label}: unavailable: ${r.reason}`);
}

function workersLine(result) {
  const w = result.workers;
  if (!w) return undefined;
  const store = w.baseline === 'keyrelay-redis' ? 'Redis' : 'the in-memory store';
  return `2 workers against 1 (both on ${store}): JSON req/s x${fmt(w.jsonRps, 2)}, stream req/s x${fmt(w.streamRps, 2)}, CPU per JSON request x${fmt(w.cpuPerJsonMs, 2)}`;
}

function settingsLine(s) {
  const n = (v) => v.toLocaleString('en-US');
  return (
    `${s.connections} connections for ${s.rateMs / 1000} s per rate workload; concurrency 1 for ${s.sequentialMs / 1000} s; ` +
    `${s.ttfbStreams} paced streams over ${s.ttfbConnections} connections; ${n(s.heldStreams)} open streams; ` +
    `${n(s.cpuJsonRequests)} JSON and ${n(s.cpuStreamRequests)} streamed requests of each kind for CPU, after ${n(s.cpuWarmupRequests)} of each unmeasured`
  );
}

function machineLine(m) {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.kernel}`;
}

export function renderText(result) {
  const out = [
    `keyrelay benchmark, ${result.mode} run, ${result.rounds} round(s), medians; ${machineLine(result.machine)}`,
    `load average at start ${result.machine.loadAverage.join(' ')}, at end ${result.loadAverageAtEnd.join(' ')}`,
    '',
    padded(mainTable(result)),
    '',
    padded(goalsTable(result)),
  ];
  const workers = workersLine(result);
  if (workers) out.push('', workers);
  const notes = [...unavailableLines(result), ...errorLines(result)];
  if (notes.length) out.push('', ...notes);
  return `${out.join('\n')}\n`;
}

const HOW = `## How it is measured

One run starts everything on 127.0.0.1 and measures every target in the same run: the fake
upstream directly (A, \`src/dev/fake-upstream.ts\` scripted by \`bench/upstream.js\`), the bare relay
(B, \`bench/bare-relay.js\`: \`node:http\` plus \`undici.request\`, the floor any Node relay pays),
keyrelay with the in-memory store (C) and with Redis (D; the harness starts its own
\`redis-server --save '' --appendonly no\` on a free port), and keyrelay with \`KEYRELAY_WORKERS=2\`
when that setting exists. Each keyrelay is \`node bin/keyrelay.js serve\` with info-level logs going
to a file (its access log: one line per request, counted in the JSON file), one pool key, and
users created through the admin API whose limits (every kind there is: rpm, tpm, tokens and
dollars per day and month, concurrency) are checked on every request and never reached. Answers
carry usage, so usage accounting runs as it would in production.

The load comes from one separate process (\`bench/loadgen.js\`, undici \`Pool\`, fixed connections,
no pipelining), identical for every target; every answer is read to its end and checked against
the status and length the target gave in a sanity check. Targets are measured workload by
workload, in an order that changes every round; each figure is the median over the rounds, and
each comparison is the median of per-round comparisons (a target against direct or bare measured
in the same round).

| workload | how |
| --- | --- |
| JSON chat | \`POST /v1/chat/completions\`, 500-byte answer, fixed connections for a fixed time: completed requests per second |
| streamed chat | the same with \`stream: true\` and \`stream_options.include_usage\`: 20 SSE events (the last \`[DONE]\`) written back to back |
| streamed chat without include_usage | \`stream: true\` alone, as most clients send it: keyrelay asks the upstream for usage and takes the usage chunk and the \`"usage":null\` fields out (19 events reach the client, as from OpenAI) |
| JSON chat over 100 users | JSON chat with the key of one of 100 users in turn (created at start), so that per-user state is not always hot; direct and bare get the same key 100 times |
| concurrency 1 | JSON chat one after another on one connection: latency p50 and p99; "added" is over direct |
| first byte of a stream | 20 events 20 ms apart: time from sending the request to the first body byte |
| memory per open stream | in a fresh process of the target, run with \`--inspect=127.0.0.1:0\`: VmRSS of its processes (\`/proc/<pid>/status\`), each read after a full garbage collection (\`HeapProfiler.collectGarbage\`), with N/5 and with N streams open (an event every 500 ms); difference / (4N/5). The first fifth takes what a process allocates once when it starts serving streams |
| CPU per request | utime + stime of the relay's processes (\`/proc/<pid>/stat\`) over a fixed number of requests (JSON, streamed, streamed without include_usage), / requests; after as many unmeasured ones as warm-up, so that it is the cost in steady use and not of compiling the code again after the idle memory workload |
| CPU per request over the whole run | the same CPU from before the first warm-up request to the end of the last round, / every request the load generator sent the target: warm-up, compiling, idle time and all workloads included (not the fresh processes of the memory workload). One figure per target, not a median of rounds |

For direct, "the relay's process" is the fake upstream itself, and its requests per second are
bounded by the load generator, which shares the two cores with it: that column is there for the
latency and first-byte figures the others are compared with. For 2 workers, all processes of the
tree are summed. With Redis, redis-server's own CPU per request is in the JSON file
(\`notes.cpu.redisCpuPerJsonMs\`), not in the table.

## How to reproduce

\`\`\`sh
npm ci
npm run bench                # builds, runs (about 10 minutes on 2 cores), prints the table,
                             # writes bench/results/latest.json and rewrites this page
node bench/run.js --quick    # a smoke run of a minute or so, figures meaningless; leaves this page alone
node bench/run.js --rounds 5 # more rounds; --no-docs leaves this page alone
npm run build && node bench/profile.js --store redis --workload json --profile /tmp/prof
                             # CPU per request against the bare relay in steady use, and where
                             # keyrelay's goes (a V8 profile of the measured window, summarised),
                             # and CPU per request over the whole run, warm-up included;
                             # --workload stream-plain or users for the other two workloads
npm run build && node bench/instructions.js --baseline DIR
                             # instructions per request of this checkout against another built
                             # one, both under Valgrind's callgrind (apt-get install valgrind):
                             # what the machine's load does not move (V8's spread from one start
                             # to the next remains: 3 runs by default, --runs N); about 10 minutes
                             # a run
npm run build && node bench/gc-starts.js --baseline DIR
                             # fresh starts of this checkout (and of another), each under a steady
                             # load with --trace-gc: the share of young objects promoted, old
                             # collections, and which starts are slow (6 starts each by default,
                             # --starts N; about half a minute a start)
npx tsc -p tsconfig.build.json && node bench/stream-tap.js
                             # CPU per stream of the usage tap alone, no network: usage taken
                             # out of the stream against chunks passed through
npm run build && node bench/far-client.js
                             # a client far from the upstream behind a proxy, new connection per
                             # request: first streamed byte through keyrelay and direct, after idle
                             # gaps of 0, 15 and 60 s (about 7 minutes with --samples 5)
\`\`\`

It needs \`redis-server\` on PATH for (D); without it (D) is reported unavailable. The logs of each
keyrelay process are in \`bench/results/logs/\`. Close other work first: the load generator, the
fake upstream and the relay share the machine's cores, so anything else running moves the figures.
`;

/** `analysis`: markdown placed after the targets (bench/analysis.md: where the time goes). */
export function renderMarkdown(result, analysis) {
  const m = result.machine;
  const busy = Math.max(...m.loadAverage) > m.cores * 0.5;
  const parts = [
    '# Performance',
    '',
    'What keyrelay costs on top of a direct connection and of a bare relay, measured side by side in one',
    'run by `npm run bench`. This page is rewritten by every full run.',
    '',
    '## Latest run',
    '',
    `- when: ${result.startedAt}, ${result.durationS} s, ${result.mode} run, ${result.rounds} round(s)`,
    `- machine: ${machineLine(m)}`,
    `- settings: ${settingsLine(result.settings)}`,
    `- load average (1, 5, 15 min) at start ${m.loadAverage.join(', ')}, at end ${result.loadAverageAtEnd.join(', ')}`,
    ...(busy ? ['', '> The machine was busy with other work during this run: these figures are not representative.'] : []),
    '',
    markdown(mainTable(result)),
    '',
    '### Against the targets',
    '',
    markdown(goalsTable(result)),
    '',
  ];
  const workers = workersLine(result);
  if (workers) parts.push(`${workers}.`, '');
  const notes = [...unavailableLines(result), ...errorLines(result)];
  if (notes.length) parts.push('### Notes', '', ...notes.map((n) => `- ${n}`), '');
  if (analysis) parts.push(analysis.trimEnd(), '');
  parts.push(HOW);
  return parts.join('\n');
}
