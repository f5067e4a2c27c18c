/**
 * `leash leases ls|show|revoke` and `leash task complete`: the operator API over leases.
 * Bulk revocation is the kill switch, so it asks before acting unless told `--yes`.
 */
import { Option, type Command } from 'commander';
import type { Lease } from '../leases/lease.ts';
import type { LeasePage } from '../leases/store.ts';
import { CliError, usageError, type BrokerClient } from './client.ts';
import { clientFor, confirmOrRefuse, globalsOf, isInteractive } from './globals.ts';
import { clean, formatRelative, formatTime, note, printJson, printLine, printTable } from './output.ts';

interface ListFlags {
  subject?: string;
  taskId?: string;
  rule?: string;
  issuer?: string;
  status?: string;
  limit?: string;
  cursor?: string;
  all?: boolean;
}

interface RevokeFlags {
  task?: string;
  subject?: string;
  rule?: string;
  issuer?: string;
  reason?: string;
  includeSelf?: boolean;
  yes?: boolean;
}

export function registerLeases(program: Command): void {
  const leases = program.command('leases').description('list, read and revoke leases (operator token with leash:leases:* or leash:admin)');

  leases
    .command('ls')
    .description('list leases, newest first')
    .option('--subject <sub>', 'only this subject')
    .option('--task-id <id>', 'only leases of this task')
    .option('--rule <name>', 'only leases granted by this rule')
    .option('--issuer <name>', 'only leases of this policy issuer')
    .addOption(new Option('--status <status>', 'only leases in this state').choices(['active', 'revoked', 'expired']))
    .option('--limit <n>', 'leases per page (1-1000)', '100')
    .option('--cursor <c>', 'continue from a previous page')
    .option('--all', 'follow every page to the end')
    .action(async (flags: ListFlags, cmd: Command) => listLeases(flags, cmd));

  leases
    .command('show')
    .description('show one lease')
    .argument('<id>', 'lease id')
    .action(async (id: string, _flags: unknown, cmd: Command) => {
      const lease = await clientFor(cmd).request<Lease>('GET', `/v1/leases/${encodeURIComponent(id)}`);
      if (globalsOf(cmd).json) printJson(lease);
      else printLease(lease);
    });

  leases
    .command('revoke')
    .description('revoke one lease by id, or every active lease matching a selector')
    .argument('[id]', 'lease id (or use a selector below)')
    .option('--task <id>', 'every active lease of this task')
    .option('--subject <sub>', 'every active lease of this subject')
    .option('--rule <name>', 'every active lease granted by this rule')
    .option('--issuer <name>', 'every active lease of this policy issuer')
    .option('--reason <text>', 'why (recorded on the lease and in the audit log)')
    .option('--include-self', 'also revoke the lease of the token making the call (kept by default)')
    .option('-y, --yes', 'do not ask for confirmation (needed without a terminal)')
    .addHelpText('after', '\nSelectors combine (all must hold). Example: leash leases revoke --subject repo:acme/app:ref:refs/heads/main --reason "leaked" --yes')
    .action(async (id: string | undefined, flags: RevokeFlags, cmd: Command) => revoke(id, flags, cmd));

  program
    .command('task')
    .description('task lifecycle')
    .command('complete')
    .description('end every lease of a task (the token may be any live token of the task, or an operator token)')
    .argument('<task-id>', 'the task id given at exchange (--task-id)')
    .action(async (taskId: string, _flags: unknown, cmd: Command) => {
      const path = `/v1/tasks/${taskId.split('/').map(encodeURIComponent).join('/')}/complete`;
      const res = await clientFor(cmd).request<{ task_id: string; revoked: number; lease_ids: string[] }>('POST', path);
      if (globalsOf(cmd).json) printJson(res);
      else printLine(`task ${clean(res.task_id)} complete: ${res.revoked} lease${res.revoked === 1 ? '' : 's'} revoked`);
    });
}

