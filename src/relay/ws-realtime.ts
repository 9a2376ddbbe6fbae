// The realtime session's dialect (`GET /v1/realtime`, docs/websockets.md): what of its events the
// gateway reads to meter it. From the client: `session.update` (model, instructions, output cap,
// audio formats), `conversation.item.create` (counted into the conversation), the size of each
// `input_audio_buffer.append` (never parsed: its audio is counted from its length) and
// `response.create` (admitted or refused). From the upstream: `session.created`/`updated` (the
// session as it really is), `response.created`, output deltas (what streamed) and `response.done`
// (settled with its usage). A response the upstream starts by itself (server VAD) is admitted
// when it is announced; refused, it is cancelled and charged what it used.
import { randomUUID } from 'node:crypto';
import { GatewayError } from '../errors.js';
import { modelAllowed, modelRefused } from '../models.js';
import { matchOperation } from '../operations/match.js';
import { estimateRequest } from '../quota/estimate.js';
import type { User } from '../store/types.js';
import type { Pending, SessionMeter } from './ws-meter.js';
import { realtimeError } from './ws-meter.js';
import { eventWithModel } from './model-sent.js';
import { countedTools, inlineInput, inlineItem } from './ws-seen.js';
import type { Channel, Dialect, Json, Verdict } from './ws-session.js';
import type { TranscriptionMeter } from './ws-transcription.js';
import { isObject } from '../json-object.js';

/** OpenAI's `max_response_output_tokens` is at most 4096 ("inf" means that cap). */
export const REALTIME_OUTPUT_CAP = 4096;
// Audio is counted from its bytes: PCM16 at 24 kHz is 48,000 bytes a second, G.711 8,000.
// OpenAI bills about 10 tokens a second of input audio and 20 of output; the worst case of what
// was said takes 20 a second, what streamed before a cut 20 a second too.
export const AUDIO_TOKENS_PER_SECOND = 20;
// A conversation longer than a model's context is truncated by OpenAI; the worst case counts at
// most this much of it (more than any realtime model's context window).
export const REALTIME_CONTEXT = 128_000;
// An append's JSON around its base64 audio: `{"type":"input_audio_buffer.append","audio":""}` and an event_id.
const APPEND_FRAMING = 48;
const RESPONSES = matchOperation('POST', '/v1/responses').cost;


const PCM = new Set(['pcm16', 'audio/pcm']);
const G711 = new Set(['g711_ulaw', 'g711_alaw', 'audio/pcmu', 'audio/pcma']);

/** Bytes a second of an audio format (beta string, GA object with `type` and `rate`). Fewer bytes a
 * second make more seconds of the same append, so what the gateway cannot size for sure is sized as
 * the slowest format: an unknown one as G.711, PCM at a rate below 24 kHz at that rate. */
function bytesPerSecond(format: unknown): number {
  const name = isObject(format) ? format.type : format;
  if (typeof name !== 'string' || G711.has(name) || !PCM.has(name)) return 8000;
  const rate = isObject(format) ? format.rate : undefined;
  if (rate === undefined) return 48000;
  return typeof rate === 'number' && rate >= 4000 ? Math.min(48000, rate * 2) : 8000;
}

/** The slowest of the formats a session event names (GA `audio.<side>.format`, beta `<side>_audio_format`):
 * with both given, either may be the one the upstream reads. */
function slowestNamed(session: Json, side: 'input' | 'output'): number | undefined {
  const audio = isObject(session.audio) ? session.audio : {};
  const ga = isObject(audio[side]) ? (audio[side] as Json).format : undefined;
  const beta = session[`${side}_audio_format`];
  const rates = [ga, beta].filter((f) => f !== undefined).map(bytesPerSecond);
  return rates.length > 0 ? Math.min(...rates) : undefined;
}

/** Tokens of audio bytes, rounded up. */
const audioTokens = (bytes: number, perSecond: number): number => Math.ceil((Math.max(0, bytes) / perSecond) * AUDIO_TOKENS_PER_SECOND);

export interface RealtimeOptions {
  user: User;
  meter: SessionMeter;
  /** The session's input audio transcription, reserved as audio is appended (ws-transcription.ts). */
  transcription: TranscriptionMeter;
  channel: Channel;
  model?: string;
  /** The model the upstream runs for `model` when that is an alias (src/pool/aliases.ts): priced in its place. */
  upstreamModel?: string;
  /** The model the session's upstream runs for a name an event gives (an alias's target, else the name). */
  modelFor: (model: string) => string;
  defaultMaxOutput: number;
}

