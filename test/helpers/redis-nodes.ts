import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { waitFor } from './wait.ts';

/** A redis-server (data node or sentinel) a test started, which it can kill and start again. */
export interface RedisNode {
  readonly port: number;
  readonly dir: string;
  /** The running process's pid, or null while it is stopped. */
  pid(): number | null;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again with the same arguments, port and directory (a Cluster node keeps its nodes.conf). */
  start(): Promise<void>;
}

const running = new Set<ChildProcess>();
// A test that crashes must not leave servers behind.
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

/** Spawns `redis-server <args>` in `dir` (made if missing) and waits until it answers PING. */
export async function spawnRedisNode(port: number, dir: string, args: string[]): Promise<RedisNode> {
  mkdirSync(dir, { recursive: true });
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    const c = spawn('redis-server', args, { cwd: dir, stdio: 'ignore' });
    child = c;
    running.add(c);
    c.once('exit', () => running.delete(c));
    // A Cluster starts six of these at once beside the rest of the suite: 10 s was once not enough.
    await until(`redis-server on port ${port}`, async () => (await command(port, 'PING')) === 'PONG', 30_000);
  };
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, 'exit');
    c.kill(signal);
    await exited;
  };
  await start();
  return { port, dir, pid: () => child?.pid ?? null, kill, start };
}

/** Polls f (a throw counts as not yet) until it returns something truthy; fails naming `what`. */
export const until = <T>(what: string, f: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> =>
  waitFor(what, () => f().catch(() => null), timeoutMs, 50);

/** One command on a fresh connection to 127.0.0.1:port (fails at once if nothing listens). */
export async function command(port: number, ...args: (string | number)[]): Promise<unknown> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000, commandTimeout: 2_000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await r.call(String(args[0]), ...args.slice(1).map(String));
  } finally {
    r.disconnect();
  }
}

/** `INFO <section>` of a node as key/value pairs. */
export async function info(port: number, section: string): Promise<Record<string, string>> {
  const text = String(await command(port, 'INFO', section));
  return Object.fromEntries(text.split('\r\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
}

export const nodeDir = (root: string, port: number): string => join(root, String(port));

/** Server arguments every test node shares: loopback only, no persistence, quiet. */
export const baseArgs = (port: number, dir: string): string[] => [
  '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
  '--daemonize', 'no', '--loglevel', 'warning', '--protected-mode', 'yes',
];
