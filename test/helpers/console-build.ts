// Vitest globalSetup: builds the web console (console/ into dist/console/) once before the test
// files run, when the build is missing or older than a console source, so that `npm test` on a
// fresh clone finds it. The same check `npm start` makes (scripts/build-if-stale.js).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
// @ts-expect-error: a plain script of the repository, without types.
import { consoleStaleReason } from '../../scripts/build-if-stale.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export function buildConsoleIfStale(): void {
  const reason = (consoleStaleReason as (root: string) => string | undefined)(ROOT);
  if (reason === undefined) return;
  const result = spawnSync(process.execPath, ['node_modules/vite/bin/vite.js', 'build', '--config', 'console/vite.config.ts', '--logLevel', 'warn'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`console build failed (${reason}):\n${result.stdout}\n${result.stderr}`);
}

export default function setup(): void {
  buildConsoleIfStale();
}
