/**
 * The CLI's HTTP client for the broker: every answer becomes either parsed JSON or a CliError
 * whose exit code scripts can rely on (see EXIT). Error text comes from the broker's own
 * `{error, error_description|message}` body, which never echoes a token.
 */

/** Exit codes, documented in `leash --help`. */
export const EXIT = {
  OK: 0,
  /** The broker refused the request (4xx), or another failure. */
  REFUSED: 1,
  /** Bad flags or arguments, unreadable local files, a refused confirmation. */
  USAGE: 2,
  /** The broker (or Redis, or the CI's token endpoint) is unavailable: 5xx, connection refused, timeout. */
  UNAVAILABLE: 3,
  /** Policy lint errors, or `policy explain` denied the request. */
  POLICY: 4,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  readonly exitCode: ExitCode;
  /** The broker's error code (`invalid_scope`, ...) when the refusal came from the broker. */
  readonly code: string | undefined;

  constructor(message: string, exitCode: ExitCode, code?: string) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.code = code;
  }
}

export const usageError = (message: string): CliError => new CliError(message, EXIT.USAGE);

/** The broker's own default address (PORT 8080 on HOST 127.0.0.1), and so its default issuer. */
export const DEFAULT_BROKER_URL = 'http://127.0.0.1:8080';

export interface ClientOptions {
  url: string;
  token?: string | undefined;
  timeoutMs?: number;
}

export interface RequestOptions {
  query?: Record<string, string | number | undefined>;
  json?: unknown;
  form?: URLSearchParams;
  /** Send the bearer token. Off for POST /token: the proof is the credential there. */
  auth?: boolean;
}

export interface BrokerClient {
  readonly baseUrl: string;
  request<T = unknown>(method: 'GET' | 'POST', path: string, opts?: RequestOptions): Promise<T>;
}

const DEFAULT_TIMEOUT_MS = 30_000;

export function createClient(opts: ClientOptions): BrokerClient {
  const baseUrl = checkBaseUrl(opts.url);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    baseUrl,
    async request<T>(method: 'GET' | 'POST', path: string, ro: RequestOptions = {}): Promise<T> {
      const url = new URL(`${baseUrl}${path}`);
      for (const [k, v] of Object.entries(ro.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
      const headers: Record<string, string> = { accept: 'application/json' };
      if (ro.auth !== false) headers.authorization = `Bearer ${requireToken(opts.token)}`;
      let body: string | undefined;
      if (ro.form) {
        headers['content-type'] = 'application/x-www-form-urlencoded';
        body = ro.form.toString();
      } else if (ro.json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(ro.json);
      }
      const res = await send(url, { method, headers, ...(body === undefined ? {} : { body }) }, timeoutMs, baseUrl);
      return (await readAnswer(res, baseUrl)) as T;
    },
  };
}

function checkBaseUrl(raw: string): string {
  const url = raw.trim().replace(/\/+$/, '');
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
    throw usageError(`--url / LEASH_URL must be an http(s) URL, not ${JSON.stringify(raw)}`);
  }
  return url;
}

function requireToken(token: string | undefined): string {
  if (!token) throw usageError('this command needs a Leash operator token: set LEASH_TOKEN or pass --token');
  if (!/^[A-Za-z0-9._~+/-]+=*$/.test(token)) throw usageError('the token (LEASH_TOKEN or --token) is not a bearer token: check for stray quotes or spaces');
  return token;
}

/** Fetch that turns network failures and timeouts into exit code 3. */
export async function send(url: URL, init: RequestInit, timeoutMs: number, what: string): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e.name === 'TimeoutError') throw new CliError(`${what} did not answer within ${timeoutMs / 1000}s`, EXIT.UNAVAILABLE);
    const why = e.cause?.code ?? e.cause?.message ?? e.message;
    throw new CliError(`cannot reach ${what} (${why})`, EXIT.UNAVAILABLE);
  }
}

async function readAnswer(res: Response, baseUrl: string): Promise<unknown> {
  const text = await res.text();
  let body: unknown;
  try {
    body = text === '' ? null : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (res.ok) {
    if (body === undefined) throw new CliError(`${baseUrl} answered HTTP ${res.status} without JSON: is --url the Leash broker?`, EXIT.UNAVAILABLE);
    return body;
  }
  const { code, description, requestId } = errorOf(body);
  const exitCode = res.status >= 500 ? EXIT.UNAVAILABLE : EXIT.REFUSED;
  let message = `${code ?? `HTTP ${res.status}`}: ${description ?? res.statusText ?? 'request refused'}`;
  if (requestId) message += ` (request id ${requestId})`;
  if (code === 'invalid_token') message += '\nhint: the token may have expired or been revoked; get a fresh one with leash exchange';
  throw new CliError(message, exitCode, code);
}

function errorOf(body: unknown): { code?: string; description?: string; requestId?: string } {
  if (typeof body !== 'object' || body === null) return {};
  const b = body as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);
  const out: { code?: string; description?: string; requestId?: string } = {};
  const code = str(b.error);
  const description = str(b.error_description) ?? str(b.message);
  const requestId = str(b.request_id);
  if (code) out.code = code;
  if (description) out.description = description;
  if (requestId) out.requestId = requestId;
  return out;
}
