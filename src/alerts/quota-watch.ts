// quota.threshold: a user's usage crossing 80 %, 95 % or 100 % of a token or dollar window (the
// day's and the month's). The gate tells the watch of each settle; the watch reads the user's
// counters a moment later, at most once per user per `delayMs` however many requests settle
// meanwhile, and raises each crossing once per user, window and threshold: marked in this process
// (so it asks the store once) and in the store (so one process of all raises it).
import type { Logger } from 'pino';
import { BoundedMap } from '../bounded-map.js';
import type { QuotaLimits, Store, WindowUsage } from '../store/types.js';
import type { Alerts } from './alerts.js';

export const THRESHOLDS = [80, 95, 100] as const;
const DAY_MS = 86_400_000;

interface Gauge {
  limit: 'tokensPerDay' | 'tokensPerMonth' | 'usdPerDay' | 'usdPerMonth';
  window: 'day' | 'month';
  of: (w: WindowUsage) => number;
  cap: (l: QuotaLimits) => number | undefined;
  /** As the data shows it: tokens, or US dollars. */
  shown: (n: number) => number;
}

const GAUGES: Gauge[] = [
  { limit: 'tokensPerDay', window: 'day', of: (w) => w.tokens, cap: (l) => l.tokensPerDay, shown: (n) => n },
  { limit: 'tokensPerMonth', window: 'month', of: (w) => w.tokens, cap: (l) => l.tokensPerMonth, shown: (n) => n },
  { limit: 'usdPerDay', window: 'day', of: (w) => w.micros, cap: (l) => l.microsPerDay, shown: (n) => n / 1_000_000 },
  { limit: 'usdPerMonth', window: 'month', of: (w) => w.micros, cap: (l) => l.microsPerMonth, shown: (n) => n / 1_000_000 },
];

export function watched(limits: QuotaLimits): boolean {
  return GAUGES.some((g) => g.cap(limits) !== undefined);
}

export interface QuotaWatchOptions {
  store: Pick<Store, 'usage'>;
  alerts: Pick<Alerts, 'emitOnce'>;
  log: Logger;
  delayMs?: number;
  now?: () => number;
}

export class QuotaWatch {
  private readonly pending = new Map<string, QuotaLimits>();
  private readonly raised = new BoundedMap<string, true>(100_000);
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly options: QuotaWatchOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Called after each settle that charged something; cheap, and never waits. */
  settled(userId: string, limits: QuotaLimits): void {
    if (!watched(limits)) return;
    this.pending.set(userId, limits);
    if (this.timer) return;
    this.timer = setTimeout(() => void this.check(), this.options.delayMs ?? 200);
    this.timer.unref();
  }

  close(): void {
    clearTimeout(this.timer);
  }

  /** Reads the counters of every user that settled since the last check. */
  async check(): Promise<void> {
    this.timer = undefined;
    const users = [...this.pending];
    this.pending.clear();
    await Promise.all(users.map(([userId, limits]) => this.checkUser(userId, limits)));
  }

  private async checkUser(userId: string, limits: QuotaLimits): Promise<void> {
    let usage;
    try {
      usage = await this.options.store.usage(userId, limits, this.now());
    } catch (err) {
      this.options.log.warn({ user: userId, reason: (err as Error).message }, 'alerts: could not read usage for quota thresholds');
      return;
    }
    for (const gauge of GAUGES) {
      const cap = gauge.cap(limits);
      if (cap === undefined || cap <= 0) continue;
      const window = usage[gauge.window];
      const used = gauge.of(window);
      for (const threshold of THRESHOLDS) {
        if (used * 100 < cap * threshold) continue;
        const key = `quota:${userId}:${gauge.limit}:${window.window}:${threshold}`;
        if (this.raised.has(key)) continue;
        this.raised.set(key, true);
        // The mark outlives the window by a day, so no clock skew between processes raises it twice.
        const ttl = Math.max(DAY_MS, Date.parse(window.resetsAt) - this.now() + DAY_MS);
        void this.options.alerts.emitOnce(key, ttl, 'quota.threshold', {
          user: userId,
          limit: gauge.limit,
          window: window.window,
          threshold,
          used: gauge.shown(used),
          max: gauge.shown(cap),
          resetsAt: window.resetsAt,
        });
      }
    }
  }
}
