// Input audio transcription in a realtime session (docs/websockets.md): OpenAI transcribes every
// committed input buffer with a model of its own and bills it apart from the session's responses.
// The audio the client appends is reserved as it arrives, in blocks of BLOCK_SECONDS, at the
// transcription model's worst case, so that a limit is never spent before it is reserved. Each
// `conversation.item.input_audio_transcription.completed` reports its usage; a block settles, in
// order, once all the audio it covers has been reported (completed, failed or cleared), charged
// the usage reported for it, never more than it reserved. At the session's end the audio never
// reported is charged its worst case, marked estimated, and what no audio used is released.
// The model reserved for is the dearest that may be in force (ws-transcription-setting.ts); the
// input audio of a created item is reserved on its own; blocks held past a lease are renewed.
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import type { Charge, QuotaGate, Ticket } from '../quota/gate.js';
import { worstCostMicros } from '../quota/prices.js';
import { chargeFields } from './ws-meter.js';
import { type TokenUsage, normalizeUsage } from '../quota/usage.js';
import type { User } from '../store/types.js';
import { OFF, type Setting, TranscriptionSettings } from './ws-transcription-setting.js';

/** Audio reserved at once: a refusal falls back to just what the append needs. */
export const BLOCK_SECONDS = 10;
// The worst case of a second of audio: 20 audio tokens in (twice what OpenAI bills) and 20 text
// tokens out (speech runs at a few tokens a second); seconds for a model priced per minute.
export const TRANSCRIPTION_TOKENS_PER_SECOND = 20;
// Float sums of seconds: what is below this is nothing.
const EPSILON = 1e-6;

interface Block {
  /** Its request id as first admitted (renewals are named after it). */
  id: string;
  ticket: Ticket;
  model?: string;
  /** Seconds of audio it reserved, and of those the seconds appended. */
  capacity: number;
  filled: number;
  /** No more audio goes into it (its model changed, or it is full). */
  sealed: boolean;
}

/** A transcription setting as a session event writes it: its prompt is text. */
export interface SettingEvent {
  on: boolean;
  model: string | undefined;
  prompt: unknown;
}

export interface TranscriptionOptions {
  gate: QuotaGate;
  user: User;
  sessionId: string;
  log: Logger;
  onCharge?: (model: string | undefined, charge: Charge) => void;
}

export class TranscriptionMeter {
  private readonly blocks: Block[] = [];
  /** Audio inside items the client created (`conversation.item.create`), each reserved on its own,
   * by the item's id or, unnamed, in the order created. */
  private readonly itemBlocks = new Map<string, Block>();
  private readonly unnamedItems: Block[] = [];
  /** Which transcription is in force for the reservations (ws-transcription-setting.ts). */
  private readonly settings: TranscriptionSettings;
  private readonly renewTimer: NodeJS.Timeout;
  private renewals = 0;
  private count = 0;
  private closed = false;
  /** An append is waiting for its reservation. */
  private appending = false;
  private on = false;
  /** The transcription prompt, as the seconds of audio whose worst case covers its tokens. */
  private promptSeconds = 0;
  private model: string | undefined;
  /** The last model transcription was turned on with: a usage no block reserved is priced by it. */
  private lastModel: string | undefined;
  /** Seconds appended since the input buffer was last committed or cleared (while transcription is on). */
  private buffered = 0;
  /** Seconds appended since then, transcription on or off. */
  private inBuffer = 0;
  /** Committed items waiting for their transcription, with their seconds. */
  private readonly items = new Map<string, number>();
  /** Seconds reported (or dropped) not yet set against a block. */
  private resolved = 0;
  /** Usage reported not yet charged to a block. */
  private owed: TokenUsage = { input: 0, cachedInput: 0, output: 0 };
  /** Part of what is owed is a worst case, not a report: the next charge is marked estimated. */
  private estimated = false;
  private readonly settling = new Set<Promise<unknown>>();
  /** The user's token and money windows only: rpm and concurrency are the session's. */
  private readonly blockUser: User;
  readonly limited: boolean;
  readonly dollarLimited: boolean;

