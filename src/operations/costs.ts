// What each operation of the table costs, as the gateway can know it before relaying. One entry per
// operation that may cost money; every other operation of the table is free by nature (reads,
// lists, deletions, uploads, object management). test/operations-costs.test.ts checks that every
// id named here is in the table and that every write the table holds was looked at.
//
// - `tokens`: billed in tokens; the gateway reads the JSON body, estimates its worst case with the
//   named estimator shape (src/quota/estimate.ts) and charges the usage the answer reports.
// - `model`: billed by the model the request names (in the body or the form); the gateway cannot
//   count its tokens ahead, so it reserves nothing and charges the usage the answer reports.
// - `later`: billed after the answer (a batch): the gateway reserves a worst case it reads when the
//   request is made and charges the usage when it sees the work end (src/quota/later.ts).
// - `unbounded`: may cost money the gateway can neither read from the request nor meter from the
//   answer: batches, runs with an assistant's model, client secrets that spend outside the gateway.
//
// The rule built on it (src/quota/bounds.ts): a request whose cost the gateway cannot bound is
// refused for a user with a model list or a dollar limit.
import type { OperationRow } from './table.js';

export type EstimateShape = 'chat' | 'completions' | 'responses' | 'embeddings' | 'moderations' | 'images' | 'speech';

export type Cost =
  | { kind: 'free' }
  | { kind: 'tokens'; shape: EstimateShape; defaultModel?: string }
  | { kind: 'model'; defaultModel?: string }
  | { kind: 'later' }
  | { kind: 'unbounded' };

const TOKENS: Record<string, { shape: EstimateShape; defaultModel?: string }> = {
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

const BY_MODEL: Record<string, { defaultModel?: string }> = {
  createTranscription: {},
  createTranslation: {},
  createImageEdit: { defaultModel: 'gpt-image-1.5' },
  createImageVariation: { defaultModel: 'dall-e-2' },
  createVideo: { defaultModel: 'sora-2' },
  // With no `model`, a run uses its assistant's, which the request does not show.
  createRun: {},
  createThreadAndRun: {},
  createFineTuningJob: {},
};

// Checked and reserved at creation from the input file, charged when the batch is seen ended.
const LATER = new Set(['createBatch']);

const UNBOUNDED = new Set([
  // The run goes on with the assistant's model.
  'submitToolOuputsToRun',
  'createEvalRun',
  'runGrader',
  // Remixes, edits and extensions are billed by a video's model, which the request does not name.
  'CreateVideoRemix',
  'CreateVideoEdit',
  'CreateVideoExtend',
  'CreateContainer',
  // Client secrets and sessions let a browser spend on the pool key without the gateway.
  'create-realtime-call',
  'accept-realtime-call',
  'create-realtime-client-secret',
  'create-realtime-session',
  'create-realtime-transcription-session',
  'create-realtime-translation-client-secret',
  'CreateChatSessionMethod',
]);

/** Every operation id the table above names, for the completeness test. */
export const COSTED_OPERATIONS: readonly string[] = [...Object.keys(TOKENS), ...Object.keys(BY_MODEL), ...LATER, ...UNBOUNDED];

export function costOf(row: OperationRow): Cost {
  const id = row.operationId;
  const tokens = TOKENS[id];
  if (tokens) return { kind: 'tokens', ...tokens };
  const byModel = BY_MODEL[id];
  if (byModel) return { kind: 'model', ...byModel };
  if (LATER.has(id)) return { kind: 'later' };
  if (UNBOUNDED.has(id)) return { kind: 'unbounded' };
  return { kind: 'free' };
}
