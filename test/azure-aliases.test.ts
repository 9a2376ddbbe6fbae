// An alias in front of an Azure deployment: the public name routes and is checked, the alias's
// target picks the deployment, and only the model's bytes change (docs/models.md, docs/azure.md).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { type AzureFixture, startAzure } from './helpers/azure-fixture.js';
import { post } from './helpers/quota-fixture.js';

let fx: AzureFixture;
beforeAll(async () => {
  fx = await startAzure({ config: { aliases: { fast: 'gpt-4o', small: 'gpt-4o-mini' } } as Partial<Config> });
});
afterAll(() => fx.close());

describe('an alias whose target is an Azure deployment', () => {
  it('the v1 API gets the deployment in the body, every other byte as the client sent it', async () => {
    const key = await fx.user('alias-v1');
    fx.reset();
    const sent = '{ "messages" : [{"role":"user","content":"model: fast"}],\n  "model" : "fast", "max_tokens": 5 }';
    const res = await fetch(`${fx.gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: sent,
    });
    expect(res.status).toBe(200);
    await res.text();
    expect(fx.v1.requests).toHaveLength(1);
    expect(fx.v1.requests[0]!.path).toBe('/openai/v1/chat/completions');
    expect(fx.v1.requests[0]!.body.toString()).toBe(sent.replace('"fast",', '"prod-gpt4o",'));
    expect(fx.openai.requests).toHaveLength(0);
  });

  it('the classic API gets the deployment of the target in its path', async () => {
    const key = await fx.user('alias-classic');
    fx.reset();
    const answer = await post(fx.gateway.url, key, '/chat/completions', { model: 'small', messages: [{ role: 'user', content: 'Hi' }] });
    expect(answer.status).toBe(200);
    expect(fx.classic.requests).toHaveLength(1);
    expect(fx.classic.requests[0]!.path).toBe('/openai/deployments/mini/chat/completions');
    expect((fx.classic.requests[0]!.json as { model: string }).model).toBe('gpt-4o-mini');
  });
});
