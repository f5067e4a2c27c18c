import { pino, type Logger } from 'pino';

export type { Logger };

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
  // Asynchronous writes: under load lines written while one write is in flight go out together,
  // instead of one write(2) per line on the request path. main.ts flushes on shutdown.
  return pino({ level: opts.level, redact, base: { service: 'leash' } }, pino.destination({ dest: 1, sync: false }));
}
