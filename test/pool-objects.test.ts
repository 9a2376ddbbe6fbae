// Sticky objects: the ids answers create and requests name, on the shapes of the spec's own examples
// (spec/openai/openapi.yaml) and every path of spec/openai/routes.tsv.
import { describe, expect, it } from 'vitest';
import { matchOperation } from '../src/operations/match.js';
import { CREATING_OPERATIONS, claimedNames, createsObjects, listedObjectKind, revealsOwnObjects } from '../src/pool/object-operations.js';
import {
  chatkitUserRef,
  createdObjectIds,
  deletedObjectId,
  filterListAnswer,
  fineTunedModelsIn,
  idsInBody,
  idsInOperation,
  idsInPath,
  namedObjectIds,
  objectKindOf,
  ownerHintOf,
  type ObjectKind,
} from '../src/pool/objects.js';
import { checkTarget } from '../src/relay/path.js';
import { loadRoutes } from './helpers/routes.js';

/** The operation a request is, as the gateway matches it at the door. */
const op = (method: string, target: string) => matchOperation(method, checkTarget(target).path);

describe('object kinds by id', () => {
  it.each([
    ['file-abc123', 'file'],
    ['upload_abc123', 'upload'],
    ['batch_abc123', 'batch'],
    ['vs_abc123', 'vector_store'],
    ['asst_abc123', 'assistant'],
    ['thread_abc123', 'thread'],
    ['resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b', 'response'],
    ['ftjob-abc123', 'fine_tuning_job'],
    ['ftjob_abc123', 'fine_tuning_job'],
    ['cntr_682e30645a488191b6363a0cbefc0f0a025ec61b66250591', 'container'],
    ['video_123', 'video'],
    ['char_123', 'video_character'],
    ['conv_123', 'conversation'],
    ['eval_67b7fa9a81a88190ab4aa417e397ea21', 'eval'],
    ['chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT', 'chat_completion'],
    ['skill_4db6f1a2c9e73508b41f9da06e2c7b5f', 'skill'],
    ['voice_123abc', 'voice'],
    ['cons_1234', 'voice_consent'],
    ['cksess_123', 'chatkit_session'],
    ['cthr_abc123', 'chatkit_thread'],
    ['ft:gpt-4o-mini:org:custom:id', 'fine_tuned_model'],
    ['ft:gpt-4o-mini-2024-07-18:openai::7p4lURel', 'fine_tuned_model'],
    ['ft:gpt-3.5-turbo-0125:my-org:custom_suffix:9rRbUxAP:ckpt-step-88', 'fine_tuned_model'],
  ])('%s is a %s', (id, kind) => {
    expect(objectKindOf(id)).toBe(kind);
  });

  it.each([
    // Objects inside another travel with their parent's path.
    'run_abc123',
    'msg_abc123',
    'step_abc123',
    'cfile_682e0e8a43c88191a7978f477a09bdf5',
    'vsfb_abc123',
    'evalrun_abc456',
    'outputitem_67e5796c28e081909917bf79f6e6214d',
    'ftckpt_zc4Q7MP6XxulcVzj4MZdwsAB',
    'part_def456',
    // Not objects of a user.
    'cthi_user_001',
    'gpt-4o',
    'ft:',
    'ft:gpt-4o/../x',
    'ft:gpt 4o',
    'chatkit user bob',
    'openai-spreadsheets',
    'rtc_479a275623b54bdb9b6fbae2f7cbd408',
    'file-',
    'file_batches',
    'files',
    'file-abc/../x',
    'file-abc def',
  ])('%s is not tracked', (id) => {
    expect(objectKindOf(id)).toBeUndefined();
  });
});

