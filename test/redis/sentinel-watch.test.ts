import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PRIMARY_MOVED, watchSentinelPrimary } from '../../src/redis/sentinel-watch.ts';
import { SENTINEL_MASTER_NAME, startRedisSentinel, type TestRedisSentinel } from '../helpers/redis-sentinel.ts';

/**
 * The watch against real sentinels, plus one that is behind: a stand-in that answers every
 * SENTINEL GET-MASTER-ADDR-BY-NAME with a node that is not the primary (as a sentinel cut off from
 * the others would). Its word alone must not cut a good connection; confirmed, it would.
 */
let sentinel: TestRedisSentinel;
let stale: Server;
let stalePort: number;

beforeAll(async () => {
  sentinel = await startRedisSentinel({ replicas: 1 });
  stale = createServer((socket) => {
    let pending = '';
    socket.on('data', (data) => {
      pending += data.toString();
      for (let command = takeCommand(); command; command = takeCommand()) socket.write(answer(command));
    });
    /** The next whole RESP array of bulk strings in `pending`, as its words. */
    function takeCommand(): string[] | null {
      const m = /^\*(\d+)\r\n/.exec(pending);
      if (!m) return null;
      const words: string[] = [];
      let at = m[0].length;
      for (let i = 0; i < Number(m[1]); i++) {
        const len = /^\$(\d+)\r\n/.exec(pending.slice(at));
        if (!len || pending.length < at + len[0].length + Number(len[1]) + 2) return null;
        words.push(pending.slice(at + len[0].length, at + len[0].length + Number(len[1])));
        at += len[0].length + Number(len[1]) + 2;
      }
      pending = pending.slice(at);
      return words;
    }
  });
  stale.listen(0, '127.0.0.1');
  await once(stale, 'listening');
  stalePort = (stale.address() as AddressInfo).port;
}, 120_000);
afterAll(async () => {
  stale?.close();
  await sentinel?.destroy();
});

/** What ioredis asks on connecting (HELLO 3, CLIENT SETINFO, INFO), the stale primary, else OK. */
function answer([name = '', sub = '']: string[]): string {
  const cmd = name.toUpperCase();
  if (cmd === 'HELLO') return '%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n';
  if (cmd === 'SENTINEL' && sub.toUpperCase() === 'GET-MASTER-ADDR-BY-NAME') return '*2\r\n$9\r\n127.0.0.1\r\n$1\r\n1\r\n';
  if (cmd === 'INFO') return '$21\r\n# Server\r\nloading:0\r\n\r\n';
  return '+OK\r\n';
}

async function watchedPrimaryClient(sentinels: { host: string; port: number }[]): Promise<{ client: Redis; moved: unknown[] }> {
  const primary = await sentinel.primary();
  const client = new Redis({ host: '127.0.0.1', port: primary.port, lazyConnect: true });
  await client.connect();
  const moved: unknown[] = [];
  client.on(PRIMARY_MOVED, (m) => moved.push(m));
  watchSentinelPrimary(client, { kind: 'sentinel', tls: false, sentinels, name: SENTINEL_MASTER_NAME }, 100);
  return { client, moved };
}

const real = (): { host: string; port: number }[] => sentinel.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port }));

it('a stale sentinel asked first, contradicted by the others, does not move a client off the primary', async () => {
  const { client, moved } = await watchedPrimaryClient([{ host: '127.0.0.1', port: stalePort }, ...real()]);
  try {
    const socket = client.stream;
    await new Promise((r) => setTimeout(r, 1_500)); // fifteen checks
    expect(moved).toEqual([]);
    expect(client.stream).toBe(socket);
    expect(await client.ping()).toBe('PONG');
  } finally {
    client.disconnect();
  }
});

it('the same answer from the only sentinel the URL names is acted on (control)', async () => {
  const { client, moved } = await watchedPrimaryClient([{ host: '127.0.0.1', port: stalePort }]);
  try {
    const primary = await sentinel.primary();
    await new Promise((r) => setTimeout(r, 1_000));
    expect(moved[0]).toEqual({ from: `127.0.0.1:${primary.port}`, to: '127.0.0.1:1' });
  } finally {
    client.disconnect();
  }
});
