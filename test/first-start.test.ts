// `npm start` as a new operator runs it, from a copy of the clone: the first start compiles, the
// second finds dist/ current and starts without running tsc; the start-up lines end with the
// commands to run next; GET / names the version and the useful routes.
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain script of the repository, without types.
import { staleReason } from '../scripts/build-if-stale.js';

const here = process.cwd();
let tree: string;

interface Started {
  output: string;
  url: string;
  lines: Array<Record<string, unknown>>;
}

function mtimes(dir: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) out.set(join(entry.parentPath, entry.name), statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return out;
}

/** `npm start` in the copy until the gateway listens and has written its start-up lines; then SIGTERM. */
async function npmStart(): Promise<Started> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info' };
  // Its own process group, so that the signal reaches npm's child (the gateway) too.
  const child: ChildProcess = spawn('npm', ['start'], { cwd: tree, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 200_000;
    while (!/"msg":"next: then/.test(output)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, 'SIGTERM');
    await exited;
  }
  const lines = output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const url = lines.find((line) => line.msg === 'keyrelay listening')?.url as string;
  return { output, url, lines };
}

beforeAll(() => {
  tree = mkdtempSync(join(tmpdir(), 'keyrelay-clone-'));
  for (const name of ['src', 'bin', 'config', 'scripts', 'console']) cpSync(join(here, name), join(tree, name), { recursive: true });
  cpSync(join(here, 'spec/openai/routes.tsv'), join(tree, 'spec/openai/routes.tsv'));
  for (const name of ['package.json', 'tsconfig.json', 'tsconfig.build.json']) cpSync(join(here, name), join(tree, name));
  rmSync(join(tree, 'config/keyrelay.yaml'), { force: true });
  symlinkSync(realpathSync(join(here, 'node_modules')), join(tree, 'node_modules'));
});

afterAll(() => {
  if (tree) rmSync(tree, { recursive: true, force: true });
});

describe('npm start', () => {
  it('compiles on the first start only: the second, from a built tree, runs no tsc and leaves dist/ as it was', async () => {
    const first = await npmStart();
    expect(first.output).toContain('keyrelay: compiling src/ to dist/ (dist/');
    expect(first.output).toContain('> tsc -p tsconfig.build.json');
    const built = mtimes(join(tree, 'dist'));
    expect(built.size).toBeGreaterThan(50);

    const second = await npmStart();
    expect(second.output).toContain('keyrelay: dist/ is current, not recompiling (npm run build forces it)');
    expect(second.output).not.toContain('tsc -p');
    expect(mtimes(join(tree, 'dist'))).toEqual(built);
    expect(second.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    // The start-up lines end with what to do next: no pool keys and no admin token here.
    const messages = second.lines.map((line) => line.msg);
    // Up to the first line of the stop, whichever it is: on a loaded machine the process may log
    // `shut down` without the `shutting down: …` line before it.
    const stop = messages.findIndex((m) => String(m).startsWith('shutting down') || m === 'shut down');
    const started = stop === -1 ? messages : messages.slice(0, stop);
    expect(started.slice(-3)).toEqual([
      'keyrelay listening',
      'next: start again with OPENAI_API_KEYS=sk-… and KEYRELAY_ADMIN_TOKEN=$(openssl rand -hex 24) set (export them, then npm start)',
      'next: then, with the same KEYRELAY_ADMIN_TOKEN in your shell, issue a key: node bin/keyrelay.js users create alice && node bin/keyrelay.js keys create alice',
    ]);
  }, 420_000);
});

describe('when dist/ counts as current', () => {
  // A tree of its own, with files whose times are set by hand.
  function fakeTree(): string {
    const root = mkdtempSync(join(tmpdir(), 'keyrelay-stale-'));
    cpSync(join(here, 'tsconfig.json'), join(root, 'tsconfig.json'));
    for (const [file, text] of [
      ['src/a.ts', 'export const a = 1;'],
      ['src/sub/b.ts', 'export const b = 2;'],
      ['dist/a.js', 'export const a = 1;'],
      ['dist/sub/b.js', 'export const b = 2;'],
    ] as const) {
      const path = join(root, file);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, text);
    }
    cpSync(join(here, 'package.json'), join(root, 'package.json'));
    const old = new Date('2030-01-01T00:00:00Z');
    const built = new Date('2030-01-02T00:00:00Z');
    for (const file of ['src/a.ts', 'src/sub/b.ts', 'tsconfig.json', 'package.json']) utimesSync(join(root, file), old, old);
    for (const file of ['dist/a.js', 'dist/sub/b.js']) utimesSync(join(root, file), built, built);
    return root;
  }

  it('is current when every source has an output no older than itself', () => {
    const root = fakeTree();
    expect(staleReason(root)).toBeUndefined();
    rmSync(root, { recursive: true });
  });

  it('is stale when one source was edited, one is new with an old time (a rename, a checkout), or a setting changed', () => {
    let root = fakeTree();
    const later = new Date('2030-01-03T00:00:00Z');
    utimesSync(join(root, 'src/sub/b.ts'), later, later);
    expect(staleReason(root)).toBe('src/sub/b.ts is newer than its output');
    rmSync(root, { recursive: true });

    root = fakeTree();
    cpSync(join(root, 'src/a.ts'), join(root, 'src/renamed.ts'), { preserveTimestamps: true });
    expect(staleReason(root)).toBe('dist/renamed.js is missing');
    rmSync(root, { recursive: true });

    root = fakeTree();
    utimesSync(join(root, 'tsconfig.json'), later, later);
    expect(staleReason(root)).toBe('tsconfig.json is newer than dist/');
    rmSync(root, { recursive: true });

    root = fakeTree();
    rmSync(join(root, 'dist'), { recursive: true });
    expect(staleReason(root)).toBe('dist/a.js is missing');
    rmSync(root, { recursive: true });
  });

  it('is stale when the console was never built or one of its sources is newer than its build', () => {
    const root = fakeTree();
    const old = new Date('2030-01-01T00:00:00Z');
    const built = new Date('2030-01-02T00:00:00Z');
    mkdirSync(join(root, 'console/src'), { recursive: true });
    writeFileSync(join(root, 'console/src/main.tsx'), 'export {};');
    utimesSync(join(root, 'console/src/main.tsx'), old, old);
    expect(staleReason(root)).toBe('dist/console/index.html is missing');

    mkdirSync(join(root, 'dist/console'), { recursive: true });
    writeFileSync(join(root, 'dist/console/index.html'), '<!doctype html>');
    utimesSync(join(root, 'dist/console/index.html'), built, built);
    expect(staleReason(root)).toBeUndefined();

    const later = new Date('2030-01-03T00:00:00Z');
    utimesSync(join(root, 'console/src/main.tsx'), later, later);
    expect(staleReason(root)).toBe('console/src/main.tsx is newer than dist/console/');
    rmSync(root, { recursive: true });
  });

  it('has nothing to build in an installed package, which ships dist/ without src/', () => {
    const root = fakeTree();
    rmSync(join(root, 'src'), { recursive: true });
    expect(staleReason(root)).toBeUndefined();
    expect(readFileSync(join(root, 'dist/a.js'), 'utf8')).toBe('export const a = 1;');
    rmSync(root, { recursive: true });
  });
});
