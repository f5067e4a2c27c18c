import type { Redis } from 'ioredis';
import type { HostPort } from './redis-url.ts';

/** An IPv4 address as a dual-stack socket may report it (`::ffff:127.0.0.1`), unwrapped. */
export const unmappedAddress = (address: string): string => (address.startsWith('::ffff:') ? address.slice(7) : address);

/**
 * The node a connection is on: its socket's peer, or null while it has none. A Sentinel client's
 * options name no node (ioredis keeps its defaults there), so this is the only true answer.
 */
export function peerOf(client: Redis): HostPort | null {
  const socket = client.stream;
  if (!socket?.remoteAddress || socket.remotePort === undefined) return null;
  return { host: unmappedAddress(socket.remoteAddress), port: socket.remotePort };
}
