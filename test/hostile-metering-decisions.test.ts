// A hostile user with a dollar limit, a token limit or a model list tries every route class that
// makes OpenAI do paid work later or elsewhere (docs/metering.md): credentials minted for use
// outside the gateway, jobs over datasets of unknown size, thread runs with the assistant's model,
// videos, containers, models hidden inside the body. Each must be refused before it reaches the
// upstream, or admitted against the user's limits and charged what the metering table says.
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ALLOWED_ROUTE_USD, ConfigError, loadConfig } from '../src/config.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { type Answer, post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';

let fake: FakeUpstream;
let gateway: TestGateway;
const keys: Record<string, string> = {};

// Set here so that the test does not lean on the defaults: $4 per minted realtime credential.
const REALTIME_USD = 4;

beforeAll(async () => {
  fake = await startFake();
  gateway = await startQuotaGateway(fake, undefined, { allowedRouteUsd: { realtime_client_secrets: REALTIME_USD } });
  keys.narrow = await userWithKey(gateway, 'narrow', {}, { models: ['gpt-4o-mini'] });
  keys.dollars = await userWithKey(gateway, 'dollars', { usdPerDay: 20 });
  keys.tokens = await userWithKey(gateway, 'tokens', { tokensPerDay: 1_000_000 });
  keys.open = await userWithKey(gateway, 'open', {});
  // Allowed to mint realtime credentials: $10 a day, two of them at most, on realtime models only.
  keys.minter = await userWithKey(gateway, 'minter', { usdPerDay: 10 }, { models: ['gpt-realtime*'], allow: ['realtime_client_secrets'] });
  keys.evaluator = await userWithKey(gateway, 'evaluator', {}, { models: ['gpt-4o-mini'], allow: ['eval_runs', 'graders', 'fine_tuning'] });
});

afterAll(async () => {
  await gateway?.close();
  await fake?.close();
});

beforeEach(() => fake.reset());

const send = (who: string, path: string, body: unknown): Promise<Answer> => post(gateway.url, keys[who] as string, path, body);

function expectRefused(answer: Answer, status: number, code: string): void {
  expect(answer.status, answer.text).toBe(status);
  expect(answer.json?.error?.code).toBe(code);
  expect(fake.requests).toHaveLength(0);
}

const spent = async (who: string): Promise<{ usdMicros: number; tokens: number; requests: number }> => (await usageOf(gateway, who)).day;

/** Waits until the user's day shows `requests` settled requests, then gives its spend. */
async function settled(who: string, requests: number): Promise<{ usdMicros: number; tokens: number }> {
  await until(async () => {
    const day = (await usageOf(gateway, who)).day;
    return day.requests === requests && day.reservedUsdMicros === 0 && day.reservedTokens === 0;
  }, `${who}'s settles`);
  return spent(who);
}