  constructor(private readonly o: TranscriptionOptions) {
    const l = o.user.limits ?? {};
    const limits = { tpm: l.tpm, tokensPerDay: l.tokensPerDay, tokensPerMonth: l.tokensPerMonth, usdPerDay: l.usdPerDay, usdPerMonth: l.usdPerMonth };
    for (const key of Object.keys(limits) as Array<keyof typeof limits>) if (limits[key] === undefined) delete limits[key];
    this.blockUser = { ...o.user, limits };
    this.limited = Object.keys(limits).length > 0;
    this.dollarLimited = limits.usdPerDay !== undefined || limits.usdPerMonth !== undefined;
    const tokenLimited = limits.tpm !== undefined || limits.tokensPerDay !== undefined || limits.tokensPerMonth !== undefined;
    this.settings = new TranscriptionSettings((model) => this.rate(model), { tokens: tokenLimited, micros: this.dollarLimited });
    // A block may be held longer than a lease (audio left in the buffer, a transcription slow to
    // come): each is moved to a fresh reservation every third of one, so none lapses in use.
    this.renewTimer = setInterval(() => this.renew(), Math.max(250, Math.floor(o.gate.leaseMs / 3)));
    this.renewTimer.unref();
  }

  private renew(): void {
    for (const block of [...this.blocks, ...this.itemBlocks.values(), ...this.unnamedItems]) void this.o.gate.renew(block.ticket, `${block.id}.renew${++this.renewals}`);
  }

  /** The worst case of a second transcribed by this model, in tokens and micro-dollars. */
  private rate(model: string | undefined): { tokens: number; micros: number } {
    const worst = worstUsage(this.priceBySeconds(model), 1);
    const price = this.o.gate.priceOf(model);
    return { tokens: worst.input + worst.output, micros: price ? worstCostMicros(price, worst, { seconds: worst.seconds }) : 0 };
  }

  /** Why this transcription model cannot run for the user (a dollar limit and no price), if it cannot. */
  refusal(model: string | undefined, param: string): GatewayError | undefined {
    if (!this.dollarLimited) return undefined;
    if (model === undefined) {
      return new GatewayError('model_not_allowed', { param, message: 'Name the transcription model: under a dollar limit its audio is priced by it.' });
    }
    if (this.o.gate.priceOf(model)) return undefined;
    return new GatewayError('model_not_allowed', {
      param,
      message: `The model "${model}" has no price in this gateway's price table, so it cannot transcribe under a dollar limit. Add it under prices: in the settings.`,
    });
  }

  /** Whether this setting turns transcription on or off, changes its model, or lengthens its
   * prompt (billed with the buffer's transcription, reserved with its first audio). */
  changes({ on, model, prompt }: SettingEvent): boolean {
    return on !== this.on || (on && (model !== this.model || promptSecondsOf(prompt) > this.promptSeconds + EPSILON));
  }

  /** Whether this setting can be reserved for with those that may be in force until the upstream
   * answers: one of their models must be the dearest in all the user's limits count (tokens, money). */
  comparable({ on, model }: SettingEvent): boolean {
    return this.settings.comparable({ on, model, promptSeconds: 0 });
  }

  /** The input buffer holds audio: OpenAI transcribes a buffer with the model in force when it is
   * committed, so a change now would bill audio reserved at one model (or none) at another. */
  get holdsAudio(): boolean {
    return this.inBuffer > EPSILON;
  }

  /** The client sent an update upstream; `setting` is its transcription, undefined when it names none. */
  requested(setting: SettingEvent | undefined): void {
    this.settings.sent(setting && settingOf(setting));
    this.apply(this.settings.inForce);
  }

  /** The upstream's account of the session (`answers`: of an update, else its first). */
  accounted(setting: SettingEvent | undefined, answers: boolean): void {
    this.settings.account(setting && settingOf(setting), answers);
    this.apply(this.settings.inForce);
  }

  /** The setting the reservations are made for. */
  private apply({ on, model, promptSeconds }: Setting): void {
    // Each transcription bills its prompt's text tokens again; a token is at least a byte.
    this.promptSeconds = on ? promptSeconds : 0;
    if (on === this.on && model === this.model) return;
    // Reserved at another model's price: no more audio goes into the blocks open so far.
    for (const block of this.blocks) block.sealed = true;
    if (this.on && !on) {
      // The upstream took an update turning it off: a buffer is transcribed by the setting in
      // force at its commit, so what the buffer holds now will not be (what was reserved goes back).
      this.resolved += this.buffered;
      this.buffered = 0;
      this.track(this.settleDone());
    }
    this.on = on;
    this.model = on ? model : undefined;
    if (on && model !== undefined) this.lastModel = model;
  }

  /** Reserves what transcribing these seconds may cost; a refusal is thrown (the append is not relayed). */
  async appended(audio: number): Promise<void> {
    if (audio <= 0 || this.closed) return;
    if (!this.on) {
      this.inBuffer += audio;
      return;
    }
    // The first audio of a buffer starts a transcription: its prompt is reserved with it, and
    // reported (or charged its worst case) with that buffer's audio.
    const seconds = audio + (this.buffered === 0 ? this.promptSeconds : 0);
    if (!(await this.fill(seconds))) return;
    this.buffered += seconds;
    this.inBuffer += audio;
  }

