// What the gateway reads of a JSON body it does not parse whole (src/relay/body.ts: past
// PARSE_BYTES), gathered by the one pass of src/relay/json-shape.ts as it goes, with no tree:
//   - the top-level settings (TOP_FIELDS), each parsed from its own bytes, and where they lie;
//   - the object ids the body names, by the rules of idsInBody (src/pool/objects.ts);
//   - the sizes of the prompt fields (PROMPT_FIELDS of src/quota/estimate.ts), from which the
//     estimate counts a byte as a token: never below the tokenizer's count.
// Its work per value is bounded, and the pass bounds the values (MAX_JSON_VALUES): what a body
// costs here follows its bytes, not its shape.
import { GatewayError } from '../errors.js';
import { ID_FIELDS, OPAQUE_FIELDS, REFERENCE_FIELDS, objectKindOf } from '../pool/objects.js';
import { type FieldSize, IMAGE_TOKENS, IMAGE_TYPES, LONGEST_NUMBER, PROMPT_FIELDS, SKIPPED } from '../quota/estimate.js';
import { type JsonReader, type ScalarKind, scanJson, stringAt } from './json-shape.js';

/**
 * The top-level members the gateway reads as values: the facts of body.ts (model, stream, token
 * caps), the estimator's n and best_of, include-usage's stream_options, the object tap's store,
 * the request log's and ChatKit's user.
 */
export const TOP_FIELDS: ReadonlySet<string> = new Set([
  'model',
  'stream',
  'stream_options',
  'max_tokens',
  'max_completion_tokens',
  'max_output_tokens',
  'n',
  'best_of',
  'store',
  'user',
  // What groups a request with others sharing its prompt cache (src/relay/affinity.ts).
  'prompt_cache_key',
  'safety_identifier',
  // What a run's caps, a video's length and size and a container's memory are charged from.
  'max_prompt_tokens',
  'seconds',
  'size',
  'memory_limit',
  // A background response is charged later (src/quota/later.ts), whatever its size.
  'background',
]);
/** The most bytes one of TOP_FIELDS may take in a body read this way: each is a name, a number or
 * a small object, and parsing one must stay cheap whatever the body. */
export const TOP_FIELD_BYTES = 64 * 1024;
// Past this, a string is no object id, however escaped (an id is at most 259 characters).
const LONGEST_ID = 2048;

export interface JsonDigest {
  /** The body's root is an object (else, as with a parsed body, nothing is read from it). */
  object: boolean;
  /** The TOP_FIELDS it gives, parsed. */
  top: Record<string, unknown>;
  /** Where each of them lies in the bytes: [start, end). */
  spans: Map<string, readonly [number, number]>;
  /** The tracked object ids it names, in the order they end. */
  ids: string[];
  /** Its prompt fields as the estimator reads them. */
  sizes: Map<string, FieldSize>;
}

class Digest implements JsonReader {
  readonly spans = new Map<string, readonly [number, number]>();
  readonly ids = new Set<string>();
  readonly sizes = new Map<string, FieldSize>();
  object = false;

  // Per open level, by depth: whether it is an object, its last key, whether it is under an opaque
  // field (no ids there), under a SKIPPED key of a prompt field (no text there), and for an object,
  // its `type` being "file_id" and its `id` (evals' data sources name a file as {type, id}).
  private readonly isObject: boolean[] = [];
  private readonly keys: Array<string | undefined> = [];
  private readonly opaque: boolean[] = [];
  private readonly skipped: boolean[] = [];
  private readonly fileType: boolean[] = [];
  private readonly id: Array<string | undefined> = [];
  // The top-level member being read: its key, where it starts, its size if it is a prompt field.
  private member: string | undefined;
  private memberStart = 0;
  private size: FieldSize | undefined;

  constructor(private readonly bytes: Buffer) {}

  open(depth: number, object: boolean, at: number): void {
    if (depth === 1) this.object = object;
    else this.value(depth - 1, at);
    const parent = depth - 1;
    this.isObject[depth] = object;
    this.keys[depth] = undefined;
    this.fileType[depth] = false;
    this.id[depth] = undefined;
    this.opaque[depth] = depth > 1 && (this.opaque[parent] === true || (this.isObject[parent] === true && OPAQUE_FIELDS.has(this.keys[parent] ?? '')));
    // The prompt field's own value (depth 2) is walked whatever its key; below it, SKIPPED keys are not.
    this.skipped[depth] = depth > 2 && (this.skipped[parent] === true || (this.isObject[parent] === true && SKIPPED.has(this.keys[parent] ?? '')));
    if (depth === 2 && this.size && !object) this.size.items = 0;
  }

  close(depth: number, end: number): void {
    if (this.fileType[depth] && !this.opaque[depth]) this.add(this.id[depth]);
    if (depth === 2) this.endMember(end);
  }

  key(depth: number, key: string): void {
    this.keys[depth] = key;
  }

