// The metering table: what the gateway does about the money each operation of the table may cost,
// decided before relaying. Every operation of spec/openai/routes.tsv has one decision, named here
// by its id, or given by one of two rules that test/operations-table.test.ts checks against the
// table: a GET or DELETE (none takes a body: it names no model and starts no work) is free unless
// named, and so is every operation of an organization admin key (organization management). The same
// test fails when an operation has no decision or a decision names an id the table lacks, and
// docs/metering.md is generated from these records (npm run docs:metering), so it cannot drift.
//
// The decisions, one record each (one line per operation, so that changes stay small):
// - free: costs nothing by itself (FREE_WRITES, and the two rules above).
// - metered now:
//   - `tokens` (TOKENS): billed in tokens; the JSON body's worst case is estimated with the named
//     shape (src/quota/estimate.ts) and the usage the answer reports is charged.
//   - `model` (BY_MODEL): billed by the model the request names; the usage the answer reports is
//     charged. A form (`form`) reserves the worst case of its file and fields
//     (src/quota/units-estimate.ts); other requests reserve nothing ahead.
//   - `capped` (CAPPED): the request's own caps bound all it may use, though it runs on after the
//     answer: they are reserved and charged (thread runs).
//   - `flat` (FLAT): a price per call read from the request (src/quota/flat-prices.ts), reserved
//     and charged (videos by the second, containers by their memory).
// - metered later (LATER): charged when the gateway sees the work done; named by the charge.
// - refused unless allowed (ALLOWED): spends where the gateway cannot see or bound it (a credential
//   used directly against OpenAI, a job over a file of unknown size). Refused to every user whose
//   `allow` list lacks its permission; an allowed call reserves and is charged the permission's
//   amount (settings `quota.allowedRouteUsd`).
// - `unbounded` (UNBOUNDED): refused to a user with a model list or a dollar limit, relayed and not
//   charged for the others.
//
// `models`: where else in the JSON body a model stands (dotted paths, `*` for any member): each
// one found is checked against the user's model list (src/quota/bounds.ts).
import type { OperationRow } from './table.js';

export type EstimateShape = 'chat' | 'completions' | 'responses' | 'embeddings' | 'moderations' | 'images' | 'speech';

/** How the worst case of a form is read (src/quota/units-estimate.ts): an audio file, or images. */
export type FormShape = 'audio' | 'images';

/** What an admin grants a user (`allow`) to open the operations refused unless allowed. */
export const PERMISSIONS = ['realtime_client_secrets', 'realtime_calls', 'chatkit_sessions', 'eval_runs', 'fine_tuning', 'graders', 'video_edits'] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** How a flat price is read from the request (src/quota/flat-prices.ts). */
export type FlatCharge = 'video_seconds' | 'video_extension_seconds' | 'container_memory';

export type Cost = (
  | { kind: 'free' }
  | { kind: 'tokens'; shape: EstimateShape; defaultModel?: string }
  | { kind: 'model'; defaultModel?: string; form?: FormShape }
  | { kind: 'capped'; promptCap: string; outputCap: string }
  | { kind: 'flat'; charge: FlatCharge; defaultModel?: string }
  | { kind: 'later'; charge: string }
  | { kind: 'allowed'; permission: Permission }
  | { kind: 'unbounded' }
) & { models?: readonly string[]; note?: string };

type Entry<T> = Record<string, T & { models?: readonly string[]; note?: string }>;

const TOKENS: Entry<{ shape: EstimateShape; defaultModel?: string }> = {
  createChatCompletion: { shape: 'chat' },
  createCompletion: { shape: 'completions' },
  createResponse: { shape: 'responses' },
  beta_createResponse: { shape: 'responses' },
  // Compaction runs the model over the conversation: billed as a response.
  Compactconversation: { shape: 'responses' },
  beta_Compactconversation: { shape: 'responses' },
  createEmbedding: { shape: 'embeddings' },
  // The spec's defaults: the upstream uses them when the request names no model.
  createModeration: { shape: 'moderations', defaultModel: 'omni-moderation-latest' },
  createImage: { shape: 'images', defaultModel: 'dall-e-2' },
  createSpeech: { shape: 'speech' },
};