  /** Puts these seconds into the open block, reserving a new one for what does not fit; false
   * when the session closed meanwhile. */
  private async fill(seconds: number): Promise<boolean> {
    const last = this.blocks.at(-1);
    const room = last && !last.sealed ? last.capacity - last.filled : 0;
    const need = seconds - room;
    let block: Block | undefined;
    if (need > EPSILON) {
      this.appending = true;
      try {
        block = await this.reserve(Math.max(need, BLOCK_SECONDS));
      } catch (err) {
        if (!(err instanceof GatewayError) || need >= BLOCK_SECONDS) throw err;
        // Near the limit: just what this append needs, so that all that fits is let through.
        block = await this.reserve(need);
      } finally {
        this.appending = false;
      }
      if (this.closed) {
        this.track(this.o.gate.settle(block.ticket, undefined));
        return false;
      }
    }
    // Filled after the wait: the blocks before may have settled meanwhile, never the open one.
    const open = last && !last.sealed && this.blocks.includes(last) ? last : undefined;
    const into = Math.min(seconds, open ? open.capacity - open.filled : 0);
    if (open) open.filled += into;
    if (block) {
      block.filled = seconds - into;
      this.blocks.push(block);
    }
    for (const b of this.blocks.slice(0, -1)) b.sealed = true;
    return true;
  }

  /** Reserves, as its own block, what transcribing the input audio of an item the client creates
   * may cost, when transcription is on; a refusal is thrown (the item is not relayed). OpenAI
   * transcribes the input buffer, not such audio; an upstream that reports a transcription for the
   * item is charged within this reservation, and at the session's end one never reported is released. */
  async itemAudio(itemId: string | undefined, audio: number): Promise<void> {
    if (audio <= 0 || this.closed || !this.on) return;
    const block = await this.reserve(audio + this.promptSeconds);
    block.filled = block.capacity;
    block.sealed = true;
    if (this.closed) {
      this.track(this.o.gate.settle(block.ticket, undefined));
      return;
    }
    const earlier = itemId === undefined ? undefined : this.itemBlocks.get(itemId);
    // An id given twice: the earlier one's reservation stays, unnamed, until the session ends.
    if (earlier) this.unnamedItems.push(earlier);
    if (itemId === undefined) this.unnamedItems.push(block);
    else this.itemBlocks.set(itemId, block);
  }

  private async reserve(seconds: number): Promise<Block> {
    const worst = worstUsage(this.priceBySeconds(this.model), seconds);
    const estimate = {
      model: this.model,
      promptTokens: worst.input,
      maxOutputTokens: worst.output,
      metered: this.model !== undefined,
      units: worst.seconds ? { seconds: worst.seconds } : undefined,
    };
    const id = `${this.o.sessionId}.t${++this.count}`;
    const ticket = await this.o.gate.admit(this.blockUser, id, estimate);
    return { id, ticket, model: this.model, capacity: seconds, filled: 0, sealed: false };
  }

  private priceBySeconds(model: string | undefined): boolean {
    const price = this.o.gate.priceOf(model);
    return price !== undefined && price.perMinute > 0;
  }

  /** The upstream committed the input buffer as this item: its audio waits for a transcription. */
  committed(itemId: string | undefined): void {
    this.inBuffer = 0;
    if (this.buffered <= 0) return;
    if (itemId !== undefined) this.items.set(itemId, (this.items.get(itemId) ?? 0) + this.buffered);
    else this.resolved += this.buffered;
    this.buffered = 0;
  }

  /** The upstream cleared the input buffer: nothing transcribes it. */
  async cleared(): Promise<void> {
    this.inBuffer = 0;
    this.resolved += this.buffered;
    this.buffered = 0;
    await this.settleDone();
  }

