// The usage of a batch's output file, summed line by line as it streams: each line is one request's
// answer, `{"id", "custom_id", "response": {"status_code", "body": {..., "usage"}}, "error"}`.
// A line that does not parse or holds no usage adds nothing (a failed request is not billed).
import type { Readable } from 'node:stream';
import { type TokenUsage, normalizeUsage } from '../quota/usage.js';
import { BATCH_MAX_LINE_BYTES } from './batch-input.js';
import { jsonlLines } from './jsonl.js';

/** An output file is one answer per input line: its bound is OpenAI's answer sizes, not the input's. */
const OUTPUT_MAX_BYTES = 4 * 1024 * 1024 * 1024;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

export async function batchOutputUsage(content: Readable): Promise<TokenUsage> {
  const sum: TokenUsage = { input: 0, cachedInput: 0, output: 0 };
  try {
    for await (const { text } of jsonlLines(content, { lineBytes: BATCH_MAX_LINE_BYTES * 4, fileBytes: OUTPUT_MAX_BYTES })) {
      let line: unknown;
      try {
        line = JSON.parse(text);
      } catch {
        continue;
      }
      const response = isObject(line) && isObject(line.response) ? line.response : undefined;
      const usage = response && isObject(response.body) ? normalizeUsage(response.body.usage) : undefined;
      if (!usage) continue;
      sum.input += usage.input;
      sum.cachedInput += usage.cachedInput;
      sum.output += usage.output;
    }
  } finally {
    content.destroy();
  }
  return sum;
}
