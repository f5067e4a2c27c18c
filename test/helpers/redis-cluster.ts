import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './redis-server.ts';
import { baseArgs, command, info, nodeDir, spawnRedisNode, until, type RedisNode } from './redis-nodes.ts';

const run = promisify(execFile);

export interface TestRedisCluster {
  /** `redis+cluster://` with every node as a seed. */
  url: string;
  nodes: RedisNode[];
  /** The nodes that are primaries now (asked of the cluster, so it follows failovers). */
  primaries(): Promise<RedisNode[]>;
  /** The primary now serving a hash slot. */
  primaryOfSlot(slot: number): Promise<RedisNode>;
  kill(node: RedisNode, signal?: NodeJS.Signals): Promise<void>;
  /** Waits until every slot is served again by a primary that is not `gone`, with replicas linked. */
  waitForFailover(gone: RedisNode, opts?: { replicas?: number; timeoutMs?: number }): Promise<void>;
  /** Stops every node and removes the temp dir. */
  destroy(): Promise<void>;
}

/**
 * A real Redis Cluster of `primaries` x (1 + `replicas`) redis-server processes on free loopback
 * ports in a temp dir, made by `redis-cli --cluster create`. A short node timeout makes a killed
 * primary fail over in a few seconds.
 */
export async function startRedisCluster(opts: { primaries?: number; replicas?: number; nodeTimeoutMs?: number } = {}): Promise<TestRedisCluster> {
  const primaries = opts.primaries ?? 3;
  const replicas = opts.replicas ?? 1;
  const root = mkdtempSync(join(tmpdir(), 'leash-cluster-'));
  const nodes: RedisNode[] = [];
  const destroy = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.kill('SIGKILL')));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < primaries * (1 + replicas); i++) {
      const port = await freePort();
      // The bus port is given explicitly: port + 10000 may be past 65535 or taken.
      const busPort = await freePort();
      const dir = nodeDir(root, port);
      nodes.push(await spawnRedisNode(port, dir, [
        ...baseArgs(port, dir), '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
        '--cluster-port', String(busPort), '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 1_000),
      ]));
    }
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: 60_000 });
    await until('the cluster to cover every slot on every node', async () => {
      for (const n of nodes) {
        const state = await clusterInfo(n.port);
        if (state.cluster_state !== 'ok' || state.cluster_slots_ok !== '16384' || state.cluster_known_nodes !== String(nodes.length)) return false;
      }
      return true;
    }, 60_000);
    await until('every replica to be in sync', async () => {
      for (const n of nodes) {
        const r = await info(n.port, 'replication');
        if (r.role === 'slave' && r.master_link_status !== 'up') return false;
        if (r.role === 'master' && Number(r.connected_slaves) < replicas) return false;
      }
      return true;
    }, 60_000);
  } catch (err) {
    await destroy();
    throw err;
  }

  const alive = (): RedisNode[] => nodes.filter((n) => n.pid() !== null);
  const primaryNodes = async (): Promise<RedisNode[]> => {
    const out: RedisNode[] = [];
    for (const n of alive()) if ((await info(n.port, 'replication')).role === 'master') out.push(n);
    return out;
  };

  return {
    url: `redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`,
    nodes,
    primaries: primaryNodes,
    async primaryOfSlot(slot) {
      for (const n of alive()) {
        const slots = (await command(n.port, 'CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
        const range = slots.find(([from, to]) => slot >= from && slot <= to);
        const node = range && nodes.find((m) => m.port === Number(range[2][1]));
        if (node) return node;
      }
      throw new Error(`no node serves slot ${slot}`);
    },
    kill: (node, signal = 'SIGKILL') => node.kill(signal),
    async waitForFailover(gone, w = {}) {
      const want = w.replicas ?? 0;
      await until('a new primary for the killed one\'s slots', async () => {
        for (const n of alive()) {
          const state = await clusterInfo(n.port);
          if (state.cluster_state !== 'ok' || state.cluster_slots_ok !== '16384') return false;
          const slots = (await command(n.port, 'CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
          if (slots.some((r) => Number(r[2][1]) === gone.port)) return false;
        }
        for (const p of await primaryNodes()) if (Number((await info(p.port, 'replication')).connected_slaves) < want) return false;
        return true;
      }, w.timeoutMs ?? 30_000);
    },
    destroy,
  };
}

async function clusterInfo(port: number): Promise<Record<string, string>> {
  const text = String(await command(port, 'CLUSTER', 'INFO'));
  return Object.fromEntries(text.split('\r\n').filter((l) => l.includes(':')).map((l) => l.split(':') as [string, string]));
}
