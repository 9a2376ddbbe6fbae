// How a pool key goes out, by the kind of its upstream (src/pool/upstream-kind.ts): OpenAI and the
// APIs like it take `Authorization: Bearer <key>` with the key's organization and project; Azure
// OpenAI takes the resource key as `api-key` and has neither. Every request the gateway sends with
// a pool key (the relay, WebSocket handshakes, key tests, its own GETs) takes its headers from here.
//
// Azure also takes Microsoft Entra ID tokens (`Authorization: Bearer <token>`) in place of a
// resource key: that would be a credential of its own, whose token is fetched and renewed, and it
// would be sent here, in place of `api-key`.
import type { PoolKey, Upstream } from '../pool/pool.js';

export function poolKeyHeaders(upstream: Pick<Upstream, 'kind'>, key: Pick<PoolKey, 'secret' | 'organization' | 'project'>): Record<string, string> {
  const headers: Record<string, string> = {};
  setPoolKeyHeaders(headers, upstream, key);
  return headers;
}

/** The same headers, set on `headers` (the relay's request headers, built once per attempt). */
export function setPoolKeyHeaders(headers: Record<string, string | string[]>, upstream: Pick<Upstream, 'kind'>, key: Pick<PoolKey, 'secret' | 'organization' | 'project'>): void {
  if (upstream.kind === 'azure') {
    headers['api-key'] = key.secret;
    return;
  }
  headers.authorization = `Bearer ${key.secret}`;
  if (key.organization) headers['openai-organization'] = key.organization;
  if (key.project) headers['openai-project'] = key.project;
}
