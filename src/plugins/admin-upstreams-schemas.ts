// The bodies of the upstream and pool key routes (admin-upstreams.ts). Each field's description is
// the 400's wording (src/validation-error.ts); none ever quotes the value, which may be a secret.
import { type TSchema, Type } from '@sinclair/typebox';
import { STRATEGIES } from '../pool/strategies.js';
import { API_VERSION_PATTERN, DEPLOYMENT_PATTERN, UPSTREAM_KINDS } from '../pool/upstream-kind.js';

const orNull = <T extends TSchema>(schema: T, description: string) => Type.Optional(Type.Union([schema, Type.Null()], { description }));

export const Id = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'must be 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit' });
export const BaseUrl = Type.String({ minLength: 1, maxLength: 2048, description: 'must be an absolute http:// or https:// URL of at most 2048 characters' });
// Printable ASCII without spaces: what an Authorization header can carry unchanged.
export const Secret = Type.String({
  minLength: 1,
  maxLength: 512,
  pattern: '^[\\x21-\\x7e]+$',
  description: 'must be the key: 1 to 512 printable characters without spaces',
});
const Proxy = Type.Union(
  [Type.String({ minLength: 1, maxLength: 2048 }), Type.Array(Type.String({ minLength: 1, maxLength: 2048 }), { minItems: 1, maxItems: 10 })],
  { description: 'must be a proxy URL (http://, https://, socks5://, socks5h://), a list of up to 10 of them, or "direct"' },
);
const Models = Type.Array(Type.String({ minLength: 1, maxLength: 200 }), {
  maxItems: 100,
  description: 'must be a list of at most 100 model names or glob patterns (1 to 200 characters each)',
});
// Public model name -> the upstream's; names, cycles and self-references are checked by aliasProblem.
const Aliases = Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.String({ minLength: 1, maxLength: 256 }), {
  maxProperties: 1000,
  description: 'must map public model names to the upstream\'s model names (1 to 256 characters each, at most 1000 of them)',
});
const Strategy = Type.Union(STRATEGIES.map((name) => Type.Literal(name)), { description: `must be one of ${STRATEGIES.join(', ')}` });
const Weight = Type.Integer({ minimum: 1, maximum: 1000, description: 'must be a whole number from 1 to 1000' });
const Header = (what: string) => Type.String({ minLength: 1, maxLength: 200, pattern: '^[\\x21-\\x7e]+$', description: `must be the ${what} id: 1 to 200 printable characters` });
const Kind = Type.Union(UPSTREAM_KINDS.map((k) => Type.Literal(k)), { description: 'must be "openai" (any OpenAI-compatible API) or "azure" (Azure OpenAI)' });
const DEPLOYMENTS_WORDS = 'must be a map of model names to Azure deployment names (1 to 64 letters, digits, dots, dashes or underscores)';
const Deployments = Type.Record(Type.String({ minLength: 1, maxLength: 200 }), Type.String({ pattern: DEPLOYMENT_PATTERN, description: DEPLOYMENTS_WORDS }), {
  maxProperties: 1000,
  description: DEPLOYMENTS_WORDS,
});
const ApiVersion = Type.String({ pattern: API_VERSION_PATTERN, description: 'must be an Azure OpenAI api-version, such as 2024-10-21' });

export const UpstreamParams = Type.Object({ upstream: Type.String() });
export const KeyParams = Type.Object({ upstream: Type.String(), keyId: Type.String() });

export const CreateUpstream = Type.Object(
  {
    id: Id,
    baseUrl: BaseUrl,
    kind: Type.Optional(Kind),
    deployments: Type.Optional(Deployments),
    apiVersion: Type.Optional(ApiVersion),
    models: orNull(Models, 'must be a list of at most 100 model names or glob patterns, or null for any model'),
    strategy: Type.Optional(Strategy),
    proxy: orNull(Proxy, 'must be a proxy URL, a list of them, "direct", or null for the settings\' proxy'),
    aliases: orNull(Aliases, 'must map public model names to the upstream\'s model names, or null for none'),
  },
  { additionalProperties: false },
);

export const PatchUpstream = Type.Object(
  {
    baseUrl: Type.Optional(BaseUrl),
    deployments: orNull(Deployments, `${DEPLOYMENTS_WORDS}, or null for none`),
    apiVersion: orNull(ApiVersion, 'must be an Azure OpenAI api-version, such as 2024-10-21, or null for none'),
    models: orNull(Models, 'must be a list of at most 100 model names or glob patterns, or null for any model'),
    strategy: Type.Optional(Strategy),
    proxy: orNull(Proxy, 'must be a proxy URL, a list of them, "direct", or null for the settings\' proxy'),
    aliases: orNull(Aliases, 'must map public model names to the upstream\'s model names, or null for none'),
  },
  { additionalProperties: false },
);

export const CreateKey = Type.Object(
  {
    id: Type.Optional(Id),
    key: Secret,
    weight: Type.Optional(Weight),
    models: orNull(Models, 'must be a list of at most 100 model names or glob patterns, or null for any model'),
    organization: orNull(Header('organization'), 'must be an organization id, or null for none'),
    project: orNull(Header('project'), 'must be a project id, or null for none'),
    proxy: orNull(Proxy, 'must be a proxy URL, a list of them, "direct", or null for the upstream\'s proxy'),
  },
  { additionalProperties: false },
);

export const PatchKey = Type.Object(
  {
    weight: Type.Optional(Weight),
    models: orNull(Models, 'must be a list of at most 100 model names or glob patterns, or null for any model'),
    organization: orNull(Header('organization'), 'must be an organization id, or null for none'),
    project: orNull(Header('project'), 'must be a project id, or null for none'),
    proxy: orNull(Proxy, 'must be a proxy URL, a list of them, "direct", or null for the upstream\'s proxy'),
    enabled: Type.Optional(Type.Boolean({ description: 'must be true or false' })),
  },
  { additionalProperties: false },
);

export const RotateKey = Type.Object({ key: Secret }, { additionalProperties: false });

export const TestKey = Type.Object(
  {
    key: Secret,
    organization: Type.Optional(Header('organization')),
    project: Type.Optional(Header('project')),
    proxy: Type.Optional(Proxy),
  },
  { additionalProperties: false },
);
