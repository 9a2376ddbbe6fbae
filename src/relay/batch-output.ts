// The usage of a batch's output file, summed line by line as it streams: each line is one request's
// answer, `{"id", "custom_id", "response": {"status_code", "body": {..., "usage"}}, "error"}`.
// A line whose request failed (no 2xx `status_code`) adds nothing, as OpenAI bills it nothing. A
// line that answered but whose usage cannot be read (missing, negative, absurd, or the line does
// not parse) adds one line's share of the worst case, and the charge is marked estimated: an
// upstream that garbles its numbers never makes the work cheaper.
import type { Readable } from 'node:stream';
import { type TokenUsage, normalizeUsage } from '../quota/usage.js';
import { BATCH_MAX_LINE_BYTES } from './batch-input.js';
import { jsonlLines } from './jsonl.js';
import { isObject } from '../json-object.js';

/** An output file is one answer per input line: its bound is OpenAI's answer sizes, not the input's. */
const OUTPUT_MAX_BYTES = 4 * 1024 * 1024 * 1024;

type Json = Record<string, unknown>;

const COUNTS = ['prompt_tokens', 'completion_tokens', 'input_tokens', 'output_tokens', 'total_tokens'];

/** The usage, when every count it gives is a whole number the ledger can hold (a negative or
 * absurd one makes the whole object unreadable, not a zero). */
export function readableUsage(value: unknown): TokenUsage | undefined {
  if (!isObject(value)) return undefined;
  for (const field of COUNTS) {
    const n = value[field];
    if (n !== undefined && !(typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) return undefined;
  }
  return normalizeUsage(value);
}

export async function batchOutputUsage(content: Readable, perLine: TokenUsage): Promise<{ usage: TokenUsage; estimated: boolean }> {
  const sum: TokenUsage = { input: 0, cachedInput: 0, output: 0 };
  let estimated = false;
  const add = (usage: TokenUsage): void => {
    sum.input += usage.input;
    sum.cachedInput += usage.cachedInput;
    sum.output += usage.output;
  };
  try {
    for await (const { text } of jsonlLines(content, { lineBytes: BATCH_MAX_LINE_BYTES * 4, fileBytes: OUTPUT_MAX_BYTES })) {
      let line: unknown;
      try {
        line = JSON.parse(text);
      } catch {
        line = undefined;
      }
      // A request that failed: `"response": null` and its `error`.
      if (isObject(line) && line.response == null && line.error != null) continue;
      const response = isObject(line) && isObject(line.response) ? line.response : undefined;
      const status = response?.status_code;
      if (response && !(typeof status === 'number' && status >= 200 && status < 300)) continue;
      const usage = response && isObject(response.body) ? readableUsage(response.body.usage) : undefined;
      if (usage) add(usage);
      else {
        add(perLine);
        estimated = true;
      }
    }
  } finally {
    content.destroy();
  }
  return { usage: sum, estimated };
}