describe('ids that answers create', () => {
  it('a file (POST /files)', () => {
    const file = { id: 'file-abc123', object: 'file', bytes: 120000, created_at: 1677610602, expires_at: 1677614202, filename: 'mydata.jsonl', purpose: 'fine-tune' };
    expect(createdObjectIds(file)).toEqual(['file-abc123']);
  });

  it('a batch, and later its output and error files', () => {
    const created = { id: 'batch_abc123', object: 'batch', endpoint: '/v1/chat/completions', input_file_id: 'file-abc123', status: 'validating', output_file_id: null, error_file_id: null, metadata: { customer_id: 'user_123456789' } };
    expect(createdObjectIds(created)).toEqual(['batch_abc123']);
    const completed = { ...created, status: 'completed', output_file_id: 'file-cvaTdG', error_file_id: 'file-HOWS94' };
    expect(createdObjectIds(completed)).toEqual(['batch_abc123', 'file-cvaTdG', 'file-HOWS94']);
  });

  it('an upload, and the file its completion makes', () => {
    expect(createdObjectIds({ id: 'upload_abc123', object: 'upload', filename: 'training_examples.jsonl', purpose: 'fine-tune', status: 'pending' })).toEqual(['upload_abc123']);
    const completed = {
      id: 'upload_abc123',
      object: 'upload',
      status: 'completed',
      file: { id: 'file-xyz321', object: 'file', filename: 'training_examples.jsonl', purpose: 'fine-tune' },
    };
    expect(createdObjectIds(completed)).toEqual(['upload_abc123', 'file-xyz321']);
  });

  it('a fine-tuning job, and its result files', () => {
    const job = { object: 'fine_tuning.job', id: 'ftjob-abc123', model: 'gpt-4o-mini-2024-07-18', fine_tuned_model: null, organization_id: 'org-123', result_files: [], status: 'queued', validation_file: null, training_file: 'file-abc123' };
    expect(createdObjectIds(job)).toEqual(['ftjob-abc123']);
    expect(createdObjectIds({ ...job, status: 'succeeded', result_files: ['file-res1'] })).toEqual(['ftjob-abc123', 'file-res1']);
    expect(createdObjectIds({ ...job, status: 'succeeded', fine_tuned_model: 'ft:gpt-4o-mini:org::abc' })).toEqual(['ftjob-abc123', 'ft:gpt-4o-mini:org::abc']);
  });

  it('the fine-tuned models a job, a list of jobs and a list of checkpoints show', () => {
    const job = { object: 'fine_tuning.job', id: 'ftjob-1', status: 'succeeded', fine_tuned_model: 'ft:gpt-4o-mini:org::m1' };
    expect(fineTunedModelsIn(job)).toEqual(['ft:gpt-4o-mini:org::m1']);
    expect(fineTunedModelsIn({ ...job, fine_tuned_model: null })).toEqual([]);
    expect(fineTunedModelsIn({ object: 'list', data: [job, { ...job, id: 'ftjob-2', fine_tuned_model: 'ft:gpt-4o-mini:org::m2' }], has_more: false })).toEqual(['ft:gpt-4o-mini:org::m1', 'ft:gpt-4o-mini:org::m2']);
    const checkpoint = { object: 'fine_tuning.job.checkpoint', id: 'ftckpt_1', fine_tuned_model_checkpoint: 'ft:gpt-4o-mini:org::m1:ckpt-step-88', fine_tuning_job_id: 'ftjob-1' };
    expect(fineTunedModelsIn({ object: 'list', data: [checkpoint], has_more: false })).toEqual(['ft:gpt-4o-mini:org::m1:ckpt-step-88']);
    expect(fineTunedModelsIn({ object: 'model', id: 'gpt-4o', fine_tuned_model: 'gpt-4o' })).toEqual([]);
  });

  it('GETs of a job and of its checkpoints show its models; its events and other GETs do not count', () => {
    expect(revealsOwnObjects(op('GET', '/v1/fine_tuning/jobs/ftjob-1'))).toBe(true);
    expect(revealsOwnObjects(op('GET', '/v1/fine_tuning/jobs/ftjob-1/checkpoints?limit=5'))).toBe(true);
    expect(revealsOwnObjects(op('GET', '/v1/fine_tuning/jobs/ftjob-1/events'))).toBe(false);
    expect(revealsOwnObjects(op('GET', '/v1/fine_tuning/jobs'))).toBe(false);
    expect(revealsOwnObjects(op('POST', '/v1/fine_tuning/jobs/ftjob-1'))).toBe(false);
  });

  it("a ChatKit session claims its user: the session's answer records it, its request names it", () => {
    const session = { id: 'cksess_123', object: 'chatkit.session', client_secret: 'ek_token_123', user: 'user_789', status: 'active' };
    expect(createdObjectIds(session)).toEqual(['cksess_123', chatkitUserRef('user_789')]);
    expect(claimedNames(op('POST', '/v1/chatkit/sessions'), { user: 'user_789', workflow: { id: 'wf' } })).toEqual([chatkitUserRef('user_789')]);
    expect(claimedNames(op('POST', '/v1/chat/completions'), { user: 'user_789' })).toEqual([]);
    // A thread seen in a list is owned through its user.
    expect(ownerHintOf('chatkit_thread', { id: 'cthr_1', object: 'chatkit.thread', user: 'user_789' })).toBe(chatkitUserRef('user_789'));
    expect(ownerHintOf('file', { id: 'file-1', user: 'user_789' })).toBeUndefined();
  });

  it('an assistant, and a vector store made inline through tool_resources', () => {
    const assistant = { id: 'asst_abc123', object: 'assistant', model: 'gpt-4o', tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: ['vs_123'] } }, metadata: {} };
    expect(createdObjectIds(assistant)).toEqual(['asst_abc123', 'vs_123']);
  });

  it('POST /threads/runs: the thread made along with the run', () => {
    const run = { id: 'run_abc123', object: 'thread.run', assistant_id: 'asst_abc123', thread_id: 'thread_abc123', status: 'queued', model: 'gpt-4o' };
    expect(createdObjectIds(run)).toEqual(['thread_abc123']);
  });

  it('the same as SSE events of a streamed run', () => {
    expect(createdObjectIds({ id: 'thread_123', object: 'thread', created_at: 1710348075, metadata: {} })).toEqual(['thread_123']);
    expect(createdObjectIds({ id: 'run_123', object: 'thread.run', assistant_id: 'asst_123', thread_id: 'thread_123', status: 'queued' })).toEqual(['thread_123']);
    expect(createdObjectIds({ id: 'msg_001', object: 'thread.message.delta', delta: { content: [] } })).toEqual([]);
  });

  it('a stored response; none when store is false', () => {
    const response = { id: 'resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b', object: 'response', status: 'completed', model: 'gpt-5.4', output: [{ type: 'message', id: 'msg_67cc', role: 'assistant', content: [] }], previous_response_id: null, store: true };
    expect(createdObjectIds(response)).toEqual(['resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b']);
    expect(createdObjectIds({ ...response, store: false })).toEqual([]);
    expect(createdObjectIds({ ...response, store: undefined }, { model: 'gpt-5.4', store: false })).toEqual([]);
  });

  it('a streamed response: response.created carries it', () => {
    const event = { type: 'response.created', sequence_number: 0, response: { id: 'resp_abc', object: 'response', status: 'in_progress', store: true } };
    expect(createdObjectIds(event)).toEqual(['resp_abc']);
    expect(createdObjectIds({ type: 'response.output_text.delta', sequence_number: 3, item_id: 'msg_1', delta: 'Hi' })).toEqual([]);
  });

  it("the container a response's code interpreter started", () => {
    const response = {
      id: 'resp_ci',
      object: 'response',
      store: true,
      output: [{ id: 'ci_1', type: 'code_interpreter_call', status: 'completed', code: 'print(1)', container_id: 'cntr_682e0e7318108198aa783fd921ff305e08e78805b9fdbb04' }],
    };
    expect(createdObjectIds(response)).toEqual(['resp_ci', 'cntr_682e0e7318108198aa783fd921ff305e08e78805b9fdbb04']);
    const streamed = { type: 'response.output_item.done', output_index: 0, item: { id: 'ci_1', type: 'code_interpreter_call', container_id: 'cntr_x1' } };
    expect(createdObjectIds(streamed)).toEqual(['cntr_x1']);
  });

  it('a chat completion only when it was stored', () => {
    const completion = { id: 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT', object: 'chat.completion', model: 'gpt-5.4', choices: [] };
    expect(createdObjectIds(completion)).toEqual([]);
    expect(createdObjectIds(completion, { model: 'gpt-5.4', messages: [] })).toEqual([]);
    expect(createdObjectIds(completion, { model: 'gpt-5.4', messages: [], store: true })).toEqual(['chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT']);
    const chunk = { id: 'chatcmpl-123', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'Hello' } }] };
    expect(createdObjectIds(chunk, { store: true, stream: true })).toEqual(['chatcmpl-123']);
  });

  it.each([
    ['a container', { id: 'cntr_682e30645a488191b6363a0cbefc0f0a025ec61b66250591', object: 'container', status: 'running', name: 'My Container' }, ['cntr_682e30645a488191b6363a0cbefc0f0a025ec61b66250591']],
    ['a video', { id: 'video_123', object: 'video', model: 'sora-2', status: 'queued' }, ['video_123']],
    ['a conversation', { id: 'conv_123', object: 'conversation', metadata: { topic: 'demo' } }, ['conv_123']],
    ['an eval', { object: 'eval', id: 'eval_67b7fa9a81a88190ab4aa417e397ea21', name: 'Sentiment' }, ['eval_67b7fa9a81a88190ab4aa417e397ea21']],
    ['a vector store', { id: 'vs_abc123', object: 'vector_store', name: 'Support FAQ' }, ['vs_abc123']],
    ['a voice consent', { id: 'cons_1234', object: 'audio.voice_consent', name: 'John Doe' }, ['cons_1234']],
    ['an eval run (inside its eval)', { object: 'eval.run', id: 'evalrun_67e57965b480819094274e3a32235e4c', eval_id: 'eval_67e579652b548190aaa83ada4b125f47' }, []],
    ['a file batch (inside its vector store)', { id: 'vsfb_abc123', object: 'vector_store.file_batch', vector_store_id: 'vs_abc123' }, []],
    ['a container file (inside its container)', { id: 'cfile_682e0e8a43c88191a7978f477a09bdf5', object: 'container.file', container_id: 'cntr_682e' }, []],
    ['an embedding', { object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.1] }], model: 'text-embedding-3-small' }, []],
    ['a list of files', { object: 'list', data: [{ id: 'file-abc123', object: 'file' }], first_id: 'file-abc123', last_id: 'file-abc123', has_more: false }, []],
    ['a deletion', { id: 'file-abc123', object: 'file', deleted: true }, []],
    ['an error', { error: { message: 'No such File object: file-abc123', type: 'invalid_request_error', param: 'id', code: null } }, []],
    ['not JSON at all', 'file-abc123', []],
  ])('%s', (_name, answer, ids) => {
    expect(createdObjectIds(answer)).toEqual(ids);
  });
});

