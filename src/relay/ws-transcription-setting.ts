// Which input transcription a realtime session's audio must be reserved for (docs/websockets.md
// "Input audio transcription"). The upstream applies the client's updates in order and answers
// each one: its own account of the session (`session.updated`, `transcription_session.updated`)
// or an `error`. An update that turns transcription on, or makes it dearer, is reserved for at
// once, before the upstream has audio under it; one that turns it off, makes it cheaper or
// shortens its prompt counts only once the upstream's account shows it, as the upstream may refuse
// it and go on transcribing as before. So the setting in force for the reservations is the dearest
// of the upstream's last account and of every update it may not have answered yet. An error is
// never taken for an answer: the client chooses the `event_id` it names, and may have given it to
// another event too; so an update the upstream refused counts until the next account. Each
// account answers the oldest update: as answers come in order, and some were errors, the updates
// still counted are never fewer than those the upstream has not answered.

export interface Setting {
  on: boolean;
  model: string | undefined;
  /** The transcription's prompt, as the seconds of audio whose worst case covers its tokens. */
  promptSeconds: number;
}

export const OFF: Setting = { on: false, model: undefined, promptSeconds: 0 };

/** The worst case of a second of transcription by a model: tokens and micro-dollars. */
export type Rate = (model: string | undefined) => { tokens: number; micros: number };

/** The user's limits a reservation must cover: token windows, money windows. */
export interface Limited {
  tokens: boolean;
  micros: boolean;
}


export class TranscriptionSettings {
  private confirmed: Setting = OFF;
  /** What each update sent upstream and not yet answered sets (undefined: no transcription), oldest first. */
  private readonly unanswered: Array<Setting | undefined> = [];

  constructor(
    private readonly rate: Rate,
    private readonly limited: Limited,
  ) {}

  /** The setting reserved for: on if any candidate is on, at the dearest model, with the longest prompt. */
  get inForce(): Setting {
    const on = this.candidates().filter((s) => s.on);
    if (on.length === 0) return OFF;
    const model = this.dearest(on.map((s) => s.model));
    return { on: true, model, promptSeconds: Math.max(...on.map((s) => s.promptSeconds)) };
  }

  /** Whether a setting with this model could be reserved for alongside those that may be in force:
   * one model of them all must be dearest in what the user's limits count (tokens, money), or no
   * block covers them all. */
  comparable(setting: Setting): boolean {
    if (!setting.on || (!this.limited.tokens && !this.limited.micros)) return true;
    const models = [...this.candidates(), setting].filter((s) => s.on).map((s) => s.model);
    return this.covering(models) !== null;
  }

  /** The client sent an update upstream (`setting` undefined: it names no transcription). */
  sent(setting: Setting | undefined): void {
    this.unanswered.push(setting);
  }

  /** The upstream's account of the session: `answers`, it answers the oldest update not yet
   * answered (an update event), else it is the session's first (a created event). The account's
   * own transcription, when it names one, is what is in force; when it names none the gateway keeps
   * what it knew (the update answered may not be the one it thinks: an error it could not match). */
  account(setting: Setting | undefined, answers: boolean): void {
    if (answers) this.unanswered.shift();
    if (setting) this.confirmed = setting;
  }

  private candidates(): Setting[] {
    return [this.confirmed, ...this.unanswered.flatMap((u) => (u ? [u] : []))];
  }

  private covering(models: Array<string | undefined>): string | undefined | null {
    const rates = models.map((m) => ({ model: m, ...this.rate(m) }));
    const { tokens, micros } = this.limited;
    const cover = rates.find((a) => rates.every((b) => (!tokens || a.tokens >= b.tokens) && (!micros || a.micros >= b.micros)));
    return cover ? cover.model : null;
  }

  /** The model that covers the others in what the limits count; else (no limits, or an account the
   * gateway did not ask for) the dearest in money, then tokens. */
  private dearest(models: Array<string | undefined>): string | undefined {
    const cover = this.limited.tokens || this.limited.micros ? this.covering(models) : null;
    if (cover !== null) return cover;
    const rates = models.map((m) => ({ model: m, ...this.rate(m) }));
    rates.sort((a, b) => b.micros - a.micros || b.tokens - a.tokens);
    return rates[0]?.model;
  }
}
