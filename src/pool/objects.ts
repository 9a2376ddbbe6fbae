// Objects that live on one upstream key (a file uploaded with key A is not visible through key B):
// which ids an answer creates, which ids a request names, and which list answers hold them.
// Pure functions over parsed JSON and paths; object-owners.ts keeps who owns what.
//
// Only top-level objects are tracked: those addressed on their own (`/files/{id}`) or named in
// bodies. Objects inside another (a thread's runs and messages `run_`, `msg_`, `step_`; a container's
// files `cfile_`; a vector store's file batches `vsfb_`; an eval's runs `evalrun_`, `outputitem_`;
// checkpoints `ftckpt_`; upload parts `part_`) are always reached through their parent's path, so
// the parent's owner answers for them, and a stream that created one unseen cannot lock its
// creator out. Ids come from spec/openai/routes.tsv paths and openapi.yaml examples.
//
// Two kinds are not ids of the usual shape. A fine-tuned model is named `ft:<base>:<org>:<suffix>:<id>`
// (its checkpoints add `:ckpt-step-<n>`); it comes into being when a job finishes, so the gateway
// learns it from the job's answers (fine_tuned_model) and from the job's checkpoint list. A ChatKit
// thread (`cthr_`) is made by the ChatKit front end with a session's client secret, never through
// this API: it belongs to the session's `user`, so a session claims its `user` string for the
// gateway user who made it (chatkitUserRef), and a thread seen in a list belongs to whoever claimed
// its `user`.

import type { Operation } from '../operations/match.js';
import { isObject } from '../json-object.js';

export type ObjectKind =
  | 'file'
  | 'upload'
  | 'batch'
  | 'vector_store'
  | 'assistant'
  | 'thread'
  | 'response'
  | 'fine_tuning_job'
  | 'container'
  | 'video'
  | 'video_character'
  | 'conversation'
  | 'eval'
  | 'chat_completion'
  | 'skill'
  | 'voice'
  | 'voice_consent'
  | 'chatkit_session'
  | 'chatkit_thread'
  | 'fine_tuned_model';

const PREFIXES: ReadonlyArray<readonly [string, ObjectKind]> = [
  ['file-', 'file'],
  ['upload_', 'upload'],
  ['batch_', 'batch'],
  ['vs_', 'vector_store'],
  ['asst_', 'assistant'],
  ['thread_', 'thread'],
  ['resp_', 'response'],
  ['ftjob-', 'fine_tuning_job'],
  ['ftjob_', 'fine_tuning_job'],
  ['cntr_', 'container'],
  ['video_', 'video'],
  ['char_', 'video_character'],
  ['conv_', 'conversation'],
  ['eval_', 'eval'],
  ['chatcmpl-', 'chat_completion'],
  ['skill_', 'skill'],
  ['voice_', 'voice'],
  ['cons_', 'voice_consent'],
  ['cksess_', 'chatkit_session'],
  ['cthr_', 'chatkit_thread'],
];

