/**
 * GET a small JSON document from an issuer. Bounded in time and size because it runs on the
 * exchange path when a cache is cold, and an issuer that hangs or streams forever must not hold
 * requests (or memory) hostage.
 */

export interface HttpJsonOptions {
  fetch: typeof fetch;
  timeoutMs: number;
  /** JWKS and discovery documents are a few KB; 1 MiB is generous. */
  maxBytes?: number;
}

export type HttpJsonCode =
  | 'ERR_HTTP_JSON_UNREACHABLE'
  | 'ERR_HTTP_JSON_TIMEOUT'
  | 'ERR_HTTP_JSON_STATUS'
  | 'ERR_HTTP_JSON_TOO_LARGE'
  | 'ERR_HTTP_JSON_NOT_JSON';

export class HttpJsonError extends Error {
  override readonly name = 'HttpJsonError';
  constructor(
    readonly code: HttpJsonCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A failed request or read: timed out (the issuer hangs) or unreachable (refused, reset, DNS). */
const transportFailure = (message: string, err: unknown): HttpJsonError =>
  new HttpJsonError(isTimeout(err) ? 'ERR_HTTP_JSON_TIMEOUT' : 'ERR_HTTP_JSON_UNREACHABLE', `${message}: ${describe(err)}`, { cause: err });

const isTimeout = (err: unknown): boolean => err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');

export async function fetchJson(url: string, opts: HttpJsonOptions): Promise<unknown> {
  const maxBytes = opts.maxBytes ?? 1024 * 1024;
  const signal = AbortSignal.timeout(opts.timeoutMs);
  let res: Response;
  try {
    // Key material comes only from the configured URL: a redirect could downgrade https or point elsewhere.
    res = await opts.fetch(url, { method: 'GET', headers: { accept: 'application/json' }, signal, redirect: 'error' });
  } catch (err) {
    throw transportFailure(`GET ${url} failed`, err);
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new HttpJsonError('ERR_HTTP_JSON_STATUS', `GET ${url} answered ${res.status}`);
  }
  const text = await readCapped(res, maxBytes, url);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpJsonError('ERR_HTTP_JSON_NOT_JSON', `GET ${url} did not answer JSON`);
  }
}

async function readCapped(res: Response, maxBytes: number, url: string): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw new HttpJsonError('ERR_HTTP_JSON_TOO_LARGE', `GET ${url} answered more than ${maxBytes} bytes`);
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new HttpJsonError('ERR_HTTP_JSON_TOO_LARGE', `GET ${url} answered more than ${maxBytes} bytes`);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof HttpJsonError) throw err;
    throw transportFailure(`GET ${url} failed while reading`, err);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    if (isTimeout(err)) return 'timed out';
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
  }
  return String(err);
}
