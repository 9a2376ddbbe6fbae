// What alerts are made of, and the part of them every gateway process shares through the store:
// the webhooks added at run time, the queue of deliveries, the claims that make one process send
// each delivery, the marks that make one process raise each event, and the last attempts.

export const EVENT_TYPES = [
  'quota.threshold',
  'pool_key.disabled',
  'pool_key.recovered',
  'pool.exhausted',
  'pool_key.added',
  'pool_key.removed',
  'pool_key.rotated',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && (EVENT_TYPES as readonly string[]).includes(value);
}

/** The body a webhook receives. */
export interface AlertEvent {
  id: string;
  type: EventType;
  /** ISO 8601. */
  time: string;
  data: Record<string, unknown>;
}

/** A webhook as the API shows it and events are routed by: no secret, the last 4 characters of it. */
export interface Webhook {
  id: string;
  url: string;
  events: EventType[];
  source: 'settings' | 'store';
  createdAt?: string;
  last4: string;
}

/** A webhook with its signing secret in the clear: held by the process that signs, never kept. */
export interface SigningWebhook extends Webhook {
  secret: string;
}

/** A webhook added at run time, as the store keeps it (src/alerts/sealed.ts). */
export interface StoredWebhook {
  id: string;
  url: string;
  events: EventType[];
  source: 'store';
  createdAt?: string;
  /** The signing secret sealed under KEYRELAY_SECRET (src/secrets/box.ts). */
  sealed?: string;
  last4?: string;
  /** The signing secret as given, kept so before secrets were sealed: it still signs, and
   * `keyrelay secrets rotate` seals it. */
  secret?: string;
}

/** One event on its way to one webhook. */
export interface Delivery {
  /** `<event id>.<webhook id>`. */
  id: string;
  webhookId: string;
  /** The body, exactly as sent on every attempt. */
  body: string;
  eventId: string;
  type: EventType;
  /** Attempts made so far. */
  attempts: number;
  /** When the event was raised (epoch ms): retries stop 24 h after. */
  firstAt: number;
}

/** One attempt, as `GET /admin/webhooks/{id}/deliveries` shows it. */
export interface Attempt {
  deliveryId: string;
  eventId: string;
  type: EventType;
  /** 1 for the first attempt. */
  attempt: number;
  /** ISO 8601. */
  at: string;
  /** The receiver's HTTP status; null when there was none (refused, timed out). */
  status: number | null;
  ok: boolean;
  error: string | null;
  durationMs: number;
  /** ISO 8601 of the next attempt; null when there is none (delivered, or given up). */
  nextAttemptAt: string | null;
}

export interface AlertStore {
  /** Adds a webhook; false when the id is taken. */
  addWebhook(webhook: StoredWebhook): Promise<boolean>;
  listWebhooks(): Promise<StoredWebhook[]>;
  /** Replaces the webhook of `id` with what `change` makes of it, in one step against other
   * writers (`change` may be called again with what another wrote meanwhile); undefined from
   * `change` leaves it as it is. False when nothing was written (no such webhook, or no change). */
  updateWebhook(id: string, change: (webhook: StoredWebhook) => StoredWebhook | undefined): Promise<boolean>;
  /** Removes it; false when there was none. Its queued deliveries are dropped when their turn comes. */
  removeWebhook(id: string): Promise<boolean>;
  /** True for the first caller of `key` within `ttlMs`, from any process: who raises an event. */
  once(key: string, ttlMs: number): Promise<boolean>;
  // Due times and claims are the store's clock: on Redis the server's TIME, so that a process whose
  // clock runs ahead cannot take a delivery another process is still sending; in memory the store
  // is the process, and `now` is its clock.
  /** Queues deliveries, due at once. */
  enqueue(deliveries: Delivery[], now: number): Promise<void>;
  /** Takes up to `max` due deliveries for `leaseMs`: no other process sees them meanwhile; a
   * process that dies holding them gives them back when the lease ends (at least once). */
  claim(now: number, leaseMs: number, max: number): Promise<Delivery[]>;
  /** Records the attempt; `nextAt` (in the clock that read `now`) queues the delivery again, in
   * `nextAt - now` by the store's clock; undefined ends it. */
  attempted(delivery: Delivery, attempt: Attempt, nextAt: number | undefined, now: number): Promise<void>;
  /** The webhook's last attempts, newest first. */
  attempts(webhookId: string, limit: number): Promise<Attempt[]>;
}

/** Attempts kept per webhook. */
export const ATTEMPTS_KEPT = 100;

export class MemoryAlertStore implements AlertStore {
  private readonly webhooks = new Map<string, StoredWebhook>();
  private readonly marks = new Map<string, number>();
  private nextPrune = 0;
  private readonly queue = new Map<string, { delivery: Delivery; dueAt: number }>();
  private readonly log = new Map<string, Attempt[]>();

  async addWebhook(webhook: StoredWebhook): Promise<boolean> {
    if (this.webhooks.has(webhook.id)) return false;
    this.webhooks.set(webhook.id, { ...webhook });
    return true;
  }

  async listWebhooks(): Promise<StoredWebhook[]> {
    return [...this.webhooks.values()].map((w) => ({ ...w }));
  }

  async updateWebhook(id: string, change: (webhook: StoredWebhook) => StoredWebhook | undefined): Promise<boolean> {
    const found = this.webhooks.get(id);
    const next = found && change({ ...found });
    if (!next) return false;
    this.webhooks.set(id, { ...next, id });
    return true;
  }

  async removeWebhook(id: string): Promise<boolean> {
    this.log.delete(id);
    return this.webhooks.delete(id);
  }

  async once(key: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    if (now >= this.nextPrune) {
      for (const [k, until] of this.marks) if (until <= now) this.marks.delete(k);
      this.nextPrune = now + 60_000;
    }
    if ((this.marks.get(key) ?? 0) > now) return false;
    this.marks.set(key, now + ttlMs);
    return true;
  }

  async enqueue(deliveries: Delivery[], now: number): Promise<void> {
    for (const delivery of deliveries) this.queue.set(delivery.id, { delivery: { ...delivery }, dueAt: now });
  }

  async claim(now: number, leaseMs: number, max: number): Promise<Delivery[]> {
    const out: Delivery[] = [];
    for (const item of this.queue.values()) {
      if (out.length === max) break;
      if (item.dueAt > now) continue;
      item.dueAt = now + leaseMs;
      out.push({ ...item.delivery });
    }
    return out;
  }

  async attempted(delivery: Delivery, attempt: Attempt, nextAt: number | undefined, _now: number): Promise<void> {
    if (nextAt === undefined) this.queue.delete(delivery.id);
    else this.queue.set(delivery.id, { delivery: { ...delivery }, dueAt: nextAt });
    const list = this.log.get(delivery.webhookId) ?? [];
    list.unshift({ ...attempt });
    list.length = Math.min(list.length, ATTEMPTS_KEPT);
    this.log.set(delivery.webhookId, list);
  }

  async attempts(webhookId: string, limit: number): Promise<Attempt[]> {
    return (this.log.get(webhookId) ?? []).slice(0, limit).map((a) => ({ ...a }));
  }
}
