// `npm run bench` in its smallest form (--quick): the harness starts every target it can, runs
// every workload on each, reports why any target could not run, and stops what it started.
// Figures from a quick run mean nothing, so none is asserted; only that each one is there, and that
// keyrelay ran as it would in production: every limit set, the access log on at info level.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';

const run = promisify(execFile);

interface Row {
  target: string;
  label: string;
  status: 'ok' | 'unavailable';
  reason?: string;
  metrics?: Record<string, number>;
  rounds: Array<{ metrics: Record<string, number>; errors: Record<string, unknown> }>;
}
interface Result {
  mode: string;
  workloads: Array<{ id: string; metrics: string[] }>;
  targets: string[];
  rows: Array<Row & { whole?: { cpuMs: number; requests: number } }>;
  goals: Array<{ id: string; results: Record<string, { value: number; met: boolean }> }>;
  logs: Record<string, { lines: number; accessLines: number; leaksSecret: boolean }>;
}

const WORKLOADS = ['json', 'stream', 'stream-plain', 'users', 'sequential', 'ttfb', 'memory', 'cpu'];
const TARGETS = ['direct', 'bare', 'keyrelay-memory', 'keyrelay-redis', 'keyrelay-workers', 'peer'];
const dir = mkdtempSync(join(tmpdir(), 'keyrelay-bench-'));

beforeAll(async () => {
  await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: process.cwd() });
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the benchmark user', () => {
  it('has every limit the gateway has (src/store/types.ts Limits)', async () => {
    const targets = '../bench/lib/targets.js'; // plain JavaScript, without types
    const { BENCH_LIMITS } = (await import(targets)) as { BENCH_LIMITS: Record<string, number> };
    const types = readFileSync('src/store/types.ts', 'utf8');
    const body = /export interface Limits \{([^}]*)\}/.exec(types)?.[1] ?? '';
    const kinds = [...body.matchAll(/^\s*(\w+)\?:/gm)].map((m) => m[1]);
    expect(kinds.length).toBeGreaterThan(5);
    expect(Object.keys(BENCH_LIMITS).sort()).toEqual(kinds.sort());
  });
});

describe('npm run bench --quick', () => {
  it('measures every workload on every target that runs, and says why the others do not', async () => {
    const jsonPath = join(dir, 'latest.json');
    const { stdout } = await run(process.execPath, ['bench/run.js', '--quick', '--json', jsonPath], { timeout: 240_000 });
    const result = JSON.parse(readFileSync(jsonPath, 'utf8')) as Result;

    expect(result.mode).toBe('quick');
    expect(result.workloads.map((w) => w.id)).toEqual(WORKLOADS);
    expect(result.targets).toEqual(TARGETS);
    expect(result.rows.map((r) => r.target)).toEqual(TARGETS);
    const metrics = result.workloads.flatMap((w) => w.metrics);

    for (const row of result.rows) {
      if (row.status === 'unavailable') {
        expect(row.reason, row.target).toMatch(/\w/);
        continue;
      }
      expect(row.rounds, row.target).toHaveLength(1);
      for (const metric of metrics) expect(Number.isFinite(row.metrics?.[metric]), `${row.target} ${metric}`).toBe(true);
      // Every answer was a 200 of the right length.
      expect(row.rounds[0]?.errors, row.target).toEqual({});
      expect(stdout).toContain(row.label);
    }
    // These three depend on nothing but this checkout.
    for (const id of ['direct', 'bare', 'keyrelay-memory']) expect(result.rows.find((r) => r.target === id)?.status, id).toBe('ok');
    expect(result.rows.find((r) => r.target === 'peer')?.reason).toBe('no peer gateway is installed on this machine (the harness installs none)');

    expect(result.goals.map((g) => g.id)).toEqual(['json-rps', 'stream-rps', 'latency-p50', 'latency-p99', 'ttfb-p50', 'rss', 'cpu-json', 'cpu-stream']);
    for (const goal of result.goals) expect(Object.keys(goal.results)).toContain('keyrelay-memory');

    // keyrelay logged every request, at info level, to its file, and no secret of the run is in it.
    const memory = result.rows.find((r) => r.target === 'keyrelay-memory');
    expect(memory?.whole?.requests).toBeGreaterThan(100);
    expect(result.logs['keyrelay-memory']?.accessLines).toBeGreaterThanOrEqual(memory?.whole?.requests ?? Infinity);
    for (const log of Object.values(result.logs)) expect(log.leaksSecret).toBe(false);
  }, 270_000);
});

describe('bench/profile.js', () => {
  it('measures CPU per request against the bare relay and summarises a profile of the measured window', async () => {
    const profiles = join(dir, 'profiles');
    const { stdout } = await run(process.execPath, ['bench/profile.js', '--store', 'memory', '--seconds', '1', '--rounds', '1', '--profile', profiles], {
      timeout: 90_000,
    });
    expect(stdout).toMatch(/CPU per request, median: bare [0-9.]+ ms, keyrelay [0-9.]+ ms, keyrelay \/ bare [0-9.]+/);
    expect(readdirSync(profiles).filter((f) => f.endsWith('.cpuprofile'))).toHaveLength(1);
    // keyrelay's own code and the packages it uses show up by name.
    expect(stdout).toContain('keyrelay relay');
    expect(stdout).toContain('package undici');
  }, 120_000);

  it('measures another built checkout in turn and side by side (--baseline), here this one against itself', async () => {
    const { stdout } = await run(process.execPath, ['bench/profile.js', '--store', 'memory', '--seconds', '1', '--rounds', '2', '--baseline', '.'], { timeout: 90_000 });
    expect(stdout).toMatch(/keyrelay \/ baseline [0-9.]+; req\/s, median: baseline [0-9]+/);
    expect(stdout).toMatch(/side by side \(both under load at once, 2 rounds\): CPU per request keyrelay \/ baseline [0-9.]+ \(median\), rounds [0-9.]+ [0-9.]+\n/);
  }, 120_000);

  it.each(['stream-plain', 'users'])('measures the %s workload, in steady use and over the whole run', async (workload) => {
    const { stdout } = await run(process.execPath, ['bench/profile.js', '--store', 'memory', '--workload', workload, '--seconds', '1', '--rounds', '1'], { timeout: 90_000 });
    expect(stdout).toContain(`${workload} on keyrelay memory`);
    expect(stdout).toMatch(/CPU per request, median: bare [0-9.]+ ms, keyrelay [0-9.]+ ms/);
    expect(stdout).toMatch(/CPU per request over the whole run, warm-up included: bare [0-9.]+ ms, keyrelay [0-9.]+ ms, keyrelay \/ bare [0-9.]+/);
  }, 120_000);
});

