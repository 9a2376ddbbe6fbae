import { it } from 'vitest';
import { startFakeUpstream } from '../src/dev/fake-upstream.js';
import { startGateway } from './helpers/gateway.js';
import { SECRET_A, adminAt } from './helpers/runtime-fixture.js';
it('probe', async () => {
  const fake = await startFakeUpstream({ keys: ['sk-good-key-000000000000000000000000'] });
  const g = await startGateway({ env: { KEYRELAY_SECRET: SECRET_A, OPENAI_API_KEYS: 'sk-proj-badsettingskey000000000000WXYZ', KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
  const admin = adminAt(g.url);
  const u = await g.createUserKey('u');
  for (const p of ['/v1/models', '/v1/chat/completions', '/v1/files/file-abc']) {
    const r = await fetch(g.url + p, { method: p.includes('chat') ? 'POST' : 'GET', headers: { authorization: `Bearer ${u}`, 'content-type': 'application/json' }, body: p.includes('chat') ? '{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}' : undefined });
    console.log('R', p, r.status, await r.text());
  }
  await admin('POST', '/upstreams/default/keys', { id: 'rt', key: 'xai-runtimebadkey00000000000000QRST' });
  await admin('POST', '/upstreams/default/keys/env-1/disable');
  for (const p of ['/v1/models', '/v1/chat/completions']) {
    const r = await fetch(g.url + p, { method: p.includes('chat') ? 'POST' : 'GET', headers: { authorization: `Bearer ${u}`, 'content-type': 'application/json' }, body: p.includes('chat') ? '{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}' : undefined });
    console.log('R2', p, r.status, await r.text());
  }
  await g.close(); await fake.close();
});
