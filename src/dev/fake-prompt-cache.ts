// The fake upstream's prompt cache (option `promptCache`): what OpenAI does per project, kept here
// per API key. Every prompt leaves its prefixes with the key that served it; a later prompt on the
// same key has its longest prefix seen there reported as `cached_tokens`. A prompt is cut into
// parts (chat messages; instructions and input items; a completion prompt in blocks of
// BLOCK_CHARS), and a prefix is a whole number of parts: enough to tell a pool that keeps a
// conversation on one key from one that spreads it. (OpenAI caches from 1,024 tokens on, in steps
// of 128; the fake caches any prefix, so that short test prompts show the effect.)
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { textChars } from './fake-openai-answers.js';

const BLOCK_CHARS = 512;

type Json = Record<string, unknown>;

/** The parts of a prompt, in order, for the operations that have a prompt cache. */
function partsOf(path: string, json: Json): unknown[] | undefined {
  switch (path) {
    case '/v1/chat/completions':
      return Array.isArray(json.messages) ? json.messages : [];
    case '/v1/responses': {
      const input = typeof json.input === 'string' ? [json.input] : Array.isArray(json.input) ? json.input : [];
      return [json.instructions ?? '', ...input];
    }
    case '/v1/completions': {
      const prompt = typeof json.prompt === 'string' ? json.prompt : JSON.stringify(json.prompt ?? '');
      const blocks: string[] = [];
      for (let i = 0; i < prompt.length; i += BLOCK_CHARS) blocks.push(prompt.slice(i, i + BLOCK_CHARS));
      return blocks;
    }
  }
  return undefined;
}

export class FakePromptCache {
  /** Per API key, the digests of every prefix its prompts had. */
  private readonly seen = new Map<string, Set<string>>();

  /**
   * The characters of the request's prompt already cached on its key (undefined when the operation
   * has no prompt cache), and the prompt's prefixes remembered for that key from now on.
   */
  cachedChars(path: string, headers: IncomingHttpHeaders, json: Json): number | undefined {
    const parts = partsOf(path, json);
    if (!parts) return undefined;
    const key = String(headers.authorization ?? headers['api-key'] ?? '');
    let seen = this.seen.get(key);
    if (!seen) this.seen.set(key, (seen = new Set()));
    let digest = '';
    let chars = 0;
    let cached = 0;
    let hit = true;
    for (const part of parts) {
      digest = createHash('sha1').update(digest).update(JSON.stringify(part) ?? '').digest('hex');
      chars += textChars(part);
      if (hit && seen.has(digest)) cached = chars;
      else hit = false;
      seen.add(digest);
    }
    return cached;
  }

  reset(): void {
    this.seen.clear();
  }
}
