// One warm connection per route (a dispatcher, that is a proxy list or none, and an upstream
// origin): a socket through the proxy to the upstream, TLS done, held until undici asks for a new
// connection, which then gets it at once instead of paying for the tunnel and the handshake on the
// request's path. A client far from the upstream and behind a proxy pays several round trips for
// those; a kept-alive connection saves them only until the upstream closes it when idle.
//
// Bounded: at most one per route, opened in the background when the route is used and has none,
// and again when it closes or is replaced (an unused one is replaced after `maxIdleMs`, before the
// upstream or the proxy would close it under a request), only while a request used the route
// within `forMs` and one of the keys that used it is still present and not disabled (`live`).
// `refresh()` closes those whose keys are all gone or disabled.
import type { Socket } from 'node:net';
import type { buildConnector } from 'undici';

export interface WarmOptions {
  /** An unused warm socket older than this is closed and replaced. */
  maxIdleMs: number;
  /** A route is kept warm while its last request is at most this old. */
  forMs: number;
  /** Whether a pool key (its ref) is present and not disabled. */
  live: (keyRef: string) => boolean;
  now?: () => number;
}

type ConnectOptions = buildConnector.Options;
type Callback = buildConnector.Callback;

/** A spare that closed sooner than this after it opened is not replaced until the next request. */
const SHORT_LIVED_MS = 1000;

interface Spare {
  socket: Socket;
  timer: NodeJS.Timeout;
  onClose: () => void;
  onError: () => void;
}

class Route {
  readonly refs = new Set<string>();
  lastUsed = 0;
  spare?: Spare;
  opening = false;
  /** A request waiting for the socket being opened. */
  waiter?: Callback;
  connectOptions?: ConnectOptions;

  constructor(
    readonly connector: buildConnector.connector,
    readonly chain: string,
    readonly origin: string,
  ) {}
}

export class WarmConnections {
  private readonly routes = new Map<string, Route>();
  /** Each dispatcher's own connector, by chain. */
  private readonly connectors = new Map<string, buildConnector.connector>();
  /** The route each key last went by: a key whose proxy changed leaves its old route. */
  private readonly routeOfRef = new Map<string, Route>();
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly options: WarmOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The connector of one dispatcher (`chain`), handing out its route's warm socket when it has one. */
  wrap(chain: string, connector: buildConnector.connector): buildConnector.connector {
    this.connectors.set(chain, connector);
    return (connectOptions, callback) => {
      // A dispatcher let go (forget) still opens connections for the requests queued on it: those
      // go straight, and make no route that a new dispatcher of the same list would find.
      if (this.connectors.get(chain) !== connector) return connector(connectOptions, callback);
      const route = this.route(chain, originOf(connectOptions));
      route.connectOptions = { ...connectOptions, httpSocket: undefined };
      const spare = this.take(route);
      // undici takes a socket only after its connector returned: handed at once, it is never used.
      if (spare) process.nextTick(callback, null, spare);
      // One being opened in the background is this request's: never two tunnels at once.
      else if (route.opening && route.waiter === undefined) route.waiter = callback;
      else connector(connectOptions, callback);
      this.replenish(route);
    };
  }

  /** A request is about to go by `chain` to `origin` on this key. */
  use(chain: string, origin: string, keyRef: string): void {
    const before = this.routeOfRef.get(keyRef);
    // Most requests go the way their key went last: no route id to make.
    const route = before !== undefined && before.chain === chain && before.origin === origin ? before : this.route(chain, origin);
    route.lastUsed = this.now();
    if (before !== route) {
      before?.refs.delete(keyRef);
      route.refs.add(keyRef);
      this.routeOfRef.set(keyRef, route);
      if (before) this.settle(before);
    }
    this.replenish(route);
  }

  /** Closes the warm sockets of routes whose keys are all removed or disabled (call after a change). */
  refresh(): void {
    for (const route of this.routes.values()) this.settle(route);
  }