const BY_MODEL: Entry<{ defaultModel?: string; form?: FormShape }> = {
  createTranscription: { form: 'audio' },
  createTranslation: { form: 'audio' },
  createImageEdit: { defaultModel: 'gpt-image-1.5', form: 'images' },
  createImageVariation: { defaultModel: 'dall-e-2', form: 'images' },
};

const CAPPED: Entry<{ promptCap: string; outputCap: string }> = {
  // A run goes on after its answer, over several model calls, with the assistant's model unless
  // the request names one (the assistant can be changed at any time, so reading it proves
  // nothing). Its caps bound the whole run, tool-output continuations included.
  createRun: { promptCap: 'max_prompt_tokens', outputCap: 'max_completion_tokens' },
  createThreadAndRun: { promptCap: 'max_prompt_tokens', outputCap: 'max_completion_tokens' },
};

const FLAT: Entry<{ charge: FlatCharge; defaultModel?: string }> = {
  createVideo: { charge: 'video_seconds', defaultModel: 'sora-2' },
  // The source video's model is not in the request: the highest price per second.
  CreateVideoExtend: { charge: 'video_extension_seconds' },
  // Billed per container session (20 minutes of use) by its memory limit.
  CreateContainer: { charge: 'container_memory' },
};

const LATER: Entry<{ charge: string }> = {
  // Checked and reserved at creation from its input file (src/relay/batch-input.ts), charged when
  // the batch is first seen ended (src/relay/later-route.ts). A `background: true` response is
  // charged later too, though its operation is createResponse: decided there, by the same rule.
  createBatch: { charge: 'the usage of its output file, at the batch discount' },
};

const ALLOWED: Entry<{ permission: Permission }> = {
  // Credentials used directly against OpenAI: the gateway never sees what they spend.
  'create-realtime-client-secret': { permission: 'realtime_client_secrets', models: ['session.model'] },
  'create-realtime-session': { permission: 'realtime_client_secrets' },
  'create-realtime-transcription-session': { permission: 'realtime_client_secrets', models: ['input_audio_transcription.model'] },
  'create-realtime-translation-client-secret': { permission: 'realtime_client_secrets', models: ['session.model'] },
  // A WebRTC or SIP session whose media flows between the caller and OpenAI.
  'create-realtime-call': { permission: 'realtime_calls' },
  'accept-realtime-call': { permission: 'realtime_calls' },
  CreateChatSessionMethod: { permission: 'chatkit_sessions' },
  // Jobs over datasets and files whose size the request does not show.
  createEvalRun: { permission: 'eval_runs', models: ['data_source.model'] },
  createFineTuningJob: { permission: 'fine_tuning' },
  runGrader: { permission: 'graders', models: ['grader.model', 'grader.graders.*.model'] },
  // As long as the source video, which the request does not show.
  CreateVideoRemix: { permission: 'video_edits' },
  CreateVideoEdit: { permission: 'video_edits' },
};

const UNBOUNDED = new Set<string>([]);

