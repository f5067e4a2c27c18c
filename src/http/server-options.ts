import type { ServerOptions } from 'node:http';
import type { Config } from '../config.ts';

/**
 * Node's defaults let a client trickle a body for five minutes and check only every 30 s; a
 * broker should cut slow clients off quickly so they cannot pin its connections.
 */
export function httpServerOptions(config: Pick<Config, 'requestTimeoutMs'>): ServerOptions {
  const requestTimeout = config.requestTimeoutMs;
  return {
    requestTimeout,
    headersTimeout: Math.min(requestTimeout, 10_000),
    keepAliveTimeout: 5_000,
    connectionsCheckingInterval: Math.min(1_000, requestTimeout),
    // Node's 16 KiB would cut off a listing by a subject as long as a proof's (16 KiB, and up to three
    // times that percent-encoded) with a bare 431 before Leash sees it.
    maxHeaderSize: 64 * 1024,
  };
}
