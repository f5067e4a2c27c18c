/**
 * `leash keys generate|list|rotate|prune`: the JWT signing keys under `<keys dir>/jwt/`. The
 * broker signs with LEASH_SIGNING_KID or else the newest key, and publishes every key in the
 * directory, so rotation is "add a newer key, reload, and prune the old one once no token signed
 * by it can still be live" (the brokers record when each key last signed; prune reads that).
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { generateSigningKey } from '../mint/jwt/generate-key.ts';
import { KeyLoadError, createKeyStore, type SigningAlg, type SigningKey } from '../mint/jwt/keystore.ts';
import { SIGNING_RECORD_FILE, type KeyUse } from '../mint/jwt/signing-record.ts';
import { createFileSigningRecord } from '../mint/jwt/signing-record-file.ts';
import { formatDuration } from '../util/duration.ts';
import { CliError, DEFAULT_BROKER_URL, EXIT, usageError } from './client.ts';
import { durationFlag, globalsOf } from './globals.ts';
import { formatSeconds, note, printJson, printLine, printTable } from './output.ts';
import { loadPolicyFile } from './policy.ts';
import { closeCliRedis, connectCliRedis } from './redis-connection.ts';

/** Break-glass tokens live up to an hour whatever the policy says. */
export const BREAK_GLASS_MAX_TTL = 3600;

interface KeyDirFlags {
  dir: string;
  signingKid?: string;
}

const dirOption = (): Option => new Option('--dir <path>', 'keys directory (the broker\'s LEASH_KEYS_DIR)').env('LEASH_KEYS_DIR').default('keys');
const kidOption = (): Option => new Option('--signing-kid <kid>', 'the pinned active key, as the broker\'s LEASH_SIGNING_KID').env('LEASH_SIGNING_KID');
const algOption = (): Option => new Option('--alg <alg>', 'signing algorithm').choices(['ES256', 'EdDSA']).default('ES256');

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('manage the JWT signing keys in the keys directory (no broker needed)');

  keys
    .command('generate')
    .description('write a new signing key to <dir>/jwt/<kid>.pem (mode 0600) and print its kid')
    .addOption(dirOption())
    .addOption(algOption())
    .action(async (flags: { dir: string; alg: SigningAlg }, cmd: Command) => {
      const kid = await generateSigningKey(flags.dir, flags.alg);
      if (globalsOf(cmd).json) printJson({ kid, alg: flags.alg, file: join(flags.dir, 'jwt', `${kid}.pem`) });
      else printLine(kid);
    });

  keys
    .command('list')
    .description('list signing keys, oldest first; * marks the one the broker signs with')
    .addOption(dirOption())
    .addOption(kidOption())
    .action((flags: KeyDirFlags, cmd: Command) => {
      const { all, active } = openKeys(flags);
      if (globalsOf(cmd).json) {
        printJson(all.map((k) => ({ kid: k.kid, alg: k.alg, created: new Date(k.createdMs).toISOString(), active: k === active })));
        return;
      }
      printTable(['KID', 'ALG', 'CREATED', 'ACTIVE'], all.map((k) => [k.kid, k.alg, new Date(k.createdMs).toISOString(), k === active ? '*' : '']));
    });

  keys
    .command('rotate')
    .description('generate a new key that becomes the active (newest) one; older keys stay published')
    .addOption(dirOption())
    .addOption(kidOption())
    .addOption(new Option('--alg <alg>', 'signing algorithm; default: that of the active key').choices(['ES256', 'EdDSA']))
    .action(async (flags: KeyDirFlags & { alg?: SigningAlg }, cmd: Command) => rotate(flags, cmd));

  keys
    .command('prune')
    .description('remove retired keys: not active, no token of theirs live, and last signed (as the brokers record it) longer ago than --older-than')
    .addOption(dirOption())
    .addOption(kidOption())
    .addOption(new Option('--redis-url <url>', 'the brokers\' Redis, where they record when each key last signed').env('REDIS_URL'))
    .addOption(new Option('--prefix <prefix>', 'the brokers\' Redis key prefix').env('REDIS_PREFIX').default('leash:'))
    .requiredOption('--older-than <duration>', 'at least the longest token lifetime (the largest max_ttl), e.g. 1d, counted from the key\'s last signature')
    .option('--policy <file>', 'refuse if --older-than is shorter than the largest max_ttl in this policy')
    .option('--dry-run', 'only say what would be removed')
    .action((flags: PruneFlags, cmd: Command) => prune(flags, cmd));
}