/** Writes that cost nothing by themselves: object management, uploads, cancellations, token counts. */
const FREE_WRITES: Entry<object> = {
  createAssistant: {}, modifyAssistant: {}, createThread: {}, modifyThread: {}, createMessage: {}, modifyMessage: {},
  modifyRun: {}, cancelRun: {},
  submitToolOuputsToRun: { note: 'continues a run within the caps its creation was charged' },
  createVoiceConsent: {}, updateVoiceConsent: {}, createVoice: {}, cancelBatch: {}, updateChatCompletion: {},
  CancelChatSessionMethod: {}, CreateContainerFile: {}, Createcontentprovenancecheck: {}, createConversation: {},
  updateConversation: {}, createConversationItems: {},
  // Its graders' models run in every run of the eval.
  createEval: { models: ['testing_criteria.*.model', 'testing_criteria.*.graders.*.model'] },
  updateEval: {}, cancelEvalRun: {}, createFile: {},
  validateGrader: { note: 'checks a grader, runs no model' },
  createFineTuningCheckpointPermission: {}, cancelFineTuningJob: {},
  pauseFineTuningJob: {}, resumeFineTuningJob: { note: 'resumes a job within what its creation was charged' },
  'hangup-realtime-call': {}, 'refer-realtime-call': {}, 'reject-realtime-call': {},
  Getinputtokencounts: {}, beta_Getinputtokencounts: {}, cancelResponse: {}, beta_cancelResponse: {},
  CreateSkill: {}, UpdateSkillDefaultVersion: {}, CreateSkillVersion: {},
  createUpload: {}, cancelUpload: {}, completeUpload: {}, addUploadPart: {},
  // OpenAI bills vector stores by the GB-day stored, not per call (see docs/metering.md).
  createVectorStore: { note: 'storage is billed per GB-day, not per call' },
  modifyVectorStore: {},
  createVectorStoreFileBatch: { note: 'storage is billed per GB-day, not per call' },
  cancelVectorStoreFileBatch: {},
  createVectorStoreFile: { note: 'storage is billed per GB-day, not per call' },
  updateVectorStoreFileAttributes: {},
  searchVectorStore: { note: 'no per-call price: file search is billed as a tool call of a response' },
  CreateVideoCharacter: {},
};

type Named = readonly [string, Cost];
const named = <T extends object>(record: Entry<T>, make: (entry: T) => Cost): Named[] =>
  Object.entries(record).map(([id, entry]) => [id, make(entry)] as const);

/** Every decision named by id, in the order of the records above. */
export const DECISIONS: ReadonlyMap<string, Cost> = new Map<string, Cost>([
  ...named(TOKENS, (e) => ({ kind: 'tokens', ...e })),
  ...named(BY_MODEL, (e) => ({ kind: 'model', ...e })),
  ...named(CAPPED, (e) => ({ kind: 'capped', ...e })),
  ...named(FLAT, (e) => ({ kind: 'flat', ...e })),
  ...named(LATER, (e) => ({ kind: 'later', ...e })),
  ...named(ALLOWED, (e) => ({ kind: 'allowed', ...e })),
  ...[...UNBOUNDED].map((id): Named => [id, { kind: 'unbounded' }]),
  ...named(FREE_WRITES, (e) => ({ kind: 'free', ...e })),
]);

/** Every operation id the records name (an id named twice appears twice, for the test). */
export const NAMED_OPERATIONS: readonly string[] = [
  ...Object.keys(TOKENS),
  ...Object.keys(BY_MODEL),
  ...Object.keys(CAPPED),
  ...Object.keys(FLAT),
  ...Object.keys(LATER),
  ...Object.keys(ALLOWED),
  ...UNBOUNDED,
  ...Object.keys(FREE_WRITES),
];

/** Every operation id that may cost money. */
export const COSTED_OPERATIONS: readonly string[] = [...DECISIONS].filter(([, cost]) => cost.kind !== 'free').map(([id]) => id);

/** Which rule makes an operation free when no record names it; undefined when none does. */
export function freeByRule(row: Pick<OperationRow, 'method' | 'auth'>): string | undefined {
  if (row.auth.startsWith('AdminApiKey')) return 'organization admin key';
  if (row.method === 'GET' || row.method === 'DELETE') return row.method;
  return undefined;
}

const FREE: Cost = { kind: 'free' };
// A write no record names (the test forbids it): treated as an unknown write, priced by its model.
const UNDECIDED_WRITE: Cost = { kind: 'model' };

export function costOf(row: OperationRow): Cost {
  return DECISIONS.get(row.operationId) ?? (freeByRule(row) ? FREE : UNDECIDED_WRITE);
}
