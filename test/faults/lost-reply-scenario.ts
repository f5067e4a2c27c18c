import { expect } from 'vitest';
import { exchangeProof, type TestBroker } from '../helpers/broker.ts';
import { AUD } from '../helpers/policies.ts';
import { CREATE } from '../../src/leases/redis-scripts.ts';
import type { LeaseStore } from '../../src/leases/store.ts';
import type { TcpProxy } from '../helpers/tcp-proxy.ts';
import { issue, uniq, waitFor, type Issuers } from '../lifecycle/harness.ts';

export interface LostReplySetup {
  broker: TestBroker;
  issuers: Issuers;
  /** Every way the broker reaches Redis (a Cluster has one per node). */
  proxies: TcpProxy[];
  /** What Redis holds, read past the proxies. */
  seen: LeaseStore;
}

/**
 * Redis takes a lease write and its reply never comes back: the connections drop first and stay
 * refused for 3 s, as when a primary is killed after the write reached its replica. The exchange
 * answers 503 with nothing handed out; the job's retries with the same proof get 503s, then the
 * credential (never a refusal as a replay); the written lease ends revoked; the proof stays single use.
 */
export async function lostReplyUndone({ broker, issuers, proxies, seen }: LostReplySetup): Promise<void> {
  // The issuer's keys are fetched and the connections warm.
  await issue(broker.url, issuers.github, `repo:octo-org/app:warm-${uniq()}`);
  const sub = `repo:octo-org/app:lost-reply-${uniq()}`;
  const proof = await issuers.github.mint({ iss: issuers.github.url, aud: AUD, sub, jti: `jti-${uniq()}` });

  for (const p of proxies) p.holdReplies(CREATE.sha);
  const answer = exchangeProof(broker.url, proof);
  const written = await waitFor('the lease write to reach Redis', async () => (await seen.list({ subject: sub }, { limit: 10 })).leases[0]);
  expect(written.status).toBe('active');
  // Redis stays out of reach for longer than the write waits for its reply (and than a Cluster
  // client's resends of it), so the first try at undoing it fails too, as during a failover.
  for (const p of proxies) p.cutAll(3_000);
  const refused = await answer;
  expect(refused.status).toBe(503);
  expect(refused.body.error).toBe('temporarily_unavailable');
  expect(refused.body.access_token).toBeUndefined();

  const answers: number[] = [];
  const retried = await waitFor('the same proof to be exchanged', async () => {
    const r = await exchangeProof(broker.url, proof);
    answers.push(r.status);
    return r.status === 200 ? r : null;
  }, 20_000, 100);
  expect(answers.slice(0, -1).filter((status) => status !== 503)).toEqual([]);
  const ended = await waitFor('the written lease to be revoked', async () => {
    const l = await seen.get(written.id);
    return l?.status === 'revoked' ? l : null;
  }, 15_000, 50);
  expect(ended).toMatchObject({ reason: 'store unavailable', revoked_by: 'leash' });
  expect(retried.body.lease_id).not.toBe(written.id);
  expect(await seen.get(retried.body.lease_id)).toMatchObject({ status: 'active', subject: sub });
  // Still single use: the retry's claim is not freed by anything the abandoned lease left behind.
  expect((await exchangeProof(broker.url, proof)).body.error).toBe('invalid_request');
  // On a Cluster both steps run once more 10 s after they went through, for a resend that lands late.
  await waitFor('nothing left to undo', async () => broker.deps.abandoned.size === 0, 30_000, 100);
}
