import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export interface TestRedis {
  url: string;
  port: number;
  dir: string;
  /** Stops the server (SHUTDOWN; with persistence on, data is saved first). */
  stop(): Promise<void>;
  /** Starts it again on the same port and directory. */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts a private redis-server on a free loopback port in a temp dir, so tests never touch a
 * user's Redis and can kill and restart it. `persist: true` turns on AOF (fsync always) so data
 * survives a restart.
 */
export async function startRedis(opts: { persist?: boolean } = {}): Promise<TestRedis> {
  // A port found free can be taken before redis-server binds it (an outgoing connection's source
  // port, or another file's server): redis-server then exits, and a new port is tried.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRedisOn(await freePort(), opts);
    } catch (err) {
      if (!(err instanceof ServerExitedError) || attempt === 5) throw err;
    }
  }
}

class ServerExitedError extends Error {}

async function startRedisOn(port: number, opts: { persist?: boolean }): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'leash-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;

  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', opts.persist ? 'yes' : 'no', '--appendfsync', 'always',
    '--daemonize', 'no', '--loglevel', 'warning', '--protected-mode', 'yes',
  ];

  const start = async (): Promise<void> => {
    const c = spawn('redis-server', args, { stdio: 'ignore' });
    child = c;
    await waitForPing(url, 10_000, () => c.exitCode !== null || c.signalCode !== null);
  };

  const stop = async (): Promise<void> => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill(opts.persist ? 'SIGTERM' : 'SIGKILL');
    await exited;
  };

  try {
    await start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    port,
    dir,
    start,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    destroy: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPing(url: string, timeoutMs: number, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited()) throw new ServerExitedError(`redis-server at ${url} exited before it answered (its port taken?)`);
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => undefined);
    try {
      await r.connect();
      await r.ping();
      r.disconnect();
      return;
    } catch (err) {
      r.disconnect();
      if (Date.now() > deadline) throw new Error(`redis-server did not start at ${url}: ${String(err)}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
}
