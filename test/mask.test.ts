// Key material never leaves in an upstream error body (docs/reliability.md, case 12): OpenAI-style tokens keep
// at most their last 4 characters, configured pool secrets of any shape are replaced verbatim.
import { describe, expect, it } from 'vitest';
import { createMasker, maskKeyMaterial } from '../src/relay/mask.js';
import { leakedLines } from './helpers/log-capture.js';

const POOL_KEY = 'sk-proj-Zx81kQ2mV7tLp0aRw4YcN6bHe3uJd9sF1gK5oI8qT2vX0zPA';
const SERVICE_KEY = 'sk-svcacct-Qm3Tz8Lw1Kp5Vn7Rx2Yb4Hc6Jd0Fg9Se8Ua3Wi5Oq7Pt1Zk3Xw';
const AZURE_KEY = '0f3c9a7e5b1d4c2a8e6f0b9d7c5a3e1f';

describe('OpenAI-style tokens', () => {
  it.each([
    ['a whole project key', `Incorrect API key provided: ${POOL_KEY}.`, 'Incorrect API key provided: sk-***0zPA.'],
    ['a service account key', `key ${SERVICE_KEY} revoked`, 'key sk-***k3Xw revoked'],
    ['a legacy key', 'sk-abcdefghijklmnopqrstuvwxyz012345 x', 'sk-***2345 x'],
    ['a session key', 'sess-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd', 'sess-***abcd'],
    ["OpenAI's own starred form", 'Incorrect API key provided: sk-proj-********************************************************************************************************************************************************wXyZ. You can find your API key at https://platform.openai.com/account/api-keys.', 'Incorrect API key provided: sk-***wXyZ. You can find your API key at https://platform.openai.com/account/api-keys.'],
    ['the older starred form', 'Incorrect API key provided: sk-abc12***************************************wxyz.', 'Incorrect API key provided: sk-***wxyz.'],
    ['a short token: no tail', 'token sk-abc***wxyz here', 'token sk-*** here'],
    ['a token ending in stars: no tail', 'sk-proj-abcdefghijklmnop********', 'sk-***'],
    ['in JSON', JSON.stringify({ error: { message: `Incorrect API key provided: ${POOL_KEY}`, code: 'invalid_api_key' } }), JSON.stringify({ error: { message: 'Incorrect API key provided: sk-***0zPA', code: 'invalid_api_key' } })],
    ['after =, quotes and a dash', `key=${POOL_KEY} "${POOL_KEY}" x-${POOL_KEY}`, 'key=sk-***0zPA "sk-***0zPA" x-sk-***0zPA'],
    ['two in one text', `${POOL_KEY} and ${SERVICE_KEY}`, 'sk-***0zPA and sk-***k3Xw'],
  ])('%s', (_name, text, masked) => {
    expect(maskKeyMaterial(text)).toBe(masked);
  });

  it.each([
    ['prose without keys', 'The model `gpt-4o` does not exist or you do not have access to it.'],
    ['a word that ends in sk', 'task-force and desk-lamp and risk-free'],
    ['sk- followed by too little', 'scikit is sk-learn'],
    ['an empty string', ''],
  ])('leaves %s alone', (_name, text) => {
    expect(maskKeyMaterial(text)).toBe(text);
  });

  it('masking twice changes nothing more', () => {
    const once = maskKeyMaterial(`a ${POOL_KEY} b sess-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd`);
    expect(maskKeyMaterial(once)).toBe(once);
  });

  it('what it writes passes the suite-wide log scan', () => {
    expect(/\bsk-[A-Za-z0-9_-]{6,}/.test(maskKeyMaterial(`x ${POOL_KEY} y`))).toBe(false);
    expect(leakedLines()).toEqual([]);
  });
});

describe('configured pool secrets', () => {
  const mask = createMasker([POOL_KEY, AZURE_KEY, 'short']);

  it('of any shape, replaced verbatim, keeping the last 4', () => {
    expect(mask.text(`azure said: key ${AZURE_KEY} is invalid`)).toBe('azure said: key ***3e1f is invalid');
  });

  it('an sk- secret inside other characters is still found', () => {
    expect(mask.text(`[${POOL_KEY}]`)).toBe('[sk-***0zPA]');
    expect(mask.text(`id_${POOL_KEY}`)).toBe('id_sk-***0zPA');
  });

  it('a configured value too short to be a key is not hunted', () => {
    expect(mask.text('a short story')).toBe('a short story');
  });

  it('the same bytes come back when there is nothing to mask', () => {
    const body = Buffer.from('{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}');
    expect(mask.bytes(body)).toBe(body);
  });

  it('bytes are masked as text', () => {
    const body = Buffer.from(JSON.stringify({ error: { message: `Bad key ${AZURE_KEY} and ${POOL_KEY}` } }));
    expect(mask.bytes(body).toString()).toBe(JSON.stringify({ error: { message: 'Bad key ***3e1f and sk-***0zPA' } }));
  });

  it('a masker without secrets still masks tokens', () => {
    expect(createMasker().bytes(Buffer.from(`k ${POOL_KEY}`)).toString()).toBe('k sk-***0zPA');
  });
});

