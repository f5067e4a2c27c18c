import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Redis } from 'ioredis';
import { peerOf, unmappedAddress } from './peer.ts';
import type { HostPort, RedisTarget } from './redis-url.ts';

type SentinelTarget = Extract<RedisTarget, { kind: 'sentinel' }>;

/** Emitted on a watched client when it leaves a node the sentinels no longer name as primary. */
export const PRIMARY_MOVED = 'leash:primary-moved';

export interface PrimaryMoved {
  /** The node the client was connected to, and the one the sentinels name. */
  from: string;
  to: string;
}

const WATCH_INTERVAL_MS = 1_000;

/**
 * ioredis follows a Sentinel failover only when its connection drops. A primary the sentinels
 * replace while it keeps its connections (frozen, or cut off from them but not from Leash) would
 * go on taking writes until it is demoted, and its demotion's full resync then wipes them: leases
 * whose credentials were handed out. So every second the sentinels are asked which node is
 * primary, and a ready client connected elsewhere drops its socket; ioredis then reconnects
 * through the sentinels as after any lost connection. (Not ioredis's failoverDetector: see
 * connect.ts.) Duplicates (BullMQ makes its blocking connections so) are watched too.
 */
export function watchSentinelPrimary(client: Redis, target: SentinelTarget, intervalMs = WATCH_INTERVAL_MS): void {
  const asker = createSentinelAsker(target);
  let checking = false;
  const timer = setInterval(() => {
    if (checking || client.status !== 'ready') return;
    checking = true;
    void check().finally(() => {
      checking = false;
    });
  }, intervalMs);
  timer.unref();

  async function check(): Promise<void> {
    const named = await asker.primary();
    const socket = client.stream;
    const here = peerOf(client);
    if (!named || !here || client.status !== 'ready') return;
    if (await sameNode(here, named)) return;
    // One sentinel may be behind (just after a failover, or cut off from the others): another must
    // name the same node, or every second a stale answer would cut a good connection.
    if (!(await asker.confirmedByAnother(named)) || client.status !== 'ready' || client.stream !== socket) return;
    client.emit(PRIMARY_MOVED, { from: `${here.host}:${here.port}`, to: `${named.host}:${named.port}` } satisfies PrimaryMoved);
    // destroy, not end: a frozen primary never answers the FIN, and ioredis reconnects on 'close'.
    socket.destroy();
  }

  client.once('end', () => {
    clearInterval(timer);
    asker.close();
  });
  const duplicate = client.duplicate.bind(client);
  client.duplicate = (override) => {
    const copy = duplicate(override);
    watchSentinelPrimary(copy, target, intervalMs);
    return copy;
  };
}

interface SentinelAsker {
  /** The primary the first sentinel that answers names, or null when none answers. */
  primary(): Promise<HostPort | null>;
  /** Whether another sentinel of the URL names `node` too (trivially, when the URL lists one). */
  confirmedByAnother(node: HostPort): Promise<boolean>;
  close(): void;
}

function createSentinelAsker(target: SentinelTarget): SentinelAsker {
  let conn: Redis | undefined;
  let next = 0;
  const open = (at: HostPort): Redis =>
    new Redis({
      host: at.host,
      port: at.port,
      ...(target.sentinelPassword ? { password: target.sentinelPassword } : {}),
      ...(target.tls ? { tls: {} } : {}),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 1_000,
      commandTimeout: 1_000,
    });
  const ask = async (sentinel: Redis): Promise<HostPort | null> => {
    const reply = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', target.name)) as [string, string] | null;
    return reply ? { host: reply[0], port: Number(reply[1]) } : null;
  };
  return {
    async primary() {
      for (let tries = 0; tries < target.sentinels.length; tries++) {
        try {
          if (!conn) {
            conn = open(target.sentinels[next % target.sentinels.length]!);
            conn.on('error', () => undefined);
            await conn.connect();
          }
          return await ask(conn);
        } catch {
          conn?.disconnect();
          conn = undefined;
          next++; // that sentinel is away: ask the next
        }
      }
      return null;
    },
    async confirmedByAnother(node) {
      if (target.sentinels.length === 1) return true;
      const asked = next % target.sentinels.length;
      for (let i = 0; i < target.sentinels.length; i++) {
        if (i === asked) continue;
        const other = open(target.sentinels[i]!);
        other.on('error', () => undefined);
        try {
          await other.connect();
          const named = await ask(other);
          if (named && named.port === node.port && named.host === node.host) return true;
        } catch {
          // away: ask the next
        } finally {
          other.disconnect();
        }
      }
      return false;
    },
    close() {
      conn?.disconnect();
      conn = undefined;
    },
  };
}

/** A sentinel may announce a hostname; the socket knows only the address it reached. */
async function sameNode(here: HostPort, named: HostPort): Promise<boolean> {
  if (here.port !== named.port) return false;
  if (isIP(named.host)) return unmappedAddress(named.host) === here.host;
  try {
    return (await lookup(named.host, { all: true })).some((a) => unmappedAddress(a.address) === here.host);
  } catch {
    return true; // cannot tell: leave the connection as it is
  }
}