describe('ids that deletions remove', () => {
  it.each([
    [{ id: 'file-abc123', object: 'file', deleted: true }, 'file-abc123'],
    [{ id: 'vs_abc123', object: 'vector_store.deleted', deleted: true }, 'vs_abc123'],
    [{ id: 'resp_6786a1bec27481909a17d673315b29f6', object: 'response', deleted: true }, 'resp_6786a1bec27481909a17d673315b29f6'],
    [{ id: 'file-abc123', object: 'file', deleted: false }, undefined],
    [{ id: 'msg_abc123', object: 'thread.message.deleted', deleted: true }, undefined],
  ])('%j', (answer, id) => {
    expect(deletedObjectId(answer)).toBe(id);
  });
});

describe('ids that request paths name', () => {
  it.each([
    ['/v1/files/file-abc123', ['file-abc123']],
    ['/v1/files/file-abc123/content', ['file-abc123']],
    ['/files/file-abc123', ['file-abc123']],
    ['/v1/files', []],
    ['/v1/batches/batch_abc123/cancel', ['batch_abc123']],
    ['/v1/vector_stores/vs_abc123/files/file-abc123', ['vs_abc123', 'file-abc123']],
    ['/v1/vector_stores/vs_abc123/file_batches/vsfb_abc123/files', ['vs_abc123']],
    ['/v1/threads/thread_abc123/runs/run_abc123/steps/step_abc123', ['thread_abc123']],
    ['/v1/threads/runs', []],
    ['/v1/responses/resp_abc/input_items?beta=true', ['resp_abc']],
    ['/v1/containers/cntr_1/files/cfile_2/content', ['cntr_1']],
    ['/v1/evals/eval_1/runs/evalrun_2/output_items/outputitem_3', ['eval_1']],
    ['/v1/fine_tuning/jobs/ftjob-abc123/events', ['ftjob-abc123']],
    ['/v1/uploads/upload_abc123/parts', ['upload_abc123']],
    ['/v1/audio/voice_consents/cons_1234', ['cons_1234']],
    ['/v1/audio/voice_consents', []],
    ['/v1/videos/video_123/remix', ['video_123']],
    ['/v1/videos/characters/char_123', ['char_123']],
    ['/v1/chat/completions/chatcmpl-abc123/messages', ['chatcmpl-abc123']],
    ['/v1/models/ft:gpt-4o-mini:acemeco:suffix:abc123', ['ft:gpt-4o-mini:acemeco:suffix:abc123']],
    // As SDKs send it, escaped: the canonical path (src/relay/path.ts) holds the id the upstream reads.
    ['/v1/models/ft%3Agpt-4o-mini%3Aacemeco%3Asuffix%3Aabc123', ['ft:gpt-4o-mini:acemeco:suffix:abc123']],
    ['/v1/files/file%2Dabc123/content', ['file-abc123']],
    ['/v1/fine_tuning/checkpoints/ft:gpt-4o:org::x1:ckpt-step-8/permissions', ['ft:gpt-4o:org::x1:ckpt-step-8']],
    ['/v1/chatkit/threads/cthr_123/items', ['cthr_123']],
    ['/v1/realtime/calls/rtc_479a275623b54bdb9b6fbae2f7cbd408/accept', []],
    ['/v1/chatkit/sessions/cksess_123/cancel', ['cksess_123']],
  ])('%s', (path, ids) => {
    const canonical = checkTarget(path).path;
    expect(idsInPath(canonical)).toEqual(ids);
    expect(idsInOperation(op(path.includes('/remix') || path.includes('/cancel') || path.includes('/accept') ? 'POST' : 'GET', path), canonical)).toEqual(ids);
  });

  const routes = loadRoutes().filter((r) => !r.group.startsWith('admin'));

  it('no literal segment of any route in routes.tsv looks like an id', () => {
    const literal = routes.map((r) => r.path.replace(/\{[^}]+\}/g, 'param'));
    expect(literal.flatMap((p) => idsInPath(p))).toEqual([]);
  });

  it('a parameter of a tracked kind is found wherever routes.tsv puts it', () => {
    const sample: Record<string, string> = {
      file_id: 'file-F1',
      batch_id: 'batch_B1',
      vector_store_id: 'vs_V1',
      assistant_id: 'asst_A1',
      thread_id: 'thread_T1',
      response_id: 'resp_R1',
      fine_tuning_job_id: 'ftjob-J1',
      container_id: 'cntr_C1',
      video_id: 'video_V1',
      character_id: 'char_C1',
      conversation_id: 'conv_C1',
      eval_id: 'eval_E1',
      completion_id: 'chatcmpl-C1',
      skill_id: 'skill_S1',
      consent_id: 'cons_C1',
      upload_id: 'upload_U1',
      session_id: 'cksess_S1',
    };
    const found: string[] = [];
    for (const route of routes) {
      const path = route.path.replace(/\{([^}]+)\}/g, (_m, name: string) => sample[name] ?? 'opaque123');
      found.push(...idsInPath(path));
    }
    // Upstream, a vector store's {batch_id} is a vsfb_ id (untracked); the sample's batch_ id is
    // found there as it is under /batches, which is all this checks: no parameter is missed.
    expect(new Set(found)).toEqual(new Set(Object.values(sample)));
  });
});