  /** A transcription ended: completed with its usage, or failed (nothing billed). A completed one
   * whose usage cannot be read is charged the worst case of its audio, marked estimated. A usage
   * reported for an item whose audio no append reserved (committed while the gateway counted none:
   * an update the upstream did not take, audio it transcribes unasked) is charged as reported, past
   * the limits, as it was spent already; true is returned then, for a user with limits. */
  async reported(itemId: string | undefined, usage: unknown, failed: boolean): Promise<boolean> {
    const seconds = itemId === undefined ? undefined : this.items.get(itemId);
    const used = failed ? undefined : normalizeUsage(usage);
    const item = seconds === undefined ? this.createdItem(itemId, used) : undefined;
    if (item) {
      const worst = worstUsage(this.priceBySeconds(item.model), item.capacity);
      // What it reserved, at most; no usage it can read: its worst case, estimated.
      if (failed) {
        const released = this.o.gate.settle(item.ticket, undefined);
        this.track(released);
        await released;
      } else await this.settle(item, used ? within(used, worst) : worst, !used, !used);
      return false;
    }
    if (itemId !== undefined && seconds === undefined && used && used.input + used.output + (used.seconds ?? 0) > 0) {
      await this.chargeUnreserved(used);
      return this.limited;
    }
    if (itemId !== undefined && seconds !== undefined) {
      this.resolved += seconds;
      this.items.delete(itemId);
    }
    if (!failed) {
      if (used) this.owed = add(this.owed, used);
      else if (seconds !== undefined) {
        this.owed = add(this.owed, worstUsage(this.priceBySeconds(this.model), seconds));
        this.estimated = true;
      }
    }
    await this.settleDone();
    return false;
  }

  /** Charges a usage no block reserved, with no limits (the session is then closed by the caller). */
  private async chargeUnreserved(used: TokenUsage): Promise<void> {
    const model = this.lastModel;
    const estimate = {
      model,
      promptTokens: used.input,
      maxOutputTokens: used.output,
      metered: model !== undefined,
      units: used.seconds ? { seconds: used.seconds } : undefined,
    };
    const id = `${this.o.sessionId}.t${++this.count}`;
    const ticket = await this.o.gate.admit({ ...this.blockUser, limits: {} }, id, estimate);
    await this.settle({ id, ticket, model, capacity: 0, filled: 0, sealed: true }, used, false);
  }

  /** The reservation of an item's audio a report is for: by its id, else the oldest unnamed one
   * whose worst case holds the usage reported (a usage past it may be audio no append reserved). */
  private createdItem(itemId: string | undefined, used: TokenUsage | undefined): Block | undefined {
    const named = itemId === undefined ? undefined : this.itemBlocks.get(itemId);
    if (named && itemId !== undefined) {
      this.itemBlocks.delete(itemId);
      return named;
    }
    if (!used) return undefined;
    const at = this.unnamedItems.findIndex((b) => fits(used, worstUsage(this.priceBySeconds(b.model), b.capacity)));
    return at === -1 ? undefined : this.unnamedItems.splice(at, 1)[0];
  }


  /** Settles, oldest first, the blocks whose audio was all reported (an empty one that takes no
   * more audio is released). The open block settles too, once its audio was all reported: the
   * next append reserves a new one, so that each utterance's usage shows as it is reported. */
  private async settleDone(): Promise<void> {
    const done: Array<Promise<unknown>> = [];
    for (;;) {
      const first = this.blocks[0];
      if (!first) break;
      if (first.filled <= EPSILON) {
        if (!first.sealed) break;
        this.blocks.shift();
        done.push(this.o.gate.settle(first.ticket, undefined));
        continue;
      }
      // An append waiting for its reservation may be about to fill the open block.
      if (this.appending && first === this.blocks.at(-1) && !first.sealed) break;
      if (this.resolved + EPSILON < first.filled) break;
      this.blocks.shift();
      this.resolved -= first.filled;
      done.push(this.settle(first, this.take(first, first.filled), this.estimatedTaken()));
    }
    for (const p of done) this.track(p);
    await Promise.all(done);
  }

  /** What of the usage owed a block covering these seconds may be charged: at most its worst case. */
  private take(block: Block, seconds: number): TokenUsage {
    // Never past what the block reserved.
    const usage = within(this.owed, worstUsage(this.priceBySeconds(block.model), Math.min(seconds, block.capacity)));
    this.owed = subtract(this.owed, usage);
    return usage;
  }

  /** Whether the usage just taken held a worst case (then nothing owed is left, or it is one too). */
  private estimatedTaken(): boolean {
    const was = this.estimated;
    if (this.owed.input + this.owed.output + (this.owed.seconds ?? 0) === 0) this.estimated = false;
    return was;
  }

  private async settle(block: Block, usage: TokenUsage, estimated: boolean, atWorst = false): Promise<void> {
    const settled = this.o.gate.settle(block.ticket, { usage, estimated: estimated || atWorst, atWorst });
    this.track(settled);
    const charge = await settled;
    if (charge) this.o.onCharge?.(block.model, charge);
    this.o.log.info(
      {
        requestId: this.o.sessionId,
        transcriptionRequestId: block.ticket.reservation.requestId,
        userId: this.o.user.id,
        model: block.model,
        ...chargeFields(charge),
      },
      'websocket transcription settled',
    );
  }