  /** Forgets a dispatcher let go (outbound.ts): its warm sockets close, its routes and connector go. */
  forget(chain: string): void {
    this.connectors.delete(chain);
    const prefix = `${chain} `;
    for (const [id, route] of this.routes) {
      if (!id.startsWith(prefix)) continue;
      this.drop(route);
      for (const ref of route.refs) if (this.routeOfRef.get(ref) === route) this.routeOfRef.delete(ref);
      route.refs.clear();
      this.routes.delete(id);
    }
  }

  close(): void {
    this.closed = true;
    for (const route of this.routes.values()) this.drop(route);
    this.routes.clear();
    this.routeOfRef.clear();
  }

  private route(chain: string, origin: string): Route {
    const id = `${chain} ${origin}`;
    let route = this.routes.get(id);
    if (!route) {
      route = new Route(this.connectors.get(chain) as buildConnector.connector, chain, origin);
      this.routes.set(id, route);
    }
    return route;
  }

  private live(route: Route): boolean {
    for (const ref of route.refs) {
      if (this.options.live(ref)) return true;
      // Removed or disabled: forgotten here, taken up again by its next request.
      route.refs.delete(ref);
      if (this.routeOfRef.get(ref) === route) this.routeOfRef.delete(ref);
    }
    return false;
  }

  private wanted(route: Route): boolean {
    return !this.closed && this.now() - route.lastUsed < this.options.forMs && this.live(route);
  }

  private settle(route: Route): void {
    if (this.wanted(route)) return;
    this.drop(route);
    if (route.refs.size === 0 && !route.opening) {
      for (const [id, r] of this.routes) if (r === route) this.routes.delete(id);
    }
  }

  private take(route: Route): Socket | undefined {
    const spare = route.spare;
    if (!spare) return undefined;
    clearTimeout(spare.timer);
    route.spare = undefined;
    spare.socket.removeListener('close', spare.onClose).removeListener('error', spare.onError);
    return spare.socket.destroyed || !spare.socket.writable ? undefined : spare.socket;
  }

  private drop(route: Route): void {
    const spare = route.spare;
    if (!spare) return;
    route.spare = undefined;
    clearTimeout(spare.timer);
    spare.socket.destroy();
  }

  /** Opens a warm socket when the route has none; `renew`: to replace the one it has, once open. */
  private replenish(route: Route, renew = false): void {
    if ((route.spare && !renew) || route.opening || !route.connectOptions || !this.wanted(route)) return;
    route.opening = true;
    route.connector(route.connectOptions, ((err: Error | null, socket: Socket | null) => {
      route.opening = false;
      const waiter = route.waiter;
      route.waiter = undefined;
      if (waiter) {
        (waiter as (e: Error | null, s: Socket | null) => void)(err, socket);
        if (!err) this.replenish(route);
        return;
      }
      // Opening failed: the next request tries again (no retry loop against a proxy that is down).
      if (err || !socket) {
        if (renew) this.drop(route);
        return;
      }
      if (!this.wanted(route)) {
        socket.destroy();
        this.settle(route);
        return;
      }
      if (route.spare) {
        if (!renew) {
          socket.destroy();
          return;
        }
        this.drop(route);
      }
      this.hold(route, socket);
    }) as Callback);
  }

  private hold(route: Route, socket: Socket): void {
    const openedAt = this.now();
    // Replaced before the upstream's idle timeout could close it under a request; the old one is
    // closed once the new one is open, so that a request meanwhile still finds one.
    const timer = setTimeout(() => {
      if (this.wanted(route) && !route.opening) this.replenish(route, true);
      else this.drop(route);
    }, this.options.maxIdleMs);
    timer.unref();
    const onClose = () => {
      if (route.spare?.socket !== socket) return;
      clearTimeout(timer);
      route.spare = undefined;
      if (this.now() - openedAt >= SHORT_LIVED_MS) this.replenish(route);
    };
    // The upstream or the proxy closing it: an error here is that close, nothing to report.
    const onError = () => {};
    socket.on('error', onError).on('close', onClose);
    route.spare = { socket, timer, onClose, onError };
  }
}

function originOf(options: ConnectOptions): string {
  return `${options.protocol}//${options.host}`;
}