export class RealtimeDialect implements Dialect {
  readonly clientTypes = new Set(['session.update', 'transcription_session.update', 'response.create', 'conversation.item.create']);
  readonly upstreamTypes = new Set([
    'session.created',
    'session.updated',
    'transcription_session.created',
    'transcription_session.updated',
    'response.created',
    'response.done',
    'error',
    'response.output_text.delta',
    'response.text.delta',
    'input_audio_buffer.committed',
    'input_audio_buffer.cleared',
    'conversation.item.input_audio_transcription.completed',
    'conversation.item.input_audio_transcription.failed',
  ]);
  private model: string | undefined;
  private instructions: unknown;
  private tools: unknown;
  /** The session's stored prompt (`session.prompt`), read by the upstream, not the gateway. */
  private prompt: unknown;
  /** An item the gateway could not see whole (a file, a reference) is in the conversation. */
  private unseenItem = false;
  private maxOutput: unknown;
  private inputRate = 48000;
  private outputRate = 48000;
  /** The conversation so far, in tokens: items added, audio appended, outputs of past responses. */
  private conversation = 0;

  constructor(private readonly o: RealtimeOptions) {
    this.model = o.model;
  }

  get audioBytesPerToken(): number {
    return this.outputRate / AUDIO_TOKENS_PER_SECOND;
  }

  refusal(error: GatewayError, event: Json | undefined): Buffer {
    return realtimeError(error, event?.event_id, `event_gw_${randomUUID().replaceAll('-', '')}`);
  }

  async client(type: string | undefined, event: Json | undefined, size: number, message: Buffer): Promise<Verdict> {
    if (type === 'input_audio_buffer.append') {
      // Base64: four characters for three bytes.
      const bytes = ((size - APPEND_FRAMING) * 3) / 4;
      try {
        // Transcribed once committed: reserved before the upstream has it.
        await this.o.transcription.appended(Math.max(0, bytes) / this.inputRate);
      } catch (err) {
        if (err instanceof GatewayError) return { forward: false, reply: this.refusal(err, undefined) };
        throw err;
      }
      this.conversation += audioTokens(bytes, this.inputRate);
      return { forward: true };
    }
    if (!event) return { forward: true };
    if (type === 'session.update' || type === 'transcription_session.update') return this.sessionUpdate(event, message);
    if (type === 'conversation.item.create') {
      const item = isObject(event.item) ? event.item : undefined;
      try {
        // Its input audio is reserved for a transcription as appended audio is, before the upstream has it.
        await this.o.transcription.itemAudio(typeof item?.id === 'string' ? item.id : undefined, audioBytes(item) / this.inputRate);
      } catch (err) {
        if (err instanceof GatewayError) return { forward: false, reply: this.refusal(err, event) };
        throw err;
      }
      this.conversation += itemTokens(event.item, this.inputRate);
      if (!inlineItem(event.item)) this.unseenItem = true;
      return { forward: true };
    }
    if (type === 'response.create') return this.create(event);
    return { forward: true };
  }

