import { Redis as IORedis, type Redis } from 'ioredis';
import type { AuditEvent } from '../../src/audit/events.ts';
import type { Lease } from '../../src/leases/lease.ts';
import { SHARD_COUNT, redisKeys } from '../../src/redis/keys.ts';
import { newLeaseId } from '../../src/leases/lease-id.ts';
import { exchangeProof, startBroker, type TestBroker } from '../helpers/broker.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { startFakeIssuer, type FakeIssuer } from '../helpers/fake-issuer.ts';
import { AUD } from '../helpers/policies.ts';

/** Shared by the lease lifecycle suites: a small policy, exchange and HTTP shorthands, bounded polling. */

export interface Issuers {
  github: FakeIssuer;
  gitlab: FakeIssuer;
}

export async function startIssuers(): Promise<Issuers> {
  return { github: await startFakeIssuer({ alg: 'ES256' }), gitlab: await startFakeIssuer({ alg: 'ES256' }) };
}

export async function closeIssuers(i: Issuers | undefined): Promise<void> {
  for (const x of Object.values(i ?? {})) await (x as FakeIssuer).close();
}

/**
 * Operators (leash:admin + leash:introspect), read-only operators, a `batch` rule, a catch-all
 * `work` rule for repo:octo-org/*, and a GitLab rule (for bulk revoke by issuer). No lease limits.
 */
export function lifecyclePolicy(i: Issuers): string {
  return `
issuers:
  - { name: github, issuer: "${i.github.url}", audiences: ["${AUD}"], max_proof_age: 10m }
  - { name: gitlab, issuer: "${i.gitlab.url}", audiences: ["${AUD}"], max_proof_age: 10m }
rules:
  - name: operators
    issuer: github
    match: { sub: "repo:octo-org/ops:*" }
    grant: { scopes: [leash:admin, leash:introspect], audiences: ["\${LEASH_ISSUER}"], ttl: 10m, max_ttl: 1h }
  - name: readers
    issuer: github
    match: { sub: "repo:octo-org/reader:*" }
    grant: { scopes: [leash:leases:read], audiences: ["\${LEASH_ISSUER}"], ttl: 10m, max_ttl: 1h }
  - name: batch
    issuer: github
    match: { sub: "repo:octo-org/batch:*" }
    grant: { scopes: [jobs:run], audiences: [https://jobs.acme.internal], ttl: 10m, max_ttl: 1h }
  - name: work
    issuer: github
    match: { sub: "repo:octo-org/*" }
    grant: { scopes: [deploy:write], audiences: [https://deploy.acme.internal], ttl: 10m, max_ttl: 1h }
  - name: gl-build
    issuer: gitlab
    match: { sub: "*" }
    grant: { scopes: [artifacts:read], audiences: [https://artifacts.acme.internal], ttl: 10m, max_ttl: 1h }
`;
}

let seq = 0;
export const uniq = (): string => `${process.pid}-${Date.now().toString(36)}-${++seq}`;
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Issued {
  token: string;
  lease_id: string;
  expires_in: number;
}

/** One exchange of a fresh single-use proof; extra form fields (ttl, task_id, audience...) as strings. */
export async function issue(url: string, issuer: FakeIssuer, sub: string, extra: Record<string, string> = {}): Promise<Issued> {
  const proof = await issuer.mint({ iss: issuer.url, aud: AUD, sub, jti: `jti-${uniq()}` });
  const res = await exchangeProof(url, proof, extra);
  if (res.status !== 200) throw new Error(`exchange for ${sub} failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { token: res.body.access_token, lease_id: res.body.lease_id, expires_in: res.body.expires_in };
}

/** An operator token (leash:admin + leash:introspect, sub repo:octo-org/ops:<who>) for the broker whose LEASH_ISSUER is brokerIssuer. */
export function operatorToken(url: string, issuers: Issuers, brokerIssuer: string, opts: { who?: string; ttl?: string } = {}): Promise<Issued> {
  return issue(url, issuers.github, `repo:octo-org/ops:${opts.who ?? 'alice'}`, { audience: brokerIssuer, ...(opts.ttl ? { ttl: opts.ttl } : {}) });
}

export interface Reply {
  status: number;
  body: any;
}

async function reply(res: Response): Promise<Reply> {
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // not JSON (metrics)
  }
  return { status: res.status, body };
}

/** A JSON (or bodiless) request with an optional bearer token. */
export async function api(url: string, method: string, path: string, bearer?: string, body?: unknown): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return reply(await fetch(`${url}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) }));
}

async function form(url: string, path: string, fields: Record<string, string>, bearer?: string): Promise<Reply> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  return reply(await fetch(`${url}${path}`, { method: 'POST', headers, body: new URLSearchParams(fields) }));
}

export const introspect = (url: string, bearer: string | undefined, token: string): Promise<Reply> => form(url, '/introspect', { token }, bearer);
export const holderRevoke = (url: string, token: string): Promise<Reply> => form(url, '/revoke', { token });

