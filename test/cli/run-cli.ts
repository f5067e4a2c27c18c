import { execFile, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/leash.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed (stdin is never a terminal here). */
  input?: string;
  cwd?: string;
}

/**
 * A clean environment: nothing of the developer's LEASH_*, REDIS_* or CI variables leaks into
 * the command under test.
 */
function envFor(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const base: Record<string, string | undefined> = { PATH: process.env.PATH, HOME: process.env.HOME, USER: 'tester', ...extra };
  return Object.fromEntries(Object.entries(base).filter((e): e is [string, string] => e[1] !== undefined));
}

/**
 * Runs `node bin/leash.js ...args` as a subprocess and resolves with its exit code and output.
 * Each run starts node and tsx (about a second on a loaded machine), hence the CLI suites' long
 * test timeouts.
 */
export function runCli(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      { env: envFor(opts.env), cwd: opts.cwd, timeout: 30_000, maxBuffer: 8 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    child.stdin?.end(opts.input ?? '');
  });
}

/** Starts a long-running command (e.g. `audit tail --follow`) and collects its output as it comes. */
export function spawnCli(args: string[], opts: RunOptions = {}): { child: ChildProcess; stdout: () => string; stderr: () => string } {
  let out = '';
  let errOut = '';
  const child = execFile(process.execPath, [BIN, ...args], { env: envFor(opts.env), cwd: opts.cwd });
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (errOut += d.toString()));
  child.stdin?.end();
  return { child, stdout: () => out, stderr: () => errOut };
}

export async function waitFor(check: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The payload of a JWT, unverified (tests verify through the broker). */
export const jwtPayload = (token: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;

/** The broker's Redis connection comes up just after it listens; /readyz says when. */
export async function waitForReady(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await fetch(`${url}/readyz`).catch(() => undefined);
    if (res?.ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not become ready`);
}
