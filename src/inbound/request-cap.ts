// The cap on HTTP requests in flight in one process (docs/connections.md). A request past it gets a
// 503 `server_overloaded` at once, before its key is looked up or a byte of its body is read: under
// more load than the process can serve, those it admits keep their latency and the rest learn
// within a round trip that they should go elsewhere or retry, instead of every request slowing
// down together while they queue in the event loop.
//
// A request holds its place from the moment Node hands it over until its answer ends, whichever
// way: written whole, the client gone, an error, a stream's end. WebSockets are not counted here
// (a session is one connection, held by the connection cap), nor are the health routes: an
// orchestrator must still see a saturated process, and /metrics says how saturated.
//
// A count alone does not keep latency when the CPU is what runs out: requests then wait in the
// socket buffers for the event loop before any of them is counted, refused ones too. With
// `maxEventLoopUtilization`, the limit follows how busy the loop is (busy-limit.ts), which keeps
// the admitted requests at their normal latency under twice the load the process can serve. With
// `maxEventLoopDelayMs`, new requests are refused while the loop's last sampled delay is past it:
// that sheds less and later, since a loop that is late is already full of work.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { ERRORS, GatewayError, errorBody } from '../errors.js';
import { createBusyLimit } from './busy-limit.js';
import type { Reading } from './saturation.js';

// One warning line per this long at most while requests are refused.
const WARN_EVERY_MS = 10_000;
// How often the event loop's delay is sampled.
const SAMPLE_MS = 20;
/** Routes an orchestrator reads: never counted, never refused for load. */
export const HEALTH_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);
// A refused request's body up to this size is read and dropped by Node after the 503, and its
// connection kept: a client that reconnects for each refused request costs more than the bytes.
// A larger body, or one of unknown length, is not read: the connection closes.
const DRAINED_BODY_BYTES = 64 * 1024;

function drainable(req: IncomingMessage): boolean {
  if (req.complete) return true;
  if (req.headers['transfer-encoding'] !== undefined) return false;
  const length = Number(req.headers['content-length'] ?? 0);
  return length <= DRAINED_BODY_BYTES;
}

function exempt(url: string | undefined): boolean {
  // An API request (`/v1/...`) is never one of them: told by its second character.
  if (url === undefined || url.charCodeAt(1) === 0x76) return false;
  const q = url.indexOf('?');
  return HEALTH_PATHS.has(q === -1 ? url : url.slice(0, q));
}

export interface RequestCap {
  /** Requests holding a place now. */
  readonly inFlight: number;
  /** How many may hold one now: maxRequestsInFlight, or less while the event loop is busy. */
  readonly limit: number;
  /** True when the request may go on; false when it was refused (the 503 is written). */
  admit(req: IncomingMessage, res: ServerResponse): boolean;
  /** Where the process stands against its request and event-loop limits (`/readyz`: saturation.ts). */
  readings(): Reading[];
  /** Stops sampling the event loop. */
  close(): void;
}

export type Refusal = 'requests' | 'event_loop';

/** How late the event loop was at its last sample, and whether that is more than `limitMs`. */
function loopDelay(limitMs: number): { behind(): boolean; lateMs(): number; close(): void } {
  if (limitMs === 0) return { behind: () => false, lateMs: () => 0, close: () => {} };
  let last = performance.now();
  let late = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    late = Math.max(0, now - last - SAMPLE_MS);
    last = now;
  }, SAMPLE_MS).unref();
  return { behind: () => late > limitMs, lateMs: () => late, close: () => clearInterval(timer) };
}

// Each refusal's body made once: under overload every refusal's cost is taken from the requests
// admitted, so it builds no error object and no JSON.
function refusalBody(message: string): Buffer {
  return Buffer.from(errorBody(new GatewayError('server_overloaded', { message })));
}
const BODIES: Record<Refusal, Buffer> = {
  requests: refusalBody('The gateway is at its limit of requests in flight. Try again later.'),
  event_loop: refusalBody('The gateway is overloaded. Try again later.'),
};
const STATUS = ERRORS.server_overloaded.status;

export function createRequestCap(settings: Config['inbound'], log: Logger, onRefused: (why: Refusal) => void): RequestCap {
  const { maxRequestsInFlight, maxEventLoopDelayMs, maxEventLoopUtilization } = settings;
  const delay = loopDelay(maxEventLoopDelayMs);
  let inFlight = 0;
  const busy = createBusyLimit(maxRequestsInFlight, maxEventLoopUtilization, () => inFlight);
  let refused = 0;
  let warnedAt = 0;

  function refuse(req: IncomingMessage, res: ServerResponse, why: Refusal): void {
    refused += 1;
    onRefused(why);
    const now = Date.now();
    if (now - warnedAt >= WARN_EVERY_MS) {
      warnedAt = now;
      log.warn({ maxRequestsInFlight, maxEventLoopDelayMs, inFlight, refused }, 'request limit reached: new requests answered 503 server_overloaded');
      refused = 0;
    }
    const body = BODIES[why];
    const id = randomUUID();
    if (!drainable(req)) res.shouldKeepAlive = false;
    res.writeHead(STATUS, {
      'retry-after': '1',
      'content-type': 'application/json',
      'content-length': body.length,
      'x-request-id': id,
      'x-keyrelay-request-id': id,
    });
    res.end(body);
  }

  return {
    get inFlight() {
      return inFlight;
    },
    get limit() {
      return busy.current();
    },
    admit(req, res) {
      if (exempt(req.url)) return true;
      if (inFlight >= maxRequestsInFlight) {
        refuse(req, res, 'requests');
        return false;
      }
      if (delay.behind()) {
        refuse(req, res, 'event_loop');
        return false;
      }
      if (inFlight >= busy.current()) {
        busy.refused();
        refuse(req, res, 'event_loop');
        return false;
      }
      inFlight += 1;
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        inFlight -= 1;
      };
      // 'close' comes once for every answer: in the tick after 'finish' when it was written whole,
      // alone when the client went away or the answer was cut (pipelined.ts closes the answers
      // Node forgets).
      res.on('close', release);
      return true;
    },
    readings() {
      const requests: Reading = { limit: 'requests', current: inFlight, max: maxRequestsInFlight, reached: inFlight >= maxRequestsInFlight };
      // With both event-loop settings, the busy limit is what readiness reports (the one that
      // sheds load early); a late loop still counts as reached. A limit not lowered is the request
      // cap itself: at it, the process is saturated for its requests (as its refusals are counted),
      // not for its event loop.
      if (maxEventLoopUtilization > 0) {
        const max = busy.current();
        return [requests, { limit: 'event_loop', current: inFlight, max, reached: (max < maxRequestsInFlight && inFlight >= max) || delay.behind() }];
      }
      if (maxEventLoopDelayMs === 0) return [requests];
      const lateMs = Math.round(delay.lateMs());
      return [requests, { limit: 'event_loop', current: lateMs, max: maxEventLoopDelayMs, reached: delay.behind() }];
    },
    close: () => {
      delay.close();
      busy.close();
    },
  };
}