import { waitFor } from '../helpers/wait.ts';

export { waitFor };

/** Sweeps completed on this broker's metrics: its worker's, and direct sweepOnce calls with its deps. */
export async function sweepsDone(broker: TestBroker): Promise<number> {
  return (await broker.deps.metrics.sweeps.get()).values[0]?.value ?? 0;
}

/**
 * Waits until `n` more sweeps have completed (at least n - 1 ran start to end after this call):
 * the worker has had its chance to end something twice, so "nothing more happened" means something.
 */
export async function afterSweeps(broker: TestBroker, n = 2, timeoutMs = 15_000): Promise<void> {
  const from = await sweepsDone(broker);
  await waitFor(`${n} more sweeps`, async () => (await sweepsDone(broker)) >= from + n, timeoutMs);
}

/** Runs fn over items with at most `concurrency` in flight; results in input order. */
export async function pool<T, R>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

const ENDING_TYPES = new Set(['lease.expired', 'lease.revoked']);

/** Every ending audit event in the 16 shard streams of a prefix, grouped by lease id (read straight from Redis). */
export async function endingEvents(redis: Redis, prefix: string): Promise<Map<string, AuditEvent[]>> {
  const keys = redisKeys(prefix);
  const out = new Map<string, AuditEvent[]>();
  for (let s = 0; s < SHARD_COUNT; s++) {
    const rows = await redis.xrange(keys.audit(s), '-', '+');
    for (const [, fields] of rows) {
      const i = fields.indexOf('e');
      const e = JSON.parse(fields[i + 1]!) as AuditEvent;
      if (!ENDING_TYPES.has(e.type) || typeof e.lease_id !== 'string') continue;
      out.set(e.lease_id, [...(out.get(e.lease_id) ?? []), e]);
    }
  }
  return out;
}

/** The audit events of one lease through GET /v1/audit (newest first). */
export async function auditOf(url: string, bearer: string, leaseId: string): Promise<AuditEvent[]> {
  const r = await api(url, 'GET', `/v1/audit?lease_id=${encodeURIComponent(leaseId)}&limit=100`, bearer);
  if (r.status !== 200) throw new Error(`GET /v1/audit: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.events as AuditEvent[];
}

/** Waits until the lease's ending ran (ended_at set), read through the operator API. */
export async function waitEnded(url: string, bearer: string, leaseId: string, timeoutMs = 5_000): Promise<any> {
  return waitFor(`lease ${leaseId} to end`, async () => {
    const r = await api(url, 'GET', `/v1/leases/${leaseId}`, bearer);
    return r.status === 200 && r.body.ended_at !== null ? r.body : null;
  }, timeoutMs);
}

/** A lease as the exchange would record it, for suites that fill the store directly; overrides win. */
export function leaseFor(over: Partial<Lease> & { expires_at: number }): Lease {
  const rule = over.rule ?? 'work';
  const subject = over.subject ?? `repo:octo-org/bulk:${uniq()}`;
  const now = Math.floor(Date.now() / 1000);
  return {
    kind: 'jwt', status: 'active', rule, issuer: 'github', subject, scopes: ['deploy:write'],
    audiences: ['https://deploy.acme.internal'], task_id: null, serial: null, issued_at: now,
    revoked_at: null, ended_at: null, reason: null, revoked_by: null, proof_iss: 'https://token.actions.githubusercontent.com',
    proof_sub: subject, proof_jti: null, client_addr: '127.0.0.1',
    ...over,
    id: over.id ?? newLeaseId(subject),
  };
}

/** A private Redis (and a client on it), the lifecycle issuers, a broker with its worker, an operator token. */
export interface LifecycleEnv {
  redis: TestRedis;
  client: Redis;
  issuers: Issuers;
  broker: TestBroker;
  op: Issued;
  close(): Promise<void>;
}

/** `logLines` collects the broker's JSON log lines (startBroker's option). */
export async function startLifecycleEnv(opts: { persist?: boolean; env?: Record<string, string>; logLines?: string[] } = {}): Promise<LifecycleEnv> {
  const redis = await startRedis({ persist: opts.persist ?? false });
  const client = new IORedis(redis.url);
  // Tests stop Redis on purpose; without a listener ioredis prints each reconnect failure.
  client.on('error', () => undefined);
  const issuers = await startIssuers();
  const broker = await startBroker({
    policy: lifecyclePolicy(issuers),
    redisUrl: redis.url,
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.logLines ? { logLines: opts.logLines } : {}),
  });
  const op = await operatorToken(broker.url, issuers, broker.config.issuer);
  return {
    redis,
    client,
    issuers,
    broker,
    op,
    async close() {
      await broker.close();
      await closeIssuers(issuers);
      client.disconnect();
      await redis.destroy();
    },
  };
}