  /** `session.update`, or `transcription_session.update` (the transcription-only dialect): the
   * transcription it sets is judged the same way. */
  private sessionUpdate(event: Json, message: Buffer): Verdict {
    const session = isObject(event.session) ? event.session : {};
    let payload: Buffer | undefined;
    if (session.model !== undefined) {
      if (typeof session.model !== 'string') {
        return { forward: false, reply: this.refusal(new GatewayError('model_not_allowed', { param: 'session.model' }), event) };
      }
      if (!modelAllowed(this.o.user, session.model)) {
        return { forward: false, reply: this.refusal(modelRefused(this.o.user, session.model, 'session.model'), event) };
      }
      // Not the model priced: OpenAI keeps a session on the model it opened with and refuses an
      // update that names another, so taking the client's word would price the session's responses
      // at a model it never ran. The upstream's own account (session.created) is read below.
      // An alias is sent as the upstream's name, as the upgrade's `?model=` is.
      const sent = this.o.modelFor(session.model);
      if (sent !== session.model) payload = eventWithModel(message, ['session', 'model'], sent);
    }
    // Input transcription runs a model of its own on every committed buffer: it must be on the
    // list and, under a dollar limit, priced (its audio is reserved at that price).
    const transcription = transcriptionOf(session);
    if (transcription) {
      const { param, on, model: named } = transcription;
      if (named !== undefined && typeof named !== 'string') return { forward: false, reply: this.refusal(new GatewayError('model_not_allowed', { param }), event) };
      if (named !== undefined && !modelAllowed(this.o.user, named)) return { forward: false, reply: this.refusal(modelRefused(this.o.user, named, param), event) };
      // An alias is checked by its name above, priced and sent as the upstream's below.
      const model = named === undefined ? undefined : this.o.modelFor(named);
      if (model !== named) payload = transcriptionSent(payload ?? message, event, named as string, model as string);
      // Unnamed, it runs the upstream's default, which a model list may not hold.
      if (on && model === undefined && (this.o.user.models?.length ?? 0) > 0) {
        return { forward: false, reply: this.refusal(new GatewayError('model_not_allowed', { param, message: 'Name the transcription model: this key has a model list.' }), event) };
      }
      const unpriced = on ? this.o.transcription.refusal(model, param) : undefined;
      if (unpriced) return { forward: false, reply: this.refusal(unpriced, event) };
      // The buffer is transcribed by the model in force at its commit: audio appended under one
      // model (or with transcription off, reserved by none) must not be transcribed by another.
      const setting = { on, model, prompt: transcription.prompt };
      if (this.o.transcription.limited && this.o.transcription.changes(setting) && this.o.transcription.holdsAudio) {
        const message = 'Commit or clear the input audio buffer before turning transcription on or off or changing its model or prompt: its audio was reserved under the setting it was appended with.';
        return { forward: false, reply: this.refusal(new GatewayError('invalid_request', { param, message }), event) };
      }
      // Until the upstream answers, the audio is reserved at the dearest setting that may be in force.
      if (this.o.transcription.limited && !this.o.transcription.comparable(setting)) {
        const message = 'Turn transcription off, and wait for the upstream\'s session.updated, before switching to this model: until the upstream answers, either model may be in force, and neither is the dearer in both the tokens and the money this key\'s limits count.';
        return { forward: false, reply: this.refusal(new GatewayError('invalid_request', { param, message }), event) };
      }
      this.o.transcription.requested(setting);
    } else this.o.transcription.requested(undefined);
    this.learn(session);
    return { forward: true, payload };
  }

  /** What the session says of itself (the client's update, then the upstream's own account). */
  private learn(session: Json): void {
    if (session.instructions !== undefined) this.instructions = session.instructions;
    if (session.tools !== undefined) this.tools = session.tools;
    if (session.prompt !== undefined) this.prompt = session.prompt;
    const max = session.max_output_tokens ?? session.max_response_output_tokens;
    if (max !== undefined) this.maxOutput = max;
    // The input format only ever slows: an update back to a faster one may be refused upstream
    // (one bad field refuses it all) or answered after a later one, and the gateway cannot tell,
    // so the audio the client appends is sized at the slowest format the session ever named.
    const input = slowestNamed(session, 'input');
    if (input !== undefined) this.inputRate = Math.min(this.inputRate, input);
    const output = slowestNamed(session, 'output');
    if (output !== undefined) this.outputRate = output;
  }

  private outputCap(value: unknown): number {
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return Math.min(value, REALTIME_OUTPUT_CAP);
    return REALTIME_OUTPUT_CAP;
  }

  /** The model prices are read from: the upstream's for the upgrade's alias, until a session.update names another. */
  private priced(): string | undefined {
    return this.model === this.o.model && this.o.upstreamModel !== undefined ? this.o.upstreamModel : this.model;
  }

  private worstCase(response: Json): { prompt: number; maxOutput: number; capped: boolean } {
    const instructions = response.instructions ?? this.instructions;
    const tools = response.tools ?? this.tools;
    const input = Array.isArray(response.input) ? response.input.map((item) => withoutAudio(item)) : [];
    const body = { input, instructions: typeof instructions === 'string' ? instructions : undefined, tools };
    const estimate = estimateRequest(RESPONSES, this.priced(), body, {}, this.o.defaultMaxOutput);
    const inputAudio = Array.isArray(response.input) ? response.input.reduce((sum: number, item) => sum + audioOf(item, this.inputRate), 0) : 0;
    const own = response.conversation === 'none';
    const conversation = own ? 0 : Math.min(this.conversation, REALTIME_CONTEXT);
    // Only a prompt seen whole caps the charge at the worst case (ws-meter.ts finish).
    const prompt = response.prompt ?? this.prompt;
    const capped = prompt == null && countedTools(tools) && inlineInput(response.input) && (own || !this.unseenItem);
    return {
      prompt: estimate.promptTokens + inputAudio + conversation,
      maxOutput: this.outputCap(response.max_output_tokens ?? response.max_response_output_tokens ?? this.maxOutput),
      capped,
    };
  }

