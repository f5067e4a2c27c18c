/** The kill switch as an operator pulls it, timed by when sampled tokens stop introspecting active. */
import { BENCH_RULE } from './env.ts';
import { sleep } from './util.ts';

export interface KillSwitchRun {
  /** performance.now() when the call was sent. */
  start: number;
  answer: { status: number; body: { revoked?: number }; ms: number };
  /** performance.now() when the last sampled token read inactive; NaN if one never did. */
  visibleAt: number;
}

/** Introspection as the operator: true while the token is active. */
export function introspector(url: string, operatorToken: string): (token: string) => Promise<boolean> {
  return async (token) => {
    const res = await fetch(`${url}/introspect`, {
      method: 'POST',
      headers: { authorization: `Bearer ${operatorToken}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${token}`,
    });
    const body = (await res.json()) as { active?: boolean };
    if (res.status !== 200) throw new Error(`introspection answered ${res.status} ${JSON.stringify(body)}`);
    return body.active === true;
  };
}

/**
 * POST /v1/leases/revoke {rule, subject}, with light introspection polls while it runs (a few
 * tokens per 100 ms, so the polls do not slow the broker much), then every token not yet seen
 * inactive once it has answered, until `pollMs` after the call was sent.
 */
export async function pullKillSwitch(url: string, operatorToken: string, subject: string, tokens: string[], pollMs: number): Promise<KillSwitchRun> {
  const introspect = introspector(url, operatorToken);
  const start = performance.now();
  const call = fetch(`${url}/v1/leases/revoke`, {
    method: 'POST',
    headers: { authorization: `Bearer ${operatorToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ rule: BENCH_RULE, subject, reason: 'bench: compromised runner' }),
  }).then(async (res) => ({ status: res.status, body: (await res.json()) as { revoked?: number }, ms: performance.now() - start }));
  let callDone = false;
  void call.finally(() => { callDone = true; }).catch(() => undefined);
  const inactiveAt = new Map<number, number>();
  let rot = 0;
  while (inactiveAt.size < tokens.length && performance.now() < start + pollMs) {
    const open = tokens.map((_, i) => i).filter((i) => !inactiveAt.has(i));
    const batch = callDone ? open : Array.from({ length: Math.min(5, open.length) }, (_, k) => open[(rot + k) % open.length]!);
    rot += 5;
    const answers = await Promise.all(batch.map((i) => introspect(tokens[i]!)));
    const now = performance.now();
    batch.forEach((i, k) => { if (!answers[k]) inactiveAt.set(i, now); });
    if (inactiveAt.size < tokens.length) await sleep(callDone ? 10 : 100);
  }
  const answer = await call;
  if (answer.status !== 200 || typeof answer.body.revoked !== 'number') throw new Error(`bulk revoke answered ${answer.status} ${JSON.stringify(answer.body)}`);
  return { start, answer, visibleAt: inactiveAt.size === tokens.length ? Math.max(...inactiveAt.values()) : NaN };
}