async function listLeases(flags: ListFlags, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  const limit = Number(flags.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw usageError('--limit must be a whole number from 1 to 1000');
  const query = { subject: flags.subject, task_id: flags.taskId, rule: flags.rule, issuer: flags.issuer, status: flags.status, limit };
  let page = await client.request<LeasePage>('GET', '/v1/leases', { query: { ...query, cursor: flags.cursor } });
  const all = [...page.leases];
  while (flags.all && page.next_cursor) {
    page = await client.request<LeasePage>('GET', '/v1/leases', { query: { ...query, cursor: page.next_cursor } });
    all.push(...page.leases);
  }
  if (globalsOf(cmd).json) {
    printJson({ leases: all, next_cursor: page.next_cursor });
    return;
  }
  const now = Date.now() / 1000;
  printTable(
    ['ID', 'KIND', 'STATUS', 'RULE', 'SUBJECT', 'TASK', 'EXPIRES'],
    all.map((l) => [l.id, l.kind, l.status, l.rule, l.subject, l.task_id, l.status === 'active' ? formatRelative(l.expires_at, now) : '-']),
  );
  if (page.next_cursor) note(`more leases: --cursor ${page.next_cursor} (or --all)`);
}

function printLease(l: Lease): void {
  const rows: [string, unknown][] = [
    ['id', l.id],
    ['kind', l.kind],
    ['status', l.status],
    ['rule', l.rule],
    ['issuer', l.issuer],
    ['subject', l.subject],
    ['scopes', l.scopes.join(' ')],
    ['audiences', l.audiences.join(' ')],
    ['task', l.task_id],
    ['serial', l.serial],
    ['issued', formatTime(l.issued_at)],
    ['expires', `${formatTime(l.expires_at)} (${formatRelative(l.expires_at)})`],
    ['revoked', l.revoked_at === null ? null : `${formatTime(l.revoked_at)} by ${clean(l.revoked_by)}: ${clean(l.reason)}`],
    ['ended', formatTime(l.ended_at)],
    ['proof', `iss ${clean(l.proof_iss)}, sub ${clean(l.proof_sub)}, jti ${clean(l.proof_jti)}`],
    ['client', l.client_addr],
  ];
  for (const [k, v] of rows) printLine(`${k.padEnd(10)}${clean(v)}`);
}

async function revoke(id: string | undefined, flags: RevokeFlags, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  const json = globalsOf(cmd).json;
  const selector = Object.fromEntries(
    Object.entries({ task_id: flags.task, subject: flags.subject, rule: flags.rule, issuer: flags.issuer }).filter(([, v]) => v !== undefined),
  ) as Record<string, string>;
  const reason = flags.reason === undefined ? {} : { reason: flags.reason };
  if (id !== undefined) {
    if (Object.keys(selector).length > 0) throw usageError('give a lease id or a selector (--task, --subject, --rule, --issuer), not both');
    // The answer is the lease either way; reading it first tells "revoked now" from "already ended".
    const before = await readLease(client, id);
    const lease = await client.request<Lease>('POST', `/v1/leases/${encodeURIComponent(id)}/revoke`, { json: reason });
    if (json) printJson(lease);
    else if (before !== undefined && before.status !== 'active') printLine(`lease ${lease.id} was already ${before.status}; nothing changed`);
    else printLine(`revoked ${lease.id}`);
    return;
  }
  if (Object.keys(selector).length === 0) throw usageError('give a lease id, or a selector: --task, --subject, --rule or --issuer');
  const what = Object.entries(selector).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' and ');
  if (!flags.yes) {
    const count = isInteractive() ? await countActive(client, selector) : undefined;
    await confirmOrRefuse(`Revoke ${count ?? 'every'} active lease${count === undefined || count === '1' ? '' : 's'} with ${clean(what)}?`, false);
  }
  const includeSelf = flags.includeSelf ? { include_self: true } : {};
  const res = await client.request<{ revoked: number; kept_self?: true }>('POST', '/v1/leases/revoke', { json: { ...selector, ...reason, ...includeSelf } });
  if (json) printJson(res);
  else {
    printLine(`revoked ${res.revoked} lease${res.revoked === 1 ? '' : 's'} with ${clean(what)}`);
    if (res.kept_self) printLine('kept the lease of the token making this call (it matched); add --include-self to revoke it too');
  }
}

/** The lease, or undefined when this token may revoke but not read (the revoke call still decides). */
async function readLease(client: BrokerClient, id: string): Promise<Lease | undefined> {
  try {
    return await client.request<Lease>('GET', `/v1/leases/${encodeURIComponent(id)}`);
  } catch (err) {
    if (err instanceof CliError && err.code === 'insufficient_scope') return undefined;
    throw err;
  }
}

/** How many leases a bulk revocation would hit, for the prompt; undefined if it cannot be read. */
async function countActive(client: BrokerClient, selector: Record<string, string>): Promise<string | undefined> {
  try {
    const page = await client.request<LeasePage>('GET', '/v1/leases', { query: { ...selector, status: 'active', limit: 1000 } });
    return page.next_cursor ? 'at least 1000' : String(page.leases.length);
  } catch {
    // A token with leash:leases:revoke but not :read still gets its (unnumbered) prompt.
    return undefined;
  }
}
