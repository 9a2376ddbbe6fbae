// The catalogue of errors the gateway itself produces. Each has a stable code; every one is sent
// OpenAI-shaped ({error: {message, type, param, code}}) so that SDKs raise their usual classes.

export interface ErrorSpec {
  status: number;
  type: string;
  message: string;
}

export const ERRORS = {
  invalid_api_key: {
    status: 401,
    type: 'invalid_request_error',
    message: 'Incorrect API key provided. Use a key issued by this keyrelay gateway.',
  },
  model_not_allowed: { status: 403, type: 'invalid_request_error', message: 'This key may not use the requested model.' },
  route_not_allowed: { status: 403, type: 'invalid_request_error', message: 'This route is not open to keys of this gateway.' },
  // A page's origin outside the gateway's cors.origins or the user's own `origins` (src/inbound/cors.ts).
  origin_not_allowed: { status: 403, type: 'invalid_request_error', message: 'This key may not be used from this page\'s origin.' },
  invalid_request: { status: 400, type: 'invalid_request_error', message: 'The request is malformed.' },
  invalid_json: { status: 400, type: 'invalid_request_error', message: 'The request body is not valid JSON.' },
  invalid_path: { status: 400, type: 'invalid_request_error', message: 'The request path is not allowed.' },
  invalid_header: { status: 400, type: 'invalid_request_error', message: 'A request header is not allowed.' },
  invalid_multipart: { status: 400, type: 'invalid_request_error', message: 'The multipart body is malformed.' },
  request_too_large: { status: 413, type: 'invalid_request_error', message: 'The request body is too large.' },
  // A compressed request body (src/inbound/content-codings.ts).
  unsupported_content_encoding: {
    status: 400,
    type: 'invalid_request_error',
    message: 'The request body has a Content-Encoding: this gateway reads request bodies uncompressed, so that it checks what it relays; send the body without one.',
  },
  // The client did not send its request in time (headers, or the whole request): src/inbound/.
  request_timeout: { status: 408, type: 'invalid_request_error', message: 'The request was not received in time.' },
  unknown_url: { status: 404, type: 'invalid_request_error', message: 'Unknown request URL.' },
  not_found: { status: 404, type: 'invalid_request_error', message: 'Not found.' },
  // An upstream of a kind that has no such route (Azure's classic API: src/relay/upstream-target.ts).
  route_not_supported: { status: 404, type: 'invalid_request_error', message: 'This route is not supported by the upstream that serves the request.' },
  request_not_found: { status: 404, type: 'invalid_request_error', message: 'No kept request has that id.' },
  model_not_found: { status: 404, type: 'invalid_request_error', message: 'The model does not exist or you do not have access to it.' },
  conflict: { status: 409, type: 'invalid_request_error', message: 'It already exists.' },
  // A user holding maxKeysPerUser live keys gets no more until one is revoked or expires
  // (src/plugins/admin.ts createKeyFor).
  too_many_keys: {
    status: 409,
    type: 'invalid_request_error',
    message: 'This user already holds as many live keys as a user may. Revoke one before creating another.',
  },
  read_only: { status: 409, type: 'invalid_request_error', message: 'This comes from the settings file or the environment: change it there.' },
  secret_not_configured: {
    status: 409,
    type: 'invalid_request_error',
    message: 'KEYRELAY_SECRET is not set: the gateway cannot keep a secret encrypted, so it keeps none. Set it and restart.',
  },
  // The console: a cookie-authenticated change without its CSRF token or from another origin;
  // a console call without a session (src/console-server/).
  csrf_failed: { status: 403, type: 'invalid_request_error', message: 'The request failed the console CSRF check.' },
  no_session: { status: 401, type: 'invalid_request_error', message: 'Not signed in to the console.' },
  rate_limit_exceeded: { status: 429, type: 'requests', message: 'Rate limit reached.' },
  insufficient_quota: { status: 429, type: 'insufficient_quota', message: 'Quota exceeded for this window.' },
  // A user holding pool.maxObjectsPerUser objects creates no more until they delete some: waiting
  // does not help, so it goes with x-should-retry: false (src/relay/object-slots.ts). Not of type
  // `requests` (no rate: waiting does not help) nor `insufficient_quota` (read as billing, and a
  // gateway in front of this one would disable its key for it: src/pool/outcome.ts).
  too_many_objects: {
    status: 429,
    type: 'invalid_request_error',
    message: 'You hold as many objects created through this gateway as a user may. Delete some before creating more.',
  },
  no_upstream_key_available: {
    status: 503,
    type: 'server_error',
    message: 'No upstream key is available right now. Try again later.',
  },
  quota_backend_unavailable: {
    status: 503,
    type: 'server_error',
    message: 'The quota store is unreachable. Try again later.',
  },
  server_overloaded: {
    status: 503,
    type: 'server_error',
    message: 'The gateway is at its limit of connections or requests in flight. Try again later.',
  },
  shutting_down: { status: 503, type: 'server_error', message: 'The gateway is shutting down. Retry the request.' },
  upstream_proxy_error: { status: 502, type: 'server_error', message: 'The outbound proxy failed.' },
  upstream_unreachable: { status: 502, type: 'server_error', message: 'The upstream could not be reached.' },
  // An upstream answer that cannot be passed on without passing a pool key (src/relay/answer-guard.ts),
  // or that is not a valid answer: unparsable HTTP, a header section past 16 KB, a body that does
  // not decode, a list page that is not JSON (src/relay/upstream-errors.ts, object-access.ts).
  upstream_invalid_response: { status: 502, type: 'server_error', message: 'The upstream sent an answer the gateway cannot pass on safely.' },
  upstream_timeout: { status: 504, type: 'server_error', message: 'The upstream did not answer in time.' },
  upstream_stream_interrupted: {
    status: 502,
    type: 'server_error',
    message: 'The upstream stream broke off before it was complete.',
  },
  internal_error: { status: 500, type: 'server_error', message: 'The gateway failed to handle the request.' },
} satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** An error the gateway answers with. `cause` is kept for the log, never sent to the client. */
export class GatewayError extends Error {
  override name = 'GatewayError';
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly headers: Record<string, string>;

  constructor(
    readonly code: ErrorCode,
    options: {
      message?: string;
      param?: string | null;
      headers?: Record<string, string>;
      cause?: unknown;
      type?: string;
      /** For a code the README gives two statuses ("Errors": upstream_proxy_error, 502 and 504 on a timeout). */
      status?: number;
    } = {},
  ) {
    const spec: ErrorSpec = ERRORS[code];
    super(options.message ?? spec.message, { cause: options.cause });
    this.status = options.status ?? spec.status;
    this.type = options.type ?? spec.type;
    this.param = options.param ?? null;
    this.headers = options.headers ?? {};
  }

  body(): { error: { message: string; type: string; param: string | null; code: string } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function errorBody(err: GatewayError): string {
  return JSON.stringify(err.body());
}
