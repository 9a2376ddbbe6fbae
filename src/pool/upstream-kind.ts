// What an upstream's `kind` changes (docs/azure.md): how its pool keys are sent, and, for Azure
// OpenAI, which model names become which deployments and whether the base URL is Azure's v1 API
// (the OpenAI paths, the deployment in the body's `model`) or the classic one (the deployment in
// the path, `api-version` in the query). The settings and the admin API check an upstream with the
// same function, so that neither can take what the other refuses.

export const UPSTREAM_KINDS = ['openai', 'azure'] as const;
export type UpstreamKind = (typeof UPSTREAM_KINDS)[number];

/** `v1`: https://<resource>.openai.azure.com/openai/v1; `classic`: …/openai with an api-version. */
export type AzureForm = 'v1' | 'classic';

// Azure's deployment names: letters, digits, `-`, `_` and `.`, at most 64. The name goes into a
// URL path, so nothing else is taken. Versions (`2024-10-21`, `2025-04-01-preview`, `preview`)
// go into a query string.
export const DEPLOYMENT_PATTERN = '^[A-Za-z0-9._-]{1,64}$';
export const API_VERSION_PATTERN = '^[A-Za-z0-9._-]{1,64}$';

export interface KindSettings {
  kind?: UpstreamKind;
  baseUrl: string;
  deployments?: Readonly<Record<string, string>>;
  apiVersion?: string;
}

/** The form of an Azure base URL: its path ends in `/v1` for the v1 API. */
export function azureForm(baseUrl: string): AzureForm {
  let path: string;
  try {
    path = new URL(baseUrl).pathname;
  } catch {
    path = baseUrl;
  }
  return /\/v1\/*$/.test(path) ? 'v1' : 'classic';
}

/** The first fault of an upstream's kind settings, as the field it is in and what is wrong. */
export function kindFault(u: KindSettings): { field: 'deployments' | 'apiVersion'; message: string } | undefined {
  const kind = u.kind ?? 'openai';
  if (kind === 'openai') {
    if (u.deployments !== undefined) return { field: 'deployments', message: 'only an upstream of kind "azure" has deployments' };
    if (u.apiVersion !== undefined) return { field: 'apiVersion', message: 'only an upstream of kind "azure" has an apiVersion' };
    return undefined;
  }
  if (azureForm(u.baseUrl) === 'classic' && u.apiVersion === undefined) {
    return {
      field: 'apiVersion',
      message: 'an azure upstream whose baseUrl is not the v1 API (…/openai/v1) is the classic API, which needs apiVersion (such as 2024-10-21)',
    };
  }
  return undefined;
}

/**
 * The models an upstream serves when its settings give no `models`: for Azure, the models its
 * `deployments` name (its other model names would reach no deployment); any model otherwise.
 */
export function defaultModels(u: KindSettings): readonly string[] | undefined {
  if ((u.kind ?? 'openai') !== 'azure' || u.deployments === undefined) return undefined;
  const names = Object.keys(u.deployments);
  return names.length > 0 ? names : undefined;
}
