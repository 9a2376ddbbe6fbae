// A console client for the tests: signs in through POST /console/api/session and sends the
// cookie (and, for changes, the CSRF token) the way the console's pages do.
import { registerSecret } from './log-capture.js';
import { type RedisServer, startRedis } from './redis-server.js';

export interface ConsoleAnswer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

export interface CallOptions {
  body?: unknown;
  cookie?: string;
  csrf?: string;
  origin?: string;
  headers?: Record<string, string>;
}

/** Every answer a console client got in this test file, for the secret scan. */
export const consoleAnswers: ConsoleAnswer[] = [];

export async function call(base: string, method: string, path: string, options: CallOptions = {}): Promise<ConsoleAnswer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.cookie !== undefined) headers.cookie = options.cookie;
  if (options.csrf !== undefined) headers['x-csrf-token'] = options.csrf;
  if (options.origin !== undefined) headers.origin = options.origin;
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    redirect: 'manual',
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  const answer = { status: res.status, headers: res.headers, text, json };
  consoleAnswers.push(answer);
  return answer;
}

export interface SignedIn {
  /** `keyrelay_session=<value>` (`__Host-keyrelay_session=` over https), as a Cookie header. */
  cookie: string;
  csrf: string;
  setCookie: string;
  answer: ConsoleAnswer;
}

/** Signs in with `token`; throws unless it succeeds. The cookie and CSRF token are registered as
 * secrets: no log line may hold them. */
export async function signIn(base: string, token: string): Promise<SignedIn> {
  const answer = await call(base, 'POST', '/console/api/session', { body: { token } });
  if (answer.status !== 200) throw new Error(`sign-in: ${answer.status} ${answer.text}`);
  const setCookie = answer.headers.get('set-cookie') ?? '';
  const [, name = '', value = ''] = /^((?:__Host-)?keyrelay_session)=([^;]+)/.exec(setCookie) ?? [];
  registerSecret(value);
  registerSecret(answer.json.csrfToken);
  return { cookie: `${name}=${value}`, csrf: answer.json.csrfToken as string, setCookie, answer };
}

/** The stores the console's sessions are tested on: none started for memory, a real redis-server. */
export const SESSION_BACKENDS: Array<[string, () => Promise<RedisServer | undefined>]> = [
  ['memory', async () => undefined],
  ['redis', () => startRedis()],
];
