// Alerts: events raised anywhere in the gateway, queued in the store for every webhook that wants
// them, and sent by the delivery loop (deliver.ts), never on a request's path. `emit` is the one
// entry point: the admin routes call it for changes they make (pool_key.added …), and the
// watchers (quota-watch.ts, pool-watch.ts) call `emitOnce` for what every process may notice at
// the same time, so that the store's mark makes one of them raise it.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { newId } from '../keys.js';
import type { SecretBox } from '../secrets/box.js';
import { Deliverer } from './deliver.js';
import { openSecret, resealed, sealWebhook, storedView } from './sealed.js';
import type { AlertEvent, AlertStore, Delivery, EventType, SigningWebhook, Webhook } from './types.js';

export interface AlertsOptions {
  config: Pick<Config, 'alerts'>;
  store: AlertStore;
  /** Seals and opens the signing secrets of webhooks added at run time (src/alerts/sealed.ts). */
  box: SecretBox;
  log: Logger;
  now?: () => number;
}

export type Alerts = ReturnType<typeof createAlerts>;

/** The webhooks of the settings, as the API shows them: ids `settings-<n>` unless given. */
export function settingsWebhooks(config: Pick<Config, 'alerts'>): SigningWebhook[] {
  return config.alerts.webhooks.map((hook, i) => ({
    id: hook.id ?? `settings-${i + 1}`,
    url: hook.url,
    events: [...hook.events],
    secret: hook.secret,
    last4: hook.secret.slice(-4),
    source: 'settings' as const,
  }));
}

/** A webhook of the settings as the API shows it. */
function settingsView({ secret: _secret, ...view }: SigningWebhook): Webhook {
  return view;
}

export function createAlerts(options: AlertsOptions) {
  const { store, box, log } = options;
  const now = options.now ?? Date.now;
  const fromSettings = settingsWebhooks(options.config);
  const settingsById = new Map(fromSettings.map((w) => [w.id, w]));

  async function webhooks(): Promise<Webhook[]> {
    return [...fromSettings.map(settingsView), ...(await store.listWebhooks()).map(storedView)];
  }

  async function webhook(id: string): Promise<Webhook | undefined> {
    return (await webhooks()).find((w) => w.id === id);
  }

  /** The webhook with its secret opened, to sign a delivery. Throws SecretError when it does not open. */
  async function signing(id: string): Promise<SigningWebhook | undefined> {
    const settings = settingsById.get(id);
    if (settings) return settings;
    const stored = (await store.listWebhooks()).find((w) => w.id === id);
    return stored && { ...storedView(stored), secret: openSecret(stored, box) };
  }

  const deliverer = new Deliverer({ store, webhook: signing, ...options.config.alerts, log, now });

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
    /** Adds a webhook at run time, its secret sealed (409 secret_not_configured without
     * KEYRELAY_SECRET); undefined when the id is taken, by the settings or the store. */
    async add(hook: SigningWebhook): Promise<Webhook | undefined> {
      const stored = sealWebhook(hook, box);
      if (settingsById.has(hook.id) || !(await store.addWebhook(stored))) return undefined;
      return storedView(stored);
    },
    /** Opens every stored secret: throws SecretError, naming KEYRELAY_SECRET, for one that does not. */
    async checkSecrets(): Promise<void> {
      for (const stored of await store.listWebhooks()) openSecret(stored, box);
    },
    /** Seals every stored secret under KEYRELAY_SECRET (those under the previous one, or kept as
     * given); `resealed` counts those it changed. Throws SecretError for one that does not open. */
    async reseal(): Promise<{ resealed: number; total: number }> {
      const all = await store.listWebhooks();
      let count = 0;
      for (const { id } of all) if (await store.updateWebhook(id, (stored) => resealed(stored, box))) count++;
      return { resealed: count, total: all.length };
    },
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