  private async create(event: Json): Promise<Verdict> {
    const response = isObject(event.response) ? event.response : {};
    if (this.o.meter.full) return { forward: false, reply: this.refusal(tooManyInFlight(), event) };
    if (this.model !== undefined && !modelAllowed(this.o.user, this.model)) {
      return { forward: false, reply: this.refusal(modelRefused(this.o.user, this.model), event) };
    }
    try {
      const worst = this.worstCase(response);
      const eventId = typeof event.event_id === 'string' ? event.event_id : undefined;
      const pending = await this.o.meter.admit({ model: this.priced(), named: this.model, ...worst, eventId });
      return { forward: true, relayed: () => void (pending.relayed = true) };
    } catch (err) {
      if (err instanceof GatewayError) return { forward: false, reply: this.refusal(err, event) };
      throw err;
    }
  }

  async upstream(type: string | undefined, event: Json | undefined, size: number): Promise<void> {
    const meter = this.o.meter;
    if (type === 'response.output_audio.delta' || type === 'response.audio.delta') {
      const pending = meter.streaming();
      if (pending) pending.streamedAudioBytes += ((size - APPEND_FRAMING) * 3) / 4;
      return;
    }
    if (!event) return;
    const transcription = this.o.transcription;
    if (type === 'input_audio_buffer.committed') return transcription.committed(typeof event.item_id === 'string' ? event.item_id : undefined);
    if (type === 'input_audio_buffer.cleared') return transcription.cleared();
    if (type === 'conversation.item.input_audio_transcription.completed' || type === 'conversation.item.input_audio_transcription.failed') {
      const itemId = typeof event.item_id === 'string' ? event.item_id : undefined;
      const unreserved = await transcription.reported(itemId, event.usage, type.endsWith('.failed'));
      // Audio transcribed that no append reserved: charged, and the session ends, as the next
      // buffer could be transcribed past the user's limits the same way.
      if (unreserved) {
        const error = new GatewayError('insufficient_quota', { message: 'The upstream transcribed input audio the gateway had not reserved (a setting it did not take): charged as reported, and the session is closed.' });
        this.o.channel.toClient(this.refusal(error, undefined));
        this.o.channel.close(1008, 'insufficient_quota: input audio transcribed that was not reserved');
      }
      return;
    }
    if (ACCOUNTS.has(type ?? '')) {
      const answers = type?.endsWith('.updated') ?? false;
      if (!isObject(event.session)) {
        if (answers) transcription.accounted(undefined, true);
        return;
      }
      this.learn(event.session);
      // The upstream's account of the transcription in force: a cheaper one than the client's
      // updates is believed only from it (ws-transcription-setting.ts).
      const told = transcriptionOf(event.session);
      transcription.accounted(told && { on: told.on, model: typeof told.model === 'string' ? told.model : undefined, prompt: told.prompt }, answers);
      // A session opened without `?model=` runs the upstream's default: priced as the upstream says.
      if (this.o.model === undefined && typeof event.session.model === 'string') this.model = event.session.model;
      return;
    }
    const response = isObject(event.response) ? event.response : undefined;
    const responseId = typeof response?.id === 'string' ? response.id : undefined;
    if (type === 'response.created' && responseId !== undefined) {
      if (!meter.started(responseId)) await this.startedByUpstream(responseId, response ?? {});
    } else if (type === 'response.done') {
      const pending = meter.byResponse(responseId) ?? (responseId === undefined ? undefined : meter.started(responseId));
      if (!pending) return;
      const status = response?.status;
      const usage = await meter.finish(pending, response?.usage, status === 'failed' ? 'failed' : status === 'incomplete' || status === 'cancelled' ? 'incomplete' : 'completed');
      if (usage) this.conversation += usage.output;
    } else if (type === 'error') {
      const clientEvent = isObject(event.error) ? event.error.event_id : undefined;
      if (typeof clientEvent === 'string') meter.refusedBeforeStart((p) => p.eventId === clientEvent);
    } else if (typeof event.delta === 'string') {
      const pending = meter.streaming(typeof event.response_id === 'string' ? event.response_id : undefined);
      if (pending) pending.streamedTokens += Math.ceil(Buffer.byteLength(event.delta) / 4) || 0;
    }
  }

