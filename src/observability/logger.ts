import { pino, type Logger } from 'pino';

export type { Logger };

const LOG_BUFFER_BYTES = 8192;
const LOG_FLUSH_MS = 200;

/**
 * JSON logs, one object a line. Anything that looks like a credential is redacted by path as a
 * second line of defence; the first is never passing tokens to the logger at all.
 */
export function createLogger(opts: { level: string; pretty: boolean }): Logger {
  // Exact paths only: wildcard redaction costs a few per cent of the token endpoint's CPU, and no
  // code passes credentials to the logger anyway (test/security/secrets-in-logs proves it).
  const redact = {
    paths: ['token', 'subject_token', 'actor_token', 'access_token', 'authorization', 'csr', 'privateKey', 'headers.authorization'],
    censor: '[redacted]',
  };

  if (opts.pretty && process.stdout.isTTY) {
    try {
      return pino({ level: opts.level, redact, transport: { target: 'pino-pretty', options: { colorize: true } } });
    } catch {
      // pino-pretty is a dev dependency; production installs fall back to JSON.
    }
  }
  // Asynchronous, buffered writes: under load about ten lines go out per write(2) instead of one
  // each on the request path (a write per line cost ~7% of the token endpoint's CPU); a quiet
  // broker's lines wait at most LOG_FLUSH_MS. main.ts flushes on shutdown, pino on exit.
  return pino(
    { level: opts.level, redact, base: { service: 'leash' } },
    pino.destination({ dest: 1, sync: false, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_MS }),
  );
}
