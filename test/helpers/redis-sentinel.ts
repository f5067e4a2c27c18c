import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.ts';
import { baseArgs, command, info, nodeDir, spawnRedisNode, until, type RedisNode } from './redis-nodes.ts';

export const SENTINEL_MASTER_NAME = 'leash';

export interface TestRedisSentinel {
  /** `redis+sentinel://s1,s2,s3/leash`. */
  url: string;
  /** Data nodes: the first primary and its replicas (roles change with failovers). */
  data: RedisNode[];
  sentinels: RedisNode[];
  /** The data node the sentinels name as primary now. */
  primary(): Promise<RedisNode>;
  /** SIGKILLs the current primary; returns it. */
  killPrimary(): Promise<RedisNode>;
  /** Waits until the sentinels name another primary than `gone`, it is a primary, and has `replicas` linked. */
  waitForPromotion(gone: RedisNode, opts?: { replicas?: number; timeoutMs?: number }): Promise<RedisNode>;
  destroy(): Promise<void>;
}

/**
 * A real Sentinel set: one primary, `replicas` replicas and three `redis-server --sentinel` with
 * quorum 2, a 1 s down-after and a short failover timeout, on free loopback ports in a temp dir.
 */
export async function startRedisSentinel(opts: { replicas?: number; downAfterMs?: number } = {}): Promise<TestRedisSentinel> {
  const root = mkdtempSync(join(tmpdir(), 'leash-sentinel-'));
  const data: RedisNode[] = [];
  const sentinels: RedisNode[] = [];
  const destroy = async (): Promise<void> => {
    await Promise.all([...sentinels, ...data].map((n) => n.kill('SIGKILL')));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    const primaryPort = await freePort();
    data.push(await spawnRedisNode(primaryPort, nodeDir(root, primaryPort), baseArgs(primaryPort, nodeDir(root, primaryPort))));
    for (let i = 0; i < (opts.replicas ?? 2); i++) {
      const port = await freePort();
      const dir = nodeDir(root, port);
      data.push(await spawnRedisNode(port, dir, [...baseArgs(port, dir), '--replicaof', '127.0.0.1', String(primaryPort)]));
    }
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const dir = nodeDir(root, port);
      const conf = join(root, `sentinel-${port}.conf`);
      // Sentinel rewrites its config file, so each has its own.
      writeFileSync(conf, [
        `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`,
        `sentinel monitor ${SENTINEL_MASTER_NAME} 127.0.0.1 ${primaryPort} 2`,
        `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} ${opts.downAfterMs ?? 1_000}`,
        `sentinel failover-timeout ${SENTINEL_MASTER_NAME} 5000`,
        `sentinel parallel-syncs ${SENTINEL_MASTER_NAME} 2`,
        '',
      ].join('\n'));
      sentinels.push(await spawnRedisNode(port, dir, [conf, '--sentinel', '--daemonize', 'no', '--loglevel', 'warning']));
    }
    await until('replicas in sync and sentinels that know them and each other', async () => {
      if (Number((await info(primaryPort, 'replication')).connected_slaves) < data.length - 1) return false;
      for (const r of data.slice(1)) if ((await info(r.port, 'replication')).master_link_status !== 'up') return false;
      for (const s of sentinels) {
        const m = pairs((await command(s.port, 'SENTINEL', 'MASTER', SENTINEL_MASTER_NAME)) as string[]);
        if (m['num-other-sentinels'] !== '2' || m['num-slaves'] !== String(data.length - 1)) return false;
      }
      return true;
    }, 60_000);
  } catch (err) {
    await destroy();
    throw err;
  }

  const primaryPortNow = async (): Promise<number> => {
    for (const s of sentinels) {
      try {
        const [, port] = (await command(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER_NAME)) as [string, string];
        return Number(port);
      } catch {
        // that sentinel is down: ask the next
      }
    }
    throw new Error('no sentinel answers');
  };
  const nodeOnPort = (port: number): RedisNode => {
    const n = data.find((d) => d.port === port);
    if (!n) throw new Error(`the sentinels name an unknown primary on port ${port}`);
    return n;
  };

  return {
    url: `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${SENTINEL_MASTER_NAME}`,
    data,
    sentinels,
    primary: async () => nodeOnPort(await primaryPortNow()),
    async killPrimary() {
      const p = nodeOnPort(await primaryPortNow());
      await p.kill('SIGKILL');
      return p;
    },
    async waitForPromotion(gone, w = {}) {
      return until('a promoted primary', async () => {
        const port = await primaryPortNow();
        if (port === gone.port) return null;
        const r = await info(port, 'replication');
        return r.role === 'master' && Number(r.connected_slaves) >= (w.replicas ?? 0) ? nodeOnPort(port) : null;
      }, w.timeoutMs ?? 30_000);
    },
    destroy,
  };
}

const pairs = (flat: string[]): Record<string, string> => {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
};