// Every path parameter of the spec's user routes, by the path that leads to it: the kind of object
// it names (a sample id of that kind), or null for a parameter reached through its parent (the
// parent's owner answers for it) or naming nothing a user owns. A new route with a parameter not
// in this table fails the test below until someone decides which it is.
const PATH_PARAMETERS: Record<string, readonly [sample: string, kind: ObjectKind | null]> = {
  '/v1/assistants/{assistant_id}': ['asst_A1', 'assistant'],
  '/v1/audio/voice_consents/{consent_id}': ['cons_C1', 'voice_consent'],
  '/v1/batches/{batch_id}': ['batch_B1', 'batch'],
  '/v1/chat/completions/{completion_id}': ['chatcmpl-C1', 'chat_completion'],
  '/v1/chatkit/sessions/{session_id}': ['cksess_S1', 'chatkit_session'],
  '/v1/chatkit/threads/{thread_id}': ['cthr_T1', 'chatkit_thread'],
  '/v1/containers/{container_id}': ['cntr_C1', 'container'],
  '/v1/containers/{}/files/{file_id}': ['cfile_F1', null],
  '/v1/conversations/{conversation_id}': ['conv_C1', 'conversation'],
  '/v1/conversations/{}/items/{item_id}': ['msg_I1', null],
  '/v1/evals/{eval_id}': ['eval_E1', 'eval'],
  '/v1/evals/{}/runs/{run_id}': ['evalrun_R1', null],
  '/v1/evals/{}/runs/{}/output_items/{output_item_id}': ['outputitem_O1', null],
  '/v1/files/{file_id}': ['file-F1', 'file'],
  '/v1/fine_tuning/checkpoints/{fine_tuned_model_checkpoint}': ['ft:gpt-4o-mini:org::J1:ckpt-step-1', 'fine_tuned_model'],
  '/v1/fine_tuning/checkpoints/{}/permissions/{permission_id}': ['cp_P1', null],
  '/v1/fine_tuning/jobs/{fine_tuning_job_id}': ['ftjob-J1', 'fine_tuning_job'],
  '/v1/models/{model}': ['ft:gpt-4o-mini:org::M1', 'fine_tuned_model'],
  // Realtime calls are made over WebRTC/SIP, not through an answer the gateway reads.
  '/v1/realtime/calls/{call_id}': ['rtc_R1', null],
  '/v1/responses/{response_id}': ['resp_R1', 'response'],
  '/v1/skills/{skill_id}': ['skill_S1', 'skill'],
  '/v1/skills/{}/versions/{version}': ['2', null],
  '/v1/threads/{thread_id}': ['thread_T1', 'thread'],
  '/v1/threads/{}/messages/{message_id}': ['msg_M1', null],
  '/v1/threads/{}/runs/{run_id}': ['run_R1', null],
  '/v1/threads/{}/runs/{}/steps/{step_id}': ['step_S1', null],
  '/v1/uploads/{upload_id}': ['upload_U1', 'upload'],
  '/v1/vector_stores/{vector_store_id}': ['vs_V1', 'vector_store'],
  '/v1/vector_stores/{}/file_batches/{batch_id}': ['vsfb_B1', null],
  // A vector store's file is the file itself: both must be the caller's.
  '/v1/vector_stores/{}/files/{file_id}': ['file-F2', 'file'],
  '/v1/videos/characters/{character_id}': ['char_C1', 'video_character'],
  '/v1/videos/{video_id}': ['video_V1', 'video'],
};

