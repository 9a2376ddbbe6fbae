// `npm run chaos`: two keyrelay processes on one redis-server, the chaos upstream (two pool keys,
// one of which fails on command) behind an HTTP CONNECT proxy, under a load of JSON and streamed
// chat calls from several users with limits, while Redis is restarted, frozen, the flaky key
// answers 429, 500 and resets, a gateway is killed with SIGKILL and started again, and the proxy
// stalls. Then it checks that every client got a well-formed answer in time, that the ledger is
// exactly what the gateways reported charging, that no secret got out, and that memory and
// descriptors came back. docs/reliability.md, "Chaos", says what each check means.
//
//   node bench/chaos.js [--seconds 60] [--concurrency 50] [--deadline 30] [--short] [--json FILE]
//
// --short: the compressed schedule of test/chaos-short.test.ts (one Redis restart instead of two).
// Needs dist/ (npx tsc -p tsconfig.build.json) and redis-server on the PATH. Exit code 1 when a
// check fails, 2 when the run could not be set up.
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Agent, fetch as fetchVia } from 'undici';
import { exited, forkReady, freePort, killAllNow, spawnTracked, stop, stopAll } from './lib/children.js';
import { collectGarbage, inspectorUrls } from './lib/gc.js';
import { startRedis } from './lib/redis.js';
import { startStallProxy } from './lib/stall-proxy.js';
import { admin, cleanEnv, waitHealthy } from './lib/targets.js';
import { judge, leaks } from './lib/chaos-client.js';
import { accessLogRecords, chargedByUser, checkUser, heldReservations, requestLog } from './lib/chaos-ledger.js';
import { rssKb } from './lib/proc.js';
import { FAKE_COMPLETION_TOKENS, promptTokens } from '../dist/dev/fake-openai-answers.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

