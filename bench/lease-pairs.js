// The quota path alone, in this process: admissions and settles of one user's requests against a
// real Redis, with and without quota leases (docs/quota.md), in turns. Reports this process's CPU
// per admission-and-settle pair and pairs per second; redis-server's CPU is not counted.
//
//   node bench/lease-pairs.js [--pairs N] [--rounds N] [--concurrency N]
//
// Builds nothing: run `npm run build` first.
import { parseArgs } from 'node:util';
import pino from 'pino';
import { createRedisStore } from '../dist/store/redis.js';
import { startRedis } from './lib/redis.js';
import { stopAll } from './lib/children.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const { values } = parseArgs({ options: { pairs: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '4' }, concurrency: { type: 'string', default: '32' } } });
const pairs = Number(values.pairs);
const rounds = Number(values.rounds);
const concurrency = Number(values.concurrency);
const LIMITS = { rpm: 10_000_000, tpm: 1e11, tokensPerDay: 1e13, tokensPerMonth: 1e14, microsPerDay: 1e15, microsPerMonth: 1e15, maxConcurrent: 1_000_000 };
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure(store, userId) {
  let next = 0;
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const client = async () => {
    while (next < pairs) {
      const requestId = `p${userId}-${next++}`;
      const a = await store.reserve({ userId, requestId, limits: LIMITS, tokens: 120, micros: 90, now: Date.now(), leaseMs: 3_600_000 });
      if (!a.admitted) throw new Error(`refused: ${a.denial}`);
      await store.settle({ reservation: a.reservation, limits: LIMITS, tokens: 30, micros: 20, estimated: false, refundRequest: false, now: Date.now(), leaseMs: 3_600_000 });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const used = process.cpuUsage(cpu);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { cpuMs: (used.user + used.system) / 1000 / pairs, rate: pairs / seconds };
}

async function main() {
  const redis = await startRedis(mkdtempSync(join(tmpdir(), 'keyrelay-lease-pairs-')));
  if (redis.unavailable) throw new Error(redis.unavailable);
  const log = pino({ level: 'warn' });
  const off = await createRedisStore({ url: redis.url, commandTimeoutMs: 2000, log });
  const on = await createRedisStore({ url: redis.url, commandTimeoutMs: 2000, log, leases: { ttlMs: 10_000 } });
  const out = { off: [], on: [] };
  await measure(off, 'warm-off');
  await measure(on, 'warm-on');
  for (let round = 0; round < rounds; round++) {
    for (const name of round % 2 ? ['on', 'off'] : ['off', 'on']) {
      const r = await measure(name === 'on' ? on : off, `${name}-${round}`);
      out[name].push(r);
      process.stderr.write(`round ${round + 1} leases ${name}: ${r.rate.toFixed(0)} pairs/s, ${(r.cpuMs * 1000).toFixed(1)} µs CPU per pair\n`);
    }
  }
  const ratio = (f) => median(out.on.map((r, i) => f(r) / f(out.off[i])));
  process.stdout.write(
    `${pairs} admission-and-settle pairs per round, ${concurrency} at once, ${rounds} rounds\n` +
      `CPU per pair, median: leases off ${(median(out.off.map((r) => r.cpuMs)) * 1000).toFixed(1)} µs, on ${(median(out.on.map((r) => r.cpuMs)) * 1000).toFixed(1)} µs, on / off ${ratio((r) => r.cpuMs).toFixed(2)}; ` +
      `pairs/s, median: off ${median(out.off.map((r) => r.rate)).toFixed(0)}, on ${median(out.on.map((r) => r.rate)).toFixed(0)}, on / off ${ratio((r) => r.rate).toFixed(2)} (medians of the rounds' ratios)\n`,
  );
  await Promise.all([off.close(), on.close()]);
  await stopAll();
}
main().catch(async (err) => {
  process.stderr.write(`lease-pairs: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  await stopAll();
  process.exit(1);
});
