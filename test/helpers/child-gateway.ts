// Runs a gateway in a child `node` process and resolves once it listens. `gateway-process.ts`
// starts one server; `serve-process.ts` runs `keyrelay serve` itself (signals, workers). Its
// secrets are registered, and all it prints and every answer it sends go to the secret scan.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADMIN_TOKEN, readOutputs } from './gateway.js';
import { registerEnvSecrets } from './gateway-secrets.js';
import { atFileEnd, captureLogLine, captureProcessOutput, drainAnswerDirs, watchAnswerDir } from './log-capture.js';

export interface ChildGateway {
  url: string;
  pid: number;
  child: ChildProcess;
  /** Every log line the process wrote, parsed (each also goes to the secret scan). */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the exit code and when it came. */
  exited: Promise<{ code: number | null; at: number }>;
  stop(): Promise<void>;
}

export interface ChildOptions {
  entry?: 'gateway' | 'serve';
  /** How many `keyrelay listening` lines to wait for (one per worker). */
  listening?: number;
}

const REGISTER = fileURLToPath(new URL('./ts-register.mjs', import.meta.url));
const ENTRIES = {
  gateway: fileURLToPath(new URL('./gateway-process.ts', import.meta.url)),
  serve: fileURLToPath(new URL('./serve-process.ts', import.meta.url)),
};

export function startChildGateway(env: Record<string, string>, options: ChildOptions = {}): Promise<ChildGateway> {
  const fullEnv: Record<string, string> = { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN, ...env };
  registerEnvSecrets(fullEnv);
  const answers = mkdtempSync(join(tmpdir(), 'keyrelay-answers-'));
  watchAnswerDir(answers);
  const child: ChildProcess = spawn(process.execPath, ['--import', REGISTER, ENTRIES[options.entry ?? 'gateway']], {
    // A directory without config/keyrelay.yaml: the child is configured by `env` alone.
    cwd: tmpdir(),
    env: { ...fullEnv, TEST_ANSWER_DIR: answers },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.once('exit', (code) => {
      captureProcessOutput(`gateway process ${child.pid} stderr`, stderr);
      drainAnswerDirs();
      resolve({ code, at: Date.now() });
    }),
  );
  const wanted = options.listening ?? 1;

  return new Promise((resolve, reject) => {
    let carry = '';
    let listening = 0;
    child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (carry + chunk.toString('utf8')).split('\n');
      carry = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) {
          captureProcessOutput(`gateway process ${child.pid} stdout`, line);
          continue;
        }
        captureLogLine(line);
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'keyrelay listening' && ++listening === wanted) {
          const read = () => readOutputs(String(entry.url), fullEnv.KEYRELAY_ADMIN_TOKEN, fullEnv.KEYRELAY_METRICS_TOKEN);
          const notAtEnd = atFileEnd(read);
          resolve({
            url: String(entry.url),
            pid: child.pid ?? 0,
            child,
            logs,
            exited,
            async stop() {
              notAtEnd();
              if (child.exitCode === null) await read();
              if (child.exitCode === null) child.kill('SIGTERM');
              await exited;
            },
          });
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`gateway process exited (${code}) before listening:\n${stderr}`)));
  });
}