/** The keys and the active one, decided exactly as the broker's key store decides. */
export function openKeys(flags: KeyDirFlags): { all: SigningKey[]; active: SigningKey } {
  try {
    const store = createKeyStore(flags.dir, flags.signingKid ? { activeKid: flags.signingKid } : {});
    const all = store.all().sort((a, b) => a.createdMs - b.createdMs || a.kid.localeCompare(b.kid));
    return { all, active: store.active() };
  } catch (err) {
    if (err instanceof KeyLoadError) throw usageError(err.message);
    throw err;
  }
}

async function rotate(flags: KeyDirFlags & { alg?: SigningAlg }, cmd: Command): Promise<void> {
  const previous = openKeys(flags).active;
  const alg = flags.alg ?? previous.alg;
  const kid = await generateSigningKey(flags.dir, alg);
  const { active } = openKeys(flags);
  if (globalsOf(cmd).json) printJson({ kid, alg, previous: previous.kid, active: active.kid });
  else printLine(kid);
  if (active.kid !== kid) {
    note(`LEASH_SIGNING_KID pins ${active.kid}: set LEASH_SIGNING_KID=${kid} on every replica for the new key to sign.`);
  }
  note(
    [
      `New signing key ${kid} (${alg}); ${previous.kid} stays in ${join(flags.dir, 'jwt')} and published, so its tokens keep verifying.`,
      'Next: copy the new key to every replica\'s keys directory, then reload each: kill -HUP <pid> (or restart it).',
      'Resource servers may cache the JWKS for 5 minutes: to have none refuse the new key\'s tokens, pin LEASH_SIGNING_KID to the old kid first and unpin it 5 minutes after the reload (README, "Key rotation").',
      `Once the longest token lifetime has passed since the old key last signed: leash keys prune --dir ${flags.dir} --older-than <max_ttl> --redis-url <the brokers' REDIS_URL>`,
    ].join('\n'),
  );
}

interface PruneFlags extends KeyDirFlags {
  olderThan: string;
  policy?: string;
  dryRun?: boolean;
  redisUrl?: string;
  prefix: string;
}

/**
 * A key is retired from the last moment it signed, as the brokers record it (signing-heartbeat.ts),
 * never from when its successor's file appeared: a pinned rotation or a late reload keeps an
 * older key signing long after. A key goes only when the record says no token it signed can still
 * be live and it last signed longer ago than --older-than; a key with no record is kept.
 */