  scalar(depth: number, kind: ScalarKind, start: number, end: number): void {
    if (depth === 0 || !this.object) return;
    this.value(depth, start);
    if (kind === 'string') this.string(depth, start, end);
    else if (kind !== 'literal' && this.size) {
      if (this.counted(depth)) this.size.walked += 1; // a token id in a token-array prompt
      if (kind === 'exponent') this.size.textBytes += LONGEST_NUMBER;
    }
    if (depth === 1) this.endMember(end);
  }

  /** A value begins in the container at `depth`. */
  private value(depth: number, at: number): void {
    if (!this.object) return;
    if (depth === 1) {
      this.member = this.keys[1];
      this.memberStart = at;
      const field = this.member ?? '';
      this.size = PROMPT_FIELDS.has(field) ? { present: true, items: -1, firstIsNumber: false, walked: 0, textBytes: 0 } : undefined;
      if (this.size) this.sizes.set(field, this.size);
    } else if (depth === 2 && this.size && !this.isObject[2]) {
      if (this.size.items === 0) this.size.firstIsNumber = this.bytes[at] === 0x2d || ((this.bytes[at] ?? 0) >= 0x30 && (this.bytes[at] ?? 0) <= 0x39);
      this.size.items++;
    }
  }

  private endMember(end: number): void {
    const field = this.member ?? '';
    if (TOP_FIELDS.has(field)) this.spans.set(field, [this.memberStart, end]);
    if (this.size) {
      this.size.textBytes += end - this.memberStart;
      // `null` is what an absent field is to the estimator.
      if (end - this.memberStart === 4 && this.bytes[this.memberStart] === 0x6e) this.size.present = false;
    }
    this.size = undefined;
  }

  /** Whether a scalar in the container at `depth` is prompt text (not under a SKIPPED key). */
  private counted(depth: number): boolean {
    if (depth === 1) return true;
    return !this.skipped[depth] && !(this.isObject[depth] && SKIPPED.has(this.keys[depth] ?? ''));
  }

  private string(depth: number, start: number, end: number): void {
    const key = this.isObject[depth] ? this.keys[depth] : undefined;
    if (this.size) {
      if (this.counted(depth)) this.size.walked += end - start - 2;
      if (depth > 1 && key === 'type' && !this.skipped[depth] && IMAGE_TYPES.has(this.text(start, end) ?? '')) this.size.walked += IMAGE_TOKENS;
    }
    if (this.opaque[depth]) return;
    if (key === undefined) {
      // A string in an array that is the value of an id field: `file_ids: ["file-1", …]`.
      if (depth > 1 && this.isObject[depth - 1] && ID_FIELDS.has(this.keys[depth - 1] ?? '')) this.add(this.text(start, end));
      return;
    }
    if (ID_FIELDS.has(key)) this.add(this.text(start, end));
    else if (key === 'type') this.fileType[depth] = this.text(start, end) === 'file_id';
    else if (key === 'id') {
      const id = this.text(start, end);
      this.id[depth] = id;
      // `conversation: {id}`, `video: {id}`, `voice: {id}`.
      if (depth > 1 && this.isObject[depth - 1] && REFERENCE_FIELDS.has(this.keys[depth - 1] ?? '')) this.add(id);
    }
  }

  /** A short string's value; undefined for one too long to be an id or a type. */
  private text(start: number, end: number): string | undefined {
    return end - start > LONGEST_ID ? undefined : stringAt(this.bytes, start, end - 1);
  }

  private add(id: string | undefined): void {
    if (id !== undefined && objectKindOf(id)) this.ids.add(id);
  }
}

function tooLong(field: string): GatewayError {
  return new GatewayError('invalid_request', {
    message: `\`${field}\` takes more than ${TOP_FIELD_BYTES} bytes; in a request body this large the gateway reads it on its own, and bounds it.`,
    param: field,
  });
}

/** Reads `bytes` in one pass, refusing what json-shape.ts refuses and TOP_FIELDS longer than TOP_FIELD_BYTES. */
export async function digestJson(bytes: Buffer): Promise<JsonDigest> {
  const digest = new Digest(bytes);
  await scanJson(bytes, digest);
  const top: Record<string, unknown> = {};
  for (const [field, [start, end]] of digest.spans) {
    if (end - start > TOP_FIELD_BYTES) throw tooLong(field);
    // Well-formed in structure and free of prototype keys (the pass checked both); a string's
    // contents (its escapes, raw control characters) only JSON.parse checks.
    try {
      top[field] = JSON.parse(bytes.toString('utf8', start, end));
    } catch (err) {
      throw new GatewayError('invalid_json', { message: `The request body is not valid JSON: \`${field}\`: ${(err as Error).message}`, param: field, cause: err });
    }
  }
  return { object: digest.object, top, spans: digest.spans, ids: [...digest.ids], sizes: digest.sizes };
}
