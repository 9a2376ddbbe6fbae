// Work the fake upstream keeps between requests: uploaded files (their bytes, for a batch's input),
// batches and background responses. There is no clock: a batch ends the first time a GET sees it
// (retrieve or list) or when a test calls completeBatches(); a background response ends when it is
// first retrieved. A batch's output holds one line per input line, with the usage the fake's own
// answer to that request would report.
import { FAKE_COMPLETION_TOKENS, SSE_HEADERS, fakeId, fileObject, promptTokens, response, sseEvents } from './fake-openai-answers.js';
import type { FakeResponse, RecordedRequest } from './fake-upstream.js';

type Json = Record<string, unknown>;
const asObject = (v: unknown): Json => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const now = (): number => Math.floor(Date.now() / 1000);

interface Batch extends Json {
  id: string;
  status: string;
  input_file_id: string;
  endpoint: string;
  output_file_id: string | null;
  request_counts: { total: number; completed: number; failed: number };
}

/** The file part of a multipart upload (the fake's own uploads: one part named "file"). */
function filePart(body: Buffer, contentType: string | undefined): Buffer | undefined {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/.exec(contentType ?? '');
  const mark = boundary?.[1] ?? boundary?.[2];
  if (!mark) return undefined;
  const text = body.toString('latin1');
  const head = text.search(/name="file"[^\r\n]*\r\n/);
  if (head === -1) return undefined;
  const start = text.indexOf('\r\n\r\n', head) + 4;
  const end = text.indexOf(`\r\n--${mark}`, start);
  return start < 4 || end === -1 ? undefined : body.subarray(start, end);
}

/** The usage the fake would answer a batch line's request with, in the endpoint's shape. */
function lineUsage(endpoint: string, body: Json): Json {
  if (endpoint === '/v1/responses') {
    const input = promptTokens(body['input']) + promptTokens(body['instructions']);
    return { input_tokens: input, input_tokens_details: { cached_tokens: 0 }, output_tokens: FAKE_COMPLETION_TOKENS, total_tokens: input + FAKE_COMPLETION_TOKENS };
  }
  if (endpoint === '/v1/embeddings') {
    const input = promptTokens(body['input']);
    return { prompt_tokens: input, total_tokens: input };
  }
  const prompt = promptTokens(body['messages'] ?? body['prompt']);
  return { prompt_tokens: prompt, completion_tokens: FAKE_COMPLETION_TOKENS, total_tokens: prompt + FAKE_COMPLETION_TOKENS };
}

export class FakeJobs {
  readonly files = new Map<string, Buffer>();
  readonly batches = new Map<string, Batch>();
  readonly responses = new Map<string, Json>();

  reset(): void {
    this.files.clear();
    this.batches.clear();
    this.responses.clear();
  }

  /** Ends every batch still running, as if the upstream had run them all. */
  completeBatches(): void {
    for (const batch of this.batches.values()) this.end(batch, 'completed', Infinity);
  }

