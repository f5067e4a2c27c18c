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
  };
}