describe('every path parameter of the spec', () => {
  const routes = loadRoutes().filter((r) => !r.group.startsWith('admin'));
  /** The table's key for each parameter of a path: the path up to it, earlier parameters as `{}`. */
  const parameters = (path: string): string[] =>
    [...path.matchAll(/\{[a-z_]+\}/g)].map((m) => path.slice(0, (m.index ?? 0) + m[0].length).replace(/\{[a-z_]+\}(?=.)/g, '{}'));

  it('is in the table, and every key of the table is a parameter of some route', () => {
    const seen = new Set(routes.flatMap((r) => parameters(r.path.replace(/\?.*$/, ''))));
    expect([...seen].filter((key) => !(key in PATH_PARAMETERS))).toEqual([]);
    expect(Object.keys(PATH_PARAMETERS).filter((key) => !seen.has(key))).toEqual([]);
  });

  it('is found as the kind the table says wherever it stands, and a parameter reached through its parent is not', () => {
    for (const route of routes) {
      const bare = route.path.replace(/\?.*$/, '');
      const keys = parameters(bare);
      let i = 0;
      const path = bare.replace(/\{[a-z_]+\}/g, () => PATH_PARAMETERS[keys[i++] as string]![0]);
      const expected = keys.map((key) => PATH_PARAMETERS[key]!).filter(([, kind]) => kind !== null).map(([sample]) => sample);
      expect(idsInOperation(matchOperation(route.method, path), path), `${route.method} ${route.path}`).toEqual(expected);
      for (const [sample, kind] of keys.map((key) => PATH_PARAMETERS[key]!)) expect(objectKindOf(sample), sample).toBe(kind ?? undefined);
    }
  });
});

