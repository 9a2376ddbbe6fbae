// A WebSocket session's place among its user's requests in flight (`maxConcurrent`), held from the
// upgrade until the session closes. It is a reservation of no tokens, taken at the upgrade with the
// user's rpm and concurrency limits. A reservation lapses after `quota.leaseMs` when its process
// never settles it (a crash); a session may outlive that, so every third of a lease the slot is
// renewed (QuotaGate.renew: moved to a fresh reservation taken with no limits, the old one given
// back as a request that did not count). The user's request count, rpm and in-flight count stay
// as the upgrade left them; a dead process's slot still lapses within one lease.
import type { Logger } from 'pino';
import type { QuotaGate, Ticket } from '../quota/gate.js';
import type { User } from '../store/types.js';

export interface SlotOptions {
  gate: QuotaGate;
  log: Logger;
}

export class SessionSlot {
  private timer: NodeJS.Timeout | undefined;
  private renewals = 0;
  private closed = false;

  private constructor(
    private readonly o: SlotOptions,
    private readonly ticket: Ticket,
    private readonly sessionId: string,
  ) {}

  /** Admits the session (its rpm and concurrency), or throws the 429 it gets instead. */
  static async take(o: SlotOptions, user: User, sessionId: string, model: string | undefined): Promise<SessionSlot> {
    // `metered` with a model: a dollar-limited user cannot open a session on a model with no price.
    const ticket = await o.gate.admit(user, sessionId, { model, promptTokens: 0, maxOutputTokens: 0, metered: model !== undefined });
    const slot = new SessionSlot(o, ticket, sessionId);
    slot.timer = setInterval(() => void o.gate.renew(ticket, `${sessionId}.lease${++slot.renewals}`), Math.max(250, Math.floor(o.gate.leaseMs / 3)));
    slot.timer.unref();
    return slot;
  }

  /** The session closed: its slot is given back; it stays counted as one request unless
   * `refund` (the upstream never took it: its rpm unit goes back too). */
  async close(refund = false): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.o.gate.settle(this.ticket, refund ? undefined : { usage: { input: 0, cachedInput: 0, output: 0 }, estimated: false });
  }
}
