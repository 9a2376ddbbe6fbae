// The fake upstream's answers to the audio and image routes, in OpenAI's shapes with their usage:
// transcriptions and translations (whisper-1 by duration, gpt-4o-*-transcribe by tokens, streamed
// or not, as json, verbose_json or text), image generations, edits and variations (dall-e-* per
// image, gpt-image-* by tokens), and speech streamed as SSE. Deterministic, so tests can predict
// what is charged: the audio's duration follows from the upload's size (FAKE_AUDIO_BYTES_PER_SECOND).
import type { FakeResponse, RecordedRequest } from './fake-upstream.js';
import { isObject } from '../json-object.js';

/** Seconds of audio the fake hears in an upload: its bytes / this (16 kHz 16-bit mono PCM). */
export const FAKE_AUDIO_BYTES_PER_SECOND = 32_000;
/** Input audio tokens per second of audio (OpenAI counts one per 100 ms). */
export const FAKE_AUDIO_TOKENS_PER_SECOND = 10;
// The default answers' text (FAKE_TEXT of fake-openai-answers.ts, which imports this file).
export const FAKE_TRANSCRIPT = 'Hello from the fake upstream.';
/** Output tokens of every transcript. */
export const FAKE_TRANSCRIPT_TOKENS = 10;
/** Image output tokens of one gpt-image-* image, by quality (1024x1024; OpenAI's table). */
export const FAKE_IMAGE_TOKENS: Readonly<Record<string, number>> = { low: 272, medium: 1056, high: 4160, auto: 4160 };
const PIXEL = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };

type Json = Record<string, unknown>;

/** The text fields of a form the fake holds whole: its parts without a filename. */
export function formFields(body: Buffer, contentType: string | undefined): Map<string, string> {
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType ?? '')?.[1];
  const fields = new Map<string, string>();
  if (!boundary) return fields;
  // Text fields are small and sit before or after the file: only the first and last 64 KB are read.
  const span = 64 * 1024;
  const text = body.length <= 2 * span ? body.toString('latin1') : body.toString('latin1', 0, span) + body.toString('latin1', body.length - span);
  for (const part of text.split(`--${boundary}`)) {
    const m = /^\r\nContent-Disposition: form-data; name="([^"]+)"\r\n(?:[^\r\n]+\r\n)*\r\n([\s\S]*)\r\n$/i.exec(part);
    if (m && !/filename=/i.test(part.slice(0, part.indexOf('\r\n\r\n')))) fields.set(m[1] as string, Buffer.from(m[2] as string, 'latin1').toString('utf8'));
  }
  return fields;
}

/** The answer for one of the media routes, or undefined for another route. */
export function mediaAnswer(req: RecordedRequest, bodyLength: number): FakeResponse | undefined {
  switch (req.path) {
    case '/v1/audio/transcriptions':
    case '/v1/audio/translations':
      return transcription(formFields(req.body, req.headers['content-type']), bodyLength, req.path.endsWith('translations'));
    case '/v1/images/generations':
      return images(asFields(req.json), 'generation');
    case '/v1/images/edits':
      return images(formFields(req.body, req.headers['content-type']), 'edit');
    case '/v1/images/variations':
      return images(formFields(req.body, req.headers['content-type']), 'variation');
    case '/v1/audio/speech':
      return isObject(req.json) && req.json.stream_format === 'sse' ? speechEvents(req.json) : undefined;
  }
  return undefined;
}


function asFields(json: unknown): Map<string, string> {
  const fields = new Map<string, string>();
  if (isObject(json)) for (const [k, v] of Object.entries(json)) if (typeof v === 'string' || typeof v === 'number') fields.set(k, String(v));
  return fields;
}

