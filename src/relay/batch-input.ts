// The check of a batch at `POST /v1/batches`, before anything reaches the upstream's batch route:
// the gateway reads the batch's input file from the upstream (on the pool key the file lives on),
// line by line as it streams, and refuses the batch (400, naming the line) when a line is not a
// request of the batch's endpoint, names a model the user may not use (or, under a dollar limit,
// one with no price), or when the file is past OpenAI's bounds. Else it sums the worst case of
// every line with the estimator of the endpoint's operation: what src/quota/later.ts reserves.
// A line naming a model alias (src/pool/aliases.ts) is refused: the file was uploaded before the
// batch, as any file is, and the upstream runs it as uploaded (docs/models.md, "Batches").
import type { Readable } from 'node:stream';
import { GatewayError } from '../errors.js';
import { modelAllowed } from '../models.js';
import { matchOperation } from '../operations/match.js';
import { estimateRequest } from '../quota/estimate.js';
import type { PriceTable } from '../quota/prices.js';
import type { TokenUsage } from '../quota/usage.js';
import type { User } from '../store/types.js';
import { factsOf } from './body.js';
import { checkJsonShape } from './json-shape.js';
import { FileTooLarge, LineTooLong, jsonlLines } from './jsonl.js';
import { isObject } from '../json-object.js';

/** OpenAI's bounds of a batch input file (Batch API guide). */
export const BATCH_MAX_REQUESTS = 50_000;
export const BATCH_MAX_BYTES = 200 * 1024 * 1024;
/** One line is parsed whole: the JSON body limit's order of magnitude, kept lower for a file. */
export const BATCH_MAX_LINE_BYTES = 10 * 1024 * 1024;

export interface BatchWorstCase {
  model: string;
  requests: number;
  worst: TokenUsage;
}

type Json = Record<string, unknown>;

const refuse = (message: string, code: 'invalid_request' | 'model_not_allowed' = 'invalid_request'): GatewayError =>
  new GatewayError(code, { status: 400, param: 'input_file_id', message });

// The shapes whose every cost is tokens the output file reports. Images (dall-e-* bill per image,
// and their answers report no usage) and speech (tts-1 bills per character) would run unpriced.
const BATCH_SHAPES: ReadonlySet<string> = new Set(['chat', 'completions', 'responses', 'embeddings', 'moderations']);

/** The endpoint's operation, when the gateway can meter it in tokens. */
export function batchEndpointCost(endpoint: unknown): ReturnType<typeof matchOperation>['cost'] {
  if (typeof endpoint !== 'string' || !endpoint.startsWith('/v1/')) {
    throw new GatewayError('invalid_request', { param: 'endpoint', message: 'endpoint must be a /v1 path, such as /v1/chat/completions.' });
  }
  const cost = matchOperation('POST', endpoint).cost;
  if (cost.kind !== 'tokens' || !BATCH_SHAPES.has(cost.shape)) {
    throw new GatewayError('invalid_request', { param: 'endpoint', message: `${endpoint} is not an endpoint this gateway can meter in a batch.` });
  }
  return cost;
}

export interface BatchInputCheck {
  user: User;
  endpoint: string;
  prices: PriceTable;
  defaultMaxOutput: number;
  /** The user has a dollar limit: every model needs a price. */
  dollarLimited: boolean;
  /** The name is an alias on the upstream the batch runs on (its input file's). */
  isAlias?: (model: string) => boolean;
  /** Checks the objects a line's body names (a previous response, a file) as the request itself
   * would be checked over HTTP: throws the refusal (404 for another user's). */
  checkObjects?: (body: Json, line: number) => Promise<void>;
}

/** Reads the whole input file (streamed) and returns its worst case, or throws the refusal. */
export async function checkBatchInput(content: Readable, check: BatchInputCheck): Promise<BatchWorstCase> {
  const cost = batchEndpointCost(check.endpoint);
  let model: string | undefined;
  let requests = 0;
  const worst: TokenUsage = { input: 0, cachedInput: 0, output: 0 };
  try {
    for await (const { n, text } of jsonlLines(content, { lineBytes: BATCH_MAX_LINE_BYTES, fileBytes: BATCH_MAX_BYTES })) {
      if (++requests > BATCH_MAX_REQUESTS) throw refuse(`The input file holds more than ${BATCH_MAX_REQUESTS} requests.`);
      let line: unknown;
      try {
        // A key given twice is read one way here and maybe another upstream: refused, as in a body.
        checkJsonShape(Buffer.from(text));
      } catch (err) {
        throw refuse(`Line ${n} of the input file: ${err instanceof GatewayError ? err.message : 'it is malformed.'}`);
      }
      try {
        line = JSON.parse(text);
      } catch {
        throw refuse(`Line ${n} of the input file is not valid JSON.`);
      }
      if (!isObject(line)) throw refuse(`Line ${n} of the input file is not a JSON object.`);
      if (line.method !== 'POST') throw refuse(`Line ${n} of the input file: method must be "POST".`);
      if (line.url !== check.endpoint) {
        throw refuse(`Line ${n} of the input file: its url ${JSON.stringify(line.url)} is not the batch's endpoint ${check.endpoint}.`);
      }
      const body = line.body;
      if (!isObject(body)) throw refuse(`Line ${n} of the input file has no JSON object body.`);
      let facts;
      try {
        facts = factsOf(body);
      } catch (err) {
        throw refuse(`Line ${n} of the input file: ${err instanceof GatewayError ? err.message : 'its body is malformed.'}`);
      }
      const named = facts.model;
      if (named === undefined) throw refuse(`Line ${n} of the input file names no model.`);
      if (!modelAllowed(check.user, named)) throw refuse(`Line ${n} of the input file: this key may not use the model "${named}".`, 'model_not_allowed');
      if (check.isAlias?.(named)) {
        throw refuse(
          `Line ${n} of the input file names the model "${named}", an alias of this gateway. Aliases are not replaced inside a batch's input file (the upstream runs the file as it was uploaded): name the upstream's model.`,
          'model_not_allowed',
        );
      }
      if (check.dollarLimited && !check.prices.lookup(named)) {
        throw refuse(`Line ${n} of the input file: the model "${named}" has no price in this gateway's price table, so it cannot be used under a dollar limit.`, 'model_not_allowed');
      }
      // OpenAI runs a batch on one model; a price per line would need every line's model kept.
      if (model !== undefined && named !== model) throw refuse(`Line ${n} of the input file names the model "${named}"; a batch runs one model, and line 1 named "${model}".`);
      model = named;
      await check.checkObjects?.(body, n);
      const estimate = estimateRequest(cost, named, body, facts, check.defaultMaxOutput);
      worst.input += estimate.promptTokens;
      worst.output += estimate.maxOutputTokens;
    }
  } catch (err) {
    if (err instanceof LineTooLong) throw refuse(`Line ${err.line} of the input file is longer than ${err.limit} bytes.`);
    if (err instanceof FileTooLarge) throw refuse(`The input file is larger than ${err.limit} bytes.`);
    throw err;
  } finally {
    content.destroy();
  }
  if (model === undefined) throw refuse('The input file holds no request.');
  return { model, requests, worst };
}
