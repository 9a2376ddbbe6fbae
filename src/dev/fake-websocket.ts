// The fake upstream's WebSocket sessions (fake-upstream.ts). Realtime: `session.created` on open,
// and for each `response.create` a response streamed as OpenAI does (text and audio deltas) ending
// in `response.done` with a realistic usage; `input_audio_buffer.commit` starts one too, as server
// VAD does; `response.cancel` is taken silently. Responses socket: `response.created`, a text delta
// and `response.completed` with usage. Other text messages are echoed (`{"type":"echo"}`).
// A create can script its answer with `metadata.fake` (in `response` on realtime):
//   "hang": the deltas, then nothing (a response cut by a close);
//   "absurd": usage with negative and huge counts;
//   "fail": the Responses socket answers `response.failed` (usage included).
// Realtime input transcription: a `session.update` that turns it on (`audio.input.transcription`
// or beta `input_audio_transcription`) makes each `input_audio_buffer.commit` answer
// `input_audio_buffer.committed` and `conversation.item.input_audio_transcription.completed` with
// a usage as OpenAI bills it (FAKE_TRANSCRIPTION_USAGE; whisper-1: its seconds), unless the
// transcription's `prompt` is "fake:hang" (committed, then nothing), "fake:fail" (`.failed`) or
// "fake:nousage" (completed without a usage).
// A session whose update sets `turn_detection: null` starts no response on commit.
// Each `session.update` (`transcription_session.update`) is answered, before its echo, with
// `session.updated` (`transcription_session.updated`) giving the transcription in force, unless its
// session's `instructions` is "fake:refuse": then an `error` naming its `event_id` (null without
// one) answers it, and it changes nothing (no echo). A `conversation.item.create` whose input
// audio part has the `transcript` "fake:transcribe" has that audio transcribed (when transcription
// is on), as the input buffer's is.
import type { WebSocket } from 'ws';
import { fakeId } from './fake-openai-answers.js';
import { isObject } from '../json-object.js';

/** The usage of every realtime `response.done` (unless scripted otherwise). */
export const FAKE_REALTIME_USAGE = {
  total_tokens: 70,
  input_tokens: 40,
  output_tokens: 30,
  input_token_details: { cached_tokens: 10, text_tokens: 25, audio_tokens: 15, cached_tokens_details: { text_tokens: 10, audio_tokens: 0 } },
  output_token_details: { text_tokens: 10, audio_tokens: 20 },
};

/** The usage of every Responses socket `response.completed` (unless scripted otherwise). */
export const FAKE_RESPONSES_USAGE = {
  input_tokens: 21,
  input_tokens_details: { cached_tokens: 0 },
  output_tokens: 9,
  output_tokens_details: { reasoning_tokens: 0 },
  total_tokens: 30,
};

/** The usage of every transcription of a committed buffer by a token-billed model. */
export const FAKE_TRANSCRIPTION_USAGE = {
  type: 'tokens',
  total_tokens: 19,
  input_tokens: 14,
  input_token_details: { text_tokens: 0, audio_tokens: 14 },
  output_tokens: 5,
};

const ABSURD_USAGE = { total_tokens: -5, input_tokens: -1_000_000, output_tokens: 1e300, input_token_details: { cached_tokens: -3 } };
// A tenth of a second of PCM16 at 24 kHz, base64.
const AUDIO = Buffer.alloc(4800, 7).toString('base64');

type Json = Record<string, unknown>;

function parse(text: string): Json | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function script(create: Json): unknown {
  return isObject(create.metadata) ? create.metadata.fake : undefined;
}

export function serveFakeWebSocket(ws: WebSocket, path: string, model: string | null, onMessage: (data: string) => void): void {
  const send = (event: Json): void => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(event));
  };
  const realtime: RealtimeState = { transcription: undefined, vad: true, buffered: 0 };
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString();
    onMessage(text);
    const event = parse(text);
    if (event?.type === 'response.create' && path === '/v1/realtime') return realtimeResponse(send, isObject(event.response) ? event.response : {});
    if (event?.type === 'response.create' && path === '/v1/responses') return responsesResponse(send, event);
    if (path === '/v1/realtime' && event?.type === 'input_audio_buffer.append' && typeof event.audio === 'string') {
      realtime.buffered += Buffer.from(event.audio, 'base64').length;
    }
    if (path === '/v1/realtime' && (event?.type === 'session.update' || event?.type === 'transcription_session.update') && isObject(event.session)) {
      if (event.session.instructions === 'fake:refuse') {
        const error = { type: 'invalid_request_error', code: 'invalid_value', message: 'Refused by the fake.', param: 'session', event_id: event.event_id ?? null };
        return send({ type: 'error', event_id: fakeId('event_'), error });
      }
      learnSession(realtime, event.session);
      const transcription = realtime.transcription ?? null;
      if (event.type === 'session.update') send({ type: 'session.updated', event_id: fakeId('event_'), session: { model, audio: { input: { transcription } } } });
      else send({ type: 'transcription_session.updated', event_id: fakeId('event_'), session: { input_audio_transcription: transcription } });
    }
    if (path === '/v1/realtime' && event?.type === 'conversation.item.create' && isObject(event.item)) transcribeItem(send, realtime, event.item);
    if (event?.type === 'input_audio_buffer.commit' && path === '/v1/realtime') {
      transcribe(send, realtime);
      // Server VAD: the end of the user's turn starts a response no create asked for.
      if (realtime.vad) realtimeResponse(send, {});
      return;
    }
    if (event?.type === 'response.cancel') return;
    send({ type: 'echo', data: text });
  });
  if (path === '/v1/realtime') send({ type: 'session.created', session: { model } });
}