// ---- settings -------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const i = argv.indexOf(name);
  if (i === -1) return fallback;
  const value = Number(argv[i + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} takes a positive number`);
  return value;
};
const SHORT = argv.includes('--short');
const SECONDS = option('--seconds', SHORT ? 15 : 60);
const CONCURRENCY = option('--concurrency', 50);
const DEADLINE_MS = option('--deadline', 30) * 1000;
const jsonAt = argv.indexOf('--json');
const JSON_FILE = jsonAt === -1 ? undefined : argv[jsonAt + 1];
// A reservation outlives the longest request by a margin: a request that is still running when
// its lease ends would be charged its worst case by the next admission's sweep.
const LEASE_MS = DEADLINE_MS + 10_000;
// Memory and descriptors after the load, against before it (after a garbage collection each).
const RSS_TOLERANCE_KB = 64 * 1024;
const FD_TOLERANCE = 16;

const secret = (bytes = 18) => randomBytes(bytes).toString('base64url');
const POOL_KEYS = { steady: `sk-chaos-steady-${secret()}`, flaky: `sk-chaos-flaky-${secret()}` };
const ADMIN_TOKEN = `chaos-admin-${secret()}`;
const PROXY_USER = 'chaos';
const PROXY_PASSWORD = `pw-${secret()}`;

// Users with limits on requests per minute, tokens per day and dollars per day: some far from
// them, some that the load takes to their limit, so that refusals and the ledger's edge are both
// exercised.
const USERS = [
  { id: 'roomy-1', limits: { rpm: 100_000, tokensPerDay: 1_000_000_000, usdPerDay: 1000 } },
  { id: 'roomy-2', limits: { rpm: 100_000, tokensPerDay: 1_000_000_000, usdPerDay: 1000 } },
  { id: 'tokens-tight', limits: { rpm: 100_000, tokensPerDay: 3_000, usdPerDay: 1000 } },
  { id: 'dollars-tight', limits: { rpm: 100_000, tokensPerDay: 1_000_000_000, usdPerDay: 0.001 } },
  { id: 'rpm-tight', limits: { rpm: 120, tokensPerDay: 1_000_000_000, usdPerDay: 1000 } },
  { id: 'all-tight', limits: { rpm: 300, tokensPerDay: 10_000, usdPerDay: 0.003 } },
];

// The faults, at fractions of the load's length: the flaky key's 429, 500 and resets in turns,
// Redis restarted (SIGTERM, started again on its port from its append-only file), Redis frozen
// 3 s, gateway 2 killed and started again, the proxy stalled. The kill comes well after Redis is
// back: its settles then are not waiting in the dying process.
const FULL = [
  [0.05, 'flaky', '429'],
  [0.1, 'redis-restart'],
  [0.15, 'flaky', '500'],
  [0.22, 'proxy-stall', 4000],
  [0.25, 'flaky', 'reset'],
  [0.35, 'flaky', 'ok'],
  [0.37, 'redis-freeze', 3000],
  [0.5, 'gateway-kill'],
  [0.63, 'redis-restart'],
  [0.7, 'flaky', '429'],
  [0.76, 'flaky', '500'],
  [0.82, 'flaky', 'reset'],
  [0.88, 'flaky', 'ok'],
];
const COMPRESSED = [
  [0.03, 'flaky', '429'],
  [0.05, 'redis-freeze', 3000],
  [0.13, 'flaky', '500'],
  [0.28, 'flaky', 'reset'],
  [0.38, 'gateway-kill'],
  [0.48, 'flaky', 'ok'],
  [0.5, 'proxy-stall', 2500],
  [0.75, 'redis-restart'],
];
const SCHEDULE = SHORT ? COMPRESSED : FULL;

// ---- what the run keeps ---------------------------------------------------------------------

const started = Date.now();
const stamp = () => `[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s]`;
const say = (text) => process.stdout.write(`${stamp()} ${text}\n`);
const failures = [];
const counts = new Map(); // answer kind -> count
const bad = []; // a few examples of each failure kind
const answered = []; // {requestId, userId, status}
let cutByKill = 0;
const answerLeaks = new Set();
const events = [];

const dir = mkdtempSync(join(tmpdir(), 'keyrelay-chaos-'));
const redisDir = join(dir, 'redis');
mkdirSync(redisDir);
const SECRETS = [
  ['pool key steady', POOL_KEYS.steady],
  ['pool key flaky', POOL_KEYS.flaky],
  ['admin token', ADMIN_TOKEN],
  ['proxy password', PROXY_PASSWORD],
  ['proxy credentials', Buffer.from(`${PROXY_USER}:${PROXY_PASSWORD}`).toString('base64')],
];

// ---- processes ------------------------------------------------------------------------------

let redis;
let redisPort;
let upstream;
let proxy;
const gateways = [];

function settingsFile() {
  const file = join(dir, 'keyrelay.yaml');
  writeFileSync(
    file,
    [
      '# bench/chaos.js: upstream timeouts short enough for a run of a minute',
      'timeouts: { connectMs: 3000, headersMs: 15000, bodyIdleMs: 10000 }',
      `quota: { leaseMs: ${LEASE_MS} }`,
      'logging: { requestLogSize: 1000000, pretty: false }',
      // A key whose 5xx opened its circuit is tried again within 2 s rather than 5 to 300: the
      // flaky key's next fault then meets requests within a short run too.
      'pool: { health: { circuitBaseMs: 500, circuitMaxMs: 2000 } }',
      '',
    ].join('\n'),
  );
  return file;
}

async function startGateway(gw) {
  const logFile = join(dir, `${gw.name}-${gw.generation}.log`);
  const fd = openSync(logFile, 'w');
  const child = spawnTracked(process.execPath, ['--inspect=127.0.0.1:0', join(ROOT, 'bin/keyrelay.js'), 'serve'], {
    cwd: ROOT,
    stdio: ['ignore', fd, fd],
    env: cleanEnv({
      HOST: '127.0.0.1',
      PORT: String(gw.port),
      KEYRELAY_CONFIG: gw.settings,
      KEYRELAY_UPSTREAM_URL: `http://127.0.0.1:${upstream.port}/v1`,
      OPENAI_API_KEYS: `${POOL_KEYS.steady},${POOL_KEYS.flaky}`,
      KEYRELAY_PROXY: `http://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${proxy.port}`,
      KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      LOG_LEVEL: 'info',
    }),
  });
  closeSync(fd);
  gw.child = child;
  gw.logFiles.push(logFile);
  await waitHealthy(child, gw.origin, logFile);
}

