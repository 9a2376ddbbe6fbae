// What one large JSON body costs keyrelay, by shape: for each shape of a 50 MB chat request, a
// fresh `keyrelay serve` (in-memory store) gets the body while /healthz is asked every 50 ms, and
// the run prints the answer's status and time, the worst /healthz wait meanwhile, and how far the
// body raised the process's peak resident memory (VmHWM, after a first small request). The table
// of docs/performance.md "Large JSON bodies" is written from its output by hand.
//
//   node bench/wide-json.js [--shapes a,b,…] [--mb 50]
//
// Builds nothing: run `npm run build` first. Uses 127.0.0.1 only and stops all it started.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAllNow, stopAll } from './lib/children.js';
import { startKeyrelay, startUpstream } from './lib/targets.js';

const { values } = parseArgs({ options: { shapes: { type: 'string' }, mb: { type: 'string', default: '50' } } });
const SIZE = Number(values.mb) * 1024 * 1024 - 1024;
const HEALTH_EVERY_MS = 50;
const HEALTH_GIVE_UP_MS = 60_000;

/** `unit` repeated to fill `bytes`, joined by commas. */
const fill = (unit, bytes) => Array(Math.floor(bytes / (unit.length + 1))).fill(unit).join(',');
const chat = (content, extra = '') => `{"model":"gpt-4o-mini"${extra},"messages":[{"role":"user","content":${content}}]}`;
const wide = (count, width) => `{${Array.from({ length: count }, (_, i) => `"${String(i).padStart(width, 'k')}":0`).join(',')}}`;

const SHAPES = {
  empties: { label: 'an array of `{}`', body: () => chat(`[${fill('{}', SIZE)}]`) },
  numbers: { label: 'an array of numbers', body: () => chat(`[${fill('7', SIZE)}]`) },
  string: { label: 'one string', body: () => chat(`"${'a'.repeat(SIZE)}"`) },
  strings: { label: 'strings of 64 characters', body: () => chat(`[${fill(`"${'w'.repeat(64)}"`, SIZE)}]`) },
  keys: { label: 'an object of short keys', body: () => chat('"hi"', `,"metadata":${wide(Math.floor(SIZE / 45), 40)}`) },
  'long-keys': { label: 'an object of 120-byte keys', body: () => chat('"hi"', `,"metadata":${wide(Math.floor(SIZE / 125), 120)}`) },
  'empties-x4': { label: 'an array of `{}`, 4 at once', body: () => chat(`[${fill('{}', SIZE)}]`), parallel: 4 },
};

function kb(pid, field) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]);
}

async function measure(target, shape) {
  const body = shape.body();
  const pid = target.child.pid;
  // One small request first: what serving any request costs once is not the body's.
  await post(target, chat('"hi"'));
  const peakBefore = kb(pid, 'VmHWM');
  let done = false;
  let worstHealth = 0;
  let healthFailures = 0;
  const poller = (async () => {
    while (!done) {
      const started = performance.now();
      const res = await fetch(`${target.origin}/healthz`, { signal: AbortSignal.timeout(HEALTH_GIVE_UP_MS) }).catch(() => undefined);
      await res?.arrayBuffer();
      if (res?.status !== 200) healthFailures++;
      worstHealth = Math.max(worstHealth, performance.now() - started);
      await delay(HEALTH_EVERY_MS);
    }
  })();
  const started = performance.now();
  const answers = await Promise.all(Array.from({ length: shape.parallel ?? 1 }, () => post(target, body)));
  const ms = performance.now() - started;
  done = true;
  await poller;
  return {
    bytes: Buffer.byteLength(body),
    statuses: answers.map((a) => a.status).join(', '),
    error: answers.find((a) => a.status !== 200)?.text.slice(0, 120),
    ms,
    worstHealth,
    healthFailures,
    peakAddedMb: (kb(pid, 'VmHWM') - peakBefore) / 1024,
  };
}

async function post(target, body) {
  const res = await fetch(`${target.origin}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: target.authorization, 'content-type': 'application/json' },
    body,
  }).catch((err) => ({ status: 0, text: async () => String(err) }));
  return { status: res.status, text: await res.text() };
}

async function main() {
  const names = values.shapes ? values.shapes.split(',') : Object.keys(SHAPES);
  const dir = join(fileURLToPath(new URL('./results/', import.meta.url)), 'wide-json-logs');
  mkdirSync(dir, { recursive: true });
  const upstream = await startUpstream();
  const poolKey = `sk-bench-${randomBytes(16).toString('hex')}`;
  const adminToken = randomBytes(24).toString('base64url');
  process.stdout.write('| body (50 MB chat request) | status | time, s | worst /healthz, s | peak RSS added, MB |\n| --- | --- | ---: | ---: | ---: |\n');
  for (const name of names) {
    const shape = SHAPES[name];
    if (!shape) throw new Error(`no shape ${name}: ${Object.keys(SHAPES).join(', ')}`);
    // A fresh process per shape: each starts from the same memory.
    const target = await startKeyrelay({ upstream, poolKey, adminToken, dir, id: `wide-${name}` });
    if (target.status !== 'ok') throw new Error(target.reason);
    const r = await measure(target, shape);
    const health = `${(r.worstHealth / 1000).toFixed(2)}${r.healthFailures ? ` (${r.healthFailures} failed)` : ''}`;
    process.stdout.write(`| ${shape.label} | ${r.statuses} | ${(r.ms / 1000).toFixed(2)} | ${health} | ${r.peakAddedMb.toFixed(0)} |\n`);
    if (r.error) process.stderr.write(`  ${name}: ${r.error}\n`);
    await target.close();
  }
}

try {
  await main();
  await stopAll();
} catch (err) {
  killAllNow();
  throw err;
}
