import { readFileSync } from 'node:fs';
import { parseDocument, type YAMLError } from 'yaml';
import type { z } from 'zod';
import { policySchema } from './schema.ts';
import type { Policy } from './types.ts';

export class PolicyError extends Error {
  readonly code = 'ERR_POLICY_INVALID';
  readonly source: string;
  readonly issues: string[];

  constructor(source: string, issues: string[]) {
    super(`invalid policy ${source}:\n${issues.map((issue) => `  ${issue}`).join('\n')}`);
    this.name = 'PolicyError';
    this.source = source;
    this.issues = issues;
  }
}

/** `rules[2].grant.max_ttl`; record keys are appended as they are, so `match./a/b` reads naturally. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out || '(top level)';
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => `${formatPath([...issue.path, key])}: unknown key`);
  }
  let message = issue.message;
  if (issue.code === 'invalid_type' && / received undefined$/.test(message)) message = 'is required';
  if (issue.path.length === 0 && issue.code === 'invalid_type') message = 'must be a mapping with issuers and rules';
  return [`${formatPath(issue.path)}: ${message}`];
}

function describeYamlError(error: YAMLError): string {
  // Keep the first line only: the rest is a source excerpt the position already points to.
  const message = (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
  const pos = error.linePos?.[0];
  return pos ? `line ${pos.line}, column ${pos.col}: ${message}` : message;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/**
 * Parses and validates policy YAML. The result is frozen: decisions cache compiled rules by
 * identity, and a policy that cannot change after load cannot drift from its cache.
 */
export function parsePolicy(text: string, source: string, opts: { leashIssuer?: string } = {}): Policy {
  const leashIssuer = opts.leashIssuer?.replace(/\/+$/, '');
  const doc = parseDocument(leashIssuer === undefined ? text : fillLeashIssuer(text, leashIssuer), { uniqueKeys: true, prettyErrors: true });
  // Warnings (such as an unresolved `!tag`) are errors too: the file would not mean what it says.
  const yamlIssues = [...doc.errors, ...doc.warnings].map(describeYamlError);
  if (yamlIssues.length > 0) throw new PolicyError(source, yamlIssues);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new PolicyError(source, [`(top level): ${(err as Error).message}`]);
  }
  const result = policySchema.safeParse(data);
  if (!result.success) throw new PolicyError(source, result.error.issues.flatMap(describeIssue));
  if (leashIssuer !== undefined) defaultAudiences(result.data, leashIssuer);
  return deepFreeze(result.data);
}

/**
 * An access token always names its audience (RFC 9068 section 2.2). A JWT rule that lists none
 * grants tokens for Leash itself, the one resource server the broker knows; they are accepted
 * nowhere else, and by Leash's own API only with the scopes it asks for.
 */
function defaultAudiences(policy: Policy, leashIssuer: string): void {
  for (const rule of policy.rules) {
    if (rule.grant.audiences.length === 0 && rule.grant.credentials.includes('jwt')) rule.grant.audiences = [leashIssuer];
  }
}

/** `${LEASH_ISSUER}` in a policy file stands for the broker's issuer URL (without a trailing slash). */
function fillLeashIssuer(text: string, leashIssuer: string): string {
  return text.replaceAll('${LEASH_ISSUER}', leashIssuer);
}

export function loadPolicy(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PolicyError(path, [`cannot read the file${code ? ` (${code})` : ''}`]);
  }
  return parsePolicy(text, path);
}
