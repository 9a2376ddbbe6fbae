// The shapes the gateway answers, as far as the pages read them (docs/console.md, README).
export interface Series {
  range: string;
  step: string;
  buckets: string[];
  series: Array<{ name: string; requests: number[]; errors: number[]; tokens: number[]; costMicros: number[] }>;
  total: { requests: number; errors: number; inputTokens: number; outputTokens: number; totalTokens: number; costMicros: number; costUsd: number };
  top: {
    users: Array<{ name: string; requests: number; totalTokens: number; costMicros: number }>;
    models: Array<{ name: string; requests: number; totalTokens: number; costMicros: number }>;
  };
}

export interface PoolKeyView {
  id: string;
  source: 'settings' | 'store';
  last4: string;
  weight: number;
  models: string[] | null;
  state: string;
  until: string | null;
  reason: string | null;
  inFlight: number;
  requests: number;
  failures: number;
  consecutiveFailures: number;
}

export interface UpstreamView {
  id: string;
  source: 'settings' | 'store';
  kind?: string;
  baseUrl: string;
  models: string[] | null;
  strategy: string;
  proxy: string[] | null;
  keys: PoolKeyView[];
}

export interface Limits {
  rpm?: number;
  tpm?: number;
  tokensPerDay?: number;
  tokensPerMonth?: number;
  usdPerDay?: number;
  usdPerMonth?: number;
  maxConcurrent?: number;
}

export interface User {
  id: string;
  name?: string;
  models?: string[];
  expiresAt?: string;
  limits: Limits;
  createdAt: string;
  disabled?: boolean;
}

interface Window {
  window: string;
  resetsAt: string;
  requests: number;
  tokens: number;
  usd: number;
  usdMicros: number;
  limits: { tokens: number | null; usd: number | null };
}
interface Rate {
  limit: number;
  remaining: number;
  resetMs: number;
}

export interface UserWithUsage extends User {
  usage: {
    day: Window;
    month: Window;
    minute: { requests: Rate | null; tokens: Rate | null };
    concurrent: { inFlight: number; limit: number | null };
  };
}

export interface KeyView {
  id: string;
  userId: string;
  name?: string;
  prefix: string;
  createdAt: string;
  expiresAt?: string;
  revokedAt?: string;
  lastUsedAt?: string;
}

export interface RequestRecord {
  id: string;
  requestId: string;
  upstreamRequestId?: string;
  time: string;
  userId?: string;
  keyId?: string;
  poolKeyId?: string;
  upstream?: string;
  method: string;
  route: string;
  operation?: string;
  model?: string;
  endUser?: string;
  userAgent?: string;
  stream: boolean;
  status: number;
  outcome: string;
  errorCode?: string;
  errorMessage?: string;
  retries: number;
  tried?: Array<{ poolKeyId: string; status?: number; code?: string }>;
  ttfbMs?: number;
  durationMs: number;
  tokens?: { input: number; cachedInput: number; output: number; estimated: boolean };
  costMicros?: number;
  costUsd?: number;
}

export interface RequestPage {
  data: RequestRecord[];
  next?: string | null;
  nextBefore?: string | null;
  hasMore?: boolean;
}

export interface UsageFigures {
  requests: number;
  errors: number;
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
  totalTokens: number;
  costUsd: number;
  costMicros: number;
}

export interface UsageReport {
  from: string;
  to: string;
  data: Array<Partial<Record<'day' | 'model' | 'user', string>> & UsageFigures>;
  total: UsageFigures;
}