function transcription(fields: Map<string, string>, bodyLength: number, translation: boolean): FakeResponse {
  const model = fields.get('model') ?? 'whisper-1';
  const format = fields.get('response_format') ?? 'json';
  const duration = Math.round((bodyLength / FAKE_AUDIO_BYTES_PER_SECOND) * 100) / 100;
  const byDuration = model.startsWith('whisper');
  const audioTokens = Math.ceil(duration * FAKE_AUDIO_TOKENS_PER_SECOND);
  const usage = byDuration
    ? { type: 'duration', seconds: Math.ceil(duration) }
    : {
        type: 'tokens',
        input_tokens: audioTokens,
        input_token_details: { text_tokens: 0, audio_tokens: audioTokens },
        output_tokens: FAKE_TRANSCRIPT_TOKENS,
        total_tokens: audioTokens + FAKE_TRANSCRIPT_TOKENS,
      };
  if (fields.get('stream') === 'true' && !byDuration) {
    const words = FAKE_TRANSCRIPT.split(' ').map((w, i) => (i === 0 ? w : ` ${w}`));
    const events = [...words.map((delta) => ({ type: 'transcript.text.delta', delta })), { type: 'transcript.text.done', text: FAKE_TRANSCRIPT, usage }];
    return { headers: SSE_HEADERS, chunks: events.map((e) => `data: ${JSON.stringify(e)}\n\n`) };
  }
  if (format === 'text') return { headers: { 'content-type': 'text/plain; charset=utf-8' }, body: `${FAKE_TRANSCRIPT}\n` };
  if (format === 'srt' || format === 'vtt') {
    const cue = `00:00:00,000 --> 00:00:0${Math.min(9, Math.ceil(duration))},000\n${FAKE_TRANSCRIPT}\n`;
    return { headers: { 'content-type': 'text/plain; charset=utf-8' }, body: format === 'vtt' ? `WEBVTT\n\n${cue.replace(/,/g, '.')}` : `1\n${cue}` };
  }
  if (format === 'verbose_json') {
    // OpenAI's verbose transcript: its duration at the top (whisper-1 gives no other usage here).
    const segment = { id: 0, seek: 0, start: 0, end: duration, text: FAKE_TRANSCRIPT, tokens: [50364], temperature: 0, avg_logprob: -0.2, compression_ratio: 1, no_speech_prob: 0.01 };
    return { body: { task: translation ? 'translate' : 'transcribe', language: 'english', duration, text: FAKE_TRANSCRIPT, segments: [segment], ...(byDuration ? {} : { usage }) } };
  }
  return { body: { text: FAKE_TRANSCRIPT, usage } };
}

function images(fields: Map<string, string>, kind: 'generation' | 'edit' | 'variation'): FakeResponse {
  const model = fields.get('model') ?? (kind === 'edit' ? 'gpt-image-1.5' : 'dall-e-2');
  const n = Math.max(1, Math.min(10, Number(fields.get('n') ?? 1) || 1));
  const created = Math.floor(Date.now() / 1000);
  if (model.startsWith('dall-e')) {
    const asUrl = fields.get('response_format') !== 'b64_json';
    const item = (i: number) => ({
      ...(asUrl ? { url: `https://images.example/fake-${created}-${i}.png` } : { b64_json: PIXEL }),
      ...(model === 'dall-e-3' ? { revised_prompt: `A picture of "${fields.get('prompt') ?? ''}"` } : {}),
    });
    return { body: { created, data: Array.from({ length: n }, (_, i) => item(i)) } };
  }
  const quality = fields.get('quality') ?? 'auto';
  const perImage = FAKE_IMAGE_TOKENS[quality] ?? 4160;
  const text = Math.ceil((fields.get('prompt') ?? '').length / 4);
  const imageIn = kind === 'edit' ? 323 : 0;
  const usage = {
    input_tokens: text + imageIn,
    input_tokens_details: { text_tokens: text, image_tokens: imageIn },
    output_tokens: n * perImage,
    output_tokens_details: { text_tokens: 0, image_tokens: n * perImage },
    total_tokens: text + imageIn + n * perImage,
  };
  const data = Array.from({ length: n }, () => ({ b64_json: PIXEL }));
  return { body: { created, background: 'opaque', output_format: 'png', quality, size: fields.get('size') ?? '1024x1024', data, usage } };
}

function speechEvents(json: Json): FakeResponse {
  const input = typeof json.input === 'string' ? json.input : '';
  const text = Math.ceil(input.length / 4);
  const audio = input.length * 2;
  const usage = { input_tokens: text, output_tokens: audio, total_tokens: text + audio };
  const events = [{ type: 'speech.audio.delta', audio: PIXEL }, { type: 'speech.audio.done', usage }];
  return { headers: SSE_HEADERS, chunks: events.map((e) => `data: ${JSON.stringify(e)}\n\n`) };
}
