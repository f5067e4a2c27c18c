/**
 * `leash break-glass`: when the normal operator path is down (IdP outage, broken policy), mint a
 * short-lived leash:admin token straight from the keys directory and Redis. It is not a side
 * door: the token is recorded as a lease first and audited, so it shows up in `leases ls`, can be
 * revoked like any other, and dies at its expiry.
 */
import { hostname, userInfo } from 'node:os';
import { Option, type Command } from 'commander';
import type { AuditEvent, AuditLog } from '../audit/events.ts';
import { MAX_CLOCK_SKEW_SECONDS } from '../config.ts';
import type { Lease } from '../leases/lease.ts';
import type { LeaseStore } from '../leases/store.ts';
import { newLeaseId } from '../leases/lease-id.ts';
import { signJwt } from '../mint/jwt/sign.ts';
import type { SigningRecord } from '../mint/jwt/signing-record.ts';
import { formatDuration } from '../util/duration.ts';
import { CliError, DEFAULT_BROKER_URL, EXIT, usageError } from './client.ts';
import { confirmOrRefuse, durationFlag, globalsOf } from './globals.ts';
import { clean, printJson, printLine } from './output.ts';
import { BREAK_GLASS_MAX_TTL, openKeys } from './keys.ts';
import { closeCliRedis, connectCliRedis } from './redis-connection.ts';

const NAME = 'break-glass';
const ADMIN_SCOPE = 'leash:admin';

interface BreakGlassFlags {
  keysDir: string;
  redisUrl?: string;
  prefix: string;
  issuer: string;
  signingKid?: string;
  subject?: string;
  ttl: string;
  reason?: string;
  yes?: boolean;
}

export function registerBreakGlass(program: Command): void {
  program
    .command('break-glass')
    .description('mint an emergency leash:admin token from the keys directory and Redis (recorded as a lease, audited)')
    .addOption(new Option('--keys-dir <path>', 'the broker\'s keys directory').env('LEASH_KEYS_DIR').default('keys'))
    .addOption(new Option('--redis-url <url>', 'the broker\'s Redis').env('REDIS_URL'))
    .addOption(new Option('--prefix <prefix>', 'the broker\'s Redis key prefix').env('REDIS_PREFIX').default('leash:'))
    .addOption(new Option('--issuer <url>', 'the broker\'s LEASH_ISSUER (iss and aud of the token)').env('LEASH_ISSUER').default(DEFAULT_BROKER_URL))
    .addOption(new Option('--signing-kid <kid>', 'the broker\'s pinned signing key').env('LEASH_SIGNING_KID'))
    .option('--subject <name>', 'the operator taking the token; default $USER@hostname (token sub: break-glass:<name>)')
    .option('--ttl <duration>', 'lifetime, at most 1h', '15m')
    .option('--reason <text>', 'why (required; recorded on the lease and in the audit log)')
    .option('-y, --yes', 'do not ask for confirmation (needed without a terminal)')
    .action(async (flags: BreakGlassFlags, cmd: Command) => breakGlass(flags, cmd));
}

async function breakGlass(flags: BreakGlassFlags, cmd: Command): Promise<void> {
  const reason = flags.reason?.trim();
  if (!reason) throw usageError('--reason is required: say why the normal operator path cannot be used');
  if (reason.length > 512) throw usageError('--reason must be at most 512 characters');
  const ttl = durationFlag('--ttl', flags.ttl);
  if (ttl > BREAK_GLASS_MAX_TTL) throw usageError(`--ttl must be at most 1h (asked for ${formatDuration(ttl)})`);
  if (!flags.redisUrl) throw usageError('--redis-url (or REDIS_URL) is required: the token must be recorded as a lease before it exists');
  const issuer = flags.issuer.replace(/\/+$/, '');
  if (!URL.canParse(issuer)) throw usageError('--issuer must be the broker\'s LEASH_ISSUER URL');
  const operator = flags.subject?.trim() || `${process.env.USER || userInfo().username}@${hostname()}`;
  const key = openKeys({ dir: flags.keysDir, ...(flags.signingKid ? { signingKid: flags.signingKid } : {}) }).active;

  await confirmOrRefuse(`Mint a ${formatDuration(ttl)} leash:admin token for ${operator}?`, flags.yes === true);

  const { store, audit, signing, close } = await openRedis(flags.redisUrl, flags.prefix);
  try {
    const lease = buildLease(`${NAME}:${operator}`, operator, issuer, ttl);
    await recordKeyUse(signing, key.kid, lease);
    await recordLease(store, lease);
    await auditIssue(store, audit, lease, operator, reason, key.kid);
    const token = signJwt(key, {
      iss: issuer,
      sub: lease.subject,
      aud: issuer,
      iat: lease.issued_at,
      nbf: lease.issued_at,
      exp: lease.expires_at,
      jti: lease.id,
      client_id: NAME,
      scope: ADMIN_SCOPE,
    });
    warn(lease, operator);
    if (globalsOf(cmd).json) printJson({ access_token: token, token_type: 'Bearer', expires_in: ttl, scope: ADMIN_SCOPE, lease_id: lease.id });
    else printLine(token);
  } finally {
    await close();
  }
}

