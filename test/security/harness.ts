/**
 * Shared setup for the security suites: a private redis-server, four fake OIDC issuers, a real
 * broker over HTTP, and the assertions every refusal must pass:
 *   - the exact HTTP status and error code,
 *   - no lease written (every lease of any status, counted in Redis, not just active ones),
 *   - no replay record written (keys under `<prefix>replay:` unchanged),
 *   - no audit gap (an `exchange.denied` event carrying the response's request id).
 */
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import { SHARD_COUNT } from '../../src/redis/keys.ts';
import type { AuditEvent } from '../../src/audit/events.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { fixtureClaims, startFakeIssuer } from '../helpers/fake-issuer.ts';
import { exchangeProof, startBroker, type BrokerOptions, type TestBroker } from '../helpers/broker.ts';
import { AUD, e2ePolicy, type IssuerSet } from '../helpers/policies.ts';

export { AUD };

export interface SecurityEnv {
  redis: TestRedis;
  issuers: IssuerSet;
  broker: TestBroker;
  /** A plain client on the broker's Redis, for looking at keys directly. */
  r: Redis;
  close(): Promise<void>;
}

export interface HttpResult {
  status: number;
  body: any;
  headers: Headers;
}

export async function startSecurityEnv(opts: { policy?: (i: IssuerSet) => string; broker?: Partial<BrokerOptions> } = {}): Promise<SecurityEnv> {
  const redis = await startRedis();
  const issuers: IssuerSet = {
    github: await startFakeIssuer({ alg: 'RS256' }),
    gitlab: await startFakeIssuer({ alg: 'RS256' }),
    k8s: await startFakeIssuer({ alg: 'RS256' }),
    spiffe: await startFakeIssuer({ alg: 'ES256' }),
  };
  const broker = await startBroker({ policy: (opts.policy ?? e2ePolicy)(issuers), redisUrl: redis.url, ...opts.broker });
  const r = new Redis(redis.url);
  return {
    redis,
    issuers,
    broker,
    r,
    async close() {
      r.disconnect();
      await broker.close();
      for (const i of Object.values(issuers)) await i.close();
      await redis.destroy();
    },
  };
}

let seq = 0;
/** A fresh id for jti and subject suffixes, so single-use and lease limits never collide. */
export const uniq = (label = 'x'): string => `${label}-${process.pid}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;

/** GitHub push-main claims for the gh-deploy rule, with a fresh jti and subject. */
export function ghClaims(env: SecurityEnv, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const id = uniq('gh');
  return {
    ...fixtureClaims('github-actions', 'push-main'),
    iss: env.issuers.github.url,
    aud: AUD,
    jti: id,
    sub: `repo:octo-org/octo-repo:ref:refs/heads/main:${id}`,
    ...extra,
  };
}

/** Every lease in Redis, whatever its status (the `all` listing index of each shard). */
export async function leaseCount(env: SecurityEnv): Promise<number> {
  const prefix = env.broker.config.redisPrefix;
  let n = 0;
  for (let s = 0; s < SHARD_COUNT; s++) n += await env.r.zcard(`${prefix}{s${s}}:all`);
  return n;
}

export async function replayKeys(env: SecurityEnv): Promise<string[]> {
  return (await env.r.keys(`${env.broker.config.redisPrefix}replay:*`)).sort();
}

export async function deniedEvent(env: SecurityEnv, requestId: string): Promise<AuditEvent | undefined> {
  const page = await env.broker.deps.audit.list({ type: 'exchange.denied', limit: 200 });
  return page.events.find((e) => e.request_id === requestId);
}

export interface Refusal {
  status?: number;
  code: string;
  /** The error_description must match this: only where the wording itself is the contract. */
  description?: RegExp;
  /** The refusal's fixed reason (ProofError, CsrError): never sent, so read from its exchange.denied event. */
  reason?: string;
  /** Refusals outside /token (no exchange happened) have no exchange.denied event. */
  audited?: boolean;
}

/**
 * Sends a request that must be refused, and checks the refusal left nothing behind: no lease,
 * no replay record, no credential in the body, no token echoed back, and an audit event.
 */
export async function expectRefused(env: SecurityEnv, send: () => Promise<HttpResult>, want: Refusal, secret?: string): Promise<HttpResult> {
  const leasesBefore = await leaseCount(env);
  const replayBefore = await replayKeys(env);
  const res = await send();
  expect({ status: res.status, error: res.body?.error }).toEqual({ status: want.status ?? 400, error: want.code });
  if (want.description) expect(res.body.error_description ?? res.body.message).toMatch(want.description);
  expect(res.body).not.toHaveProperty('access_token');
  if (secret) expect(JSON.stringify(res.body)).not.toContain(secret);
  expect(await leaseCount(env)).toBe(leasesBefore);
  expect(await replayKeys(env)).toEqual(replayBefore);
  if (want.audited !== false) {
    const event = await deniedEvent(env, res.body.request_id);
    expect(event, `exchange.denied audit event for request ${res.body.request_id}`).toBeDefined();
    expect(event!.reason).toContain(want.code);
    if (want.reason) expect(event!.reason ?? '', 'exchange.denied reason').toMatch(new RegExp(`^${want.code}: ${want.reason}: `));
    if (secret) expect(JSON.stringify(event)).not.toContain(secret);
  }
  return res;
}

/** Exchanges a proof that must be refused (see expectRefused). */
export function expectProofRefused(env: SecurityEnv, proof: string, want: Refusal, extra: Record<string, string | string[] | undefined> = {}): Promise<HttpResult> {
  return expectRefused(env, () => exchangeProof(env.broker.url, proof, extra), want, proof);
}

/** A POST with a raw body and headers, answered as JSON (or null). */
export async function rawPost(url: string, body: BodyInit | null, headers: Record<string, string> = {}, method = 'POST'): Promise<HttpResult> {
  const res = await fetch(url, { method, body, headers });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** A Leash token for an operator (GitHub ops repository): `scope` narrows the operators rule. */
export async function operatorToken(env: SecurityEnv, fields: Record<string, string> = {}): Promise<{ token: string; leaseId: string }> {
  const proof = await env.issuers.github.mint(ghClaims(env, { sub: `repo:octo-org/ops:${uniq('op')}` }));
  const res = await exchangeProof(env.broker.url, proof, fields);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { token: res.body.access_token, leaseId: res.body.lease_id };
}

/** A workload token of the gh-deploy rule (audience: deploy services, not Leash). */
export async function workloadToken(env: SecurityEnv, fields: Record<string, string> = {}): Promise<{ token: string; leaseId: string }> {
  const proof = await env.issuers.github.mint(ghClaims(env));
  const res = await exchangeProof(env.broker.url, proof, fields);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { token: res.body.access_token, leaseId: res.body.lease_id };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
