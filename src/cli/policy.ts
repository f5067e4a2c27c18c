/**
 * `leash policy lint|explain`: check a policy file, and see which rule would grant what for a
 * given set of claims, with the same code the broker runs. Nothing is issued; no broker is needed.
 */
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { explain } from '../policy/decide.ts';
import { PolicyError, parsePolicy } from '../policy/load.ts';
import type { Decision, GrantRequest, Policy } from '../policy/types.ts';
import { formatDuration } from '../util/duration.ts';
import { CliError, DEFAULT_BROKER_URL, EXIT, usageError } from './client.ts';
import { collect, durationFlag, globalsOf, readStdin } from './globals.ts';
import { clean, note, printJson, printLine } from './output.ts';


interface ExplainFlags {
  claims: string;
  issuer: string;
  scope?: string[];
  audience?: string[];
  ttl?: string;
  kind: 'jwt' | 'x509';
  leashIssuer: string;
}

export function registerPolicy(program: Command): void {
  const policy = program.command('policy').description('lint a policy file and explain its decisions (offline)');
  const leashIssuer = (): Option =>
    new Option('--leash-issuer <url>', 'value for ${LEASH_ISSUER} in the file, as the broker fills it in').env('LEASH_ISSUER').default(DEFAULT_BROKER_URL);

  policy
    .command('lint')
    .description('validate a policy file; exit 4 listing every error with its path in the file')
    .argument('<file>', 'policy YAML')
    .addOption(leashIssuer())
    .action((file: string, flags: { leashIssuer: string }, cmd: Command) => lint(file, flags.leashIssuer, globalsOf(cmd).json));

  policy
    .command('explain')
    .description('decide a request for given claims and explain it; exit 4 on deny')
    .argument('<file>', 'policy YAML')
    .requiredOption('--claims <file>', 'JSON object of verified proof claims (- for stdin)')
    .requiredOption('--issuer <name>', 'name of the trusted issuer entry the proof came from')
    .option('--scope <scopes>', 'scopes asked for, space separated (repeatable)', collect)
    .option('--audience <aud>', 'audience asked for (repeatable)', collect)
    .option('--ttl <duration>', 'lifetime asked for, e.g. 300 or 10m')
    .addOption(new Option('--kind <kind>', 'credential kind').choices(['jwt', 'x509']).default('jwt'))
    .addOption(leashIssuer())
    .action(async (file: string, flags: ExplainFlags, cmd: Command) => explainFile(file, flags, cmd));
}

function lint(file: string, leashIssuer: string, json: boolean): void {
  let p: Policy;
  try {
    p = loadPolicyFile(file, leashIssuer);
  } catch (err) {
    if (!(err instanceof CliError) || err.exitCode !== EXIT.POLICY) throw err;
    if (json) printJson({ ok: false, errors: err.message.split('\n') });
    else note(err.message);
    process.exitCode = EXIT.POLICY;
    return;
  }
  const warnings = lintWarnings(p);
  if (json) printJson({ ok: true, issuers: p.issuers.length, rules: p.rules.length, ...(warnings.length > 0 ? { warnings } : {}) });
  else {
    for (const w of warnings) note(`warning: ${w}`);
    printLine(`ok: ${p.issuers.length} issuer${p.issuers.length === 1 ? '' : 's'}, ${p.rules.length} rule${p.rules.length === 1 ? '' : 's'}`);
  }
}

/** Valid but probably not meant: a rule without `match` admits every proof its issuer signs. */
function lintWarnings(p: Policy): string[] {
  return p.rules
    .filter((r) => Object.keys(r.match).length === 0)
    .map((r) => `rule ${r.name} has no match: every proof of issuer ${r.issuer} is a candidate (for a public CI issuer, every repository)`);
}

/** Reads and validates the file; schema errors become exit 4, an unreadable file exit 2. */
export function loadPolicyFile(file: string, leashIssuer: string): Policy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw usageError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    return parsePolicy(text, file, { leashIssuer });
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    throw new CliError(err.issues.map((issue) => `${file}: ${issue}`).join('\n'), EXIT.POLICY, err.code);
  }
}

async function explainFile(file: string, flags: ExplainFlags, cmd: Command): Promise<void> {
  const policy = loadPolicyFile(file, flags.leashIssuer);
  if (!policy.issuers.some((i) => i.name === flags.issuer)) {
    throw usageError(`--issuer ${flags.issuer}: the policy has no issuer of that name (it has: ${policy.issuers.map((i) => i.name).join(', ')})`);
  }
  const claims = await readClaims(flags.claims);
  const request: GrantRequest = { kind: flags.kind };
  const scopes = (flags.scope ?? []).flatMap((s) => s.split(/\s+/)).filter((s) => s !== '');
  if (scopes.length > 0) request.scopes = scopes;
  if (flags.audience) request.audiences = flags.audience;
  if (flags.ttl !== undefined) request.ttl = durationFlag('--ttl', flags.ttl);
  const decision = explain(policy, { issuer: flags.issuer, claims }, request);
  if (globalsOf(cmd).json) printJson(decisionJson(decision));
  else printDecision(decision);
  if (!decision.allowed) process.exitCode = EXIT.POLICY;
}

async function readClaims(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = path === '-' ? await readStdin() : readFileSync(path, 'utf8');
  } catch (err) {
    throw usageError(`cannot read the claims file ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let claims: unknown;
  try {
    claims = JSON.parse(text);
  } catch {
    throw usageError(`--claims ${path} is not JSON`);
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw usageError(`--claims ${path} must hold a JSON object of claims`);
  return claims as Record<string, unknown>;
}

/** The decision with the rule named rather than copied whole. */
function decisionJson(d: Decision): Record<string, unknown> {
  if (!d.allowed) return { decision: 'deny', code: d.code, reason: d.reason, trace: d.trace };
  const { rule, allowed: _allowed, ...granted } = d;
  return { decision: 'allow', rule: rule.name, ...granted };
}

function printDecision(d: Decision): void {
  if (d.allowed) {
    printLine(`decision: allow`);
    printLine(`rule: ${d.rule.name}`);
    printLine(`scopes: ${d.scopes.join(' ') || '(none)'}`);
    printLine(`audiences: ${d.audiences.join(' ') || '(none)'}`);
    printLine(`ttl: ${formatDuration(d.ttl)} (${d.ttl}s, max ${formatDuration(d.rule.grant.max_ttl)})`);
    for (const [k, v] of Object.entries(d.claims)) printLine(`claim ${k}: ${clean(v)}`);
    if (d.x509.uri_sans.length + d.x509.dns_sans.length > 0) {
      printLine(`x509 SANs: ${[...d.x509.uri_sans, ...d.x509.dns_sans].map(clean).join(' ')}`);
      printLine(`x509 key types: ${d.x509.key_types.join(', ')}`);
    }
    if (d.max_active_leases !== undefined) printLine(`max active leases: ${d.max_active_leases}`);
  } else {
    printLine(`decision: deny (${d.code})`);
    printLine(`reason: ${clean(d.reason)}`);
  }
  printLine('trace:');
  if (d.trace.length === 0) printLine('  (no rule of this issuer)');
  for (const t of d.trace) {
    printLine(`  ${clean(t.rule)}: ${t.outcome}`);
    for (const r of t.reasons) printLine(`    ${clean(r)}`);
  }
  if (!d.allowed) note('nothing would be issued');
}
