// What each operation of the table does to owned objects (src/pool/objects.ts says what an object
// is and where its id hides): which operations list them (filtered per user), create them (bounded
// per user), show those made since (a job's models and files), delete one, or claim a name. Tables
// keyed by operation id, read off the request's match (src/operations/match.ts); the tests check
// them against the spec's table (test/pool-objects.test.ts).
import type { Operation } from '../operations/match.js';
import { type ObjectKind, chatkitUserRef, isObject } from './objects.js';

// These operations list objects of the key's whole project, every user's together.
const LISTS: ReadonlyMap<string, ObjectKind> = new Map([
  ['listFiles', 'file'],
  ['listBatches', 'batch'],
  ['listVectorStores', 'vector_store'],
  ['listAssistants', 'assistant'],
  ['listPaginatedFineTuningJobs', 'fine_tuning_job'],
  ['ListContainers', 'container'],
  ['ListVideos', 'video'],
  ['listEvals', 'eval'],
  ['listChatCompletions', 'chat_completion'],
  ['ListSkills', 'skill'],
  ['listVoiceConsents', 'voice_consent'],
  ['ListThreadsMethod', 'chatkit_thread'],
  // Base models are everyone's and pass; fine-tuned ones are shown to their owner.
  ['listModels', 'fine_tuned_model'],
]);

/** The kind of owned objects an operation lists (to be filtered per user), or undefined when it lists none. */
export function listedObjectKind(operation: Operation): ObjectKind | undefined {
  return LISTS.get(operation.id);
}

// Operations whose answers bring new owned objects into being (their ids are recorded from the
// answer, createdObjectIds): a user who holds `pool.maxObjectsPerUser` objects is refused these
// before they reach the upstream (src/relay/object-slots.ts). Left out: what lives inside an object
// one owns already (runs, messages, a vector store's files), cancels and updates. Objects made
// along the way (a job's fine-tuned model, a Responses container, a thread's inline vector store)
// are recorded all the same and count: a user may end a few past the bound, never more.
export const CREATING_OPERATIONS: ReadonlySet<string> = new Set([
  'createFile',
  'createUpload',
  'completeUpload',
  'createBatch',
  'createVectorStore',
  'createAssistant',
  'createThread',
  'createThreadAndRun',
  'createResponse',
  'beta_createResponse',
  // Its answer is a response object of its own (the spec's CompactResource), recorded like one.
  'Compactconversation',
  'beta_Compactconversation',
  'createChatCompletion',
  'createFineTuningJob',
  'CreateContainer',
  'createVideo',
  'CreateVideoEdit',
  'CreateVideoExtend',
  'CreateVideoRemix',
  'CreateVideoCharacter',
  'createConversation',
  'createEval',
  'CreateSkill',
  'createVoice',
  'createVoiceConsent',
  'CreateChatSessionMethod',
]);

/** True for a request that may create owned objects: its operation creates them, and a chat
 * completion asks `store: true`, a response does not ask `store: false`. */
export function createsObjects(operation: Operation, body: unknown): boolean {
  if (!CREATING_OPERATIONS.has(operation.id)) return false;
  const asked = isObject(body) ? body.store : undefined;
  if (operation.id === 'createChatCompletion') return asked === true;
  if (operation.id === 'createResponse' || operation.id === 'beta_createResponse') return asked !== false;
  return true;
}

// Reads of one of the caller's own objects whose answers show objects made since it was created:
// a job's fine-tuned models and result files, its checkpoints' models, a batch's output and error
// files, the containers a background response started.
const REVEALS_OBJECTS = new Set(['retrieveFineTuningJob', 'listFineTuningJobCheckpoints', 'retrieveBatch', 'getResponse']);

/** True for an operation whose answer shows objects that came into being after its own. */
export function revealsOwnObjects(operation: Operation): boolean {
  return REVEALS_OBJECTS.has(operation.id);
}

/**
 * The object an operation deletes: the one its path names, for a DELETE whose path names one
 * object (`/v1/files/{file_id}`). A DELETE below another object (a vector store's file, a
 * conversation's item) takes it out of its parent: the object itself lives on, and so does its owner.
 */
export function deletedByOperation(operation: Operation, method: string): string | undefined {
  if (method !== 'DELETE') return undefined;
  const values = Object.values(operation.params);
  return values.length === 1 ? values[0] : undefined;
}

/**
 * Names a request claims rather than uses: `POST /chatkit/sessions` claims its `user` for the
 * caller (unknown is fine, another gateway user's is not).
 */
export function claimedNames(operation: Operation, body: unknown): string[] {
  if (operation.id !== 'CreateChatSessionMethod' || !isObject(body)) return [];
  return typeof body.user === 'string' ? [chatkitUserRef(body.user)] : [];
}

/**
 * The text fields of a form (multipart/form-data) that name an object, by operation (openapi.yaml):
 * read as the form streams, checked for ownership like a JSON body's ids, and refused after a file.
 */
export const FORM_ID_FIELDS: Readonly<Record<string, readonly string[]>> = {
  CreateContainerFile: ['file_id'],
  createVoice: ['consent'],
  createVideo: ['input_reference'],
  CreateVideoCharacter: ['video'],
  CreateVideoEdit: ['video'],
  CreateVideoExtend: ['video'],
};
