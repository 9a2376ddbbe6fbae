// Alerts: events raised anywhere in the gateway, queued in the store for every webhook that wants
// them, and sent by the delivery loop (deliver.ts), never on a request's path. `emit` is the one
// entry point: the admin routes call it for changes they make (pool_key.added …), and the
// watchers (quota-watch.ts, pool-watch.ts) call `emitOnce` for what every process may notice at
// the same time, so that the store's mark makes one of them raise it.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { newId } from '../keys.js';
import { Deliverer } from './deliver.js';
import type { AlertEvent, AlertStore, Delivery, EventType, Webhook } from './types.js';

export interface AlertsOptions {
  config: Pick<Config, 'alerts'>;
  store: AlertStore;
  log: Logger;
  now?: () => number;
}

export type Alerts = ReturnType<typeof createAlerts>;

/** The webhooks of the settings, as the API shows them: ids `settings-<n>` unless given. */
export function settingsWebhooks(config: Pick<Config, 'alerts'>): Webhook[] {
  return config.alerts.webhooks.map((hook, i) => ({
    id: hook.id ?? `settings-${i + 1}`,
    url: hook.url,
    events: [...hook.events],
    secret: hook.secret,
    source: 'settings' as const,
  }));
}

export function createAlerts(options: AlertsOptions) {
  const { store, log } = options;
  const now = options.now ?? Date.now;
  const fromSettings = settingsWebhooks(options.config);
  const settingsById = new Map(fromSettings.map((w) => [w.id, w]));

  async function webhooks(): Promise<Webhook[]> {
    return [...fromSettings, ...(await store.listWebhooks())];
  }

  async function webhook(id: string): Promise<Webhook | undefined> {
    return settingsById.get(id) ?? (await store.listWebhooks()).find((w) => w.id === id);
  }

  const deliverer = new Deliverer({ store, webhook, ...options.config.alerts, log, now });

  async function queue(type: EventType, data: Record<string, unknown>): Promise<AlertEvent> {
    const at = now();
    const event: AlertEvent = { id: newId('evt'), type, time: new Date(at).toISOString(), data };
    const body = JSON.stringify(event);
    const wanting = (await webhooks()).filter((w) => w.events.includes(type));
    const deliveries: Delivery[] = wanting.map((w) => ({ id: `${event.id}.${w.id}`, webhookId: w.id, body, eventId: event.id, type, attempts: 0, firstAt: at }));
    await store.enqueue(deliveries, at);
    if (deliveries.length > 0) deliverer.kick();
    log.info({ event: event.id, type, webhooks: deliveries.length }, 'alert raised');
    return event;
  }

  const failed = (type: EventType) => (err: unknown) => {
    log.warn({ type, reason: (err as Error).message }, 'alerts: could not queue an event');
    return undefined;
  };

  return {
    webhooks,
    webhook,
    /**
     * Raises an event: each webhook that wants `type` gets `{id, type, time, data}`. Resolves the
     * event (undefined when the store could not take it; that is logged, never thrown, since the
     * change that raised it is already made). `data` must hold no secret.
     */
    emit(type: EventType, data: Record<string, unknown>): Promise<AlertEvent | undefined> {
      return queue(type, data).catch(failed(type));
    },
    /** As emit, raised only by the first process to claim `key` within `ttlMs`. */
    async emitOnce(key: string, ttlMs: number, type: EventType, data: Record<string, unknown>): Promise<AlertEvent | undefined> {
      try {
        if (!(await store.once(key, ttlMs))) return undefined;
        return await queue(type, data);
      } catch (err) {
        return failed(type)(err);
      }
    },
    start(): void {
      deliverer.start();
      // Deliveries left due by a process that stopped go out without waiting for a turn.
      deliverer.kick();
    },
    close(): Promise<void> {
      return deliverer.close();
    },
  };
}
