/**
 * `leash audit tail`: read the audit log (GET /v1/audit, newest first), or follow it like
 * `tail -f`, printing new events oldest to newest as they arrive.
 */
import type { Command } from 'commander';
import type { AuditEvent, AuditPage } from '../audit/events.ts';
import { parseDuration } from '../util/duration.ts';
import { CliError, EXIT, usageError, type BrokerClient } from './client.ts';
import { clientFor, globalsOf } from './globals.ts';
import { clean, note, printJsonLine, printLine } from './output.ts';

interface TailFlags {
  leaseId?: string;
  subject?: string;
  type?: string;
  since?: string;
  limit: string;
  follow?: boolean;
}

type Query = Record<string, string | number | undefined>;

const POLL_MS = 1_000;
// Events are stamped by the replica that wrote them, so one may land a little after a later-stamped
// one. Each poll looks back this far and drops what it already printed, so none is missed.
const LOOKBACK_MS = 10_000;
const MAX_PAGES_PER_POLL = 20;

export function registerAudit(program: Command): void {
  program
    .command('audit')
    .description('read the audit log (operator token with leash:audit:read or leash:admin)')
    .command('tail')
    .description('print recent audit events, newest first; --follow keeps printing new ones, oldest first')
    .option('--lease-id <id>', 'only events of this lease')
    .option('--subject <sub>', 'only events about this subject')
    .option('--type <type>', 'only this event type, e.g. exchange.denied, lease.revoked, break_glass.issued')
    .option('--since <when>', 'only events since: a duration ago (10m, 2h), an ISO 8601 time, or epoch milliseconds')
    .option('--limit <n>', 'how many recent events (1-1000)', '50')
    .option('-f, --follow', 'keep polling every second for new events (Ctrl-C stops)')
    .addHelpText('after', '\nWith --json, each event is printed as one JSON document per line (JSON Lines).')
    .action(async (flags: TailFlags, cmd: Command) => tail(flags, cmd));
}

async function tail(flags: TailFlags, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  const json = globalsOf(cmd).json;
  const limit = Number(flags.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw usageError('--limit must be a whole number from 1 to 1000');
  const filter: Query = { lease_id: flags.leaseId, subject: flags.subject, type: flags.type };
  if (flags.since !== undefined) filter.since = parseSince(flags.since);
  const print = (e: AuditEvent): void => (json ? printJsonLine(e) : printLine(formatEvent(e)));

  const first = await client.request<AuditPage>('GET', '/v1/audit', { query: { ...filter, limit } });
  if (!flags.follow) {
    first.events.forEach(print);
    return;
  }
  const initial = [...first.events].reverse();
  initial.forEach(print);
  let high = initial.length > 0 ? Math.max(...initial.map((e) => e.time)) : Date.now();
  // Everything up to the first page counts as seen (--limit chose not to show it); an event that
  // arrives while this look-back is fetched is newer than the page and is still printed.
  const seen = new Map<string, number>();
  for (const e of initial) seen.set(keyOf(e), e.time);
  const pageTime = high;
  for (const e of await fetchSince(client, filter, Math.max(high - LOOKBACK_MS, Number(filter.since ?? 0)))) {
    if (e.time <= pageTime) seen.set(keyOf(e), e.time);
  }
  let down = false;
  for (;;) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    let fresh: AuditEvent[];
    try {
      fresh = await fetchSince(client, filter, Math.max(high - LOOKBACK_MS, Number(filter.since ?? 0)));
      if (down) note('audit tail: the broker answers again');
      down = false;
    } catch (err) {
      // Keep following through a broker restart, as tail -f does through a log rotation.
      if (!(err instanceof CliError) || err.exitCode !== EXIT.UNAVAILABLE) throw err;
      if (!down) note(`audit tail: ${err.message}; retrying`);
      down = true;
      continue;
    }
    for (const e of fresh.filter((e) => !seen.has(keyOf(e))).sort((a, b) => a.time - b.time)) {
      print(e);
      seen.set(keyOf(e), e.time);
      high = Math.max(high, e.time);
    }
    for (const [k, t] of seen) if (t < high - 2 * LOOKBACK_MS) seen.delete(k);
  }
}

async function fetchSince(client: BrokerClient, filter: Query, since: number): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < MAX_PAGES_PER_POLL; i++) {
    const page: AuditPage = await client.request<AuditPage>('GET', '/v1/audit', { query: { ...filter, since, limit: 1000, cursor: cursor ?? undefined } });
    out.push(...page.events);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return out;
}

const keyOf = (e: AuditEvent): string => e.id ?? JSON.stringify(e);

/** `--since`: a duration ago, an ISO 8601 time, or epoch milliseconds; sent as epoch milliseconds. */
export function parseSince(value: string, now = Date.now()): number {
  if (/^\d{12,}$/.test(value)) return Number(value);
  const seconds = parseDuration(value);
  if (seconds !== undefined) return now - seconds * 1000;
  const t = Date.parse(value);
  if (Number.isFinite(t) && /\d{4}-\d{2}-\d{2}/.test(value)) return t;
  throw usageError(`--since must be a duration ago (10m), an ISO 8601 time or epoch milliseconds, not ${JSON.stringify(value)}`);
}

const FIELDS = ['actor', 'lease_id', 'subject', 'rule', 'issuer', 'task_id', 'count', 'reason'] as const;

/** One line per event: time, type, then the fields that say who and what. */
export function formatEvent(e: AuditEvent): string {
  const parts = [new Date(e.time).toISOString(), clean(e.type).padEnd(20)];
  for (const f of FIELDS) {
    const v = e[f];
    if (v !== undefined && v !== null && v !== '') parts.push(`${f}=${clean(typeof v === 'string' ? v : JSON.stringify(v))}`);
  }
  return parts.join('  ');
}
