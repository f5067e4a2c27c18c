import { z } from 'zod';
import { RedisUrlError, parseRedisUrl } from './redis/redis-url.ts';

const ROLES = ['all', 'api', 'worker'] as const;
export type Role = (typeof ROLES)[number];

/**
 * A whole number written in decimal. z.coerce.number() would also take ' ' (as 0), '0x50' and
 * '1e3': a typo must stop the start, not bind another port.
 */
const decimal = z
  .string()
  .trim()
  .regex(/^\d+$/, { error: 'must be a whole number in decimal digits' })
  .transform(Number);
const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) => decimal.pipe(z.number().int().min(min).max(max));
const port = wholeNumber(0, 65535);
const boolFlag = z
  .enum(['0', '1', 'true', 'false', 'yes', 'no', ''])
  .transform((v) => v === '1' || v === 'true' || v === 'yes');

/** The largest LEASH_CLOCK_SKEW a broker accepts; the CLI allows for it where it cannot know the broker's. */
export const MAX_CLOCK_SKEW_SECONDS = 300;

const EnvSchema = z.object({
  PORT: port.default(8080),
  LEASH_METRICS_PORT: port.optional(),
  LEASH_METRICS_HOST: z.string().min(1).optional(),
  LEASH_METRICS_PUBLIC: boolFlag.optional(),
  HOST: z.string().min(1).default('127.0.0.1'),
  REDIS_URL: z.string().optional(),
  REDIS_PREFIX: z.string().min(1).default('leash:'),
  LEASH_ISSUER: z.url({ protocol: /^https?$/ }).optional(),
  LEASH_POLICY: z.string().min(1).optional(),
  LEASH_KEYS_DIR: z.string().min(1).optional(),
  LEASH_ROLE: z.enum(ROLES).default('all'),
  LEASH_DEV: boolFlag.default(false),
  LEASH_SIGNING_KID: z.string().min(1).optional(),
  LEASH_CLOCK_SKEW: wholeNumber(1, MAX_CLOCK_SKEW_SECONDS).default(30),
  LEASH_MAX_BODY_BYTES: wholeNumber(1).default(65_536),
  LEASH_REQUEST_TIMEOUT_MS: wholeNumber(100).default(30_000),
  LEASH_RETENTION: wholeNumber(1).default(7 * 24 * 3600),
  LEASH_AUDIT_MAX_EVENTS: wholeNumber(16).default(400_000),
  LEASH_AUDIT_MAX_DENIALS: wholeNumber(16).default(400_000),
  LEASH_SWEEP_INTERVAL_MS: wholeNumber(1).default(250),
  LEASH_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LEASH_RATE_LIMIT_IP: wholeNumber(0).default(0),
  LEASH_RATE_LIMIT_SUBJECT: wholeNumber(0).default(0),
  LEASH_TRUST_REQUEST_ID: boolFlag.default(false),
  LEASH_SIGNATURE_THREAD: z.enum(['on', 'off'], { error: 'must be on or off' }).default('on'),
  LEASH_REDIS_MIN_REPLICAS: wholeNumber(0, 16).default(0),
  LEASH_REDIS_WAIT_MS: wholeNumber(1, 60_000).default(1000),
  LEASH_ALLOW_EVICTION: boolFlag.default(false),
  LEASH_WORKER_NICE: wholeNumber(0, 19).default(10),
});

export interface Config {
  port: number;
  /** Optional listener for /metrics, /healthz, /readyz only: how a LEASH_ROLE=worker process is scraped. */
  metricsPort: number | undefined;
  /** Where the LEASH_METRICS_PORT listener binds (default HOST): put it on an internal network. */
  metricsHost: string;
  /** /metrics on the API port is served without a token (else it needs leash:metrics or leash:admin). */
  metricsPublic: boolean;
  host: string;
  redisUrl: string | undefined;
  redisPrefix: string;
  /** `iss` of minted tokens and the audience Leash's own endpoints require. */
  issuer: string;
  policyPath: string;
  /** LEASH_POLICY was set (else policyPath is the example policy). */
  policyFromEnv: boolean;
  keysDir: string;
  role: Role;
  /** Dev mode: memory store, generated dev keys, the dev issuer at /dev. */
  dev: boolean;
  /** Whether the built-in dev proof issuer is served. */
  devIssuer: boolean;
  signingKid: string | undefined;
  clockSkewSeconds: number;
  maxBodyBytes: number;
  /** A request (headers and body) must arrive within this; slow-body clients are cut off. */
  requestTimeoutMs: number;
  retentionSeconds: number;
  /**
   * Events that issued or ended credentials kept in the audit log, all streams together
   * (approximately; the JSON log is the long-term record). Refusals never count against it.
   */
  auditMaxEvents: number;
  /** Refusals (`exchange.denied`) kept, in streams of their own: a flood evicts only older refusals. */
  auditMaxDenials: number;
  sweepIntervalMs: number;
  logLevel: string;
  /** Requests per minute; 0 turns the limit off. */
  rateLimitPerIp: number;
  rateLimitPerSubject: number;
  /** A valid client X-Request-Id becomes the request's id (behind a proxy that sets it). */
  trustRequestId: boolean;
  /** Proof signatures checked on a worker thread (on), or on the event loop (off). */
  signatureThread: boolean;
  /** Replicas that must hold a lease write (WAIT) before it counts as done; 0 = no WAIT. */
  redisMinReplicas: number;
  /** How long WAIT waits for those replicas. */
  redisWaitMs: number;
  /** Start (with a warning) although Redis may evict keys (maxmemory-policy other than noeviction). */
  allowEviction: boolean;
  /**
   * The CPU priority (nice, 0-19) a LEASH_ROLE=worker process lowers itself to, so that on a host it
   * shares with the API and Redis a storm of endings waits for them rather than they for it; 0
   * leaves it as started. Where each service has a cgroup of its own (containers, systemd with
   * CPUWeight=) it changes nothing between them: their weights decide.
   */
  workerNice: number;
}

