import { logAuditEvents } from './observability/audit-line.ts';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type Config } from './config.ts';
import type { Deps } from './deps.ts';
import { LeashError } from './errors.ts';
import { isLoggedWithRequest, type AuditEvent, type AuditLog } from './audit/events.ts';
import { createMemoryAuditLog } from './audit/memory-audit-log.ts';
import { createRedisAuditLog } from './audit/redis-audit-log.ts';
import { withLogging } from './audit/log-sink.ts';
import type { LeaseStore } from './leases/store.ts';
import { AbandonedLeases, abandonedLeaseSteps } from './exchange/abandoned-leases.ts';
import { RedisOutages, watchOutages } from './redis/outages.ts';
import { createMemoryLeaseStore } from './leases/memory-store.ts';
import { createRedisLeaseStore } from './leases/redis-store.ts';
import { startWalkProcess, type WalkProcess } from './revocation/walk-process.ts';
import { createKeyStore } from './mint/jwt/keystore.ts';
import { startSigningHeartbeat, type SigningHeartbeat } from './mint/jwt/signing-heartbeat.ts';
import type { SigningRecord } from './mint/jwt/signing-record.ts';
import { createFileSigningRecord } from './mint/jwt/signing-record-file.ts';
import { createRedisSigningRecord } from './mint/jwt/signing-record-redis.ts';
import { generateSigningKey } from './mint/jwt/generate-key.ts';
import { loadCertificateAuthority, loadRetiredAuthorities, CA_FILES, type CertificateAuthority } from './mint/x509/ca-store.ts';
import { generateDevCa } from './mint/x509/generate-ca.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { createMetrics } from './observability/metrics.ts';
import { parsePolicy } from './policy/load.ts';
import type { Policy } from './policy/types.ts';
import { ProofVerifier } from './proofs/proof-verifier.ts';
import { createMemoryRateLimiter, createRedisRateLimiter } from './rate-limit/rate-limiter.ts';
import { createBullmqRevocationQueue } from './revocation/bullmq-queue.ts';
import { connectRedis, describeRedis, isCluster } from './redis/connect.ts';
import { parseRedisUrl } from './redis/redis-url.ts';
import { PRIMARY_MOVED, type PrimaryMoved } from './redis/sentinel-watch.ts';
import { checkDeploymentAtStart, deploymentReadiness } from './redis/deployment-checks.ts';
import { createMemoryRevocationQueue } from './revocation/memory-queue.ts';

export interface CreateDepsOptions {
  log?: Logger;
  now?: () => number;
  /** Tests pass a fetch that reaches their fake issuers; production uses the global one. */
  fetch?: typeof fetch;
  processMetrics?: boolean;
}

