// `npm run demo`: the whole path offline. A fake OpenAI upstream and the gateway start in this
// process, a user and a key are created through the admin API, and a chat answer is streamed
// through the official openai SDK, as any client of the gateway would.
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { buildApp } from '../app.js';
import { AdminClient } from '../cli/admin-client.js';
import type { TextSink } from '../cli/command.js';
import type { ApiUser } from '../cli/users.js';
import type { CreatedKey } from '../cli/keys.js';
import { loadConfig } from '../config.js';
import { randomBase62 } from '../keys.js';
import { createLogger } from '../logger.js';
import { defaultAnswer } from './fake-openai-answers.js';
import { type FakeUpstream, startFakeUpstream } from './fake-upstream.js';

const MODEL = 'gpt-4o-mini';
const USER_ID = 'demo-user';
// Slow enough to see the words arrive one by one.
const TOKEN_INTERVAL_MS = 80;

export interface DemoSummary {
  user: string;
  keyPrefix: string;
  text: string;
  chunks: number;
  bytes: number;
  firstTokenMs: number;
  totalMs: number;
}

async function startGateway(upstream: FakeUpstream, poolKey: string, adminToken: string, env: NodeJS.ProcessEnv): Promise<{ app: FastifyInstance; url: string }> {
  // Only PORT and LOG_LEVEL are taken from the environment: the demo must not pick up a real
  // upstream, pool keys or Redis that happen to be configured on this machine.
  const config = loadConfig(
    { PORT: env.PORT, LOG_LEVEL: env.LOG_LEVEL ?? 'error' },
    {
      host: '127.0.0.1',
      ...(env.PORT ? {} : { port: 0 }),
      adminToken,
      redis: {},
      upstreams: [{ id: 'fake', baseUrl: upstream.baseUrl, models: ['*'], strategy: 'round-robin', keys: [{ id: 'fake-1', key: poolKey, weight: 1 }] }],
    },
  );
  const app = await buildApp(config, { log: createLogger(config.logLevel, process.stderr) });
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  return { app, url: `http://127.0.0.1:${port}` };
}

/** Runs the demo, writing what happens to `out`; everything it started is closed before it resolves. */
export async function runDemo(out: TextSink, env: NodeJS.ProcessEnv = process.env): Promise<DemoSummary> {
  const poolKey = `sk-fake-demo-${randomBase62(24)}`;
  const adminToken = randomBytes(24).toString('base64url');
  const upstream = await startFakeUpstream({ record: false, keys: [poolKey] });
  // The fake's own chat answer, paced. Requests without the pool key fall through to its 401.
  upstream.handle((req) =>
    req.path === '/v1/chat/completions' && req.headers.authorization === `Bearer ${poolKey}`
      ? { ...defaultAnswer(req, req.body.length), chunkIntervalMs: TOKEN_INTERVAL_MS }
      : undefined,
  );
  let app: FastifyInstance | undefined;
  try {
    const gateway = await startGateway(upstream, poolKey, adminToken, env);
    app = gateway.app;
    out.write('keyrelay demo: everything runs on this machine, offline.\n');
    out.write(`  fake OpenAI upstream  ${upstream.baseUrl}\n`);
    out.write(`  keyrelay gateway      ${gateway.url}/v1\n`);

    const admin = new AdminClient(new URL(gateway.url), adminToken);
    const user = await admin.post<ApiUser>('/users', { id: USER_ID, name: 'Demo user', models: ['gpt-4o*'], limits: { rpm: 60 } });
    const key = await admin.post<CreatedKey>(`/users/${USER_ID}/keys`, { name: 'demo' });
    out.write(`  user                  ${user.id} (created with the admin API)\n`);
    out.write(`  key                   ${key.prefix}… (created with the admin API, shown by its prefix)\n\n`);

    out.write(`Streaming a chat answer from ${MODEL} through the official openai SDK:\n\n  `);
    const client = new OpenAI({ apiKey: key.key, baseURL: `${gateway.url}/v1`, organization: null, project: null, maxRetries: 0 });
    const started = performance.now();
    let firstTokenMs = 0;
    let text = '';
    let chunks = 0;
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'Say hello through the gateway.' }],
      stream: true,
    });
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta?.content;
      if (!delta) continue;
      if (chunks === 0) firstTokenMs = performance.now() - started;
      chunks++;
      text += delta;
      out.write(delta);
    }
    const totalMs = performance.now() - started;
    const summary: DemoSummary = { user: user.id, keyPrefix: key.prefix, text, chunks, bytes: Buffer.byteLength(text), firstTokenMs, totalMs };
    out.write(
      '\n\nSummary\n' +
        `  user         ${summary.user}\n` +
        `  key          ${summary.keyPrefix}…\n` +
        `  streamed     ${summary.chunks} chunks, ${summary.bytes} bytes\n` +
        `  first token  ${summary.firstTokenMs.toFixed(1)} ms\n` +
        `  total        ${summary.totalMs.toFixed(1)} ms\n`,
    );
    return summary;
  } finally {
    await app?.close();
    await upstream.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runDemo(process.stdout).then(
    () => {
      process.exitCode = 0;
    },
    (err: unknown) => {
      const { code, port } = err as { code?: string; port?: number };
      // A gateway already running on PORT (npm start, the image) is the usual cause: name it.
      if (code === 'EADDRINUSE') process.stderr.write(`demo: port ${port} is already in use; stop what listens there, or run the demo with PORT=0 (a free port)\n`);
      else process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
