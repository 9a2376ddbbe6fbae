// The relay of one WebSocket session, frame by frame (docs/websockets.md). Every frame is relayed
// with its bytes as they came, except a client message the gateway refuses: it is answered with
// the API's own error event instead. The upstream's frames go on as they arrive; the client's data
// frames are held until their message is whole (so that a refused one is never half sent), then
// their event is judged in order, one at a time, while the client's socket waits. Control frames
// keep their place. Events are parsed only when the metering needs them (ws-realtime.ts,
// ws-responses.ts); the type of the others is found without parsing (ws-frames.ts eventType).
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import { checkJsonShape } from './json-shape.js';
import type { OpenStreams } from './open-streams.js';
import { FrameError, FrameReader, MAX_MESSAGE_FRAMES, MessageAssembler, OP_CLOSE, OP_TEXT, closeFrame, encodeFrame, eventType } from './ws-frames.js';

export type Json = Record<string, unknown>;
/** `relayed`: told once the event's frames were written upstream (a create then counts as sent).
 * `payload`: the event to send in place of the client's (an alias's model replaced), as one frame. */
export type Verdict = { forward: true; payload?: Buffer; relayed?: () => void } | { forward: false; reply: Buffer };

/** Events the gateway says itself: to the client between the upstream's messages, to the upstream between the client's. */
export interface Channel {
  toClient(payload: Buffer): void;
  toUpstream(payload: Buffer): void;
  /** Ends the session with this close code to the client, after what was sent to it. */
  close(code: number, reason: string): void;
}

export interface Dialect {
  /** Client events parsed to be judged; the rest are relayed once their type is known. */
  readonly clientTypes: ReadonlySet<string>;
  /** Upstream events parsed for the metering (the rest pass unread, their type and size aside). */
  readonly upstreamTypes: ReadonlySet<string>;
  /** `message`: the event's bytes as the client sent them (joined from its frames). */
  client(type: string | undefined, event: Json | undefined, size: number, message: Buffer): Promise<Verdict>;
  /** The dialect's error event for a refused client event. */
  refusal(error: GatewayError, event: Json | undefined): Buffer;
  upstream(type: string | undefined, event: Json | undefined, size: number): Promise<void>;
  /** Called as an upstream event is read, before the client gets it (the ids it creates). */
  observe?(type: string, event: Json): Promise<void> | undefined;
}

export interface SessionOptions {
  client: Duplex;
  upstream: Duplex;
  /** What the client sent after its handshake, before the upgrade was answered. */
  head: Buffer;
  clientMessageBytes: number;
  upstreamMessageBytes: number;
  streams: OpenStreams;
  log: Logger;
  requestId: string;
  /** Upstream events of these types are handed on by size, never parsed (audio deltas). */
  sizedTypes: ReadonlySet<string>;
  /** Called once, after both sockets are gone and the last upstream event was metered. */
  onEnd(): Promise<void>;
}

type Queued = { control: Buffer } | { message: Buffer; frames: Buffer[] };

// Client events queued while one is judged; past this the client's socket is paused.
const QUEUE_PAUSE = 32;
// Gateway events waiting for the upstream's fragmented message to end.
const INJECTED_PAUSE = 32;
// Past this in the client's write buffer (refusals it does not read), its socket is not read.
const CLIENT_BUFFER_PAUSE = 1024 * 1024;
const LINGER_MS = 1000;
const UNREADABLE = new GatewayError('invalid_json', { message: 'This event is not a JSON object the gateway can read, so it is not relayed.' });