/** Reads the policy file, filling in ${LEASH_ISSUER}; throws PolicyError naming the path inside it. */
export function readPolicy(config: Config): Policy {
  let text: string;
  try {
    text = readFileSync(config.policyPath, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    const hint = code === 'ENOENT' ? '; start one from the example: cp policy.example.yaml policy.yaml, then edit its issuers and rules' : '';
    throw new ConfigError('LEASH_POLICY', `cannot read ${config.policyPath} (${code})${hint}`);
  }
  return parsePolicy(text, config.policyPath, { leashIssuer: config.issuer });
}

/** Dev mode creates what it lacks; production refuses to start without it (naming the file). */
async function ensureDevKeys(config: Config, log: Logger): Promise<void> {
  if (!config.dev) return;
  const jwtDir = join(config.keysDir, 'jwt');
  const hasKey = existsSync(jwtDir) && readdirSync(jwtDir).some((n) => n.endsWith('.pem'));
  if (!hasKey) {
    const kid = await generateSigningKey(config.keysDir);
    log.warn({ kid, dir: config.keysDir }, 'dev mode: generated a signing key');
  }
  if (!existsSync(join(config.keysDir, CA_FILES.key))) {
    await generateDevCa(config.keysDir);
    log.warn({ dir: join(config.keysDir, 'ca') }, 'dev mode: generated a dev root and intermediate CA');
  }
}

const needsCa = (policy: Policy): boolean => policy.rules.some((r) => r.grant.credentials.includes('x509'));

async function loadCa(config: Config, policy: Policy, log: Logger): Promise<CertificateAuthority | null> {
  const present = existsSync(join(config.keysDir, CA_FILES.key)) || existsSync(join(config.keysDir, CA_FILES.cert));
  if (!present && !needsCa(policy)) {
    log.info('no CA under keys/ca and no rule issues certificates: certificate exchange is off');
    return null;
  }
  const ca = await loadCertificateAuthority(config.keysDir, { crlUrl: `${config.issuer}/crl` });
  if (ca.nameConstrained) {
    log.warn({ file: join(config.keysDir, CA_FILES.cert) }, 'the issuing CA carries name constraints, which Leash does not check SANs against: a rule whose SANs fall outside them issues certificates that relying parties refuse');
  }
  return ca;
}

/**
 * The CA's line in /readyz. An expired CA fails every certificate exchange, yet it does not make
 * the broker unready: that would take JWT exchanges, introspection and the kill switch out of every
 * load balancer with it. leash_ca_expiry_timestamp_seconds is there to alert on before it comes.
 */
function caCheck(ca: CertificateAuthority | null, nowMs: number): string {
  if (!ca) return 'not configured';
  const expires = new Date(ca.notAfter * 1000).toISOString();
  if (ca.notAfter * 1000 <= nowMs) return `expired at ${expires}: certificate exchanges fail until keys/ca/ is renewed and the broker restarted`;
  return `loaded, expires at ${expires}`;
}

/**
 * How long after an abandoned lease's undoing first went through a Cluster client may still send
 * its write: a resend goes out when the node connection the write was in flight on closes, which
 * happens around the slot refresh that ends a failover, the very time the undoing gets through.
 */
const LATE_CLUSTER_WRITES_MS = 10_000;

/** The one place that picks Redis or memory. */
export async function createDeps(config: Config, opts: CreateDepsOptions = {}): Promise<Deps> {
  const log = opts.log ?? createLogger({ level: config.logLevel, pretty: config.dev });
  const now = opts.now ?? Date.now;
  const metrics = createMetrics({ processMetrics: opts.processMetrics ?? false });
  let policy = readPolicy(config);
  if (!config.dev && config.role !== 'worker' && !config.policyFromEnv) {
    // Kept working for scripts that start a broker without one, but never quietly: the example
    // trusts GitHub Actions of acme/app and the dev issuer.
    log.warn({ policy: config.policyPath }, 'LEASH_POLICY is not set: serving the example policy; set LEASH_POLICY to your own policy file');
  }
  await ensureDevKeys(config, log);
  // Bound once the backends are up; a reload records the newly active key at once.
  let heartbeat: SigningHeartbeat | undefined;
  // The first beat goes out once Redis is ready; it may have become ready before the heartbeat started.
  let redisReady = (): boolean => true;
  const keys = createKeyStore(config.keysDir, { ...(config.signingKid ? { activeKid: config.signingKid } : {}), onReload: () => void heartbeat?.beat() });
  const ca = await loadCa(config, policy, log);
  if (ca) metrics.caExpiry.set(ca.notAfter);
  const retired = await loadRetiredAuthorities(config.keysDir);
  const retiredCas = retired.loaded;
  for (const r of retiredCas) log.info({ key_id: r.keyIdHex, expires: new Date(r.notAfter * 1000).toISOString() }, 'retired CA: signing the CRL of its certificates');
  if (retired.expired.length > 0) log.info({ folders: retired.expired }, 'retired CAs past their expiry skipped: their folders can go');
  const proofs = new ProofVerifier({
    issuers: policy.issuers,
    clockSkewSeconds: config.clockSkewSeconds,
    signatureThread: config.signatureThread,
    now,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    onJwksFetch: (issuer, ok) => metrics.jwksFetches.inc({ issuer, result: ok ? 'ok' : 'error' }),
  });

  // Its steps read deps when they run, never before deps is built: nothing is abandoned before a request.
  const onCluster = config.redisUrl !== undefined && parseRedisUrl(config.redisUrl).kind === 'cluster';
  const abandoned = new AbandonedLeases(abandonedLeaseSteps(() => deps), log, now, { lateWritesMs: onCluster ? LATE_CLUSTER_WRITES_MS : 0 });
  const outages = new RedisOutages(now);
  let store: LeaseStore;
  let walker: WalkProcess | undefined;
  let audit: AuditLog;
  let closeBackends: () => Promise<void>;
  let revocations: Deps['revocations'];
  let rateLimiter: Deps['rateLimiter'];
  let signingRecord: SigningRecord;
  let checkDeployment: (() => Promise<{ ok: boolean; checks: Record<string, string> }>) | undefined;
  // Events a request produced are logged on its access-log line (LOGGED_WITH_REQUEST); the rest here.
  const logAudit = (events: AuditEvent[]): void => logAuditEvents(log, events.filter((e) => !isLoggedWithRequest(e)));

  /** The last connection error since the store's client was last ready: /readyz names it. */
  let lastRedisError: string | undefined;
  if (config.redisUrl) {
    // A WAIT is a command too: the command timeout leaves it its whole LEASH_REDIS_WAIT_MS.
    const commandOpts = config.redisMinReplicas > 0 ? { commandTimeoutMs: 2_000 + config.redisWaitMs } : {};
    const redis = connectRedis(config.redisUrl, commandOpts);
    const where = describeRedis(config.redisUrl);
    redis.on('error', (err) => {
      // A Cluster's own error says only that no node answered: a node's error, if any, says why.
      if (!isCluster(redis) || lastRedisError === undefined) lastRedisError = err.message;
      log.warn({ err: err.message, redis: where }, 'redis connection error');
    });
    redis.on('node error', (err: Error, node: string) => {
      lastRedisError = `${node}: ${err.message}`;
      log.warn({ err: err.message, node, redis: where }, 'redis node error');
    });
    redis.on(PRIMARY_MOVED, (moved: PrimaryMoved) => log.warn({ ...moved, redis: where }, 'Redis Sentinel names another primary: reconnecting to it'));
    watchOutages(redis, outages);
    // Commands fail fast until Redis is up: record the key in use on every (re)connection.
    redis.on('ready', () => {
      lastRedisError = undefined;
      void heartbeat?.beat();
      abandoned.retryNow();
    });
    redisReady = () => redis.status === 'ready';
    const deployment = { minReplicas: config.redisMinReplicas, allowEviction: config.allowEviction };
    await checkDeploymentAtStart(redis, deployment, log).catch((err: unknown) => {
      redis.disconnect();
      throw err;
    });
    checkDeployment = () => deploymentReadiness(redis, deployment);
    signingRecord = createRedisSigningRecord(redis, config.redisPrefix);
    audit = withLogging(createRedisAuditLog({ redis, prefix: config.redisPrefix, maxEvents: config.auditMaxEvents, maxDenials: config.auditMaxDenials }), (e) => logAudit([e]));
    const onUnreadable = (id: string): void => {
      log.error({ lease_id: id }, 'unreadable lease');
      metrics.unreadableRecords.inc();
    };
    const durability = { replicas: config.redisMinReplicas, waitMs: config.redisWaitMs };
    store = createRedisLeaseStore({
      redis,
      prefix: config.redisPrefix,
      retentionSeconds: config.retentionSeconds,
      // Each shard stream may hold the whole cap; the worker's audit trim keeps the total to it.
      auditMaxLenPerShard: config.auditMaxEvents,
      // Endings are audited inside the store's Lua scripts (exactly once); this logs them too.
      onAuditEvents: logAudit,
      // Such a record stops no other ending; it is reported here, once, for an operator to look at.
      onUnreadable,
      durability,
    });
    // Bulk revocations are the API's: their walks run in a process of their own (walk-process.ts).
    walker =
      config.role === 'worker'
        ? undefined
        : startWalkProcess({
            redisUrl: config.redisUrl,
            ...(commandOpts.commandTimeoutMs === undefined ? {} : { commandTimeoutMs: commandOpts.commandTimeoutMs }),
            prefix: config.redisPrefix,
            retentionSeconds: config.retentionSeconds,
            durability,
            onUnreadable,
            onError: (err) => log.warn({ err: err.message }, 'bulk revocation process failed; bulk revocations walk in the API process until it is back'),
          });
    rateLimiter = createRedisRateLimiter(redis, config.redisPrefix, config.rateLimitPerIp);
    const bull = connectRedis(config.redisUrl, { forBullmq: true });
    bull.on('error', (err) => log.warn({ err: err.message, redis: where }, 'redis connection error (revocation queue)'));
    revocations = createBullmqRevocationQueue(bull, config.redisPrefix);
    closeBackends = async () => {
      await revocations.close();
      await walker?.close();
      bull.disconnect();
      redis.disconnect();
    };
  } else {
    log.warn('dev mode: leases live in process memory and vanish on restart; set REDIS_URL for real use');
    audit = withLogging(createMemoryAuditLog({ maxEvents: config.auditMaxEvents, maxDenials: config.auditMaxDenials }), (e) => logAudit([e]));
    store = createMemoryLeaseStore({ retentionSeconds: config.retentionSeconds, audit });
    rateLimiter = createMemoryRateLimiter(config.rateLimitPerIp, now);
    signingRecord = createFileSigningRecord(config.keysDir);
    const q = createMemoryRevocationQueue({ store, metrics, log, now }, config.sweepIntervalMs);
    if (config.role !== 'api') q.start();
    revocations = q;
    closeBackends = async () => {
      await q.close();
      await store.close();
    };
  }

  if (config.role !== 'worker') {
    heartbeat = startSigningHeartbeat({
      keys,
      record: signingRecord,
      longestTokenSeconds: () => Math.max(0, ...policy.rules.map((r) => r.grant.max_ttl)),
      clockSkewSeconds: config.clockSkewSeconds,
      now,
      log,
    });
    if (redisReady()) void heartbeat.beat();
  }
  const closeAll = closeBackends;
  closeBackends = async () => {
    heartbeat?.stop();
    abandoned.close();
    await closeAll();
  };

  const deps: Deps = {
    config,
    log,
    metrics,
    store,
    audit,
    keys,
    proofs,
    policy: () => policy,
    reloadPolicy() {
      try {
        const next = readPolicy(config);
        policy = next;
        proofs.setIssuers(next.issuers);
        log.info({ rules: next.rules.length, issuers: next.issuers.length }, 'policy reloaded');
        return { ok: true };
      } catch (err) {
        log.error({ err: (err as Error).message }, 'policy reload refused; the last good policy stays in force');
        return { ok: false, error: (err as Error).message };
      }
    },
    ca,
    retiredCas,
    revocations,
    ...(walker ? { walker } : {}),
    rateLimiter,
    abandoned,
    outages,
    now,
    async ready() {
      const checks: Record<string, string> = {};
      let storeOk = true;
      try {
        await store.probe();
        checks.store = config.redisUrl ? 'redis ok: lease keys written and read on every shard' : 'memory';
      } catch (err) {
        storeOk = false;
        // Names what an exchange would trip on (unreachable, OOM, CROSSSLOT, READONLY...).
        checks.store = `cannot write a lease: ${err instanceof LeashError ? err.detail ?? err.message : (err as Error).message}`;
        if (lastRedisError !== undefined && !checks.store.includes(lastRedisError)) checks.store += ` (last connection error: ${lastRedisError})`;
      }
      checks.keys = keys.all().length > 0 ? `${keys.all().length} signing key(s), active ${keys.active().kid}` : 'none';
      checks.ca = caCheck(ca, now());
      const deployment = !storeOk || !checkDeployment ? { ok: true, checks: {} } : await checkDeployment();
      Object.assign(checks, deployment.checks);
      return { ok: storeOk && keys.all().length > 0 && deployment.ok, checks };
    },
    close: () => closeBackends(),
  };
  return deps;
}