const ID_SHAPE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,255}$/;
const ID_BODY = /^[A-Za-z0-9]/;
// `ft:gpt-4o-mini-2024-07-18:my-org:custom-suffix:9rRbUxAP`, `...:ckpt-step-88`; base models may carry dots.
const FINE_TUNED_MODEL = /^ft:[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$/;

/** The kind of a tracked object id, or undefined for anything else. */
export function objectKindOf(id: string): ObjectKind | undefined {
  if (id.startsWith('ft:')) return FINE_TUNED_MODEL.test(id) ? 'fine_tuned_model' : undefined;
  if (!ID_SHAPE.test(id)) return undefined;
  for (const [prefix, kind] of PREFIXES) {
    if (id.startsWith(prefix) && ID_BODY.test(id.slice(prefix.length))) return kind;
  }
  return undefined;
}

const LEADING_ID = /^[A-Za-z0-9_-]{1,256}/;
const LEADING_MODEL = /^ft:[A-Za-z0-9._:-]{1,256}/;

/**
 * The tracked id a path parameter begins with: `file-abc` in `file-abc;x=1`, `file-abc.` or
 * `file-abc:` as well as in `file-abc`. An upstream may read such a parameter as the id it begins
 * with, so it is checked as that id.
 */
export function leadingObjectId(value: string): string | undefined {
  const id = (value.startsWith('ft:') ? LEADING_MODEL : LEADING_ID).exec(value)?.[0].replace(/[.:]+$/, '');
  return id !== undefined && objectKindOf(id) ? id : undefined;
}

// Path segments of routes.tsv that merely look like ids (`voice_` + `consents`).
const STATIC_SEGMENTS = new Set(['voice_consents']);

/** The path below `/v1`, without a query: `/v1/files/x?y` and `/files/x` both give `/files/x`. */
function routeOf(path: string): string {
  const q = path.indexOf('?');
  const bare = q === -1 ? path : path.slice(0, q);
  return bare === '/v1' || bare.startsWith('/v1/') ? bare.slice(3) : bare;
}

/** The tracked ids a request path names, in path order: `/v1/vector_stores/vs_1/files/file-2` names both. */
export function idsInPath(path: string): string[] {
  const ids: string[] = [];
  // The path is canonical (src/relay/path.ts): escapes are decoded already.
  for (const segment of routeOf(path).split('/')) {
    if (segment === '' || STATIC_SEGMENTS.has(segment)) continue;
    const id = leadingObjectId(segment);
    if (id !== undefined && !ids.includes(id)) ids.push(id);
  }
  return ids;
}

// Body fields whose string values (or arrays of strings) name objects: batches' input_file_id,
// fine-tuning's training_file, Responses' previous_response_id and conversation, file_search's
// vector_store_ids, Assistants' thread_id / assistant_id / attachments[].file_id /
// tool_resources.*.file_ids, chat and Responses input parts' file_id, containers' skill_id, and
// `model` wherever it names a fine-tuned model (chat, Responses, a job fine-tuning it further, evals).
export const ID_FIELDS: ReadonlySet<string> = new Set([
  'model',
  'file_id',
  'file_ids',
  'input_file_id',
  'training_file',
  'validation_file',
  'previous_response_id',
  'response_id',
  'vector_store_id',
  'vector_store_ids',
  'thread_id',
  'assistant_id',
  'conversation',
  'conversation_id',
  'container',
  'container_id',
  'batch_id',
  'upload_id',
  'video_id',
  'eval_id',
  'skill_id',
  'voice_id',
]);
// Fields whose object value names an object by its `id`: `conversation: {id}`, `video: {id}` (video
// edits and extensions), `voice: {id}` (custom voices).
export const REFERENCE_FIELDS: ReadonlySet<string> = new Set(['conversation', 'video', 'voice']);
// The caller's own data, where a key called file_id means nothing to the gateway: metadata,
// vector store file attributes, JSON schemas of tools and structured outputs.
export const OPAQUE_FIELDS: ReadonlySet<string> = new Set(['metadata', 'attributes', 'parameters', 'schema', 'properties', 'input_schema', '$defs', 'definitions']);
// Request bodies deeper than this are refused at read (relay/json-shape.ts, MAX_JSON_DEPTH).
const MAX_DEPTH = 64;

type Json = Record<string, unknown>;

export { isObject };

/**
 * The tracked ids a parsed JSON request body names, in document order. A body too large to parse
 * is read by src/relay/json-digest.ts with the same rules. Multipart bodies stream: only their path
 * counts.
 */
export function idsInBody(body: unknown): string[] {
  // A set: a body naming many ids costs one lookup per id, not one per id already found.
  const ids = new Set<string>();
  const add = (value: unknown) => {
    if (typeof value === 'string' && objectKindOf(value)) ids.add(value);
  };
  const visit = (value: unknown, depth: number): void => {
    if (depth > MAX_DEPTH) return;
    if (Array.isArray(value)) {
      for (const item of value) if (typeof item === 'object') visit(item, depth + 1);
      return;
    }
    if (!isObject(value)) return;
    // Evals' data sources name a file as {type: "file_id", id}.
    if (value.type === 'file_id') add(value.id);
    // for-in over own data (parsed JSON has no inherited fields): no entries array per object.
    for (const field in value) {
      if (OPAQUE_FIELDS.has(field)) continue;
      const child = value[field];
      if (ID_FIELDS.has(field)) {
        if (typeof child === 'string') add(child);
        else if (Array.isArray(child)) child.forEach(add);
      }
      if (REFERENCE_FIELDS.has(field) && isObject(child)) add(child.id);
      if (typeof child === 'object') visit(child, depth + 1);
    }
  };
  visit(body, 0);
  return [...ids];
}

/**
 * The tracked ids a request's path names: the values of its operation's path parameters; for an
 * operation the table does not know, every segment shaped like a tracked id (it may touch no
 * object it does not own).
 */
export function idsInOperation(operation: Operation, path: string): string[] {
  if (operation.template === undefined) return idsInPath(path);
  const ids: string[] = [];
  for (const name in operation.params) {
    const id = leadingObjectId(operation.params[name] as string);
    if (id !== undefined && !ids.includes(id)) ids.push(id);
  }
  return ids;
}

/** Every tracked id a request names: its path's, then its JSON body's. */
export function namedObjectIds(pathIds: string[], body?: unknown): string[] {
  return body === undefined ? [...new Set(pathIds)] : [...new Set([...pathIds, ...idsInBody(body)])];
}

function storedByUpstream(kind: ObjectKind, object: Json, request: unknown): boolean {
  const asked = isObject(request) ? request.store : undefined;
  // Chat completions are kept upstream only with `store: true`; responses unless `store: false`.
  if (kind === 'chat_completion') return asked === true;
  if (kind === 'response') return object.store !== false && asked !== false;
  return true;
}

/**
 * The ids of the objects an answer (or one SSE event's JSON) brings into being: its own `id`, and
 * the objects made along with it: the thread of a run made by `POST /threads/runs`, a batch's
 * output and error files, a fine-tuning job's result files, the file of a completed upload, vector
 * stores made inline through tool_resources, containers a Responses code interpreter started.
 * List answers and deletion answers create nothing. `request` is the request's JSON body, if any.
 */
export function createdObjectIds(answer: unknown, request?: unknown): string[] {
  if (!isObject(answer) || answer.object === 'list' || answer.deleted === true) return [];
  const ids: string[] = [];
  const add = (value: unknown) => {
    if (typeof value === 'string' && objectKindOf(value) && !ids.includes(value)) ids.push(value);
  };
  // A Responses stream event carries the response (response.created …) or an output item.
  const eventType = typeof answer.type === 'string' ? answer.type : '';
  const object = eventType.startsWith('response.') && isObject(answer.response) ? answer.response : answer;
  if (eventType.startsWith('response.') && isObject(answer.item)) add(answer.item.container_id);

  if (typeof object.id === 'string') {
    const kind = objectKindOf(object.id);
    if (kind && storedByUpstream(kind, object, request)) add(object.id);
  }
  if (object.object === 'thread.run') add(object.thread_id);
  add(object.output_file_id);
  add(object.error_file_id);
  if (Array.isArray(object.result_files)) object.result_files.forEach(add);
  if (isObject(object.file)) add(object.file.id);
  const toolResources = isObject(object.tool_resources) ? object.tool_resources : undefined;
  const fileSearch = toolResources && isObject(toolResources.file_search) ? toolResources.file_search : undefined;
  if (fileSearch && Array.isArray(fileSearch.vector_store_ids)) fileSearch.vector_store_ids.forEach(add);
  if (Array.isArray(object.output)) {
    for (const item of object.output) if (isObject(item)) add(item.container_id);
  }
  // A job answered by POST (cancel, pause, resume) may already name its model.
  if (object.object === 'fine_tuning.job') add(object.fine_tuned_model);
  if (object.object === 'chatkit.session' && typeof object.user === 'string') ids.push(chatkitUserRef(object.user));
  return ids;
}

/**
 * The fine-tuned models a fine-tuning answer shows: a job's `fine_tuned_model` (GET
 * /fine_tuning/jobs/{id}, or each job of a list), a checkpoint's `fine_tuned_model_checkpoint`
 * (each item of GET /fine_tuning/jobs/{id}/checkpoints).
 */
export function fineTunedModelsIn(answer: unknown): string[] {
  if (!isObject(answer)) return [];
  const items = answer.object === 'list' && Array.isArray(answer.data) ? answer.data : [answer];
  const names: string[] = [];
  for (const item of items) {
    if (!isObject(item)) continue;
    for (const name of [item.fine_tuned_model, item.fine_tuned_model_checkpoint]) {
      if (typeof name === 'string' && objectKindOf(name) === 'fine_tuned_model' && !names.includes(name)) names.push(name);
    }
  }
  return names;
}

/** The objects such an answer shows: what it made along the way, and the fine-tuned models. */
export function revealedObjectIds(answer: unknown): string[] {
  return [...new Set([...createdObjectIds(answer), ...fineTunedModelsIn(answer)])];
}

// Not an object id (no id has a space or this prefix): the owner table's entry for a ChatKit `user`.
const CHATKIT_USER = 'chatkit user ';

/** The owner table's name for the ChatKit `user` string of sessions and threads. */
export function chatkitUserRef(user: string): string {
  return CHATKIT_USER + user;
}

/** The id a deletion answer (`{id, object, deleted: true}`) says is gone, if it is tracked. */
export function deletedObjectId(answer: unknown): string | undefined {
  if (!isObject(answer) || answer.deleted !== true || typeof answer.id !== 'string') return undefined;
  return objectKindOf(answer.id) ? answer.id : undefined;
}

/**
 * For a list item whose own id the gateway has not seen: the owner table's name that decides who
 * may see it (a ChatKit thread's `user`), if its kind has one.
 */
export function ownerHintOf(kind: ObjectKind, item: unknown): string | undefined {
  if (kind !== 'chatkit_thread' || !isObject(item) || typeof item.user !== 'string') return undefined;
  return chatkitUserRef(item.user);
}

/**
 * A list answer (`{object: "list", data, first_id, last_id, has_more}`) with only the items `keep`
 * accepts; `first_id`/`last_id` follow the kept items. Undefined when the answer is not a list.
 */
export function filterListAnswer(answer: unknown, keep: (id: string) => boolean): Json | undefined {
  // Any object with a `data` array, whatever its `object` says: a page in a shape a little off
  // OpenAI's would otherwise pass unfiltered, other users' objects in it.
  if (!isObject(answer) || !Array.isArray(answer.data)) return undefined;
  const data = answer.data.filter((item) => isObject(item) && typeof item.id === 'string' && keep(item.id));
  const out: Json = { ...answer, data };
  const first = data[0] as Json | undefined;
  const last = data[data.length - 1] as Json | undefined;
  if ('first_id' in answer) out.first_id = first ? first.id : null;
  if ('last_id' in answer) out.last_id = last ? last.id : null;
  return out;
}
