// Loaded into the keyrelay process by bench/soak.js (NODE_OPTIONS=--import): each SIGUSR2 collects
// the garbage (through the process's own inspector session), then writes process.memoryUsage()
// and the event-loop delay since the previous sample to $KEYRELAY_SOAK_FILE. Nothing of it is in
// keyrelay itself.
//
// KEYRELAY_SOAK_LEAK_MB_PER_S (tests only) makes the process keep that many MB of heap a second,
// so that a test can prove the soak notices a leak.
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.KEYRELAY_SOAK_FILE;
const session = new Session();
session.connect();
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
let seq = 0;

const ms = (ns) => Math.round(ns / 1e4) / 100;

process.on('SIGUSR2', () => {
  const loop = { p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max), count: delay.count };
  delay.reset();
  session.post('HeapProfiler.collectGarbage', () => {
    const sample = { seq: ++seq, at: Date.now(), memory: process.memoryUsage(), loop };
    if (!file) return;
    // Written whole, then renamed: the soak never reads half a sample.
    writeFileSync(`${file}.tmp`, JSON.stringify(sample));
    renameSync(`${file}.tmp`, file);
  });
});

const leakMbPerSecond = Number(process.env.KEYRELAY_SOAK_LEAK_MB_PER_S ?? 0);
if (leakMbPerSecond > 0) {
  const kept = [];
  // An array of 131,072 doubles is 1 MB of V8 heap (not a Buffer, which lives outside it).
  const timer = setInterval(() => {
    for (let i = 0; i < leakMbPerSecond; i++) kept.push(Array.from({ length: 131_072 }, (_, j) => j + 0.5));
  }, 1000);
  timer.unref();
}
