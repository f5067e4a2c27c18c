/**
 * Runs a server under test in a child process (its own event loop, its own core when one is free)
 * and learns its URL over IPC. The child entry calls `serveChild()` below. On request the child
 * records a V8 CPU profile (the same .cpuprofile `node --cpu-prof` writes) of just the measured
 * window, without start-up and module loading.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const RESULTS_DIR = join(BENCH_DIR, 'results');
export const LOGS_DIR = join(RESULTS_DIR, 'logs');

export interface ChildServer {
  url: string;
  pid: number;
  name: string;
  /** Starts V8's sampling CPU profiler in the child (node:inspector), so only the window is profiled. */
  profileStart(): Promise<void>;
  /** Stops it and writes the .cpuprofile to `file`. */
  profileStop(file: string): Promise<void>;
  /** Asks the child to close cleanly (so a CPU profile gets written), then kills it if it hangs. */
  stop(): Promise<void>;
}

export interface StartChildOptions {
  /** Path of the entry, relative to bench/. */
  entry: string;
  /** Used for the log file name. */
  name: string;
  env?: Record<string, string>;
  /** Node flags the process runs with, before any from BENCH_CHILD_FLAGS (which may undo them). */
  nodeFlags?: string[];
  startTimeoutMs?: number;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) if (c.exitCode === null) c.kill('SIGKILL');
});

export async function startChild(opts: StartChildOptions): Promise<ChildServer> {
  mkdirSync(LOGS_DIR, { recursive: true });
  const logPath = join(LOGS_DIR, `${opts.name}.log`);
  const logFd = openSync(logPath, 'w');
  const role = opts.env?.LEASH_ROLE?.toUpperCase();
  const flags = `${process.env.BENCH_CHILD_FLAGS ?? ''} ${role ? (process.env[`BENCH_CHILD_FLAGS_${role}`] ?? '') : ''}`;
  const execArgv = ['--import', 'tsx', ...(opts.nodeFlags ?? []), ...flags.split(/\s+/).filter(Boolean)];
  const child = fork(join(BENCH_DIR, opts.entry), [], {
    execArgv,
    env: { ...process.env, NODE_ENV: 'production', ...opts.env },
    stdio: ['ignore', logFd, logFd, 'ipc'],
  });
  closeSync(logFd);
  live.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => { live.delete(child); resolve(); }));

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${opts.name} did not start within ${opts.startTimeoutMs ?? 30_000} ms (log: ${logPath})`));
    }, opts.startTimeoutMs ?? 30_000);
    child.on('message', (m: { type?: string; url?: string; error?: string }) => {
      if (m?.type === 'ready' && m.url) {
        clearTimeout(timer);
        resolve(m.url);
      } else if (m?.type === 'error') {
        clearTimeout(timer);
        reject(new Error(`${opts.name} failed to start: ${m.error} (log: ${logPath})`));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${opts.name} exited with ${code} before it was ready (log: ${logPath})`));
    });
  });

  const ask = (msg: Record<string, unknown>, reply: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => { child.off('message', on); reject(new Error(`${opts.name}: no ${reply} within 30 s`)); }, 30_000);
      const on = (m: { type?: string; error?: string }): void => {
        if (m?.type !== reply) return;
        clearTimeout(timer);
        child.off('message', on);
        if (m.error) reject(new Error(`${opts.name}: ${m.error}`));
        else resolve();
      };
      child.on('message', on);
      child.send(msg);
    });

  return {
    url,
    pid: child.pid!,
    name: opts.name,
    profileStart: () => ask({ type: 'profile-start' }, 'profile-started'),
    profileStop: (file) => ask({ type: 'profile-stop', file }, 'profile-stopped'),
    async stop() {
      if (child.exitCode !== null) return;
      if (child.connected) child.send({ type: 'stop' });
      else child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Child side: reports the URL to the parent, profiles on request, closes on `stop` or when the parent goes away. */
export function serveChild(start: () => Promise<{ url: string; close(): Promise<void> }>): void {
  const fail = (err: unknown): never => {
    const message = err instanceof Error ? err.stack ?? err.message : String(err);
    process.stderr.write(`${message}\n`);
    process.send?.({ type: 'error', error: message.split('\n')[0] });
    process.exit(1);
  };
  start().then(
    (server) => {
      let closing = false;
      const close = async (): Promise<void> => {
        if (closing) return;
        closing = true;
        const hard = setTimeout(() => process.exit(0), 5_000);
        hard.unref();
        await server.close().catch(() => undefined);
        process.exit(0);
      };
      let session: Session | undefined;
      process.on('message', (m: { type?: string; file?: string }) => {
        if (m?.type === 'stop') void close();
        if (m?.type === 'profile-start') {
          void (async () => {
            session = new Session();
            session.connect();
            await session.post('Profiler.enable');
            await session.post('Profiler.setSamplingInterval', { interval: 500 });
            await session.post('Profiler.start');
          })().then(
            () => process.send?.({ type: 'profile-started' }),
            (err: Error) => process.send?.({ type: 'profile-started', error: err.message }),
          );
        }
        if (m?.type === 'profile-stop' && m.file) {
          const file = m.file;
          void (async () => {
            if (!session) throw new Error('the profiler was not started');
            const { profile } = await session.post('Profiler.stop');
            writeFileSync(file, JSON.stringify(profile));
            session.disconnect();
            session = undefined;
          })().then(
            () => process.send?.({ type: 'profile-stopped' }),
            (err: Error) => process.send?.({ type: 'profile-stopped', error: err.message }),
          );
        }
      });
      process.on('disconnect', () => void close());
      process.on('SIGTERM', () => void close());
      process.send?.({ type: 'ready', url: server.url });
    },
    fail,
  );
}