interface RealtimeState {
  transcription: Json | undefined;
  vad: boolean;
  /** Bytes appended since the last commit (PCM16 at 24 kHz). */
  buffered: number;
}

function learnSession(state: RealtimeState, session: Json): void {
  const audio = isObject(session.audio) ? session.audio : {};
  const input = isObject(audio.input) ? audio.input : {};
  const transcription = input.transcription !== undefined ? input.transcription : session.input_audio_transcription;
  if (transcription !== undefined) state.transcription = isObject(transcription) ? transcription : undefined;
  const turn = input.turn_detection !== undefined ? input.turn_detection : session.turn_detection;
  if (turn !== undefined) state.vad = turn !== null;
}

function transcribe(send: (event: Json) => void, state: RealtimeState): void {
  const seconds = state.buffered / 48_000;
  state.buffered = 0;
  const itemId = fakeId('item_');
  send({ type: 'input_audio_buffer.committed', event_id: fakeId('event_'), previous_item_id: null, item_id: itemId });
  transcribed(send, state, itemId, seconds);
}

function transcribeItem(send: (event: Json) => void, state: RealtimeState, item: Json): void {
  const parts = Array.isArray(item.content) ? item.content.filter(isObject) : [];
  const audio = parts.filter((p) => p.transcript === 'fake:transcribe' && typeof p.audio === 'string');
  if (audio.length === 0) return;
  const seconds = audio.reduce((sum, p) => sum + Buffer.from(String(p.audio), 'base64').length, 0) / 48_000;
  transcribed(send, state, typeof item.id === 'string' ? item.id : fakeId('item_'), seconds);
}

function transcribed(send: (event: Json) => void, state: RealtimeState, itemId: string, seconds: number): void {
  const t = state.transcription;
  if (!t || t.prompt === 'fake:hang') return;
  const base = { event_id: fakeId('event_'), item_id: itemId, content_index: 0 };
  if (t.prompt === 'fake:fail') {
    send({ type: 'conversation.item.input_audio_transcription.failed', ...base, error: { type: 'transcription_error', code: 'audio_unintelligible', message: 'unintelligible', param: null } });
    return;
  }
  // "fake:nousage": completed as the beta interface once answered, with no usage.
  const usage = t.prompt === 'fake:nousage' ? undefined : t.model === 'whisper-1' ? { type: 'duration', seconds: Math.ceil(seconds) } : FAKE_TRANSCRIPTION_USAGE;
  send({ type: 'conversation.item.input_audio_transcription.completed', ...base, transcript: 'Hello there.', usage });
}

function realtimeResponse(send: (event: Json) => void, create: Json): void {
  const id = fakeId('resp_');
  const base = { id, object: 'realtime.response', status: 'in_progress', output: [] };
  send({ type: 'response.created', event_id: fakeId('event_'), response: base });
  send({ type: 'response.output_text.delta', event_id: fakeId('event_'), response_id: id, item_id: 'item_1', output_index: 0, content_index: 0, delta: 'Hello there, friend.' });
  send({ type: 'response.output_audio.delta', event_id: fakeId('event_'), response_id: id, item_id: 'item_1', output_index: 0, content_index: 1, delta: AUDIO });
  const fake = script(create);
  if (fake === 'hang') return;
  const usage = fake === 'absurd' ? ABSURD_USAGE : FAKE_REALTIME_USAGE;
  send({ type: 'response.done', event_id: fakeId('event_'), response: { ...base, status: 'completed', usage } });
}

function responsesResponse(send: (event: Json) => void, create: Json): void {
  const id = fakeId('resp_');
  const lane = typeof create.stream_id === 'string' ? { stream_id: create.stream_id } : {};
  const response = { id, object: 'response', status: 'in_progress', model: create.model, previous_response_id: create.previous_response_id ?? null, output: [], usage: null };
  let sequence = 0;
  send({ type: 'response.created', sequence_number: sequence++, response, ...lane });
  send({ type: 'response.output_text.delta', sequence_number: sequence++, item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'Hello there.', ...lane });
  const fake = script(create);
  if (fake === 'hang') return;
  const usage = fake === 'absurd' ? ABSURD_USAGE : FAKE_RESPONSES_USAGE;
  const type = fake === 'fail' ? 'response.failed' : 'response.completed';
  send({ type, sequence_number: sequence++, response: { ...response, status: fake === 'fail' ? 'failed' : 'completed', usage }, ...lane });
}
