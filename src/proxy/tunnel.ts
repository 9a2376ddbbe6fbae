// A tunnel through one proxy to one upstream host and port: the socket it resolves carries bytes
// to the upstream as if connected directly. Opening it sends nothing of the request.
import type { Socket } from 'node:net';

export interface TunnelTarget {
  /** Host name or IP address, without IPv6 brackets. */
  host: string;
  port: number;
}

export interface Tunnel {
  /** Resolves the tunnel's socket, or rejects with a ProxyError (or, for a name the gateway must resolve, a DNS error). */
  open(target: TunnelTarget, signal: AbortSignal): Promise<Socket>;
  close(): Promise<void>;
}
