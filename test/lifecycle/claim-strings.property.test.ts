/**
 * Property, through the real broker, Redis and worker: whatever the claim strings (lone
 * surrogates, control characters, quotes and backslashes, very long, in deeply nested claims),
 * every lease recorded from them ends by the path it is given (holder, operator, bulk, task,
 * expiry), exactly once, and introspection agrees before and after. Strings a proof may no longer
 * carry (ill-formed) are recorded as an older version wrote them, straight into Redis.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Lease } from '../../src/leases/lease.ts';
import { redisKeys } from '../../src/redis/keys.ts';
import { shardOfLeaseId } from '../../src/leases/lease-id.ts';
import { signJwt } from '../../src/mint/jwt/sign.ts';
import { exchangeProof } from '../helpers/broker.ts';
import { AUD } from '../helpers/policies.ts';
import {
  api, endingEvents, holderRevoke, introspect, leaseFor, startLifecycleEnv, uniq, waitFor, type LifecycleEnv,
} from './harness.ts';

let env: LifecycleEnv;
beforeAll(async () => {
  env = await startLifecycleEnv();
});
afterAll(async () => env?.close());

const piece = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
  fc.constantFrom('"', '\\', '\\u', '\\ud800', '\u0000', '\n', '\u001f', '\u007f', '/', '😀', '\ud83d\ude00', '{', ']'),
  fc.integer({ min: 1, max: 3000 }).map((n) => 'L'.repeat(n)),
);
const claimString = fc.array(piece, { maxLength: 6 }).map((p) => p.join(''));

const PATHS = ['holder', 'operator', 'bulk', 'task', 'expiry'] as const;

/** The JSON an older Leash wrote: JSON.stringify keeps lone surrogates as `\udxxx` escapes. */
const legacyRecord = (l: Lease): string =>
  JSON.stringify([l.kind, l.status, l.rule, l.issuer, l.subject, l.scopes, l.audiences, l.task_id, l.serial, l.issued_at * 1000, l.expires_at, l.proof_iss, null, l.proof_jti, l.client_addr]);

/**
 * A Leash access token for a lease recorded directly (as the exchange would have signed it). Its
 * `sub` is cut to keep it under the 8192 characters Leash accepts of its own tokens; the lease is
 * found by `jti`.
 */
function tokenFor(l: Lease): string {
  return signJwt(env.broker.deps.keys.active(), {
    iss: env.broker.config.issuer, sub: l.subject.slice(0, 600), aud: l.audiences[0], iat: l.issued_at, nbf: l.issued_at, exp: l.expires_at,
    jti: l.id, client_id: l.rule, scope: l.scopes.join(' '), ...(l.task_id ? { task_id: l.task_id } : {}),
  });
}

const nested = (depth: number, leaf: unknown): unknown => {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { [`k${i}`]: v };
  return v;
};

const isActive = async (token: string): Promise<boolean> => (await introspect(env.broker.url, env.op.token, token)).body.active;

it('every lease recorded from any claim strings ends by its path, once, and introspection agrees', async () => {
  const { broker, client } = env;
  const keys = redisKeys(broker.config.redisPrefix);
  await fc.assert(
    fc.asyncProperty(fc.tuple(claimString, claimString, claimString, claimString, claimString), claimString, fc.integer({ min: 0, max: 120 }), async (strings, proofString, depth) => {
      const run = uniq();
      const now = Math.floor(Date.now() / 1000);
      const task = `task-${run}`;
      const leases = strings.map((s, i) => leaseFor({
        subject: `repo:octo-org/p${i}-${run}:${s}`, issuer: `legacy-${run}-${PATHS[i]}`, proof_jti: s, task_id: PATHS[i] === 'task' ? task : null,
        expires_at: PATHS[i] === 'expiry' ? now + 2 : now + 600,
      }));
      for (const l of leases) {
        await broker.deps.store.create(l);
        await client.hset(keys.leases(shardOfLeaseId(l.id)), l.id, legacyRecord(l));
      }
      const tokens = leases.map(tokenFor);
      for (const [i, t] of tokens.entries()) {
        const active = await isActive(t);
        // Active, unless the one-second lease of the expiry path has already run out.
        expect(active || Date.now() >= leases[i]!.expires_at * 1000).toBe(true);
      }

      // The same kind of string in a proof, deep in its claims: refused if ill-formed, else a lease.
      const sub = `repo:octo-org/x-${run}:${proofString}`;
      const proof = await env.issuers.github.mint({ iss: env.issuers.github.url, aud: AUD, sub, jti: `jti-${run}`, ctx: nested(depth, proofString) });
      const exchanged = await exchangeProof(broker.url, proof);
      if (!sub.isWellFormed() || proof.length > 16_384) expect(exchanged.body.error).toBe('invalid_request');
      else if (!/[\u0000-\u001f\u007f]/.test(sub)) expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
      const ending: { id: string; token: string }[] = leases.map((l, i) => ({ id: l.id, token: tokens[i]! }));
      if (exchanged.status === 200) {
        ending.push({ id: exchanged.body.lease_id, token: exchanged.body.access_token });
        expect((await holderRevoke(broker.url, exchanged.body.access_token)).status).toBe(200);
      } else {
        expect(exchanged.body).not.toHaveProperty('access_token');
      }

      const [, operator, bulk] = leases as [Lease, Lease, Lease];
      expect((await holderRevoke(broker.url, tokens[0]!)).status).toBe(200);
      const reason = strings[1]!.slice(0, 500) || 'r';
      expect((await api(broker.url, 'POST', `/v1/leases/${operator.id}/revoke`, env.op.token, { reason })).body).toMatchObject({ status: 'revoked', reason: reason.toWellFormed() });
      const selector = bulk.subject.length <= 512 ? { subject: bulk.subject } : { issuer: bulk.issuer };
      expect((await api(broker.url, 'POST', '/v1/leases/revoke', env.op.token, selector)).body.revoked).toBeGreaterThanOrEqual(1);
      expect((await api(broker.url, 'POST', `/v1/tasks/${task}/complete`, env.op.token)).body).toMatchObject({ revoked: 1 });

      for (const e of ending) {
        const lease = await waitFor(`lease ${e.id} to end`, async () => {
          const l = await broker.deps.store.get(e.id);
          return l && l.ended_at !== null ? l : null;
        }, 5_000);
        expect(lease.status).not.toBe('active');
        expect(await isActive(e.token)).toBe(false);
      }
      const events = await endingEvents(client, broker.config.redisPrefix);
      for (const e of ending) expect(events.get(e.id), e.id).toHaveLength(1);
    }),
    { numRuns: 8 },
  );
  const unreadable = (await broker.deps.metrics.registry.getSingleMetric('leash_unreadable_records_total')!.get()).values[0]?.value ?? 0;
  expect(unreadable).toBe(0);
}, 120_000);
