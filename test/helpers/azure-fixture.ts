// The Azure tests' common setup: fake Azure resources (src/dev/fake-azure.ts) of the v1 and the
// classic API, a fake OpenAI, and a gateway whose pool has all three, with prices of round numbers
// so that what is charged can be said exactly.
import type { Config } from '../../src/config.js';
import { type FakeAzureOptions, serveAzure } from '../../src/dev/fake-azure.js';
import { type FakeUpstream, startFakeUpstream } from '../../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './gateway.js';
import { registerPoolKey, registerSecret } from './log-capture.js';

export const API_VERSION = '2024-10-21';
export const AZURE_KEYS = { v1: ['az-v1-key-0123456789abcdef0001', 'az-v1-key-0123456789abcdef0002'], classic: ['az-cl-key-0123456789abcdef0003'] };
export const OPENAI_KEY = 'sk-pool-azure-mixed-0123456789abcdef';
for (const key of [...AZURE_KEYS.v1, ...AZURE_KEYS.classic, OPENAI_KEY]) registerPoolKey(key, `pool key ${key.slice(0, 6)}… (azure-fixture)`);

/** model -> deployment, as the gateway's settings say. */
export const V1_DEPLOYMENTS = { 'gpt-4o': 'prod-gpt4o', 'text-embedding-3-small': 'emb-small', 'dall-e-3': 'images', 'whisper-1': 'speech-in' };
export const CLASSIC_DEPLOYMENTS = { 'gpt-4o-mini': 'mini', 'text-embedding-3-large': 'emb-large', 'dall-e-2': 'images-2', 'gpt-4o-mini-transcribe': 'transcribe' };
/** Dollars per million tokens: a token in costs 1 micro-dollar, a token out 2. */
export const PRICES = Object.fromEntries(
  ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'text-embedding-3-small', 'text-embedding-3-large', 'gpt-4o-mini-transcribe'].map((m) => [m, { input: 1, output: 2 }]),
);

/** deployment -> model, as the Azure resource knows them. */
const invert = (map: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(map).map(([m, d]) => [d, m]));

export interface AzureFixture {
  v1: FakeUpstream;
  classic: FakeUpstream;
  openai: FakeUpstream;
  gateway: TestGateway;
  /** Clears the fakes' requests and scripted answers; the resources stay Azure. */
  reset(): void;
  /** A new user with a key. */
  user(id: string): Promise<string>;
  close(): Promise<void>;
}

/** `first`: the upstream that serves requests naming no model (files, forms whose model is late). */
export async function startAzure(options: { first?: 'v1' | 'classic'; config?: Partial<Config>; env?: Record<string, string> } = {}): Promise<AzureFixture> {
  const v1 = await startFakeUpstream();
  const classic = await startFakeUpstream();
  const openai = await startFakeUpstream({ keys: [OPENAI_KEY] });
  const v1Options: FakeAzureOptions = { form: 'v1', keys: AZURE_KEYS.v1, deployments: invert(V1_DEPLOYMENTS) };
  const classicOptions: FakeAzureOptions = { form: 'classic', apiVersion: API_VERSION, keys: AZURE_KEYS.classic, deployments: invert(CLASSIC_DEPLOYMENTS) };
  serveAzure(v1, v1Options);
  serveAzure(classic, classicOptions);
  const azure = [
    { id: 'azure-v1', kind: 'azure', baseUrl: `${v1.url}/openai/v1`, deployments: V1_DEPLOYMENTS, keys: AZURE_KEYS.v1.map((key, i) => ({ id: `az-${i + 1}`, key })) },
    { id: 'azure-classic', kind: 'azure', baseUrl: `${classic.url}/openai`, apiVersion: API_VERSION, deployments: CLASSIC_DEPLOYMENTS, keys: [{ id: 'az-c', key: AZURE_KEYS.classic[0] }] },
  ];
  if (options.first === 'classic') azure.reverse();
  const upstreams = [...azure, { id: 'openai', baseUrl: openai.baseUrl, keys: [{ id: 'o-1', key: OPENAI_KEY }] }];
  const gateway = await startGateway({ env: options.env, config: { prices: PRICES, ...options.config, upstreams } as Partial<Config> });
  return {
    v1,
    classic,
    openai,
    gateway,
    reset() {
      for (const fake of [v1, classic, openai]) fake.reset();
      serveAzure(v1, v1Options);
      serveAzure(classic, classicOptions);
    },
    async user(id) {
      const key = await gateway.createUserKey(id, { limits: { tokensPerDay: 1_000_000 } });
      registerSecret(key, `user key of ${id} (azure-fixture)`);
      return key;
    },
    async close() {
      await gateway.close();
      await Promise.all([v1.close(), classic.close(), openai.close()]);
    },
  };
}
