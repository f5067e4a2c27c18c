import { createServer, connect, type Socket } from 'node:net';
import { freePort } from './redis-server.ts';

/**
 * A real TCP proxy on a free loopback port, in front of a server the test started. It can hold
 * back the server's replies (the requests still go through) and then cut every connection: what a
 * client sees when its primary dies after taking a write but before its reply left.
 */
export interface TcpProxy {
  port: number;
  /**
   * From now on (or from the first request holding `marker` on) the server's replies are dropped;
   * the clients' requests still reach it.
   */
  holdReplies(marker?: string): void;
  /**
   * Closes every connection through the proxy, then closes new ones at once for `refuseMs` (the
   * time a failover takes), and lets replies through again after.
   */
  cutAll(refuseMs?: number): void;
  /**
   * The next request holding `marker` goes to the server twice, and the client sees only the second
   * answer: what an ioredis Cluster client does when a node's connection closes with a command in
   * flight that the node had already run.
   */
  sendTwice(marker: string): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let holding = false;
  let refuseUntil = 0;
  let twice: string | null = null;
  let holdFrom: string | null = null;
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = createServer((client) => {
    if (Date.now() < refuseUntil) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    track(client);
    track(upstream);
    let again: Buffer | null = null;
    client.on('data', (d: Buffer) => {
      if (holdFrom !== null && d.includes(holdFrom)) {
        holdFrom = null;
        holding = true;
      }
      if (twice !== null && d.includes(twice)) {
        twice = null;
        again = d;
      }
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (again !== null) {
        // The first answer is lost; the request goes again.
        upstream.write(again);
        again = null;
        return;
      }
      if (!holding) client.write(d);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port,
    holdReplies(marker) {
      if (marker === undefined) holding = true;
      else holdFrom = marker;
    },
    cutAll(refuseMs = 0) {
      refuseUntil = Date.now() + refuseMs;
      for (const s of sockets) s.destroy();
      holding = false;
      holdFrom = null;
    },
    sendTwice(marker) {
      twice = marker;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
