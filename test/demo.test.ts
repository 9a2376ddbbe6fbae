// `npm run demo` as a person runs it: the built program, in its own process, offline.
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { describe, it, expect, beforeAll } from 'vitest';
import { FAKE_COMPLETION_TOKENS, FAKE_TEXT } from '../src/dev/fake-openai-answers.js';

const run = promisify(execFile);

beforeAll(async () => {
  await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: process.cwd() });
}, 240_000);

describe('npm run demo', () => {
  it('streams the fake upstream answer through the gateway with the official SDK, then exits 0', async () => {
    // Settings of this machine must not reach the demo: it uses none of them.
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, OPENAI_API_KEYS: 'sk-not-to-be-used-0123456789', REDIS_URL: 'redis://127.0.0.1:1' };
    const { stdout, stderr } = await run(process.execPath, ['dist/dev/demo.js'], { env, timeout: 60_000 });
    expect(stderr).toBe('');
    const lines = stdout.split('\n');
    expect(lines.slice(0, 5)).toEqual([
      'keyrelay demo: everything runs on this machine, offline.',
      expect.stringMatching(/^ {2}fake OpenAI upstream {2}http:\/\/127\.0\.0\.1:\d+\/v1$/),
      expect.stringMatching(/^ {2}keyrelay gateway {6}http:\/\/127\.0\.0\.1:\d+\/v1$/),
      '  user                  demo-user (created with the admin API)',
      expect.stringMatching(/^ {2}key {19}sk-kr-[A-Za-z0-9]{4}… \(created with the admin API, shown by its prefix\)$/),
    ]);
    expect(stdout).toContain(`through the official openai SDK:\n\n  ${FAKE_TEXT}\n\nSummary\n`);
    const streamed = `  streamed     ${FAKE_COMPLETION_TOKENS} chunks, ${Buffer.byteLength(FAKE_TEXT)} bytes`;
    expect(lines.slice(-5)).toEqual([
      '  key          ' + (lines[4] ?? '').slice(24, 34) + '…',
      streamed,
      expect.stringMatching(/^ {2}first token {2}\d+\.\d ms$/),
      expect.stringMatching(/^ {2}total {8}\d+\.\d ms$/),
      '',
    ]);
    // The key itself is never printed, only its prefix.
    expect(stdout).not.toMatch(/sk-kr-[A-Za-z0-9]{8,}/);
  }, 60_000);

  it('names the port when PORT is taken (a gateway already running there), and exits 1', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const env = { PATH: process.env.PATH, HOME: process.env.HOME, PORT: String(port) };
      const failed = await run(process.execPath, ['dist/dev/demo.js'], { env, timeout: 60_000 }).catch((err: { code: number; stdout: string; stderr: string }) => err);
      expect(failed).toMatchObject({
        code: 1,
        stderr: `demo: port ${port} is already in use; stop what listens there, or run the demo with PORT=0 (a free port)\n`,
      });
    } finally {
      taken.close();
    }
  }, 60_000);
});
