// Whether the gateway saw the whole prompt of a WebSocket response (docs/websockets.md, Charges):
// only then is a usage above its worst case not believed. A prompt that names what the upstream
// reads by itself (a stored file, a stored prompt, an earlier item by id) or offers tools that
// fetch (file search, web search, MCP, code interpreter) may rightly cost more than the gateway
// could count: it is charged what the upstream reports, as over HTTP. What is not known to be
// inline counts as unseen.

import { type JsonObject as Json, isObject } from '../json-object.js';

// Content parts whose whole text or audio is in the event (audio counted from its bytes).
const INLINE_PARTS = new Set(['input_text', 'output_text', 'text', 'refusal', 'input_audio', 'audio', 'output_audio']);
// Tools whose calls come back as items the client sends: nothing is fetched upstream.
const COUNTED_TOOLS = new Set(['function', 'custom']);

function inlinePart(part: unknown): boolean {
  if (!isObject(part) || typeof part.type !== 'string' || part.file_id != null) return false;
  if (part.type === 'input_image') return typeof part.image_url === 'string' && part.image_url.startsWith('data:');
  return INLINE_PARTS.has(part.type);
}

const inlineContent = (content: unknown): boolean => typeof content === 'string' || (Array.isArray(content) && content.every(inlinePart));

/** One input or conversation item, all of it in the event. */
export function inlineItem(item: unknown): boolean {
  if (!isObject(item)) return false;
  const type = item.type ?? (item.role !== undefined ? 'message' : undefined);
  if (type === 'message') return inlineContent(item.content);
  if (type === 'function_call') return true;
  if (type === 'function_call_output') return inlineContent(item.output);
  return false;
}

/** A response's `input` (absent, text, or items), all of it in the event. */
export function inlineInput(input: unknown): boolean {
  if (input == null || typeof input === 'string') return true;
  return Array.isArray(input) && input.every(inlineItem);
}

/** No tool that reads something the gateway does not see. */
export function countedTools(tools: unknown): boolean {
  if (tools == null) return true;
  return Array.isArray(tools) && tools.every((tool) => isObject(tool) && typeof tool.type === 'string' && COUNTED_TOOLS.has(tool.type));
}