describe('ids that JSON request bodies name', () => {
  it.each([
    ['a batch', { input_file_id: 'file-abc123', endpoint: '/v1/chat/completions', completion_window: '24h' }, ['file-abc123']],
    ['a fine-tuning job', { training_file: 'file-abc', validation_file: 'file-123', model: 'o4-mini' }, ['file-abc', 'file-123']],
    ['a fine-tuning job on a fine-tuned model', { training_file: 'file-abc', model: 'ft:gpt-4o-mini:org::m1' }, ['file-abc', 'ft:gpt-4o-mini:org::m1']],
    ['a chat completion with a fine-tuned model', { model: 'ft:gpt-4o-mini:org::m1', messages: [] }, ['ft:gpt-4o-mini:org::m1']],
    [
      'a response continuing another, with file search and a code interpreter container',
      {
        model: 'gpt-5.4',
        previous_response_id: 'resp_prev',
        conversation: 'conv_123',
        tools: [
          { type: 'file_search', vector_store_ids: ['vs_1', 'vs_2'] },
          { type: 'code_interpreter', container: 'cntr_9' },
          { type: 'code_interpreter', container: { type: 'auto', file_ids: ['file-ci'] } },
        ],
        input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file-in' }, { type: 'input_image', file_id: 'file-img' }, { type: 'input_text', text: 'see file-notme and resp_notme' }] }],
      },
      ['resp_prev', 'conv_123', 'vs_1', 'vs_2', 'cntr_9', 'file-ci', 'file-in', 'file-img'],
    ],
    ['a conversation named as an object', { model: 'gpt-5.4', conversation: { id: 'conv_obj' }, input: 'hi' }, ['conv_obj']],
    [
      'an assistant with tool resources',
      { model: 'gpt-4o', tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: ['vs_123'] }, code_interpreter: { file_ids: ['file-a', 'file-b'] } } },
      ['vs_123', 'file-a', 'file-b'],
    ],
    [
      'a thread and run with attachments',
      { assistant_id: 'asst_abc123', thread: { messages: [{ role: 'user', content: 'Hello', attachments: [{ file_id: 'file-att', tools: [{ type: 'file_search' }] }] }] } },
      ['asst_abc123', 'file-att'],
    ],
    ['a vector store file batch', { files: [{ file_id: 'file-abc123', attributes: { category: 'finance', file_id: 'file-attr' } }, { file_id: 'file-abc456' }], file_ids: ['file-abc789'] }, ['file-abc123', 'file-abc456', 'file-abc789']],
    ['a chat message with a file part', { model: 'gpt-4o', messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: 'file-chat' } }] }] }, ['file-chat']],
    ['an eval run on a file', { name: 'run', data_source: { type: 'jsonl', source: { type: 'file_id', id: 'file-evaldata' } } }, ['file-evaldata']],
    ['a video edit', { video: { id: 'video_123' }, prompt: 'Make it night' }, ['video_123']],
    ['speech in a custom voice', { model: 'gpt-4o-mini-tts', input: 'Hello', voice: { id: 'voice_123abc' } }, ['voice_123abc']],
    ['speech in a built-in voice', { model: 'gpt-4o-mini-tts', input: 'Hello', voice: 'alloy' }, []],
    ['a container with a skill of its own and a built-in one', { name: 'c', skills: [{ type: 'skill_reference', skill_id: 'skill_4db6f1a2c9e73508b41f9da06e2c7b5f' }, { type: 'skill_reference', skill_id: 'openai-spreadsheets' }] }, ['skill_4db6f1a2c9e73508b41f9da06e2c7b5f']],
    ['metadata is the caller’s own', { input_file_id: 'file-real', metadata: { file_id: 'file-meta', thread_id: 'thread_meta' } }, ['file-real']],
    [
      'a function whose JSON schema has a file_id property',
      { model: 'gpt-4o', tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { file_id: { type: 'string', const: 'file-schema' } } } } }], messages: [] },
      [],
    ],
    ['ids of untracked shapes', { file_id: 'abc', thread_id: 42, file_ids: ['x', null], vector_store_ids: 'vs_string' }, ['vs_string']],
    ['the same id twice', { file_id: 'file-x', attachments: [{ file_id: 'file-x' }] }, ['file-x']],
    ['not an object', ['file-x'], []],
  ])('%s', (_name, body, ids) => {
    expect(idsInBody(body)).toEqual(ids);
  });

  it('stops at a depth no request needs', () => {
    let deep: Record<string, unknown> = { file_id: 'file-deep' };
    for (let i = 0; i < 100; i++) deep = { nested: deep };
    expect(idsInBody(deep)).toEqual([]);
    expect(idsInBody({ a: { b: { file_id: 'file-shallow' } } })).toEqual(['file-shallow']);
  });
});