describe('routes refused unless allowed', () => {
  const REFUSED: Array<[string, unknown]> = [
    ['/realtime/client_secrets', { session: { type: 'realtime', model: 'gpt-realtime' } }],
    ['/realtime/sessions', { model: 'gpt-realtime', client_secret: { expires_after: { anchor: 'created_at', seconds: 600 } } }],
    ['/realtime/transcription_sessions', { input_audio_transcription: { model: 'gpt-4o-transcribe' } }],
    ['/realtime/translations/client_secrets', { session: { model: 'gpt-realtime' } }],
    ['/realtime/calls/rtc_1/accept', { type: 'realtime', model: 'gpt-realtime' }],
    ['/chatkit/sessions', { workflow: { id: 'wf_1' }, user: 'u1' }],
    ['/evals/eval_1/runs', { data_source: { type: 'completions', model: 'gpt-4o-mini', source: { type: 'file_id', id: 'file-1' } } }],
    ['/fine_tuning/jobs', { model: 'gpt-4o-mini', training_file: 'file-1' }],
    ['/fine_tuning/alpha/graders/run', { grader: { type: 'score_model', model: 'gpt-4o-mini', input: [] }, model_sample: 'x' }],
    ['/videos/video_1/remix', { prompt: 'again' }],
    ['/videos/edits', { video: { id: 'video_1' }, prompt: 'again' }],
  ];

  it.each(REFUSED)('POST %s is refused to every user not allowed it, however unrestricted, before any upstream', async (path, body) => {
    for (const who of ['open', 'narrow', 'dollars', 'tokens']) {
      const answer = await send(who, path, body);
      expectRefused(answer, 403, 'route_not_allowed');
      expect(answer.json.error.message).toMatch(/allow: [a-z_]+/);
    }
  });

  it('a WebRTC call offer (application/sdp) is refused too, its body never relayed', async () => {
    const res = await fetch(`${gateway.url}/v1/realtime/calls`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.open}`, 'content-type': 'application/sdp' },
      body: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n',
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('route_not_allowed');
    expect(fake.requests).toHaveLength(0);
  });

  it('the official SDK gets a PermissionDeniedError for a client secret, and nothing is charged', async () => {
    const client = new OpenAI({ apiKey: keys.dollars, baseURL: `${gateway.url}/v1`, maxRetries: 0 });
    await expect(client.realtime.clientSecrets.create({ session: { type: 'realtime', model: 'gpt-realtime' } })).rejects.toBeInstanceOf(
      OpenAI.PermissionDeniedError,
    );
    expect(fake.requests).toHaveLength(0);
    expect((await spent('dollars')).usdMicros).toBe(0);
  });

  it('allowed, each credential is reserved and charged the set amount, up to the dollar limit; the third is refused unrelayed', async () => {
    fake.handle((req) => (req.path === '/v1/realtime/client_secrets' ? { body: { value: 'ek_fake', expires_at: 1, session: {} } } : undefined));
    const client = new OpenAI({ apiKey: keys.minter, baseURL: `${gateway.url}/v1`, maxRetries: 0 });
    for (let i = 1; i <= 2; i++) {
      const secret = await client.realtime.clientSecrets.create({ session: { type: 'realtime', model: 'gpt-realtime' } });
      expect(secret.value).toBe('ek_fake');
      expect((await settled('minter', i)).usdMicros).toBe(i * REALTIME_USD * 1_000_000);
    }
    expect(fake.requests).toHaveLength(2);
    fake.reset();
    const third = await send('minter', '/realtime/client_secrets', { session: { type: 'realtime', model: 'gpt-realtime' } });
    expectRefused(third, 429, 'insufficient_quota');
  });

  it('allowed, the model inside the session is still checked against the model list', async () => {
    for (const [path, body] of [
      ['/realtime/client_secrets', { session: { type: 'realtime', model: 'gpt-4o' } }],
      ['/realtime/translations/client_secrets', { session: { model: ['gpt-realtime'] } }],
    ] as const) {
      expectRefused(await send('minter', path, body), 403, 'model_not_allowed');
    }
  });

  it('an upstream refusal of an allowed call releases the reservation: nothing charged', async () => {
    const key = await userWithKey(gateway, 'refused-minter', { usdPerDay: 10 }, { allow: ['realtime_client_secrets'] });
    fake.handle(() => ({ status: 400, body: { error: { message: 'bad session', type: 'invalid_request_error', param: null, code: null } } }));
    const answer = await post(gateway.url, key, '/realtime/sessions', { model: 'gpt-realtime' });
    expect(answer.status).toBe(400);
    expect(fake.requests).toHaveLength(1);
    await until(async () => (await usageOf(gateway, 'refused-minter')).day.reservedUsdMicros === 0, 'the release');
    expect((await spent('refused-minter')).usdMicros).toBe(0);
  });

  it('the permission is per user and follows the admin API: granted, then taken back', async () => {
    const key = await userWithKey(gateway, 'later', {});
    const call = () => post(gateway.url, key, '/chatkit/sessions', { workflow: { id: 'wf_1' }, user: 'u-later' });
    expectRefused(await call(), 403, 'route_not_allowed');
    expect((await gateway.admin('PATCH', '/users/later', { allow: ['chatkit_sessions'] })).status).toBe(200);
    expect((await call()).status).toBe(200);
    await settled('later', 1);
    expect((await spent('later')).usdMicros).toBe(1_000_000); // the default for chatkit_sessions
    fake.reset();
    expect((await gateway.admin('PATCH', '/users/later', { allow: null })).json.allow).toBeUndefined();
    expectRefused(await call(), 403, 'route_not_allowed');
  });

  it('the admin API refuses a permission it does not know, or one given twice', async () => {
    for (const allow of [['everything'], ['graders', 'graders'], 'graders']) {
      const answer = await gateway.admin('PATCH', '/users/open', { allow });
      expect(answer.status).toBe(400);
    }
    expect((await gateway.admin('GET', '/users/open')).json.allow).toBeUndefined();
  });
});

describe('the reservation of an allowed call, in the settings', () => {
  it('defaults each permission it does not set, and refuses an unknown permission or a negative amount', () => {
    const quota = (allowedRouteUsd: unknown) => ({ quota: { allowedRouteUsd } }) as never;
    expect(loadConfig({}, quota({ fine_tuning: 100 })).quota.allowedRouteUsd).toEqual({ ...ALLOWED_ROUTE_USD, fine_tuning: 100 });
    expect(() => loadConfig({}, quota({ everything: 1 }))).toThrow(ConfigError);
    expect(() => loadConfig({}, quota({ graders: -1 }))).toThrow(ConfigError);
    expect(() => loadConfig({}, quota({ graders: '1' }))).toThrow(ConfigError);
  });
});

describe('models nested in the body', () => {
  it("an eval run's data source model and a grader's models are checked, even when the route is allowed", async () => {
    const evalRun = { data_source: { type: 'completions', model: 'gpt-4o', source: { type: 'file_id', id: 'file-1' } } };
    expectRefused(await send('evaluator', '/evals/eval_1/runs', evalRun), 403, 'model_not_allowed');
    const multi = { grader: { type: 'multi', graders: { a: { type: 'string_check' }, b: { type: 'score_model', model: 'o3' } } }, model_sample: 'x' };
    const answer = await send('evaluator', '/fine_tuning/alpha/graders/run', multi);
    expectRefused(answer, 403, 'model_not_allowed');
    expect(answer.json.error.param).toBe('grader.graders.*.model');
    expectRefused(await send('evaluator', '/fine_tuning/jobs', { model: 'gpt-4o', training_file: 'file-1' }), 403, 'model_not_allowed');
  });

  it("an eval's grader models are checked when it is made: every run of it would use them", async () => {
    const made = await send('evaluator', '/evals', { data_source_config: { type: 'custom', item_schema: {} }, testing_criteria: [{ type: 'score_model', name: 's', model: 'o3', input: [] }] });
    expectRefused(made, 403, 'model_not_allowed');
    expect(made.json.error.param).toBe('testing_criteria.*.model');
  });

  it('a body too large to read whole cannot hide a nested model from a model list', async () => {
    const padding = 'x'.repeat(1_200_000);
    const body = { grader: { type: 'score_model', model: 'gpt-4o-mini', input: [{ role: 'user', content: padding }] }, model_sample: 'x' };
    expectRefused(await send('evaluator', '/fine_tuning/alpha/graders/run', body), 403, 'model_not_allowed');
  });

  it('allowed and on listed models, a grader run is relayed and charged its reservation', async () => {
    const grader = { grader: { type: 'score_model', model: 'gpt-4o-mini', input: [] }, model_sample: 'x' };
    expect((await send('evaluator', '/fine_tuning/alpha/graders/run', grader)).status).toBe(200);
    expect(fake.requests).toHaveLength(1);
  });
});

describe('compaction', () => {
  it('is metered as a response: its model checked, and one it does not name refused to a restricted key', async () => {
    expectRefused(await send('narrow', '/responses/compact', { model: 'gpt-4o', input: 'a long talk' }), 403, 'model_not_allowed');
    expectRefused(await send('dollars', '/responses/compact', { input: 'a long talk' }), 403, 'model_not_allowed');
    const before = await spent('dollars');
    fake.handle((req) =>
      req.path === '/v1/responses/compact' ? { body: { id: 'resp_c1', object: 'response.compaction', output: [], usage: { input_tokens: 2000, output_tokens: 100, total_tokens: 2100 } } } : undefined,
    );
    expect((await send('dollars', '/responses/compact', { model: 'gpt-4o-mini', input: 'a long talk' })).status).toBe(200);
    const after = await settled('dollars', before.requests + 1);
    expect(after.tokens - before.tokens).toBe(2100);
    expect(after.usdMicros - before.usdMicros).toBe(Math.ceil(2000 * 0.15 + 100 * 0.6));
  });
});

describe('thread runs', () => {
  /** An assistant of the user's own, made through the gateway (runs name it). */
  async function assistantOf(who: string): Promise<string> {
    fake.handle((req) => (req.path === '/v1/assistants' ? { body: { id: `asst_${who}`, object: 'assistant', model: 'gpt-4o-mini' } } : undefined));
    const made = await send(who, '/assistants', { model: 'gpt-4o-mini' });
    expect(made.status).toBe(200);
    fake.reset();
    return `asst_${who}`;
  }

  it("with the assistant's model, refused to a model list or a dollar limit: the request must name it", async () => {
    for (const who of ['narrow', 'dollars']) {
      const assistant_id = await assistantOf(who);
      const answer = await send(who, '/threads/runs', { assistant_id, max_prompt_tokens: 1000, max_completion_tokens: 500 });
      expectRefused(answer, 403, 'model_not_allowed');
    }
    const assistant_id = await assistantOf('narrow');
    expectRefused(await send('narrow', '/threads/runs', { assistant_id, model: 'gpt-4o', max_prompt_tokens: 1000, max_completion_tokens: 500 }), 403, 'model_not_allowed');
  });

  it('without caps, refused to any token or dollar limit: a run goes on after its answer', async () => {
    for (const who of ['tokens', 'dollars']) {
      const assistant_id = await assistantOf(who);
      const answer = await send(who, '/threads/runs', { assistant_id, model: 'gpt-4o-mini', max_completion_tokens: 500 });
      expectRefused(answer, 400, 'invalid_request');
      expect(answer.json.error.param).toBe('max_prompt_tokens');
      expectRefused(await send(who, '/threads/runs', { assistant_id, model: 'gpt-4o-mini', max_prompt_tokens: 1e400, max_completion_tokens: 500 }), 400, 'invalid_request');
    }
  });

  it('with model and caps, charged the caps at the model price, whatever the answer reports', async () => {
    const assistant_id = await assistantOf('dollars');
    const before = await spent('dollars');
    fake.handle((req) => (req.path === '/v1/threads/runs' ? { body: { id: 'run_1', object: 'thread.run', status: 'queued', usage: null } } : undefined));
    const answer = await send('dollars', '/threads/runs', { assistant_id, model: 'gpt-4o-mini', max_prompt_tokens: 10_000, max_completion_tokens: 5_000 });
    expect(answer.status).toBe(200);
    const after = await settled('dollars', before.requests + 1);
    // gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens.
    expect(after.usdMicros - before.usdMicros).toBe(10_000 * 0.15 + 5_000 * 0.6);
    expect(after.tokens - before.tokens).toBe(15_000);
  });
});

describe('videos and containers, priced per call', () => {
  it('a video is charged its seconds at its model and size; an unlisted or unpriced model is refused', async () => {
    expectRefused(await send('narrow', '/videos', { prompt: 'a cat' }), 403, 'model_not_allowed'); // sora-2 by default
    expectRefused(await send('dollars', '/videos', { model: 'sora-9', prompt: 'a cat' }), 403, 'model_not_allowed');
    const before = await spent('dollars');
    fake.handle((req) => (req.path === '/v1/videos' ? { body: { id: 'video_d1', object: 'video', status: 'queued' } } : undefined));
    const answer = await send('dollars', '/videos', { model: 'sora-2-pro', prompt: 'a cat', seconds: '8', size: '1792x1024' });
    expect(answer.status).toBe(200);
    expect((await settled('dollars', before.requests + 1)).usdMicros - before.usdMicros).toBe(8 * 500_000);

    // An extension names no model: the highest price per second, for the seconds it asks.
    const mid = await spent('dollars');
    const extended = await send('dollars', '/videos/extensions', { video: { id: 'video_d1' }, prompt: 'more', seconds: '12' });
    expect(extended.status).toBe(200);
    expect((await settled('dollars', mid.requests + 1)).usdMicros - mid.usdMicros).toBe(12 * 500_000);
  });

  it('a video sent as a form is priced at its longest length and its model\'s highest price: its other fields are not read', async () => {
    const before = await spent('tokens');
    const form = new FormData();
    form.append('model', 'sora-2');
    form.append('prompt', 'a cat');
    form.append('seconds', '4');
    const res = await fetch(`${gateway.url}/v1/videos`, { method: 'POST', headers: { authorization: `Bearer ${keys.tokens}` }, body: form });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    // sora-2: $0.10 per second, 12 seconds at most.
    expect((await settled('tokens', before.requests + 1)).usdMicros - before.usdMicros).toBe(12 * 100_000);
  });

  it('past the dollar limit, the next video is refused before the upstream', async () => {
    // $20 a day: filled with 64g containers ($1.92 each) until less than 12 s of sora-2-pro ($6) is left.
    for (let left = 20_000_000 - (await spent('dollars')).usdMicros; left >= 6_000_000; left -= 1_920_000) {
      const before = await spent('dollars');
      expect((await send('dollars', '/containers', { name: 'filler', memory_limit: '64g' })).status).toBe(200);
      await settled('dollars', before.requests + 1);
    }
    fake.reset();
    expectRefused(await send('dollars', '/videos', { model: 'sora-2-pro', prompt: 'a cat', seconds: '12', size: '1792x1024' }), 429, 'insufficient_quota');
  });

  it('a container is charged one session at its memory limit; an unknown limit at the highest', async () => {
    const before = await spent('tokens');
    // No dollar limit: the charge still counts in dollars.
    expect((await send('tokens', '/containers', { name: 'c1', memory_limit: '4g' })).status).toBe(200);
    expect((await settled('tokens', before.requests + 1)).usdMicros - before.usdMicros).toBe(120_000);
    expect((await send('tokens', '/containers', { name: 'c2', memory_limit: '1000g' })).status).toBe(200);
    expect((await settled('tokens', before.requests + 2)).usdMicros - before.usdMicros).toBe(120_000 + 1_920_000);
  });
});