function parse(payload: Buffer): Json | undefined {
  try {
    const value: unknown = JSON.parse(payload.toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : undefined;
  } catch {
    return undefined;
  }
}

/** The refusal of an event with a key given twice in one object, nested too deep or too big. */
function shapeError(payload: Buffer): GatewayError | undefined {
  try {
    checkJsonShape(payload);
    return undefined;
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    return new GatewayError(err.code, { message: err.message.replace('The request body', 'This event'), param: err.param });
  }
}

export class WebSocketSession implements Channel {
  private readonly clientFrames: FrameReader;
  private readonly upstreamFrames: FrameReader;
  private readonly clientMessages: MessageAssembler;
  private readonly upstreamMessages: MessageAssembler;
  private readonly queue: Queued[] = [];
  private pumping = false;
  private readonly injected: Buffer[] = [];
  private upstreamChain: Promise<void> = Promise.resolve();
  private dialect!: Dialect;
  private ended = false;
  private unregister: () => void = () => {};

  constructor(private readonly o: SessionOptions) {
    this.clientFrames = new FrameReader(o.clientMessageBytes, true);
    this.clientMessages = new MessageAssembler(o.clientMessageBytes);
    this.upstreamFrames = new FrameReader(o.upstreamMessageBytes, false);
    this.upstreamMessages = new MessageAssembler(o.upstreamMessageBytes);
  }

  start(dialect: Dialect): void {
    this.dialect = dialect;
    const { client, upstream } = this.o;
    this.unregister = this.o.streams.add(() => this.fail(1001, 'the gateway is shutting down'));
    const end = () => this.end();
    client.on('error', end).on('close', end).on('end', () => upstream.end());
    upstream.on('error', end).on('close', end).on('end', () => client.end());
    client.on('data', (chunk: Buffer) => this.fromClient(chunk));
    upstream.on('data', (chunk: Buffer) => this.fromUpstream(chunk));
    client.on('drain', () => {
      upstream.resume();
      this.resumeClient();
    });
    upstream.on('drain', () => this.resumeClient());
    if (this.o.head.length > 0) this.fromClient(this.o.head);
  }

  toClient(payload: Buffer): void {
    const frame = encodeFrame(OP_TEXT, payload, false);
    if (this.upstreamMessages.open) this.injected.push(frame);
    else this.writeClient(frame);
  }

  toUpstream(payload: Buffer): void {
    if (!this.ended) this.o.upstream.write(encodeFrame(OP_TEXT, payload, true));
  }

  close(code: number, reason: string): void {
    this.fail(code, reason);
  }

  private writeClient(bytes: Buffer): void {
    if (!this.o.client.write(bytes)) this.o.upstream.pause();
  }

  private fromClient(chunk: Buffer): void {
    try {
      for (const frame of this.clientFrames.push(chunk)) {
        if (frame.opcode >= OP_CLOSE) this.queue.push({ control: frame.raw });
        else {
          const message = this.clientMessages.add(frame, true);
          if (message) this.queue.push({ message: message.payload, frames: message.frames });
        }
      }
    } catch (err) {
      if (err instanceof FrameError) return this.clientFrameError(err);
      throw err;
    }
    if (this.queue.length > QUEUE_PAUSE) this.o.client.pause();
    void this.pump();
  }

  private resumeClient(): void {
    if (this.ended || this.queue.length > QUEUE_PAUSE || this.injected.length > INJECTED_PAUSE) return;
    if (this.o.client.writableLength > CLIENT_BUFFER_PAUSE) return;
    if (this.o.upstream.writableNeedDrain) return;
    this.o.client.resume();
  }

  /** Judges the client's events in order, one at a time. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.ended && this.queue.length > 0) {
        const item = this.queue.shift() as Queued;
        if ('control' in item) {
          if (!this.o.upstream.write(item.control)) this.o.client.pause();
          continue;
        }
        // The upstream's events before this one are metered first (a response id it names is recorded).
        await this.upstreamChain;
        const verdict = await this.judge(item.message);
        if (this.ended) return;
        // An upstream that does not keep up stops the client's reads until it drains.
        if (verdict.forward) {
          const frames = verdict.payload ? [encodeFrame(OP_TEXT, verdict.payload, true)] : item.frames;
          for (const frame of frames) if (!this.o.upstream.write(frame)) this.o.client.pause();
          verdict.relayed?.();
        }
        if (!verdict.forward) this.toClient(verdict.reply);
        if (this.o.client.writableLength > CLIENT_BUFFER_PAUSE || this.injected.length > INJECTED_PAUSE) this.o.client.pause();
      }
    } catch (err) {
      // An event judged while the session ended has nothing left to answer.
      if (!this.ended) {
        this.o.log.error({ err, requestId: this.o.requestId }, 'websocket client event failed');
        this.fail(1011, 'the gateway failed');
      }
    } finally {
      this.pumping = false;
    }
    this.resumeClient();
  }

  private async judge(message: Buffer): Promise<Verdict> {
    const found = eventType(message, true);
    let type = found.type;
    let event: Json | undefined;
    if (found.ambiguous || (type !== undefined && this.dialect.clientTypes.has(type))) {
      // As over HTTP (json-shape.ts): a key given twice is read one way here and maybe another
      // upstream, so the event is refused, not relayed.
      const misshapen = shapeError(message);
      if (misshapen) return { forward: false, reply: this.dialect.refusal(misshapen, undefined) };
      event = parse(message);
      // Another parser may read what this one refuses (NaN, say): what the gateway cannot read,
      // it cannot meter, so it is not relayed.
      if (!event) return { forward: false, reply: this.dialect.refusal(UNREADABLE, undefined) };
      type = typeof event.type === 'string' ? event.type : undefined;
      if (!this.dialect.clientTypes.has(type ?? '')) event = undefined;
    }
    return this.dialect.client(type, event, message.length, message);
  }

  private fromUpstream(chunk: Buffer): void {
    try {
      for (const frame of this.upstreamFrames.push(chunk)) {
        if (frame.opcode >= OP_CLOSE) {
          this.writeClient(frame.raw);
          continue;
        }
        // Metered before its last frame goes out: what it records is asked of the store first.
        const message = this.upstreamMessages.add(frame, false);
        if (message) this.meterUpstream(message.payload);
        this.writeClient(frame.raw);
        if (!this.upstreamMessages.open) this.flushInjected();
      }
    } catch (err) {
      if (err instanceof FrameError) return this.upstreamFrameError(err);
      throw err;
    }
  }

  /**
   * A client message past `clientMessageBytes` (1009) or a frame that breaks the protocol (1002).
   * Past the limit, the client first gets the API's error event saying so (`request_too_large`, as
   * an HTTP body past its limit), when it can be written: not inside a fragmented message of the
   * upstream's that the client is still receiving.
   */
  private clientFrameError(err: FrameError): void {
    if (err.code === 1009 && !this.upstreamMessages.open) {
      const error = new GatewayError('request_too_large', {
        message: err.tooManyFrames
          ? `This event is split into more frames than the gateway takes (${MAX_MESSAGE_FRAMES}): the session is closed.`
          : `This event is larger than the gateway takes (${this.o.clientMessageBytes} bytes): the session is closed.`,
      });
      this.writeClient(encodeFrame(OP_TEXT, this.dialect.refusal(error, undefined), false));
    }
    this.fail(err.code, err.message);
  }

  /**
   * An upstream message past `upstreamMessageBytes`, or an upstream frame that breaks the protocol:
   * the gateway cannot read it, so cannot meter it, and buffers none of it. The client gets an error
   * event `upstream_invalid_response` (as HTTP answers 502 an answer it cannot pass on) when one can
   * be written, then close code 1014 (bad gateway); the upstream gets the code its frame earned.
   */
  private upstreamFrameError(err: FrameError): void {
    if (!this.upstreamMessages.open) {
      const error = new GatewayError('upstream_invalid_response', {
        message:
          err.code !== 1009
            ? 'The upstream broke the WebSocket protocol: the session is closed.'
            : err.tooManyFrames
              ? `The upstream sent an event split into more frames than the gateway takes (${MAX_MESSAGE_FRAMES}): the session is closed.`
              : `The upstream sent an event larger than the gateway takes (${this.o.upstreamMessageBytes} bytes): the session is closed.`,
      });
      this.writeClient(encodeFrame(OP_TEXT, this.dialect.refusal(error, undefined), false));
    }
    this.fail(1014, `upstream: ${err.message}`, err.code);
  }

  private flushInjected(): void {
    if (this.injected.length === 0) return;
    for (const frame of this.injected.splice(0)) this.writeClient(frame);
    this.resumeClient();
  }

  private meterUpstream(payload: Buffer): void {
    const { type } = eventType(payload, false);
    if (type === undefined) return;
    const sized = this.o.sizedTypes.has(type);
    if (!sized && !this.dialect.upstreamTypes.has(type)) return;
    const event = sized ? undefined : parse(payload);
    const size = payload.length;
    // Issued now, before the client has the event (one store connection keeps the order of
    // commands, so a request the client makes on seeing it is looked up after it).
    const observed = (event && this.dialect.observe?.(type, event))?.catch((err: unknown) => {
      this.o.log.warn({ requestId: this.o.requestId, reason: (err as Error).message }, 'websocket object owner not recorded');
    });
    this.upstreamChain = this.upstreamChain
      .then(() => observed)
      .then(() => this.dialect.upstream(type, event, size))
      .catch((err: unknown) => this.o.log.error({ err, requestId: this.o.requestId }, 'websocket upstream event could not be metered'));
  }

  /**
   * Ends the session with a close code to both sides (1009: a message past the limit). The upstream
   * gets `upstreamCode`, else the same code, but 1000 for a client's fault it had no part in.
   */
  fail(code: number, reason: string, upstreamCode?: number): void {
    if (this.ended) return;
    this.o.log.info({ requestId: this.o.requestId, code, reason }, 'websocket closed by the gateway');
    const { client, upstream } = this.o;
    client.write(closeFrame(code, reason, false));
    upstream.write(closeFrame(upstreamCode ?? (code === 1009 || code === 1002 ? 1000 : code), 'closed by the gateway', true));
    client.end();
    upstream.end();
    this.end();
    setTimeout(() => {
      client.destroy();
      upstream.destroy();
    }, LINGER_MS).unref();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.unregister();
    this.queue.length = 0;
    const { client, upstream } = this.o;
    if (client.destroyed || upstream.destroyed) {
      client.destroy();
      upstream.destroy();
    }
    void this.upstreamChain.then(() => this.o.onEnd());
  }
}