describe('ids a whole request names', () => {
  it('path first, then body, once each', () => {
    const named = (method: string, path: string, body?: unknown) => namedObjectIds(idsInOperation(matchOperation(method, path), path), body);
    expect(named('POST', '/v1/vector_stores/vs_1/files', { file_id: 'file-2', attributes: {} })).toEqual(['vs_1', 'file-2']);
    expect(named('POST', '/v1/threads/thread_1/runs', { assistant_id: 'asst_1', thread_id: 'thread_1' })).toEqual(['thread_1', 'asst_1']);
    expect(named('GET', '/v1/files/file-1')).toEqual(['file-1']);
    // An operation the table does not know still names every id-shaped segment of its path.
    expect(named('POST', '/v1/files/file-1/somewhere_new')).toEqual(['file-1']);
  });
});

describe('list endpoints of owned objects', () => {
  it.each([
    ['/v1/files', 'file'],
    ['/v1/files?purpose=batch&limit=100', 'file'],
    ['/v1/batches', 'batch'],
    ['/v1/vector_stores', 'vector_store'],
    ['/v1/assistants', 'assistant'],
    ['/v1/fine_tuning/jobs', 'fine_tuning_job'],
    ['/v1/containers', 'container'],
    ['/v1/videos', 'video'],
    ['/v1/evals', 'eval'],
    ['/v1/chat/completions', 'chat_completion'],
    ['/v1/skills', 'skill'],
    ['/v1/audio/voice_consents', 'voice_consent'],
    ['/v1/chatkit/threads', 'chatkit_thread'],
    ['/v1/chatkit/threads?user=u1', 'chatkit_thread'],
    ['/v1/models', 'fine_tuned_model'],
  ])('GET %s lists %s objects', (path, kind) => {
    expect(listedObjectKind(matchOperation('GET', checkTarget(path).path))).toBe(kind);
  });

  it.each([
    ['POST', '/v1/files'],
    ['GET', '/v1/files/file-abc123'],
    ['GET', '/v1/models/gpt-4o'],
    ['GET', '/v1/threads/thread_1/messages'],
    ['GET', '/v1/vector_stores/vs_1/files'],
    ['GET', '/v1/chatkit/threads/cthr_1/items'],
  ])('%s %s is not one', (method, path) => {
    expect(listedObjectKind(matchOperation(method, path))).toBeUndefined();
  });

  it('every top-level GET of routes.tsv is classified, and the lists are exactly these', () => {
    const topLevelGets = loadRoutes()
      .filter((r) => !r.group.startsWith('admin') && r.method === 'GET' && !r.path.includes('{'))
      .map((r) => r.path);
    const lists = topLevelGets.filter((p) => listedObjectKind(matchOperation('GET', p)) !== undefined);
    expect(topLevelGets.filter((p) => !lists.includes(p))).toEqual([]);
  });

  it("filters a list answer down to the caller's objects", () => {
    const page = {
      object: 'list',
      data: [
        { id: 'file-1', object: 'file' },
        { id: 'file-2', object: 'file' },
        { id: 'file-3', object: 'file' },
      ],
      first_id: 'file-1',
      last_id: 'file-3',
      has_more: false,
    };
    expect(filterListAnswer(page, (id) => id !== 'file-1')).toEqual({ ...page, data: [page.data[1], page.data[2]], first_id: 'file-2', last_id: 'file-3' });
    expect(filterListAnswer(page, () => false)).toEqual({ ...page, data: [], first_id: null, last_id: null });
    const bare = { object: 'list', data: [{ id: 'vs_1' }], has_more: false };
    expect(filterListAnswer(bare, () => true)).toEqual(bare);
    expect(filterListAnswer({ id: 'file-1', object: 'file' }, () => true)).toBeUndefined();
  });
});

