// `npm run chaos` in its short form (--short: 15 s, a compressed schedule): two gateway processes
// on one redis-server behind an HTTP CONNECT proxy, under load, while Redis is frozen and
// restarted, a pool key answers 429, 500 and resets, a gateway is killed and started again and the
// proxy stalls. The script checks everything itself and exits 1 when a check fails; this test
// asserts its exit code and what its report says it saw, so that a run that exercised nothing
// cannot pass. Nothing about speed is asserted: the machine may be busy.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

interface LedgerRow {
  user: string;
  logged: { requests: number; tokens: number; micros: number };
  orphans: { count: number; tokens: number; micros: number };
  spent: { tokens: number; micros: number };
  reserved: { tokens: number; micros: number };
  failures: string[];
}
interface Report {
  ok: boolean;
  failures: string[];
  requests: number;
  wellFormed: number;
  malformed: number;
  cutByKill: number;
  answers: Record<string, number>;
  faults: Array<{ fault: string; arg?: string | number }>;
  upstreamServed: Record<string, number>;
  proxy: { connects: number; frozenTunnels: number; heldConnects: number };
  ledger: LedgerRow[];
  footprints: Array<{ gateway: string; restarted: boolean; before: { rssKb: number; fds: number }; after: { rssKb: number; fds: number } }>;
  leaks: { answers: string[]; logs: string[] };
}

const dir = mkdtempSync(join(tmpdir(), 'keyrelay-chaos-test-'));

beforeAll(async () => {
  // The gateways run from dist/, as `npm run chaos` builds it.
  await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: process.cwd() });
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm run chaos --short', () => {
  it('answers every request well, keeps the ledger exact, leaks nothing and comes back to its footprint', async () => {
    const jsonPath = join(dir, 'chaos.json');
    let code = 0;
    let stdout = '';
    try {
      ({ stdout } = await run(process.execPath, ['bench/chaos.js', '--short', '--deadline', '20', '--json', jsonPath], { timeout: 170_000 }));
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      code = e.code ?? -1;
      stdout = `${e.stdout ?? ''}\n${e.stderr ?? ''}`;
    }
    expect(code, stdout.slice(-4000)).toBe(0);
    const report = JSON.parse(readFileSync(jsonPath, 'utf8')) as Report;
    expect(report.ok).toBe(true);
    expect(report.failures).toEqual([]);
    expect(stdout).toContain('CHAOS: every check passed');

    // Every fault of the schedule was applied, and met requests.
    expect(report.faults.map((f) => f.fault).sort()).toEqual(['flaky', 'flaky', 'flaky', 'flaky', 'gateway-kill', 'proxy-stall', 'redis-freeze', 'redis-restart']);
    for (const mode of ['429', '500', 'reset']) expect(report.upstreamServed[mode], mode).toBeGreaterThan(0);
    expect(report.proxy.connects).toBeGreaterThan(0);

    // Every request was answered in a documented way; those on the killed gateway were cut.
    expect(report.malformed).toBe(0);
    expect(report.wellFormed + report.cutByKill).toBe(report.requests);
    expect(report.answers['load: 200 json']).toBeGreaterThan(0);
    expect(report.answers['load: 200 stream']).toBeGreaterThan(0);
    for (const kind of Object.keys(report.answers)) {
      expect(kind).toMatch(/^(load|after): (200 json|200 stream( error \w+)?|\d{3} \w+|cut by the SIGKILL of its gateway)$/);
    }

    // The ledger: nothing reserved, spent exactly what was logged plus the killed gateway's
    // reservations at their worst case, for every user.
    expect(report.ledger).toHaveLength(6);
    for (const row of report.ledger) {
      expect(row.failures, row.user).toEqual([]);
      expect(row.reserved, row.user).toEqual({ tokens: 0, micros: 0 });
      expect(row.spent.tokens, row.user).toBe(row.logged.tokens + row.orphans.tokens);
      expect(row.spent.micros, row.user).toBe(row.logged.micros + row.orphans.micros);
      expect(row.logged.requests, row.user).toBeGreaterThan(0);
    }

    expect(report.leaks).toEqual({ answers: [], logs: [] });
    expect(report.footprints.map((f) => [f.gateway, f.restarted])).toEqual([
      ['gateway-1', false],
      ['gateway-2', true],
    ]);
  }, 180_000);
});