  /** A response no create asked for (server VAD): admitted now; refused, it is cancelled, what it
   * used is still charged (the upstream began it before the gateway could say no), and the session
   * is closed: the client's audio would start another, and each would spend past the limit again. */
  private async startedByUpstream(responseId: string, response: Json): Promise<void> {
    const worst = this.worstCase(response);
    let pending: Pending;
    let refused: GatewayError | undefined;
    try {
      // Priced as a create is: an alias's target, never the alias's own name (docs/models.md).
      pending = await this.o.meter.admit({ model: this.priced(), named: this.model, ...worst });
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      refused = err;
      this.o.channel.toUpstream(Buffer.from(JSON.stringify({ type: 'response.cancel', response_id: responseId })));
      this.o.channel.toClient(this.refusal(err, undefined));
      pending = await this.o.meter.admit({ model: this.priced(), named: this.model, ...worst }, true);
    }
    pending.responseId = responseId;
    if (refused) this.o.channel.close(1008, `${refused.code}: a response the server started was past the user's limits and was cancelled`);
  }
}

const ACCOUNTS = new Set(['session.created', 'session.updated', 'transcription_session.created', 'transcription_session.updated']);

export function tooManyInFlight(): GatewayError {
  return new GatewayError('rate_limit_exceeded', {
    type: 'requests',
    message: 'Too many responses in progress in this session: wait for one to finish (websocket.maxResponsesInFlight).',
  });
}

/** The input transcription a session update sets (GA `audio.input.transcription`, beta
 * `input_audio_transcription`): on with its model (an object), off (null), or not named. When both
 * are given, the GA one counts, as it is the one the upstream reads first; either one on turns it on. */
interface TranscriptionSetting {
  param: string;
  on: boolean;
  model: unknown;
  prompt: unknown;
}

function transcriptionOf(session: Json): TranscriptionSetting | undefined {
  const audio = isObject(session.audio) ? session.audio : {};
  const input = isObject(audio.input) ? audio.input : {};
  const found: TranscriptionSetting[] = [];
  const setting = (param: string, value: unknown): TranscriptionSetting => ({
    param,
    on: value !== null,
    model: isObject(value) ? value.model : undefined,
    prompt: isObject(value) ? value.prompt : undefined,
  });
  if (input.transcription !== undefined) found.push(setting('session.audio.input.transcription.model', input.transcription));
  const beta = session.input_audio_transcription;
  if (beta !== undefined) found.push(setting('session.input_audio_transcription.model', beta));
  // Both named: the one that is on (the worse case), each model checked.
  if (found.length === 2 && found[0] && found[1]) {
    const [ga, b] = found;
    if (ga.model !== undefined && b.model !== undefined && ga.model !== b.model && ga.on && b.on) return { ...ga, model: [ga.model, b.model] };
    // Both on: the longer prompt of the two, as either may be the one read.
    const longer = (x: unknown, y: unknown) => (String(x ?? '').length >= String(y ?? '').length ? x : y);
    if (ga.on && b.on) return { ...ga, model: ga.model ?? b.model, prompt: longer(ga.prompt, b.prompt) };
    return ga.on ? ga : b;
  }
  return found[0];
}

const TRANSCRIPTION_MODEL_PATHS = [
  ['session', 'audio', 'input', 'transcription', 'model'],
  ['session', 'input_audio_transcription', 'model'],
];

/** The event with `alias`, at each place a transcription model may be named, replaced by `model`. */
function transcriptionSent(message: Buffer, event: Json, alias: string, model: string): Buffer {
  let sent = message;
  for (const path of TRANSCRIPTION_MODEL_PATHS) {
    let value: unknown = event;
    for (const key of path) value = isObject(value) ? value[key] : undefined;
    if (value === alias) sent = eventWithModel(sent, path, model) ?? sent;
  }
  return sent;
}

/** An item less its base64 audio (counted from its length instead). */
function withoutAudio(item: unknown): unknown {
  if (!isObject(item) || !Array.isArray(item.content)) return item;
  return { ...item, content: item.content.map((part) => (isObject(part) && typeof part.audio === 'string' ? { ...part, audio: '' } : part)) };
}

/** The bytes of the audio an item carries (base64: four characters for three bytes). */
function audioBytes(item: unknown): number {
  if (!isObject(item) || !Array.isArray(item.content)) return 0;
  let bytes = 0;
  for (const part of item.content) if (isObject(part) && typeof part.audio === 'string') bytes += (part.audio.length * 3) / 4;
  return bytes;
}

function audioOf(item: unknown, rate: number): number {
  if (!isObject(item) || !Array.isArray(item.content)) return 0;
  let tokens = 0;
  for (const part of item.content) if (isObject(part) && typeof part.audio === 'string') tokens += audioTokens((part.audio.length * 3) / 4, rate);
  return tokens;
}

function itemTokens(item: unknown, rate: number): number {
  if (!isObject(item)) return 0;
  return estimateRequest(RESPONSES, undefined, { input: [withoutAudio(item)] }, {}, 1).promptTokens + audioOf(item, rate);
}