describe('requests that may create objects (checked against pool.maxObjectsPerUser before they are sent)', () => {
  it('names only POST operations of routes.tsv', () => {
    const posts = new Set(loadRoutes().filter((r) => r.method === 'POST').map((r) => r.operationId));
    expect([...CREATING_OPERATIONS].filter((id) => !posts.has(id))).toEqual([]);
  });

  it.each([
    ['POST', '/v1/files', undefined, true],
    ['POST', '/v1/uploads/upload_1/complete', {}, true],
    ['POST', '/v1/vector_stores', { name: 'x' }, true],
    ['POST', '/v1/conversations', {}, true],
    ['POST', '/v1/threads/runs', { assistant_id: 'asst_1' }, true],
    ['POST', '/v1/videos/video_1/remix', { prompt: 'x' }, true],
    ['POST', '/v1/chatkit/sessions', { user: 'u' }, true],
    ['POST', '/v1/responses', { model: 'm', input: 'hi' }, true],
    ['POST', '/v1/responses', { model: 'm', input: 'hi', store: false }, false],
    ['POST', '/v1/chat/completions', { model: 'm', messages: [] }, false],
    ['POST', '/v1/chat/completions', { model: 'm', messages: [], store: true }, true],
    ['POST', '/v1/threads/thread_1/runs', { assistant_id: 'asst_1' }, false],
    ['POST', '/v1/vector_stores/vs_1/files', { file_id: 'file-1' }, false],
    ['POST', '/v1/batches/batch_1/cancel', {}, false],
    ['POST', '/v1/embeddings', { model: 'm', input: 'x' }, false],
    ['GET', '/v1/files', undefined, false],
    ['DELETE', '/v1/files/file-1', undefined, false],
  ] as const)('%s %s %j: %s', (method, target, body, creates) => {
    expect(createsObjects(op(method, target), body)).toBe(creates);
  });
});
