// Attacks on the WebSocket message bounds (src/relay/ws-session.ts, ws-frames.ts) with frames
// written by hand: a message just at the limit and one byte over, in one frame and fragmented with
// control frames between the fragments, and a fragmented message made of frames with (almost) no
// payload, which adds nothing to a message's size but costs the gateway memory for each frame.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { MAX_MESSAGE_FRAMES } from '../src/relay/ws-frames.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-attack9-ws-000000000001';
const LIMIT = 64 * 1024;
const FAST_MS = 5000;

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;
const clients: WebSocket[] = [];

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream({ keys: [POOL_KEY] });
  gateway = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: { websocket: { clientMessageBytes: LIMIT, upstreamMessageBytes: LIMIT } as never },
  });
  key = await gateway.createUserKey('mallory');
  registerSecret(key);
}, 30_000);

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

afterEach(() => {
  for (const ws of clients.splice(0)) {
    ws.on('error', () => {});
    ws.terminate();
  }
});

/** A frame as a client writes it (masked); `fin` false for all but a message's last fragment. */
function clientFrame(opcode: number, payload: Buffer, fin: boolean): Buffer {
  const length = payload.length;
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + extended + 4);
  head[0] = (fin ? 0x80 : 0) | opcode;
  head[1] = 0x80 | (extended === 0 ? length : extended === 2 ? 126 : 127);
  if (extended === 2) head.writeUInt16BE(length, 2);
  if (extended === 8) head.writeBigUInt64BE(BigInt(length), 2);
  const mask = randomBytes(4);
  mask.copy(head, 2 + extended);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (mask[i & 3] as number);
  return Buffer.concat([head, body]);
}

const TEXT = 0x1;
const CONTINUATION = 0x0;
const PING = 0x9;

interface Session {
  ws: WebSocket;
  socket: Socket;
  events: Array<Record<string, any>>;
  closed: Promise<number>;
}

async function open(path = '/v1/responses'): Promise<Session> {
  const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}${path}`, { headers: { authorization: `Bearer ${key}` } });
  clients.push(ws);
  const events: Array<Record<string, any>> = [];
  ws.on('message', (data) => events.push(JSON.parse(String(data))));
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
  return { ws, socket: (ws as unknown as { _socket: Socket })._socket, events, closed };
}

/** An event of exactly `size` bytes. */
function eventOf(size: number, marker: string): Buffer {
  const shell = JSON.stringify({ type: 'conversation.item.create', marker, pad: '' });
  return Buffer.from(JSON.stringify({ type: 'conversation.item.create', marker, pad: 'p'.repeat(size - shell.length) }));
}

/** `payload` cut in `parts` fragments, a ping before each one but the first. */
function fragmented(payload: Buffer, parts: number, pings = true): Buffer {
  const frames: Buffer[] = [];
  const step = Math.ceil(payload.length / parts);
  for (let i = 0; i < parts; i++) {
    if (i > 0 && pings) frames.push(clientFrame(PING, Buffer.from(`ping-${i}`), true));
    frames.push(clientFrame(i === 0 ? TEXT : CONTINUATION, payload.subarray(i * step, (i + 1) * step), i === parts - 1));
  }
  return Buffer.concat(frames);
}

async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still waiting for ${what}`)), FAST_MS)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The code of the error event the gateway sent, whichever dialect wrote it. */
const codeOf = (events: Array<Record<string, any>>): string | undefined => {
  const e = events.find((x) => x.type === 'error');
  return e?.error?.code ?? e?.code;
};

const reached = (marker: string) => fake.wsMessages.find((m) => m.data.includes(marker));

describe('a client message at and past clientMessageBytes', () => {
  it('just at the limit, in one frame and in fragments with pings between them, is relayed whole', async () => {
    const s = await open();
    const whole = eventOf(LIMIT, 'at-limit-one');
    s.socket.write(clientFrame(TEXT, whole, true));
    const split = eventOf(LIMIT, 'at-limit-split');
    s.socket.write(fragmented(split, 7));
    await within(
      (async () => {
        while (!reached('at-limit-split')) await new Promise((r) => setTimeout(r, 10));
      })(),
      'the fragmented message upstream',
    );
    expect(reached('at-limit-one')?.data).toBe(whole.toString());
    expect(reached('at-limit-split')?.data).toBe(split.toString());
    expect(s.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('one byte over, in fragments with pings between them: error event request_too_large, 1009, none of it relayed', async () => {
    const s = await open();
    s.socket.write(fragmented(eventOf(LIMIT + 1, 'over-split'), 5));
    expect(await within(s.closed, 'the close')).toBe(1009);
    expect(codeOf(s.events)).toBe('request_too_large');
    expect(reached('over-split')).toBeUndefined();
  });

  it('endless fragments with no payload: the session is closed 1009, not buffered without end', async () => {
    const s = await open();
    s.socket.write(clientFrame(TEXT, Buffer.from('{"type":"conversation.item.create","marker":"empty-frames"'), false));
    const empty = Buffer.concat(Array.from({ length: 10_000 }, () => clientFrame(CONTINUATION, Buffer.alloc(0), false)));
    let sent = 0;
    const closed = s.closed;
    let done = false;
    void closed.then(() => (done = true));
    // Up to a million frames: far more than any message is made of.
    while (!done && sent < 100) {
      if (!s.socket.write(empty)) await new Promise((r) => s.socket.once('drain', r).once('close', r));
      sent += 1;
      await new Promise((r) => setImmediate(r));
    }
    expect(await within(closed, 'the close')).toBe(1009);
    expect(codeOf(s.events)).toBe('request_too_large');
    expect(JSON.stringify(s.events)).toContain(`split into more frames than the gateway takes (${MAX_MESSAGE_FRAMES})`);
    expect(reached('empty-frames')).toBeUndefined();
  });

  it('as many frames as the limit, each with a byte of payload: relayed whole', async () => {
    const s = await open();
    const event = eventOf(MAX_MESSAGE_FRAMES, 'frames-at-limit');
    s.socket.write(fragmented(event, MAX_MESSAGE_FRAMES, false));
    await within(
      (async () => {
        while (!reached('frames-at-limit')) await new Promise((r) => setTimeout(r, 10));
      })(),
      'the message upstream',
    );
    expect(reached('frames-at-limit')?.data).toBe(event.toString());
    expect(s.ws.readyState).toBe(WebSocket.OPEN);
  });
});

