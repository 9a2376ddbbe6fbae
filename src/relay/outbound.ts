// The undici dispatchers that carry upstream traffic, built once at start and chosen per request.
import { Agent, type Dispatcher } from 'undici';
import type { Config } from '../config.js';
import type { PoolChoice } from '../pool/pool.js';

export interface Outbound {
  dispatcherFor(choice: PoolChoice): Dispatcher;
  close(): Promise<void>;
}

export function createOutbound(config: Config): Outbound {
  const direct = new Agent({
    connect: { timeout: config.timeouts.connectMs },
    headersTimeout: config.timeouts.headersMs,
    bodyTimeout: config.timeouts.bodyIdleMs,
    keepAliveTimeout: 30_000,
  });
  return {
    dispatcherFor: () => direct,
    close: () => direct.close(),
  };
}
