// A WebSocket session's place among its user's requests in flight (`maxConcurrent`), held from the
// upgrade until the session closes. It is a reservation of no tokens, taken at the upgrade with the
// user's rpm and concurrency limits. A reservation lapses after `quota.leaseMs` when its process
// never settles it (a crash); a session may outlive that, so every third of a lease the slot moves
// to a fresh reservation: the new one is taken with no limits (it takes no rpm and is never
// refused), then the old one is given back as a request that did not count. The user's request
// count, rpm and in-flight count stay as the upgrade left them; a dead process's slot still lapses
// within one lease.
import type { Logger } from 'pino';
import type { QuotaGate } from '../quota/gate.js';
import type { QuotaLimits, Reservation, Store, User } from '../store/types.js';

export interface SlotOptions {
  gate: QuotaGate;
  store: Store;
  leaseMs: number;
  log: Logger;
}

export class SessionSlot {
  private timer: NodeJS.Timeout | undefined;
  private renewals = 0;
  private closed = false;
  private renewing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly o: SlotOptions,
    private current: Reservation,
    /** The user's limits at the upgrade: a refund gives back its rpm unit. */
    private readonly limits: QuotaLimits,
  ) {}

  /** Admits the session (its rpm and concurrency), or throws the 429 it gets instead. */
  static async take(o: SlotOptions, user: User, sessionId: string, model: string | undefined): Promise<SessionSlot> {
    // `metered` with a model: a dollar-limited user cannot open a session on a model with no price.
    const ticket = await o.gate.admit(user, sessionId, { model, promptTokens: 0, maxOutputTokens: 0, metered: model !== undefined });
    const slot = new SessionSlot(o, ticket.reservation, ticket.limits);
    slot.timer = setInterval(() => {
      slot.renewing = slot.renew();
    }, Math.max(250, Math.floor(o.leaseMs / 3)));
    slot.timer.unref();
    return slot;
  }

  private async renew(): Promise<void> {
    if (this.closed) return;
    const old = this.current;
    const now = Date.now();
    const requestId = `${old.requestId.split('.lease')[0]}.lease${++this.renewals}`;
    try {
      const admission = await this.o.store.reserve({ userId: old.userId, requestId, limits: {}, tokens: 0, micros: 0, now, leaseMs: this.o.leaseMs });
      if (!admission.admitted) return;
      this.current = admission.reservation;
      await this.give(old, true);
      // Closed while the new one was taken: it goes too.
      if (this.closed) await this.give(this.current, false);
    } catch (err) {
      this.o.log.warn({ requestId, reason: (err as Error).message }, 'could not renew a WebSocket session\'s slot: it lapses after the lease unless a later renewal succeeds');
    }
  }

  private give(reservation: Reservation, refundRequest: boolean, limits: QuotaLimits = {}): Promise<void> {
    return this.o.store.settle({ reservation, limits, tokens: 0, micros: 0, estimated: false, refundRequest, now: Date.now(), leaseMs: this.o.leaseMs });
  }

  /** The session closed: its slot is given back; it stays counted as one request unless
   * `refund` (the upstream never took it). */
  async close(refund = false): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.renewing;
    await this.give(this.current, refund, refund ? this.limits : {}).catch((err: unknown) => {
      this.o.log.warn({ requestId: this.current.requestId, reason: (err as Error).message }, 'could not give back a WebSocket session\'s slot: it lapses after the lease');
    });
  }
}