/** The broker's Redis lease store, audit log and signing record; loaded lazily so other commands need none. */
async function openRedis(url: string, prefix: string): Promise<{ store: LeaseStore; audit: AuditLog; signing: SigningRecord; close(): Promise<void> }> {
  const redis = await connectCliRedis(url, 'no token was minted');
  const { createRedisLeaseStore } = await import('../leases/redis-store.ts');
  const { createRedisAuditLog } = await import('../audit/redis-audit-log.ts');
  const { createRedisSigningRecord } = await import('../mint/jwt/signing-record-redis.ts');
  return {
    store: createRedisLeaseStore({ redis, prefix }),
    audit: createRedisAuditLog({ redis, prefix }),
    signing: createRedisSigningRecord(redis, prefix),
    close: () => closeCliRedis(redis),
  };
}

/**
 * The key's use is recorded before the token exists, so `leash keys prune` keeps the key while the
 * token may live (its clock and the brokers' may differ by up to the largest LEASH_CLOCK_SKEW).
 */
async function recordKeyUse(signing: SigningRecord, kid: string, lease: Lease): Promise<void> {
  try {
    await signing.note(kid, { signedUntilMs: Date.now(), liveUntilMs: (lease.expires_at + MAX_CLOCK_SKEW_SECONDS) * 1000 });
  } catch (err) {
    throw new CliError(`cannot record the signing key's use (${(err as Error).message}); no token was minted`, EXIT.UNAVAILABLE);
  }
}

function buildLease(subject: string, operator: string, issuer: string, ttl: number): Lease {
  const now = Math.floor(Date.now() / 1000);
  return {
    id: newLeaseId(subject),
    kind: 'jwt',
    status: 'active',
    rule: NAME,
    issuer: NAME,
    subject,
    scopes: [ADMIN_SCOPE],
    audiences: [issuer],
    task_id: null,
    serial: null,
    issued_at: now,
    expires_at: now + ttl,
    revoked_at: null,
    ended_at: null,
    reason: null,
    revoked_by: null,
    proof_iss: NAME,
    proof_sub: operator,
    proof_jti: null,
    client_addr: null,
  };
}

/** The lease comes first: no lease, no token (its expiry is scheduled in the same step). */
async function recordLease(store: LeaseStore, lease: Lease): Promise<void> {
  try {
    await store.create(lease);
  } catch (err) {
    throw new CliError(`cannot record the lease (${(err as Error).message}); no token was minted`, EXIT.UNAVAILABLE);
  }
}

/** An unaudited admin token must not exist: if the audit write fails, the lease is revoked again. */
async function auditIssue(store: LeaseStore, audit: AuditLog, lease: Lease, operator: string, reason: string, kid: string): Promise<void> {
  const event: AuditEvent = {
    type: 'break_glass.issued',
    time: Date.now(),
    actor: operator,
    lease_id: lease.id,
    rule: NAME,
    issuer: NAME,
    subject: lease.subject,
    reason,
    granted: { kind: 'jwt', scopes: lease.scopes, audiences: lease.audiences, ttl: lease.expires_at - lease.issued_at },
    host: hostname(),
    kid,
  };
  try {
    await audit.write(event);
  } catch (err) {
    await store.revoke(lease.id, { reason: 'break-glass audit write failed', by: NAME, at: Math.floor(Date.now() / 1000) }).catch(() => undefined);
    throw new CliError(`cannot write the audit event (${(err as Error).message}); the lease was revoked and no token was minted`, EXIT.UNAVAILABLE);
  }
}

function warn(lease: Lease, operator: string): void {
  const bar = '!'.repeat(78);
  process.stderr.write(
    [
      bar,
      `!! BREAK-GLASS: a leash:admin token for ${clean(operator)} (sub ${clean(lease.subject)})`,
      `!! valid until ${new Date(lease.expires_at * 1000).toISOString()}. It is recorded as lease ${lease.id}`,
      '!! and audited as break_glass.issued. Treat it like a root password; when done:',
      `!!   leash leases revoke ${lease.id} --reason "break-glass finished"`,
      bar,
      '',
    ].join('\n'),
  );
}
