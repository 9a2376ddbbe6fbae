// The fake upstream's WebSocket sessions (fake-upstream.ts). Realtime: `session.created` on open,
// and for each `response.create` a response streamed as OpenAI does (text and audio deltas) ending
// in `response.done` with a realistic usage; `input_audio_buffer.commit` starts one too, as server
// VAD does; `response.cancel` is taken silently. Responses socket: `response.created`, a text delta
// and `response.completed` with usage. Other text messages are echoed (`{"type":"echo"}`).
// A create can script its answer with `metadata.fake` (in `response` on realtime):
//   "hang": the deltas, then nothing (a response cut by a close);
//   "absurd": usage with negative and huge counts;
//   "fail": the Responses socket answers `response.failed` (usage included).
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
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString();
    onMessage(text);
    const event = parse(text);
    if (event?.type === 'response.create' && path === '/v1/realtime') return realtimeResponse(send, isObject(event.response) ? event.response : {});
    if (event?.type === 'response.create' && path === '/v1/responses') return responsesResponse(send, event);
    // Server VAD: the end of the user's turn starts a response no create asked for.
    if (event?.type === 'input_audio_buffer.commit' && path === '/v1/realtime') return realtimeResponse(send, {});
    if (event?.type === 'response.cancel') return;
    send({ type: 'echo', data: text });
  });
  if (path === '/v1/realtime') send({ type: 'session.created', session: { model } });
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
