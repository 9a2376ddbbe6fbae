#!/usr/bin/env node
// `npm start` runs this first: it compiles src/ to dist/ only when dist/ is not current, so a
// second start from a built tree starts at once. `npm run build` still compiles unconditionally.
//
// Current means: every src/**/*.ts has its dist/**/*.js, no older than the source, and no compiler
// setting (tsconfig*.json, package.json) is newer than the oldest output. Each file is compared
// with its own output, not the newest source with the newest output: a file renamed or checked
// out with an old time still has no output of its name, and is built. Compared by mtime, as make
// does; `tsc -b` would also decide this, but it is tsc itself that then starts (a second or more
// on a small machine), which is what a start should not cost.
//
// The web console (console/, built by Vite into dist/console/) is current when no file under
// console/ is newer than dist/console/index.html, which the console build writes last of its pages.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SETTINGS = ['tsconfig.json', 'tsconfig.build.json', 'package.json'];

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

function sources(dir, wanted = (name) => name.endsWith('.ts') && !name.endsWith('.d.ts')) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(path, wanted));
    else if (wanted(entry.name)) out.push(path);
  }
  return out;
}

/** Why dist/console/ must be rebuilt, or undefined when it is current (or there is no console/). */
export function consoleStaleReason(root) {
  const dir = join(root, 'console');
  if (mtime(dir) === undefined) return undefined;
  const built = mtime(join(root, 'dist', 'console', 'index.html'));
  if (built === undefined) return 'dist/console/index.html is missing';
  for (const file of sources(dir, () => true)) {
    if (mtime(file) > built) return `console/${relative(dir, file)} is newer than dist/console/`;
  }
  return undefined;
}

/** Why dist/ under `root` must be rebuilt, or undefined when it is current (or there is no src/ to build). */
export function staleReason(root) {
  const src = join(root, 'src');
  if (mtime(src) === undefined) return undefined;
  let oldest = Infinity;
  for (const file of sources(src)) {
    const rel = relative(src, file);
    const out = join(root, 'dist', rel.replace(/\.ts$/, '.js'));
    const built = mtime(out);
    if (built === undefined) return `dist/${relative(join(root, 'dist'), out)} is missing`;
    if (built < mtime(file)) return `src/${rel} is newer than its output`;
    oldest = Math.min(oldest, built);
  }
  for (const name of SETTINGS) {
    const changed = mtime(join(root, name));
    if (changed !== undefined && changed > oldest) return `${name} is newer than dist/`;
  }
  return consoleStaleReason(root);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const reason = staleReason(root);
  if (reason === undefined) {
    process.stdout.write('keyrelay: dist/ is current, not recompiling (npm run build forces it)\n');
  } else {
    process.stdout.write(`keyrelay: compiling src/ to dist/ (${reason})\n`);
    // The same command as `npm run build`, through the npm that runs this script when there is one.
    const npm = process.env.npm_execpath;
    const result = npm
      ? spawnSync(process.execPath, [npm, 'run', 'build'], { cwd: root, stdio: 'inherit' })
      : spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
    process.exitCode = result.status ?? 1;
  }
}
