// A 200 MB transcription upload streams through a gateway in a process of its own: its resident
// memory stays far below the size of the upload while it passes, and the call is still charged the
// seconds the upstream reports.
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_AUDIO_BYTES_PER_SECOND } from '../src/dev/fake-media-answers.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-upload-memory-0123456789';
const UPLOAD = 200 * 1024 * 1024;
// Generous: the gateway holds a bounded head of the form and the chunks in flight, not the file.
const RSS_GROWTH_BOUND = 100 * 1024 * 1024;
const BOUNDARY = 'upload-memory-boundary';

let fake: FakeUpstream;
let gateway: ChildGateway;
let key: string;

async function admin(method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${gateway.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return res.json();
}

function rssOf(pid: number): number {
  const line = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(line?.[1] ?? 0) * 1024;
}

beforeAll(async () => {
  registerSecret(POOL_KEY);
  // Not recording: the fake only counts the bytes of a large body.
  fake = await startFakeUpstream({ record: false });
  gateway = await startChildGateway({ OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl });
  await admin('POST', '/users', { id: 'uploader', limits: { usdPerDay: 5 } });
  key = (await admin('POST', '/users/uploader/keys', {})).key as string;
  registerSecret(key);
  // A child process starts slowly on a machine busy with other suites.
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  await fake?.close();
}, 60_000);

describe('a 200 MB multipart upload', () => {
  it('streams through in bounded memory and is charged what the upstream reports', async () => {
    const head = Buffer.from(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n` +
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="long.wav"\r\nContent-Type: audio/wav\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
    const fileBytes = UPLOAD - head.length - tail.length;
    async function* body(): AsyncGenerator<Buffer> {
      yield head;
      const chunk = Buffer.alloc(256 * 1024, 0x55);
      for (let left = fileBytes; left > 0; left -= chunk.length) yield left >= chunk.length ? chunk : chunk.subarray(0, left);
      yield tail;
    }
    const before = rssOf(gateway.pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(gateway.pid))), 25);
    try {
      const res = await request(`${gateway.url}/v1/audio/transcriptions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': String(UPLOAD) },
        body: Readable.from(body()),
        bodyTimeout: 120_000,
        headersTimeout: 120_000,
      });
      const answer = (await res.body.json()) as any;
      expect(res.statusCode).toBe(200);
      expect(answer.usage).toEqual({ type: 'duration', seconds: Math.ceil(UPLOAD / FAKE_AUDIO_BYTES_PER_SECOND) });
    } finally {
      clearInterval(sampler);
    }
    console.log(`gateway RSS during a 200 MB upload: ${(before / 2 ** 20).toFixed(1)} MB before, ${(peak / 2 ** 20).toFixed(1)} MB at most`);
    expect(peak - before).toBeLessThan(RSS_GROWTH_BOUND);
    // whisper-1: $0.006 a minute, 100 micro-dollars a second.
    let user = await admin('GET', '/users/uploader');
    for (let i = 0; i < 100 && user.usage.concurrent.inFlight > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      user = await admin('GET', '/users/uploader');
    }
    expect(user.usage.day).toMatchObject({ requests: 1, usdMicros: Math.ceil(UPLOAD / FAKE_AUDIO_BYTES_PER_SECOND) * 100 });
  }, 180_000);
});