  /** The answer for a request about kept work, or undefined to leave it to the default answers. */
  answer(req: RecordedRequest): FakeResponse | undefined {
    const { method, path } = req;
    const json = asObject(req.json);
    if (method === 'POST' && path === '/v1/files') return this.upload(req);
    const content = /^\/v1\/files\/([^/]+)\/content$/.exec(path)?.[1];
    if (method === 'GET' && content !== undefined) {
      const bytes = this.files.get(content);
      return bytes && { headers: { 'content-type': 'application/octet-stream' }, body: bytes };
    }
    if (method === 'POST' && path === '/v1/batches') return this.createBatch(json);
    if (method === 'GET' && path === '/v1/batches' && this.batches.size > 0) {
      const data = [...this.batches.values()].reverse().map((b) => this.end(b, 'completed', Infinity));
      return { body: { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: false } };
    }
    const batch = /^\/v1\/batches\/([^/]+)(\/cancel)?$/.exec(path);
    if (batch?.[1] !== undefined) {
      const found = this.batches.get(batch[1]);
      // A batch the fake did not make is left to the default answers (tests script those).
      if (!found) return undefined;
      // A cancel before the batch ran lets half of it finish, as a real cancel finishes what is under way.
      return { body: batch[2] ? this.end(found, 'cancelled', Math.floor(found.request_counts.total / 2)) : this.end(found, 'completed', Infinity) };
    }
    if (method === 'POST' && path === '/v1/responses' && json['background'] === true && json['stream'] !== true) {
      const done = asObject((response(json).body as Json | undefined) ?? {});
      const queued = { ...done, status: 'queued', output: [], usage: null, background: true };
      this.responses.set(String(done['id']), done);
      return { body: queued };
    }
    const resp = /^\/v1\/responses\/([^/]+)(\/cancel)?$/.exec(path);
    const kept = resp?.[1] === undefined ? undefined : this.responses.get(resp[1]);
    if (kept && resp?.[2] && method === 'POST') return { body: { ...kept, status: 'cancelled', output: [], usage: null } };
    if (kept && method === 'GET') {
      if (!new URLSearchParams(req.query).has('stream')) return { body: kept };
      const events = [{ type: 'response.in_progress', response: { ...kept, status: 'in_progress', usage: null } }, { type: 'response.completed', response: kept }];
      return { headers: SSE_HEADERS, chunks: sseEvents(events, { event: (e) => String((e as Json)['type']) }) };
    }
    return undefined;
  }

  /** Keeps the bytes of a batch input file; other uploads get the default answer. */
  private upload(req: RecordedRequest): FakeResponse | undefined {
    if (!/name="purpose"\r\n(?:[^\r\n]+\r\n)*\r\nbatch\r\n/.test(req.body.toString('latin1'))) return undefined;
    const bytes = filePart(req.body, req.headers['content-type']);
    if (!bytes) return undefined;
    const file = fileObject(req.body, req.body.length);
    this.files.set(file.id, Buffer.from(bytes));
    return { body: file };
  }

  private createBatch(json: Json): FakeResponse {
    const input = this.files.get(String(json['input_file_id']));
    if (!input) return { status: 400, body: { error: { message: 'No such input file', type: 'invalid_request_error', param: 'input_file_id', code: null } } };
    const total = input.toString('utf8').split('\n').filter((l) => l.trim() !== '').length;
    const batch: Batch = {
      id: fakeId('batch_'),
      object: 'batch',
      endpoint: String(json['endpoint']),
      input_file_id: String(json['input_file_id']),
      completion_window: '24h',
      status: 'validating',
      output_file_id: null,
      error_file_id: null,
      created_at: now(),
      request_counts: { total, completed: 0, failed: 0 },
    };
    this.batches.set(batch.id, batch);
    return { body: batch };
  }

  /** Ends a running batch with `status`, its first `done` requests answered; an ended batch stays. */
  private end(batch: Batch, status: string, done: number): Batch {
    if (batch.status !== 'validating') return batch;
    const lines = (this.files.get(batch.input_file_id) ?? Buffer.alloc(0)).toString('utf8').split('\n').filter((l) => l.trim() !== '');
    const answered = lines.slice(0, Math.min(done, lines.length));
    const output = answered.map((text, i) => {
      const line = asObject(JSON.parse(text));
      const body = asObject(line['body']);
      const usage = lineUsage(batch.endpoint, body);
      return JSON.stringify({
        id: `batch_req_${i}`,
        custom_id: line['custom_id'],
        response: { status_code: 200, request_id: `req_${i}`, body: { id: `answer_${i}`, model: body['model'], usage } },
        error: null,
      });
    });
    batch.status = status;
    batch.request_counts = { total: lines.length, completed: answered.length, failed: 0 };
    if (answered.length > 0) {
      batch.output_file_id = fakeId('file-');
      this.files.set(batch.output_file_id, Buffer.from(output.join('\n') + '\n'));
    }
    return batch;
  }
}
