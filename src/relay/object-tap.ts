// Watches the answer that reaches the client for the objects it creates or deletes, and records
// their owner: the user, and the pool key that made the answer (src/relay/object-access.ts).
//   JSON answers (POST, DELETE): read at their end, from a copy kept up to 8 MB; past that only the
//     top-level `id` in the first 64 KB is looked at (OpenAI objects begin with it).
//   SSE answers: the events that carry a created object (response.created and .completed, a run's
//     or thread's creation, output items naming a container) as they pass.
// A record is issued before the client can act on the answer: an SSE event's before its bytes are
// written, a JSON answer's as its last bytes go out, in the same tick, so a follow-up request of
// the client reaches the store after it (one connection keeps the order of commands).
// GET answers create nothing, but those of the caller's own fine-tuning job show the models it made
// (src/pool/objects.ts, fineTunedModelsIn): a tap that records only those.
import type { Logger } from 'pino';
import { type Line, LineSplitter } from '../quota/sse-lines.js';
import { createdObjectIds, deletedObjectId, revealedObjectIds } from '../pool/objects.js';
import type { ObjectOwner, ObjectOwners } from '../pool/object-owners.js';
import type { ResponseTap } from './forward.js';
import { isEventStream } from './headers.js';

const JSON_COPY_LIMIT = 8 * 1024 * 1024;
const HEAD_BYTES = 64 * 1024;
const MAX_LINE_BYTES = 8 * 1024 * 1024;
const TOP_ID = /^\s*\{\s*"id"\s*:\s*"([A-Za-z0-9_-]{1,256})"/;
// Events worth parsing: only these create objects; the rest (deltas) pass unparsed.
const MARKERS = ['response.created', 'response.completed', 'response.output_item.done', 'thread.created', 'thread.run.created'].map((m) => Buffer.from(m));
const DATA = Buffer.from('data:');
// Answers of these operations never create a tracked object (chat completions only with `store: true`).
const CREATES_NOTHING = new Set([
  'createEmbedding',
  'createModeration',
  'createCompletion',
  'createSpeech',
  'createTranscription',
  'createTranslation',
  'createImage',
  'createImageEdit',
  'createImageVariation',
]);

export interface ObjectTapOptions {
  owners: ObjectOwners;
  log: Logger;
  method: string;
  /** The operation's id (src/operations/match.ts). */
  operation: string;
  /** The request's JSON body, if it had one. */
  request?: Record<string, unknown>;
  /** A GET of one of the caller's own objects whose answer shows objects made since (a job's
   * models and result files, a batch's output): they become the caller's. */
  revealsObjects?: boolean;
  /** The object the operation deletes (src/pool/objects.ts deletedByOperation): only a deletion
   * answer for it forgets its owner. */
  deletes?: string;
}

/** The tap for a request whose answer may create or delete objects, or undefined when it cannot. */
export function objectTapFor(options: ObjectTapOptions): ((owner: ObjectOwner) => ResponseTap) | undefined {
  const method = options.method.toUpperCase();
  if (method === 'GET' && options.revealsObjects) return (owner) => new ObjectTap(options, owner, revealedObjectIds);
  if (method !== 'POST' && method !== 'DELETE') return undefined;
  if (CREATES_NOTHING.has(options.operation)) return undefined;
  if (options.operation === 'createChatCompletion' && options.request?.store !== true) return undefined;
  return (owner) => new ObjectTap(options, owner);
}

class ObjectTap implements ResponseTap {
  private mode: 'json' | 'sse' | 'none' = 'none';
  private copy: Buffer[] = [];
  private copied = 0;
  private head: Buffer = Buffer.alloc(0);
  private readonly lines = new LineSplitter();
  private readonly recorded = new Set<string>();

  constructor(
    private readonly options: ObjectTapOptions,
    private readonly owner: ObjectOwner,
    private readonly idsIn: (answer: unknown, request?: unknown) => string[] = createdObjectIds,
  ) {}

  start(status: number, headers: Record<string, string | string[] | undefined>): void {
    if (status < 200 || status >= 300) return;
    const type = headers['content-type'];
    if (isEventStream(type)) this.mode = 'sse';
    else if (String(type ?? '').toLowerCase().includes('json')) this.mode = 'json';
  }

  chunk(chunk: Buffer): Buffer {
    if (this.mode === 'sse') {
      this.lines.push(chunk, this.onLine);
      if (this.lines.pending.length > MAX_LINE_BYTES) this.lines.reset();
    } else if (this.mode === 'json') {
      if (this.head.length < HEAD_BYTES) this.head = Buffer.concat([this.head, chunk.subarray(0, HEAD_BYTES - this.head.length)]);
      this.copied += chunk.length;
      if (this.copied <= JSON_COPY_LIMIT) this.copy.push(chunk);
      else this.copy = [];
    }
    return chunk;
  }

  end(complete: boolean): void {
    if (this.mode !== 'json' || !complete) return;
    const answer = this.copied <= JSON_COPY_LIMIT ? parse(Buffer.concat(this.copy, this.copied)) : headObject(this.head);
    this.copy = [];
    const gone = deletedObjectId(answer);
    if (gone !== undefined) {
      // `{id, deleted: true}` for what the request named: a file taken out of a vector store is
      // answered with the file's id, and the file is still there.
      if (gone !== this.options.deletes) return;
      this.options.owners.forget(gone, this.owner.userId).catch((err: unknown) => this.failed(err, gone));
      return;
    }
    this.record(answer);
  }

  private readonly onLine = (line: Line): void => {
    const { buf, start, end } = line;
    if (end - start < 7 || buf.compare(DATA, 0, 5, start, start + 5) !== 0) return;
    const text = buf.subarray(start, end);
    if (!MARKERS.some((m) => text.includes(m))) return;
    this.record(parse(buf.subarray(buf[start + 5] === 0x20 ? start + 6 : start + 5, end)));
  };

  private record(answer: unknown): void {
    for (const id of this.idsIn(answer, this.options.request)) {
      if (this.recorded.has(id)) continue;
      this.recorded.add(id);
      this.options.owners.record(id, this.owner).catch((err: unknown) => this.failed(err, id));
    }
  }

  private failed(err: unknown, objectId: string): void {
    this.options.log.error({ objectId, userId: this.owner.userId, reason: (err as Error).message }, 'could not record who owns an object');
  }
}

function parse(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The object a too-large answer begins as: its top-level `id` only. */
function headObject(head: Buffer): unknown {
  const id = TOP_ID.exec(head.toString('utf8'))?.[1];
  return id === undefined ? undefined : { id };
}