describe('configured pool secrets in the bytes a client gets', () => {
  const mask = createMasker([POOL_KEY, AZURE_KEY]);
  const escapedDashes = POOL_KEY.replaceAll('-', '\\u002d');

  it.each([
    ['its dashes escaped', `{"m":"${escapedDashes}"}`, '{"m":"sk-***0zPA"}'],
    ['every character escaped', `{"m":"${[...AZURE_KEY].map((c) => `\\u00${c.charCodeAt(0).toString(16)}`).join('')}"}`, '{"m":"***3e1f"}'],
    ['a slash escape around it', `{"m":"a\\/${POOL_KEY}\\/b"}`, '{"m":"a\\/sk-***0zPA\\/b"}'],
  ])('found with %s', (_name, body, masked) => {
    expect(mask.secrets(Buffer.from(body)).toString()).toBe(masked);
    expect(mask.bytes(Buffer.from(body)).toString()).toBe(masked);
  });

  it('success bodies keep other sk- tokens: only the pool secrets are masked there', () => {
    const body = Buffer.from(`{"m":"sk-abcdefghijklmnopqrstuvwxyz012345 ${POOL_KEY}"}`);
    expect(mask.secrets(body).toString()).toBe('{"m":"sk-abcdefghijklmnopqrstuvwxyz012345 sk-***0zPA"}');
  });

  it('header values: percent-encoded too, and undefined when there is nothing to mask', () => {
    expect(mask.header(`https://x.example/?k=${POOL_KEY.replaceAll('-', '%2d')}`)).toBe('https://x.example/?k=sk-***0zPA');
    expect(mask.header('max-age=0, 50%')).toBeUndefined();
    expect(mask.inName(`x-${POOL_KEY.toLowerCase()}`)).toBe(true);
    expect(mask.inName('x-request-id')).toBe(false);
  });

  /** The text streamed through one masker in the given pieces. */
  function streamed(pieces: Buffer[]): string {
    const stream = mask.stream();
    if (!stream) throw new Error('a masker with secrets streams');
    return Buffer.concat([...pieces.map((p) => stream.chunk(p)), stream.end()]).toString();
  }

  it.each([
    ['as it is', `data: {"c":"key ${POOL_KEY} and ${AZURE_KEY}"}\n\n`],
    ['escaped', `data: {"c":"key ${escapedDashes} and \\u0030${AZURE_KEY.slice(1)}"}\n\n`],
  ])('a stream cut anywhere, in two pieces or byte by byte, is masked as if whole (%s)', (_name, text) => {
    const bytes = Buffer.from(text);
    const whole = mask.secrets(bytes).toString();
    expect(whole).toBe('data: {"c":"key sk-***0zPA and ***3e1f"}\n\n');
    for (let cut = 0; cut <= bytes.length; cut++) expect(streamed([bytes.subarray(0, cut), bytes.subarray(cut)])).toBe(whole);
    expect(streamed([...bytes].map((b) => Buffer.from([b])))).toBe(whole);
  });

  it('holds back only what may begin a secret, and nothing of a chunk that ends an SSE event', () => {
    const stream = mask.stream();
    const event = Buffer.from('data: {"c":"hi"}\n\n');
    expect(stream?.chunk(event)).toBe(event);
    expect(stream?.chunk(Buffer.from('data: {"c":"sk-pr')).toString()).toBe('data: {"c":"');
    expect(stream?.chunk(Buffer.from('ose"}\n\n')).toString()).toBe('sk-prose"}\n\n');
    expect(stream?.chunk(Buffer.from('data: "a\\u00')).toString()).toBe('data: "a');
    expect(stream?.end().toString()).toBe('\\u00');
  });

  it('a masker without secrets has no stream to run', () => {
    expect(createMasker().stream()).toBeUndefined();
  });
});
