import 'reflect-metadata';
import { serve, type ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import { join } from 'node:path';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { createDeps } from './create-deps.ts';
import { connectRedis } from './redis/connect.ts';
import { createApp, createOpsApp } from './app.ts';
import { createDevIssuer, type DevIssuer } from './dev/dev-issuer.ts';
import { startRevocationWorker } from './revocation/bullmq-queue.ts';
import { devBanner } from './dev/banner.ts';
import { httpServerOptions } from './http/server-options.ts';
import { mintDevOperatorToken } from './dev/operator-token.ts';
import type { Deps } from './deps.ts';
import { lowerWorkerCpuPriority } from './util/cpu-priority.ts';

function fail(message: string): never {
  process.stderr.write(`leash: cannot start: ${message}\n`);
  process.exit(1);
}

function listen(app: Hono, port: number, hostname: string, config: Config): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port, hostname, serverOptions: httpServerOptions(config) }, () => resolve(server));
    server.once('error', reject);
  });
}

const startHttp = (deps: Deps, config: Config, devIssuer: DevIssuer | undefined): Promise<ServerType> =>
  listen(createApp(deps, devIssuer ? { devIssuer } : {}), config.port, config.host, config);

/**
 * /metrics and health only, without a token: a worker serves no API, but its endings and lag must
 * be scraped. Bound to LEASH_METRICS_HOST so the scrape path can stay on an internal network.
 */
const startOpsHttp = (deps: Deps, config: Config): Promise<ServerType> =>
  listen(createOpsApp(deps), config.metricsPort!, config.metricsHost, config);

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(`invalid configuration: ${err.message}`);
    throw err;
  }
  let deps: Deps;
  try {
    deps = await createDeps(config, { processMetrics: true });
  } catch (err) {
    fail((err as Error).message);
  }
  const devIssuer = config.devIssuer ? createDevIssuer(`${config.issuer}/dev`, join(config.keysDir, 'dev-issuer.pem')) : undefined;
  const closers: (() => Promise<unknown>)[] = [];

  if (config.role !== 'worker') {
    const server = await startHttp(deps, config, devIssuer).catch((err: Error) => fail(`cannot listen on ${config.host}:${config.port} (HOST, PORT): ${err.message}`));
    closers.push(() => new Promise((r) => server.close(() => r(undefined))));
    deps.log.info({ issuer: config.issuer, role: config.role, store: config.redisUrl ? 'redis' : 'memory' }, `leash listening on http://${config.host}:${config.port}`);
  }
  const niced = lowerWorkerCpuPriority(config);
  if (niced !== null) deps.log.info({ nice: config.workerNice, threads: niced }, 'worker CPU priority lowered');
  if (config.role !== 'api' && config.redisUrl) {
    const worker = await startRevocationWorker(connectRedis(config.redisUrl, { forBullmq: true }), config.redisPrefix, deps, {
      sweepIntervalMs: config.sweepIntervalMs,
    });
    closers.push(() => worker.close());
    deps.log.info({ role: config.role }, 'revocation worker started');
  }
  if (config.metricsPort !== undefined) {
    const server = await startOpsHttp(deps, config).catch((err: Error) => fail(`cannot listen on ${config.metricsHost}:${config.metricsPort} (LEASH_METRICS_HOST, LEASH_METRICS_PORT): ${err.message}`));
    closers.push(() => new Promise((r) => server.close(() => r(undefined))));
    deps.log.info(`metrics and health on http://${config.metricsHost}:${config.metricsPort}`);
  }
  if (devIssuer && config.role !== 'worker') {
    const operatorToken = await mintDevOperatorToken(deps, devIssuer).catch((err: Error) => {
      deps.log.warn({ err: err.message }, 'could not mint the dev operator token');
      return undefined;
    });
    process.stdout.write(devBanner(config, operatorToken));
  }

  process.on('SIGHUP', () => {
    deps.reloadPolicy();
    try {
      deps.keys.reload();
      deps.log.info({ active: deps.keys.active().kid }, 'signing keys reloaded');
    } catch (err) {
      deps.log.error({ err: (err as Error).message }, 'key reload refused; the loaded keys stay in force');
    }
  });
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    deps.log.info({ signal }, 'shutting down');
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await deps.close().catch(() => undefined);
    await new Promise<void>((resolve) => deps.log.flush(() => resolve()));
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

void main();
