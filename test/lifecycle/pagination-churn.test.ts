import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TestBroker } from '../helpers/broker.ts';
import { api, issue, pool, sleep, type Issued, type Issuers, startLifecycleEnv, type LifecycleEnv } from './harness.ts';

/**
 * GET /v1/leases?limit=7 followed through next_cursor while leases are created, revoked, ended
 * and dropped (retention 1 s) around it: no lease twice, and none missed that existed throughout.
 */

let env: LifecycleEnv;
let issuers: Issuers;
let broker: TestBroker;
let op: Issued;

beforeAll(async () => {
  env = await startLifecycleEnv({ env: { LEASH_RETENTION: '1' } });
  ({ issuers, broker, op } = env);
});
afterAll(async () => env?.close());

async function listAll(query: string, between: () => Promise<void>): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const r = await api(broker.url, 'GET', `/v1/leases?limit=7${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, op.token);
    expect(r.status).toBe(200);
    expect(r.body.leases.length).toBeLessThanOrEqual(7);
    ids.push(...r.body.leases.map((l: { id: string }) => l.id));
    cursor = r.body.next_cursor;
    pages++;
    await between();
  } while (cursor);
  return { ids, pages };
}

it('pages through churn with no duplicates and no lease that existed throughout missed', async () => {
  const mk = (kind: string, n: number, extra: Record<string, string> = {}): Promise<Issued[]> =>
    pool(Array.from({ length: n }, (_, i) => i), 8, (i) => issue(broker.url, issuers.github, `repo:octo-org/page:${kind}-${i}`, extra));
  // Interleave stable and doomed leases so that deletions fall between stable ones.
  const stable: Issued[] = [];
  const doomed: Issued[] = [];
  for (let round = 0; round < 6; round++) {
    stable.push(...(await mk(`stable-${round}`, 8)));
    doomed.push(...(await mk(`doomed-${round}`, 6)));
  }
  // Some are revoked (and dropped after 1 s) before the listing even starts.
  for (const t of doomed.slice(0, 6)) await api(broker.url, 'POST', `/v1/leases/${t.lease_id}/revoke`, op.token, {});

  const created: Issued[] = [];
  let stop = false;
  let next = 6;
  // Background churn: new leases keep arriving, doomed ones are revoked and later dropped.
  const churn = (async () => {
    for (let i = 0; !stop; i++) {
      created.push(await issue(broker.url, issuers.github, `repo:octo-org/page:new-${i}`, { ttl: '1' }));
      const d = doomed[next++];
      if (d) await api(broker.url, 'POST', `/v1/leases/${d.lease_id}/revoke`, op.token, {});
      await sleep(10);
    }
  })();
  const between = async (): Promise<void> => {
    await issue(broker.url, issuers.gitlab, `project_path:my-group/${created.length}`);
    await sleep(100);
  };
  // Watches one lease revoked before the listing began: on which page of `all` was it dropped?
  let pages = 0;
  let droppedAtPage = Infinity;
  const watch = async (): Promise<void> => {
    pages++;
    if (droppedAtPage === Infinity && (await api(broker.url, 'GET', `/v1/leases/${doomed[0]!.lease_id}`, op.token)).status === 404) droppedAtPage = pages;
    await between();
  };
  expect((await api(broker.url, 'GET', `/v1/leases/${doomed[0]!.lease_id}`, op.token)).status).toBe(200);
  const [all, active] = await Promise.all([listAll('', watch), listAll('&status=active&rule=work', between)]);
  stop = true;
  await churn;

  for (const [name, { ids, pages }] of Object.entries({ all, active })) {
    expect({ name, duplicates: ids.length - new Set(ids).size }).toEqual({ name, duplicates: 0 });
    const seen = new Set(ids);
    expect({ name, missing: stable.filter((t) => !seen.has(t.lease_id)).map((t) => t.lease_id) }).toEqual({ name, missing: [] });
    expect(pages).toBeGreaterThan(48 / 7);
  }
  // The churn was real: leases were dropped by retention while the listing ran, new ones arrived.
  expect(droppedAtPage).toBeLessThan(all.pages);
  expect(created.length).toBeGreaterThan(5);
}, 30_000);