async function prune(flags: PruneFlags, cmd: Command): Promise<void> {
  const olderThan = durationFlag('--older-than', flags.olderThan);
  if (flags.policy !== undefined) {
    const policy = loadPolicyFile(flags.policy, process.env.LEASH_ISSUER ?? DEFAULT_BROKER_URL);
    const longest = Math.max(BREAK_GLASS_MAX_TTL, ...policy.rules.map((r) => r.grant.max_ttl));
    if (olderThan < longest) throw usageError(`--older-than ${flags.olderThan} is shorter than the longest token lifetime (${formatDuration(longest)}): tokens signed by a pruned key would stop verifying`);
  }
  const { all, active } = openKeys(flags);
  const recorded = await readSigningRecord(flags);
  const now = Date.now();
  const removed: { kid: string; retired_for: number; last_signed: string }[] = [];
  const kept: { kid: string; reason: KeepReason; why: string }[] = [];
  for (const key of all) {
    const use = recorded.get(key.kid);
    const keep = keepReason(key, active, use, now, olderThan);
    if (keep !== null) kept.push({ kid: key.kid, ...keep });
    else removed.push({ kid: key.kid, retired_for: Math.floor((now - use!.signedUntilMs) / 1000), last_signed: new Date(use!.signedUntilMs).toISOString() });
  }
  if (!flags.dryRun) {
    for (const r of removed) {
      try {
        rmSync(join(flags.dir, 'jwt', `${r.kid}.pem`));
      } catch (err) {
        throw new CliError(`cannot remove ${r.kid}.pem (${(err as NodeJS.ErrnoException).code ?? String(err)})`, EXIT.REFUSED);
      }
    }
  }
  if (globalsOf(cmd).json) {
    printJson({ dry_run: flags.dryRun === true, removed, kept });
    return;
  }
  for (const r of removed) printLine(`${flags.dryRun ? 'would remove' : 'removed'} ${r.kid} (last signed ${formatSeconds(r.retired_for)} ago)`);
  for (const k of kept) if (k.reason !== 'active') note(`kept ${k.kid}: ${k.why}`);
  if (removed.length > 0 && !flags.dryRun) note('Reload every replica (kill -HUP <pid>) so the JWKS stops publishing the removed keys.');
}

/** Why prune keeps a key, for scripts (`--json`): the active one, a newer one, no record, tokens live, signed recently. */
type KeepReason = 'active' | 'newer_than_active' | 'no_record' | 'tokens_live' | 'signed_recently';

/** Why a key must stay, or null when it may go. */
function keepReason(key: SigningKey, active: SigningKey, use: KeyUse | undefined, now: number, olderThan: number): { reason: KeepReason; why: string } | null {
  if (key === active) return { reason: 'active', why: 'active' };
  if (key.createdMs > active.createdMs) return { reason: 'newer_than_active', why: 'newer than the pinned active key: it may have signed until the pin; remove it by hand' };
  if (!use) return { reason: 'no_record', why: 'no broker recorded signing with it (it may sign where nothing records it, e.g. an older Leash); remove it by hand once no token of it can be live' };
  if (use.liveUntilMs > now) return { reason: 'tokens_live', why: `tokens it signed may be live until ${isoOrNever(use.liveUntilMs)}` };
  const retiredFor = Math.floor((now - use.signedUntilMs) / 1000);
  if (retiredFor < olderThan) return { reason: 'signed_recently', why: `last signed ${formatSeconds(retiredFor)} ago` };
  return null;
}

const isoOrNever = (ms: number): string => (Number.isFinite(ms) ? new Date(ms).toISOString() : 'unknown (unreadable record)');

/**
 * The brokers' signing record: their Redis, or the file a broker without Redis (dev mode) writes
 * in the keys directory. With neither, prune refuses rather than guess from file times.
 */
async function readSigningRecord(flags: PruneFlags): Promise<Map<string, KeyUse>> {
  if (flags.redisUrl) {
    const redis = await connectCliRedis(flags.redisUrl, 'no key was removed');
    try {
      const { createRedisSigningRecord } = await import('../mint/jwt/signing-record-redis.ts');
      return await createRedisSigningRecord(redis, flags.prefix).read();
    } catch (err) {
      throw new CliError(`cannot read the signing record (${(err as Error).message}); no key was removed`, EXIT.UNAVAILABLE);
    } finally {
      await closeCliRedis(redis);
    }
  }
  if (!existsSync(join(flags.dir, SIGNING_RECORD_FILE))) {
    throw usageError(`prune needs the brokers' record of when each key last signed: pass --redis-url (or REDIS_URL) and --prefix as the brokers use them (a broker without Redis writes ${join(flags.dir, SIGNING_RECORD_FILE)})`);
  }
  try {
    return await createFileSigningRecord(flags.dir).read();
  } catch (err) {
    throw usageError(`cannot read ${join(flags.dir, SIGNING_RECORD_FILE)} (${(err as Error).message}); no key was removed`);
  }
}
