// What the request path needs, built once at start and handed to each plugin.
import type { Logger } from 'pino';
import type { Alerts } from './alerts/alerts.js';
import type { QuotaWatch } from './alerts/quota-watch.js';
import type { Config } from './config.js';
import type { Cors } from './inbound/cors.js';
import type { Metrics } from './metrics.js';
import type { Pool } from './pool/pool.js';
import type { CatalogSync } from './pool/runtime.js';
import type { SecretBox } from './secrets/box.js';
import type { RetryPolicy } from './pool/retry.js';
import type { Masker } from './relay/mask.js';
import type { OpenStreams } from './relay/open-streams.js';
import type { Outbound } from './relay/outbound.js';
import type { Store } from './store/types.js';
import type { QuotaGate } from './quota/gate.js';
import type { PriceTable } from './quota/prices.js';

export interface Services {
  config: Config;
  log: Logger;
  store: Store;
  pool: Pool;
  /** Failover of every request, with the pool-wide retry budget. */
  retry: RetryPolicy;
  /** Masks pool keys and other key material in upstream error texts (src/relay/mask.ts). */
  masker: Masker;
  /** Upstreams and pool keys added at run time, as this process serves them (src/pool/runtime.ts). */
  catalog: CatalogSync;
  /** Seals and opens the secrets added at run time (KEYRELAY_SECRET). */
  secretBox: SecretBox;
  outbound: Outbound;
  /** Streams and WebSockets open now: what a shutdown ends when its grace period is over. */
  streams: OpenStreams;
  metrics: Metrics;
  /** Raises alert events for the webhooks (src/alerts/alerts.ts): `alerts.emit(type, data)`. */
  alerts: Alerts;
  /** Watches settles for the quota.threshold alert. */
  quotaWatch: QuotaWatch;
  /** The price table of the settings over the built-in one. */
  prices: PriceTable;
  /** Admits and settles every metered request, HTTP and WebSocket alike. */
  quota: QuotaGate;
  /** Which browser pages may call /v1, and what they are told (src/inbound/cors.ts). */
  cors: Cors;
}