  private track(p: Promise<unknown>): void {
    this.settling.add(p);
    void p.finally(() => this.settling.delete(p));
  }

  /** The session ended: audio never reported (buffered, or committed and not transcribed yet) is
   * charged its worst case, estimated; a block with no audio is released. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.renewTimer);
    for (const block of [...this.itemBlocks.values(), ...this.unnamedItems]) this.track(this.o.gate.settle(block.ticket, undefined));
    this.itemBlocks.clear();
    this.unnamedItems.length = 0;
    let unreported = this.buffered + [...this.items.values()].reduce((a, b) => a + b, 0);
    this.buffered = 0;
    this.items.clear();
    for (const block of this.blocks.splice(0)) {
      if (block.filled <= EPSILON) {
        this.track(this.o.gate.settle(block.ticket, undefined));
        continue;
      }
      // The block's audio: first what was reported (its usage owed), then what never was.
      const reported = Math.min(block.filled, this.resolved);
      this.resolved -= reported;
      const cut = Math.min(block.filled - reported, unreported, block.capacity - Math.min(reported, block.capacity));
      unreported -= cut;
      const usage = this.take(block, reported);
      const estimated = this.estimatedTaken();
      if (cut > EPSILON) this.track(this.settle(block, add(usage, worstUsage(this.priceBySeconds(block.model), cut)), true, true));
      else this.track(this.settle(block, usage, estimated));
    }
    await Promise.allSettled([...this.settling]);
  }
}

function settingOf({ on, model, prompt }: SettingEvent): Setting {
  return on ? { on, model, promptSeconds: promptSecondsOf(prompt) } : OFF;
}

function fits(used: TokenUsage, cap: TokenUsage): boolean {
  return used.input <= cap.input && used.output <= cap.output && (used.seconds ?? 0) <= (cap.seconds ?? 0);
}

/** A usage, at most this worst case. */
function within(o: TokenUsage, cap: TokenUsage): TokenUsage {
  const input = Math.min(o.input, cap.input);
  const usage: TokenUsage = { input, cachedInput: Math.min(o.cachedInput, input), output: Math.min(o.output, cap.output) };
  const audio = Math.min(o.audioInput ?? 0, input);
  if (audio > 0) usage.audioInput = audio;
  const cachedAudio = Math.min(o.cachedAudioInput ?? 0, usage.cachedInput, audio);
  if (cachedAudio > 0) usage.cachedAudioInput = cachedAudio;
  const secs = Math.min(o.seconds ?? 0, cap.seconds ?? 0);
  if (secs > 0) usage.seconds = secs;
  return usage;
}

/** A transcription prompt as the seconds of audio whose worst case covers its tokens (a token is at least a byte). */
function promptSecondsOf(prompt: unknown): number {
  return typeof prompt === 'string' ? Buffer.byteLength(prompt) / TRANSCRIPTION_TOKENS_PER_SECOND : 0;
}

/** The most transcribing these seconds may bill. */
export function worstUsage(perMinute: boolean, seconds: number): TokenUsage {
  if (perMinute) return { input: 0, cachedInput: 0, output: 0, seconds: Math.ceil(seconds - EPSILON) };
  const tokens = Math.ceil(seconds * TRANSCRIPTION_TOKENS_PER_SECOND - EPSILON);
  return { input: tokens, cachedInput: 0, output: tokens, audioInput: tokens };
}

const KEYS = ['input', 'cachedInput', 'output', 'audioInput', 'cachedAudioInput', 'audioOutput', 'seconds'] as const;

function add(a: TokenUsage, b: TokenUsage): TokenUsage {
  const sum: TokenUsage = { input: 0, cachedInput: 0, output: 0 };
  for (const key of KEYS) {
    const v = (a[key] ?? 0) + (b[key] ?? 0);
    if (v > 0 || key === 'input' || key === 'cachedInput' || key === 'output') sum[key] = v;
  }
  return sum;
}

function subtract(a: TokenUsage, b: TokenUsage): TokenUsage {
  const left: TokenUsage = { input: 0, cachedInput: 0, output: 0 };
  for (const key of KEYS) {
    const v = Math.max(0, (a[key] ?? 0) - (b[key] ?? 0));
    if (v > 0 || key === 'input' || key === 'cachedInput' || key === 'output') left[key] = v;
  }
  return left;
}
