// A small client of the admin API (README, "Admin API and command line") on the global fetch. Every failure
// becomes a CliError that says what went wrong in words an operator can act on.
import { CliError } from './command.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';
const TIMEOUT_MS = 30_000;

interface OpenAiError {
  error: { message?: unknown; code?: unknown };
}

function isOpenAiError(value: unknown): value is OpenAiError {
  return typeof value === 'object' && value !== null && typeof (value as OpenAiError).error === 'object' && (value as OpenAiError).error !== null;
}

/** The URL without user info, query or a trailing slash: safe to print and to append paths to. */
export function gatewayUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(`not a URL: "${raw}"`, 2, 'Set KEYRELAY_URL or pass --url, e.g. http://127.0.0.1:8080');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(`not an http(s) URL: "${url.protocol}//${url.host}"`, 2, 'Set KEYRELAY_URL or pass --url, e.g. http://127.0.0.1:8080');
  }
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}

/** The node:net code behind a failed fetch; several addresses tried at once fail as an AggregateError. */
function networkCode(err: unknown): string | undefined {
  const cause = (err as { cause?: { code?: unknown; errors?: Array<{ code?: unknown }> } }).cause;
  const code = cause?.code ?? cause?.errors?.[0]?.code;
  return typeof code === 'string' ? code : undefined;
}

const NETWORK_WORDS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
};

export class AdminClient {
  readonly url: string;

  constructor(
    url: URL,
    private readonly token: string,
  ) {
    this.url = url.href.replace(/\/$/, '');
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.url}/admin${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      throw this.unreachable(err);
    }
    const text = await res.text().catch((err: unknown) => {
      throw this.unreachable(err);
    });
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!res.ok) throw this.failed(res.status, method, path, parsed);
    if (parsed === undefined) {
      throw new CliError(`the server at ${this.url} answered HTTP ${res.status} without JSON`, 1, 'Is KEYRELAY_URL the gateway itself?');
    }
    return parsed as T;
  }

  private unreachable(err: unknown): CliError {
    if ((err as Error | undefined)?.name === 'TimeoutError') {
      return new CliError(`the gateway at ${this.url} did not answer within ${TIMEOUT_MS / 1000} s`);
    }
    const code = networkCode(err);
    const what = code ? (NETWORK_WORDS[code] ?? code) : (err as Error | undefined)?.message ?? String(err);
    return new CliError(`could not reach the gateway at ${this.url} (${what})`, 1, 'Is it running? Point the tool at it with KEYRELAY_URL or --url.');
  }

  private failed(status: number, method: string, path: string, body: unknown): CliError {
    if (!isOpenAiError(body)) {
      return new CliError(`the server at ${this.url} answered HTTP ${status} to ${method} /admin${path}`, 1, 'Is KEYRELAY_URL the gateway itself?');
    }
    const message = typeof body.error.message === 'string' ? body.error.message : 'request failed';
    const code = typeof body.error.code === 'string' ? body.error.code : undefined;
    let hint: string | undefined;
    // The gateway hides the whole admin API (404) when it was started without an admin token.
    if (code === 'unknown_url') hint = 'Is the admin API enabled? The gateway needs KEYRELAY_ADMIN_TOKEN set when it starts.';
    if (status === 401) hint = 'Check KEYRELAY_ADMIN_TOKEN (or --token): it must be the token the gateway was started with.';
    return new CliError(`${message} (${code ? `${code}, ` : ''}HTTP ${status})`, 1, hint);
  }
}