function fdCount(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/** RSS and descriptors of a gateway after a full garbage collection. */
async function footprint(gw) {
  const urls = inspectorUrls(readFileSync(gw.logFiles[gw.logFiles.length - 1], 'utf8'));
  if (urls[0]) await collectGarbage(urls[0]);
  return { rssKb: rssKb([gw.child.pid]), fds: fdCount(gw.child.pid) };
}

// ---- the load -------------------------------------------------------------------------------

let agent = new Agent({ connections: CONCURRENCY * 2 });
let turn = 0;

function pickGateway() {
  const up = gateways.filter((g) => g.up);
  return up[turn++ % up.length];
}

function count(kind) {
  counts.set(kind, (counts.get(kind) ?? 0) + 1);
}

function fail(kind, detail) {
  count(kind);
  const seen = bad.filter((b) => b.kind === kind).length;
  if (seen < 3) bad.push({ kind, detail });
}

async function oneRequest(user, n, { phase = 'load' } = {}) {
  const gw = pickGateway();
  const generation = gw.generation;
  const streamed = n % 5 < 2;
  const body = {
    model: 'gpt-4o-mini',
    // A number first: requests that share the start of a prompt would all go to one pool key.
    messages: [{ role: 'user', content: `${n}: say something about chaos, in a few words.` }],
    max_tokens: 32,
    ...(streamed ? { stream: true, ...(n % 2 === 0 ? { stream_options: { include_usage: true } } : {}) } : {}),
  };
  // What a whole answer is charged: the chaos upstream reports usage by the fake's rule, priced
  // at gpt-4o-mini's $0.15 and $0.60 per million tokens, rounded up (docs/prices.md).
  const input = promptTokens(body.messages);
  const expected = { input, output: FAKE_COMPLETION_TOKENS, micros: Math.ceil((input * 150_000 + FAKE_COMPLETION_TOKENS * 600_000) / 1_000_000) };
  const signal = AbortSignal.timeout(DEADLINE_MS);
  let res;
  let text;
  try {
    res = await fetchVia(`${gw.origin}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user.key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal,
      dispatcher: agent,
    });
    text = await res.text();
  } catch (err) {
    if (signal.aborted) return fail(`${phase}: no answer within ${DEADLINE_MS / 1000} s`, `${gw.name} ${user.id}`);
    if (gw.generation !== generation) {
      cutByKill++;
      return count(`${phase}: cut by the SIGKILL of its gateway`);
    }
    return fail(`${phase}: connection error`, `${gw.name}: ${err.cause?.message ?? err.message}`);
  }
  const headerText = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n');
  for (const name of leaks(`${headerText}\n${text}`, SECRETS.concat(USERS.map((u) => [`key of ${u.id}`, u.key])))) answerLeaks.add(name);
  const verdict = judge(res.status, res.headers.get('content-type') ?? '', text, streamed);
  const whole = verdict.kind === '200 json' || verdict.kind === '200 stream';
  // An error answer is charged nothing: refused before the upstream, or its reservation released.
  const charge = whole ? expected : res.status !== 200 ? { input: 0, output: 0, micros: 0 } : undefined;
  answered.push({ requestId: res.headers.get('x-keyrelay-request-id'), userId: user.id, servedBy: `${gw.name}#${generation}`, expected: charge });
  if (verdict.ok) count(`${phase}: ${verdict.kind}`);
  else fail(`${phase}: ${verdict.kind}`, `${gw.name} request ${res.headers.get('x-keyrelay-request-id')}: ${verdict.detail}`);
}

async function load(endAt) {
  let n = 0;
  const worker = async (w) => {
    while (Date.now() < endAt) {
      const i = n++;
      await oneRequest(USERS[(i + w) % USERS.length], i);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)));
  return n;
}

// ---- the faults -----------------------------------------------------------------------------

let seq = 0;
function tellUpstream(message) {
  const id = ++seq;
  return new Promise((resolve) => {
    const onMessage = (m) => {
      if (m?.ack !== id) return;
      upstream.child.off('message', onMessage);
      resolve(m);
    };
    upstream.child.on('message', onMessage);
    upstream.child.send({ ...message, seq: id });
  });
}

let killedAt;
const ACTIONS = {
  async flaky(mode) {
    await tellUpstream({ key: POOL_KEYS.flaky, mode });
    say(`flaky pool key: ${mode === 'ok' ? 'answers normally again' : `answers ${mode === 'reset' ? 'with a connection reset' : mode}`}`);
  },
  async 'redis-restart'() {
    const t = Date.now();
    await stop(redis.child, 10_000);
    say('redis: stopped by SIGTERM');
    await delay(1000);
    const next = await startRedis(redisDir, { port: redisPort, persist: true });
    if (next.unavailable) throw new Error(`redis did not start again: ${next.unavailable}`);
    redis = next;
    say(`redis: started again on its port from its append-only file (down ${((Date.now() - t) / 1000).toFixed(1)} s)`);
  },
  async 'redis-freeze'(ms) {
    process.kill(redis.child.pid, 'SIGSTOP');
    redis.frozen = true;
    say(`redis: frozen (SIGSTOP) for ${ms / 1000} s`);
    await delay(ms);
    process.kill(redis.child.pid, 'SIGCONT');
    redis.frozen = false;
    say('redis: running again (SIGCONT)');
  },
  async 'gateway-kill'() {
    const gw = gateways[1];
    gw.up = false;
    gw.generation++;
    killedAt = Date.now();
    gw.child.kill('SIGKILL');
    await exited(gw.child);
    say(`${gw.name}: killed (SIGKILL)`);
    await delay(1000);
    await startGateway(gw);
    await warmUp(gw);
    gw.before = await footprint(gw);
    gw.up = true;
    say(`${gw.name}: started again and back in rotation (RSS ${mb(gw.before.rssKb)}, ${gw.before.fds} descriptors)`);
  },
  async 'proxy-stall'(ms) {
    proxy.stall();
    proxy.counts.frozenTunnels += proxy.openTunnels;
    say(`proxy: stalled for ${ms / 1000} s (new CONNECTs held, open tunnels frozen)`);
    await delay(ms);
    proxy.resume();
    say('proxy: flowing again');
  },
};

/** Each fault at its time, whether or not the one before is over (a stall may outlast it). */
function runSchedule() {
  return Promise.all(
    SCHEDULE.map(async ([at, name, arg]) => {
      await delay(Math.max(0, loadStart + at * SECONDS * 1000 - Date.now()));
      try {
        events.push({ at: Number(((Date.now() - loadStart) / 1000).toFixed(1)), fault: name, ...(arg === undefined ? {} : { arg }) });
        await ACTIONS[name](arg);
      } catch (err) {
        failures.push(`fault ${name} could not be applied: ${err.message}`);
        say(`fault ${name} failed: ${err.message}`);
      }
    }),
  );
}

const mb = (kb) => `${(kb / 1024).toFixed(1)} MB`;

/** A few requests per user on one gateway, so that "before" is a process that has served. */
async function warmUp(gw) {
  for (const user of USERS) {
    const res = await fetch(`${gw.origin}/v1/models`, { headers: { authorization: `Bearer ${user.key}` } });
    await res.arrayBuffer();
  }
}

// ---- the run --------------------------------------------------------------------------------

let loadStart = 0;

async function setUp() {
  redisPort = await freePort();
  redis = await startRedis(redisDir, { port: redisPort, persist: true });
  if (redis.unavailable) throw new Error(redis.unavailable);
  upstream = await forkReady(join(ROOT, 'bench/chaos-upstream.js'), [], { env: cleanEnv() });
  proxy = await startStallProxy({ username: PROXY_USER, password: PROXY_PASSWORD });
  const settings = settingsFile();
  for (const name of ['gateway-1', 'gateway-2']) {
    const port = await freePort();
    gateways.push({ name, port, origin: `http://127.0.0.1:${port}`, settings, generation: 0, logFiles: [], up: false });
  }
  await Promise.all(gateways.map((gw) => startGateway(gw)));
  const origin = gateways[0].origin;
  for (const user of USERS) {
    await admin(origin, ADMIN_TOKEN, 'POST', '/users', { id: user.id, name: 'chaos', limits: user.limits });
    user.key = (await admin(origin, ADMIN_TOKEN, 'POST', `/users/${user.id}/keys`, { name: 'chaos' })).key;
  }
  for (const gw of gateways) {
    await warmUp(gw);
    gw.before = await footprint(gw);
    gw.up = true;
  }
}

async function main() {
  say(`chaos: ${SECONDS} s at concurrency ${CONCURRENCY}, deadline ${DEADLINE_MS / 1000} s per request, ${SHORT ? 'compressed' : 'full'} schedule; in ${dir}`);
  await setUp();
  for (const gw of gateways) say(`${gw.name}: pid ${gw.child.pid}, RSS ${mb(gw.before.rssKb)}, ${gw.before.fds} descriptors before the load`);
  loadStart = Date.now();
  const endAt = loadStart + SECONDS * 1000;
  const [sent] = await Promise.all([load(endAt), runSchedule()]);
  const loadEnd = Date.now();
  say(`load over: ${sent} requests; waiting for the gateways to settle`);
  await agent.close();
  if (redis.frozen) process.kill(redis.child.pid, 'SIGCONT');

  // Every request is over: what Redis still holds was reserved by the killed process.
  await delay(3000);
  const held = await heldReservations(redisPort, USERS.map((u) => u.id));
  const orphanCount = [...held.values()].reduce((n, list) => n + list.length, 0);
  say(`reservations left by the killed gateway: ${orphanCount}`);

  // Their leases run out; the next admission of each user charges them, as the README says.
  if (killedAt !== undefined) {
    const expiry = killedAt + LEASE_MS + 1000;
    if (expiry > Date.now()) {
      say(`waiting ${((expiry - Date.now()) / 1000).toFixed(0)} s for their leases (quota.leaseMs ${LEASE_MS / 1000} s) to run out`);
      await delay(expiry - Date.now());
    }
  }
  agent = new Agent();
  let n = 1_000_000;
  for (const user of USERS) await oneRequest(user, n++, { phase: 'after' });
  await agent.close();
  await delay(1000);

  // The ledger against the request log.
  const log = await requestLog(gateways[0].origin, ADMIN_TOKEN);
  const killedLogs = gateways.flatMap((gw) => gw.logFiles.slice(0, -1)).map((file) => readFileSync(file, 'utf8'));
  let fromKilledLog = 0;
  const killedRecords = accessLogRecords(killedLogs);
  for (const [id, record] of killedRecords) {
    if (log.records.has(id)) continue;
    log.records.set(id, record);
    fromKilledLog++;
  }
  // An answer of the killed process that reached no log (both are written after the answer, in
  // the background): its charge is what the client knows the answer costs, nothing for an error.
  const killedProcesses = new Set(gateways.flatMap((gw) => Array.from({ length: gw.generation }, (_, g) => `${gw.name}#${g}`)));
  let fromClient = 0;
  let missing = 0;
  const heldIds = new Set([...held.values()].flat().map((o) => o.requestId));
  const answeredIds = new Set(answered.map((a) => a.requestId));
  for (const a of answered) {
    // Held: its settle never reached Redis either, and it is charged as an orphan below.
    if (!a.requestId || log.records.has(a.requestId) || heldIds.has(a.requestId)) continue;
    if (killedProcesses.has(a.servedBy) && a.expected) {
      log.records.set(a.requestId, { requestId: a.requestId, userId: a.userId, tokens: { input: a.expected.input, output: a.expected.output }, costMicros: a.expected.micros, fromClient: true });
      fromClient++;
    } else missing++;
  }
  if (missing > 0) failures.push(`${missing} answered requests are in no log, and were not answers of the killed process whose charge the client knows`);
  // What Redis still holds belongs to the killed process: requests it was serving (cut, or
  // answered but not yet settled), and requests whose settle or release it kept to send again
  // once Redis answered (a reserve sent while Redis was frozen runs when it thaws, after the
  // client had its 503) and lost with it. Each is charged its worst case when its lease runs
  // out, in place of anything its record says.
  const servedBy = new Map(answered.map((a) => [a.requestId, a.servedBy]));
  const ofKilled = (id) => killedRecords.has(id) || killedProcesses.has(servedBy.get(id));
  const orphansOf = new Map();
  const unexplained = [];
  for (const [userId, list] of held) {
    const orphans = [];
    for (const o of list) {
      const r = log.records.get(o.requestId);
      if (!r) orphans.push({ ...o, why: answeredIds.has(o.requestId) ? 'settle lost' : 'cut' });
      else if (ofKilled(o.requestId)) {
        orphans.push({ ...o, why: r.status === 503 ? 'release lost' : 'settle lost' });
        log.records.delete(o.requestId);
      } else unexplained.push(`reservation ${o.requestId} of ${userId} is still held, yet a live gateway logged its end (${r.status} ${r.outcome}${r.errorCode ? ` ${r.errorCode}` : ''}, at ${r.time})`);
    }
    orphansOf.set(userId, orphans);
  }
  failures.push(...unexplained);
  const charged = chargedByUser(log.records);
  const ledger = [];
  for (const user of USERS) {
    const view = await admin(gateways[0].origin, ADMIN_TOKEN, 'GET', `/users/${user.id}`);
    const row = checkUser(user, view, charged.get(user.id) ?? { requests: 0, tokens: 0, micros: 0 }, orphansOf.get(user.id) ?? []);
    ledger.push(row);
    for (const f of row.failures) failures.push(`ledger of ${user.id}: ${f}`);
  }
  const cutOrphans = ledger.reduce((n, row) => n + row.orphans.cut, 0);
  if (cutOrphans > cutByKill) failures.push(`${cutOrphans} reservations of requests that never ended, more than the ${cutByKill} requests the kill cut`);

  // Memory and descriptors, once idle upstream connections have closed (the fake upstream's
  // keep-alive is 5 s).
  const idleFor = Date.now() - loadEnd;
  if (idleFor < 8000) await delay(8000 - idleFor);
  const footprints = [];
  for (const gw of gateways) {
    const after = await footprint(gw);
    const row = { gateway: gw.name, restarted: gw.generation > 0, before: gw.before, after };
    footprints.push(row);
    if (after.rssKb > gw.before.rssKb + RSS_TOLERANCE_KB) failures.push(`${gw.name}: RSS ${mb(after.rssKb)} after the load, ${mb(gw.before.rssKb)} before (tolerance ${mb(RSS_TOLERANCE_KB)})`);
    if (!(after.fds <= gw.before.fds + FD_TOLERANCE)) failures.push(`${gw.name}: ${after.fds} descriptors after the load, ${gw.before.fds} before (tolerance ${FD_TOLERANCE})`);
  }

  // Secrets: the answers (checked as they came), the request log, every log line of every gateway.
  const userSecrets = USERS.map((u) => [`key of ${u.id}`, u.key]);
  const logLeaks = new Set(leaks(log.text, SECRETS.concat(userSecrets)));
  for (const gw of gateways) for (const file of gw.logFiles) for (const name of leaks(readFileSync(file, 'utf8'), SECRETS.concat(userSecrets))) logLeaks.add(name);
  if (answerLeaks.size > 0) failures.push(`secrets in answers: ${[...answerLeaks].join(', ')}`);
  if (logLeaks.size > 0) failures.push(`secrets in the gateways' logs or request log: ${[...logLeaks].join(', ')}`);

  const served = (await tellUpstream({ served: true })).served;
  for (const mode of ['429', '500', 'reset']) if (!(served[mode] > 0)) failures.push(`the flaky key never answered ${mode}: that fault met no request`);
  const wellFormed = [...counts].filter(([k]) => !bad.some((b) => b.kind === k) && !k.includes('cut by the SIGKILL')).reduce((s, [, v]) => s + v, 0);
  const malformed = [...counts].filter(([k]) => bad.some((b) => b.kind === k)).reduce((s, [, v]) => s + v, 0);
  if (malformed > 0) failures.push(`${malformed} requests without a well-formed answer in time: ${bad.map((b) => `${b.kind} (${b.detail})`).join('; ')}`);

  const report = {
    seconds: SECONDS,
    concurrency: CONCURRENCY,
    deadlineSeconds: DEADLINE_MS / 1000,
    schedule: SHORT ? 'compressed' : 'full',
    requests: sent + USERS.length,
    wellFormed,
    malformed,
    cutByKill,
    answers: Object.fromEntries([...counts].sort((a, b) => b[1] - a[1])),
    faults: events,
    upstreamServed: served,
    proxy: { ...proxy.counts },
    requestLog: { records: log.records.size, duplicatesDropped: log.duplicates, fromKilledLog, fromClient, answeredButMissing: missing },
    ledger,
    footprints,
    tolerance: { rssKb: RSS_TOLERANCE_KB, fds: FD_TOLERANCE },
    leaks: { answers: [...answerLeaks], logs: [...logLeaks] },
    failures,
    ok: failures.length === 0,
  };
  print(report);
  if (JSON_FILE) writeFileSync(JSON_FILE, `${JSON.stringify(report, null, 2)}\n`);
  return report.ok ? 0 : 1;
}

function print(r) {
  const out = [];
  out.push('', `Chaos: ${r.seconds} s, concurrency ${r.concurrency}, ${r.schedule} schedule`);
  out.push(`requests ${r.requests}: well-formed ${r.wellFormed}, not ${r.malformed}, cut by the SIGKILL of their gateway ${r.cutByKill}`);
  out.push('answers:');
  for (const [kind, n] of Object.entries(r.answers)) out.push(`  ${String(n).padStart(7)}  ${kind}`);
  out.push(`upstream answered: ${Object.entries(r.upstreamServed).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  out.push(`proxy: ${r.proxy.connects} CONNECTs, ${r.proxy.heldConnects} held while stalled, ${r.proxy.frozenTunnels} tunnels frozen, ${r.proxy.refused} refused`);
  out.push(
    `request log: ${r.requestLog.records} records (${r.requestLog.duplicatesDropped} written twice, counted once; ${r.requestLog.fromKilledLog} only in the access log of the killed process, ${r.requestLog.fromClient} answered by it and in no log); unaccounted answers: ${r.requestLog.answeredButMissing}`,
  );
  out.push('ledger (day window; spent = logged + orphans charged at their worst case; orphans: requests cut + settles or releases lost):');
  out.push('  user            logged tokens / µ$     orphans: tokens / µ$     spent tokens / µ$      reserved  verdict');
  for (const l of r.ledger) {
    out.push(
      `  ${l.user.padEnd(15)} ${`${l.logged.tokens} / ${l.logged.micros}`.padEnd(22)} ${`${l.orphans.cut}+${l.orphans.lost}: ${l.orphans.tokens} / ${l.orphans.micros}`.padEnd(24)} ${`${l.spent.tokens} / ${l.spent.micros}`.padEnd(22)} ${`${l.reserved.tokens} / ${l.reserved.micros}`.padEnd(9)} ${l.failures.length === 0 ? 'exact' : 'WRONG'}`,
    );
  }
  out.push(`memory and descriptors (after a GC; tolerance +${mb(r.tolerance.rssKb)}, +${r.tolerance.fds} descriptors):`);
  for (const f of r.footprints) {
    out.push(`  ${f.gateway}${f.restarted ? ' (restarted: its level after restart)' : ''}: RSS ${mb(f.before.rssKb)} -> ${mb(f.after.rssKb)}, descriptors ${f.before.fds} -> ${f.after.fds}`);
  }
  out.push(`secrets found: answers ${r.leaks.answers.length === 0 ? 'none' : r.leaks.answers.join(', ')}; logs ${r.leaks.logs.length === 0 ? 'none' : r.leaks.logs.join(', ')}`);
  out.push(r.ok ? 'CHAOS: every check passed' : `CHAOS: ${r.failures.length} checks failed:\n${r.failures.map((f) => `  - ${f}`).join('\n')}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

let finished = false;
process.once('SIGINT', () => {
  killAllNow();
  process.exit(130);
});
process.once('exit', () => {
  if (!finished) killAllNow();
});

main()
  .then(
    (code) => code,
    (err) => {
      process.stderr.write(`chaos: ${err instanceof Error ? err.stack : String(err)}\n`);
      return 2;
    },
  )
  .then(async (code) => {
    if (redis?.frozen) process.kill(redis.child.pid, 'SIGCONT');
    await stopAll();
    await proxy?.close();
    finished = true;
    if (!argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  });
