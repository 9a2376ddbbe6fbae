// `npm run soak` in a short form (2 minutes, a 30 s warm-up): the gateway under mixed traffic
// passes, and the same run with a deliberate leak (the soak's hook keeps 1 MB of heap a second in
// the gateway process) fails on the heap's slope. The short run's thresholds are looser than the
// 10-minute run's, for a busy machine, but a leak of 60 MB a minute is far past them.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

interface Verdict {
  slope: number;
  rise: number;
  threshold: number;
  grows: boolean;
}
interface Result {
  samples: Array<{ minute: number; heapMb: number; rssMb: number; fds: number; loopP99Ms: number }>;
  verdicts: Record<'heap' | 'rss' | 'fds' | 'loop', Verdict>;
  counts: Record<string, { ok: number; failed: number; errors: string[] }>;
  faults: { 429: number; 500: number };
  failures: string[];
}

const SHORT = ['--minutes', '2', '--warmup-seconds', '30', '--threshold', 'heap=6,rss=20,fds=10,loop=50'];
const KINDS = ['json', 'sse', 'multipart', 'realtime', 'responses-ws'];
const dir = mkdtempSync(join(tmpdir(), 'keyrelay-soak-test-'));

/** Runs the soak; resolves to its exit code, its output and its JSON result. */
async function soak(name: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; result: Result }> {
  const json = join(dir, `${name}.json`);
  let code = 0;
  let stdout: string;
  try {
    ({ stdout } = await run(process.execPath, ['bench/soak.js', ...SHORT, '--json', json], { env: { ...process.env, ...env }, timeout: 230_000 }));
  } catch (err) {
    const failed = err as { code?: number; stdout?: string };
    code = typeof failed.code === 'number' ? failed.code : -1;
    stdout = failed.stdout ?? '';
  }
  return { code, stdout, result: JSON.parse(readFileSync(json, 'utf8')) as Result };
}

beforeAll(async () => {
  await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: process.cwd() });
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm run soak --minutes 2', () => {
  it('passes a gateway under mixed traffic with failovers, and says so', async () => {
    const { code, stdout, result } = await soak('steady');
    expect(result.failures, stdout).toEqual([]);
    expect(code, stdout).toBe(0);
    // Samples every 5 s for 2 minutes, 18 or more of them after the warm-up.
    expect(result.samples.length).toBeGreaterThanOrEqual(23);
    expect(result.samples.filter((s) => s.minute >= 0.5).length).toBeGreaterThanOrEqual(18);
    for (const s of result.samples) {
      expect(s.heapMb).toBeGreaterThan(1);
      expect(s.rssMb).toBeGreaterThan(s.heapMb);
      expect(s.fds).toBeGreaterThan(0);
      expect(Number.isFinite(s.loopP99Ms)).toBe(true);
    }
    // Every kind of traffic ran, and the flaky pool key's faults were served and failed over.
    for (const kind of KINDS) expect(result.counts[kind]?.ok, kind).toBeGreaterThan(0);
    expect(result.faults[429] + result.faults[500]).toBeGreaterThan(0);
    for (const metric of ['heap', 'rss', 'fds', 'loop'] as const) {
      expect(result.verdicts[metric].grows, metric).toBe(false);
      expect(stdout).toMatch(new RegExp(`${result.verdicts[metric].threshold}\\s+ok`));
    }
    expect(stdout).toContain('PASS: nothing grows past its threshold');
  }, 240_000);

  it('fails a gateway that leaks 1 MB of heap a second, on the heap slope', async () => {
    const { code, stdout, result } = await soak('leak', { KEYRELAY_SOAK_LEAK_MB_PER_S: '1' });
    expect(code, stdout).toBe(1);
    expect(result.verdicts.heap.grows).toBe(true);
    // About 60 MB a minute: at least half of it is seen, whatever the machine's load.
    expect(result.verdicts.heap.slope).toBeGreaterThan(30);
    expect(result.failures.some((f) => f.startsWith('heap used after GC grows'))).toBe(true);
    expect(stdout).toMatch(/FAIL: heap used after GC grows: \d+/);
  }, 240_000);
});
