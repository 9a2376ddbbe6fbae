// How long a client may make the gateway wait for its request (docs/connections.md). Four clocks,
// each for one way of holding a connection without asking anything:
//
// - headers: Node's headersTimeout, from the connection (or the previous answer) until the
//   request's headers are whole. Past it: 408 `request_timeout`, closed.
// - silence: the socket's idle timeout. Node calls it on any byte read or written; it is acted on
//   only while the gateway waits for the client (no request yet, or a request body not yet
//   whole), never while the gateway makes its answer: a long reasoning call may keep the line
//   silent for minutes, and the upstream timeouts bound that. While the gateway itself holds the
//   body back (backpressure from the upstream, or a check not yet done), the silence is ours and
//   does not count.
// - rate: after its first `idleMs`, a body must keep up `bodyMinBytesPerSecond` on average, as
//   Apache's mod_reqtimeout MinRate does: a drip of a byte every few seconds never falls silent
//   but never ends either. Time the gateway held the body back is not counted.
// - total: Node's requestTimeout, off by default: any total that lets a 512 MB upload through at a
//   slow but real 1 Mbit/s (70 minutes) protects nothing the two clocks above do not.
//
// A request cut while its body arrives is closed, not answered: its handler still owns the
// answer, and a client that stopped sending is not reading either.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';
import { answerOnSocket, closeAfterAnswer } from './raw-answer.js';

type Settings = Config['inbound'];

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
}

/** The Node server options these clocks set. */
export function serverTimeouts(settings: Settings) {
  return {
    headersTimeout: settings.headersMs,
    requestTimeout: settings.requestMs,
    keepAliveTimeout: settings.keepAliveMs,
    // How often Node checks the headers and request clocks (30 s by default, which would let a
    // 20 s headers timeout run to 50 s).
    connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(settings.headersMs / 10))),
  };
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

export function createSlowClientGuard(settings: Settings, log: Logger) {
  const { idleMs, bodyMinBytesPerSecond: minRate } = settings;
  // The latest request of each connection.
  const exchanges = new WeakMap<Socket, Exchange>();

  const receiving = (ex: Exchange | undefined): ex is Exchange => ex !== undefined && !ex.req.complete;
  const answering = (ex: Exchange | undefined): boolean => ex !== undefined && !ex.res.writableFinished;

  function cut(socket: Socket, reason: 'silent' | 'too slow', ex: Exchange): void {
    log.info({ reason, method: ex.req.method, remoteAddress: socket.remoteAddress, bytesRead: socket.bytesRead }, 'request body not received in time: connection closed');
    socket.destroy();
  }

  /** Keeps the body's average rate above the minimum, not counting the time the gateway held it back. */
  function watchRate(socket: Socket, ex: Exchange): void {
    const since = Date.now();
    const base = socket.bytesRead;
    let heldMs = 0;
    let heldSince: number | undefined;
    let timer: NodeJS.Timeout | undefined;
    const onPause = () => (heldSince ??= Date.now());
    const onResume = () => {
      if (heldSince !== undefined) heldMs += Date.now() - heldSince;
      heldSince = undefined;
    };
    // Removed again: a keep-alive connection carries many requests.
    const stop = () => {
      clearTimeout(timer);
      ex.req.off('end', stop);
      socket.off('close', stop).off('pause', onPause).off('resume', onResume);
    };
    // `read`: the bytes waiting in the kernel have been read since the clock fired (as above).
    const check = (read = false) => {
      if (exchanges.get(socket) !== ex || !receiving(ex) || socket.destroyed) {
        stop();
        return;
      }
      if (heldSince !== undefined) {
        timer = setTimeout(check, idleMs).unref();
        return;
      }
      const received = socket.bytesRead - base;
      const allowedMs = idleMs + (received * 1000) / minRate;
      const elapsed = Date.now() - since - heldMs;
      if (elapsed >= allowedMs && !read) setImmediate(check, true);
      else if (elapsed >= allowedMs) cut(socket, received === 0 ? 'silent' : 'too slow', ex);
      else timer = setTimeout(check, Math.ceil(allowedMs - elapsed)).unref();
    };
    if (socket.isPaused()) onPause();
    timer = setTimeout(check, idleMs).unref();
    ex.req.once('end', stop);
    socket.once('close', stop).on('pause', onPause).on('resume', onResume);
  }

  /**
   * Cuts a socket that is silent once the bytes already waiting for it have been read. Timers run
   * before I/O in a turn of the loop: after the gateway's own loop stalled for longer than
   * `idleMs`, the clock fires while what the client sent meanwhile is still unread.
   */
  function afterPendingReads(socket: Socket, ex: Exchange): void {
    const before = socket.bytesRead;
    setImmediate(() => {
      if (socket.destroyed || exchanges.get(socket) !== ex || !receiving(ex)) return;
      if (socket.bytesRead !== before || socket.isPaused()) socket.setTimeout(idleMs);
      else cut(socket, 'silent', ex);
    });
  }

  return {
    /** Called for every request as it arrives, before any handler. */
    watch(req: IncomingMessage, res: ServerResponse): void {
      const ex = { req, res };
      exchanges.set(req.socket, ex);
      if (minRate > 0 && hasBody(req)) watchRate(req.socket, ex);
    },

    /** The server's 'timeout' listener: the socket's idle clock ran out. */
    onSilence(socket: Socket): void {
      const ex = exchanges.get(socket);
      if (receiving(ex)) {
        // Held back by the gateway: look again later.
        if (socket.isPaused()) socket.setTimeout(idleMs);
        else afterPendingReads(socket, ex);
        return;
      }
      if (answering(ex)) return;
      // Nothing asked: a new connection that stays silent, or a keep-alive one past keepAliveMs.
      socket.destroy();
    },

    /**
     * Fastify's clientErrorHandler: Node's headers or request clock ran out, or the request is not
     * valid HTTP. Answered on the socket when no answer is under way on it, else only closed.
     */
    clientError(err: NodeJS.ErrnoException, socket: Socket): void {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const ex = exchanges.get(socket);
      // Answered already, whole, as the request arrived (a transfer coding Node's parser then
      // refused, transfer-codings.ts): closed once that answer is out, not cut before it.
      if (ex && ex.res.writableEnded) {
        closeAfterAnswer(socket);
        return;
      }
      if (receiving(ex) || answering(ex)) {
        socket.destroy();
        return;
      }
      answerOnSocket(socket, clientErrorAnswer(err));
    },
  };
}

function clientErrorAnswer(err: NodeJS.ErrnoException): GatewayError {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return new GatewayError('request_timeout', { message: 'The request headers were not received in time.', cause: err });
  if (err.code === 'HPE_HEADER_OVERFLOW') return new GatewayError('invalid_header', { status: 431, message: 'The request headers are too large.', cause: err });
  return new GatewayError('invalid_request', { message: 'The request is not valid HTTP.', cause: err });
}
