// Several workers sharing one port (KEYRELAY_WORKERS), on one Redis: both serve requests, a
// key issued through one works through the other, and SIGTERM stops them all with exit code 0.
import { type ChildProcess, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { captureLogLine, registerSecret } from './helpers/log-capture.js';
import { type RedisServer, freePort, startRedis } from './helpers/redis-server.js';

const POOL_KEY = 'sk-pool-workers-test-0000001';
const REGISTER = fileURLToPath(new URL('./helpers/ts-register.mjs', import.meta.url));
const ENTRY = fileURLToPath(new URL('./helpers/serve-process.ts', import.meta.url));

let redis: RedisServer;
let fake: FakeUpstream;
let child: ChildProcess;
let url: string;
const logs: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  registerSecret(POOL_KEY);
  redis = await startRedis();
  fake = await startFakeUpstream();
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, ['--import', REGISTER, ENTRY], {
    cwd: tmpdir(),
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      KEYRELAY_WORKERS: '2',
      REDIS_URL: redis.url,
      KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN,
      OPENAI_API_KEYS: POOL_KEY,
      KEYRELAY_UPSTREAM_URL: fake.baseUrl,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let carry = '';
  let listening = 0;
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (carry + chunk.toString('utf8')).split('\n');
      carry = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        captureLogLine(line);
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'keyrelay listening' && ++listening === 2) resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`keyrelay exited (${code}) before its workers listened`)));
  });
}, 60_000);

afterAll(async () => {
  if (child.exitCode === null) child.kill('SIGKILL');
  await fake.close();
  await redis.stop();
});

describe('two workers', () => {
  it('run in two processes besides the primary', () => {
    const pids = new Set(logs.filter((l) => l.msg === 'keyrelay listening').map((l) => l.pid));
    expect(pids.size).toBe(2);
    expect(pids.has(child.pid)).toBe(false);
  });

  it('share users and keys through Redis, and both serve requests', async () => {
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    const created = await request(`${url}/admin/users`, { method: 'POST', headers: admin, body: JSON.stringify({ id: 'alice' }) });
    expect(created.statusCode).toBe(201);
    await created.body.text();
    const keyAnswer = await request(`${url}/admin/users/alice/keys`, { method: 'POST', headers: admin, body: '{}' });
    const { key } = (await keyAnswer.body.json()) as { key: string };
    registerSecret(key);

    // New connections each time, so the primary hands them to both workers in turn.
    for (let i = 0; i < 12; i++) {
      const res = await request(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}`, connection: 'close' }, reset: true });
      expect(res.statusCode).toBe(200);
      await res.body.text();
    }
    const servedBy = new Set(logs.filter((l) => l.msg === 'request' && l.route === '/v1/models').map((l) => l.pid));
    expect(servedBy.size).toBe(2);
  });

  it('SIGTERM stops the primary and every worker with exit code 0', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const health = await request(`${url}/healthz`).catch((err: Error) => err);
    expect(health).toBeInstanceOf(Error);
  });
});
