// What the request path needs, built once at start and handed to each plugin.
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Pool } from './pool/pool.js';
import type { Outbound } from './relay/outbound.js';
import type { Store } from './store/types.js';

export interface Services {
  config: Config;
  log: Logger;
  store: Store;
  pool: Pool;
  outbound: Outbound;
}