export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG';
  constructor(readonly variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

export const DEFAULT_POLICY_PATH = 'policy.example.yaml';

const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);

/**
 * LEASH_ISSUER is an RFC 8414 issuer: the endpoints are paths under it, so it can hold no query or
 * fragment, and it is logged and published, so no credentials. Its path must be usable as is.
 */
function checkIssuerUrl(value: string): void {
  const url = new URL(value);
  const bad = (why: string): never => {
    throw new ConfigError('LEASH_ISSUER', `${why}: an issuer is an http(s) URL with at most a path`);
  };
  if (url.search !== '' || value.includes('?')) bad('has a query');
  if (url.hash !== '' || value.includes('#')) bad('has a fragment');
  if (url.username !== '' || url.password !== '') bad('holds credentials');
  if (/[\s<>"{}|\\^`]/.test(value)) bad('holds a character a URL cannot carry as is');
}

/** Reads configuration from the environment; throws ConfigError naming the first bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(String(issue.path[0] ?? 'environment'), issue.message);
  }
  const e = parsed.data;
  if (e.REDIS_URL !== undefined) checkRedisUrl(e.REDIS_URL);
  const dev = e.REDIS_URL === undefined || e.LEASH_DEV;
  const devIssuer = dev && isLoopback(e.HOST);
  if (e.LEASH_DEV && !isLoopback(e.HOST)) {
    throw new ConfigError('LEASH_DEV', `dev mode serves a built-in proof issuer and is only allowed on a loopback HOST, not ${e.HOST}`);
  }
  if (e.REDIS_URL === undefined && !isLoopback(e.HOST)) {
    throw new ConfigError('REDIS_URL', `is required when HOST (${e.HOST}) is not a loopback address: dev mode keeps leases in memory and serves a dev issuer`);
  }
  if (e.REDIS_URL === undefined && e.LEASH_ROLE !== 'all') {
    throw new ConfigError('LEASH_ROLE', `${e.LEASH_ROLE} needs REDIS_URL: without Redis the API and worker share one process`);
  }
  if (e.LEASH_ISSUER !== undefined) checkIssuerUrl(e.LEASH_ISSUER);
  const metricsHost = e.LEASH_METRICS_HOST ?? e.HOST;
  if (e.LEASH_METRICS_PORT !== undefined && e.LEASH_METRICS_PORT !== 0 && e.LEASH_METRICS_PORT === e.PORT && metricsHost === e.HOST) {
    throw new ConfigError('LEASH_METRICS_PORT', `is PORT (${e.PORT}) on the same host: the metrics listener needs a port of its own`);
  }
  if (e.PORT === 0 && e.LEASH_ISSUER === undefined) {
    throw new ConfigError('PORT', '0 (any free port) needs LEASH_ISSUER: the default issuer http://HOST:PORT would name port 0');
  }
  const hostForUrl = e.HOST.includes(':') && !e.HOST.startsWith('[') ? `[${e.HOST}]` : e.HOST;
  const issuer = (e.LEASH_ISSUER ?? `http://${hostForUrl}:${e.PORT}`).replace(/\/+$/, '');
  return {
    port: e.PORT,
    metricsPort: e.LEASH_METRICS_PORT,
    metricsHost,
    // Rule and issuer names with per-rule counts are reconnaissance: public only in dev mode.
    metricsPublic: e.LEASH_METRICS_PUBLIC ?? dev,
    host: e.HOST,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    issuer,
    policyPath: e.LEASH_POLICY ?? DEFAULT_POLICY_PATH,
    policyFromEnv: e.LEASH_POLICY !== undefined,
    keysDir: e.LEASH_KEYS_DIR ?? (dev ? 'keys/dev' : 'keys'),
    role: e.LEASH_ROLE,
    dev,
    devIssuer,
    signingKid: e.LEASH_SIGNING_KID,
    clockSkewSeconds: e.LEASH_CLOCK_SKEW,
    maxBodyBytes: e.LEASH_MAX_BODY_BYTES,
    requestTimeoutMs: e.LEASH_REQUEST_TIMEOUT_MS,
    retentionSeconds: e.LEASH_RETENTION,
    auditMaxEvents: e.LEASH_AUDIT_MAX_EVENTS,
    auditMaxDenials: e.LEASH_AUDIT_MAX_DENIALS,
    sweepIntervalMs: e.LEASH_SWEEP_INTERVAL_MS,
    logLevel: e.LEASH_LOG_LEVEL,
    rateLimitPerIp: e.LEASH_RATE_LIMIT_IP,
    rateLimitPerSubject: e.LEASH_RATE_LIMIT_SUBJECT,
    signatureThread: e.LEASH_SIGNATURE_THREAD === 'on',
    trustRequestId: e.LEASH_TRUST_REQUEST_ID,
    redisMinReplicas: e.LEASH_REDIS_MIN_REPLICAS,
    redisWaitMs: e.LEASH_REDIS_WAIT_MS,
    allowEviction: e.LEASH_ALLOW_EVICTION,
    workerNice: e.LEASH_WORKER_NICE,
  };
}

function checkRedisUrl(url: string): void {
  try {
    parseRedisUrl(url);
  } catch (err) {
    if (err instanceof RedisUrlError) throw new ConfigError('REDIS_URL', err.message);
    throw err;
  }
}
