// Spawns test/helpers/gateway-process.ts in a child `node` process and resolves once it listens.
import { type ChildProcess, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ADMIN_TOKEN } from './gateway.js';
import { captureLogLine } from './log-capture.js';

export interface ChildGateway {
  url: string;
  pid: number;
  logs: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

const REGISTER = fileURLToPath(new URL('./ts-register.mjs', import.meta.url));
const ENTRY = fileURLToPath(new URL('./gateway-process.ts', import.meta.url));

export function startChildGateway(env: Record<string, string>): Promise<ChildGateway> {
  const child: ChildProcess = spawn(process.execPath, ['--import', REGISTER, ENTRY], {
    // A directory without config/keyrelay.yaml: the child is configured by `env` alone.
    cwd: tmpdir(),
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  return new Promise((resolve, reject) => {
    let carry = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (carry + chunk.toString('utf8')).split('\n');
      carry = lines.pop() ?? '';
      for (const line of lines) {
        if (!line) continue;
        captureLogLine(line);
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'keyrelay listening') {
          resolve({
            url: String(entry.url),
            pid: child.pid ?? 0,
            logs,
            async stop() {
              child.kill('SIGTERM');
              await exited;
            },
          });
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`gateway process exited (${code}) before listening:\n${stderr}`)));
  });
}
