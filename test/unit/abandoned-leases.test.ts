import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { AbandonedLeases, type AbandonedLease, type AbandonedLeaseSteps } from '../../src/exchange/abandoned-leases.ts';
import { NotReplicatedError } from '../../src/redis/replicated-write.ts';
import { waitFor } from '../helpers/wait.ts';

/** Steps that fail their first `failures` calls each, counting every call. */
function flakySteps(failures: { end: number; release: number }, gate?: Promise<void>) {
  const calls = { end: 0, release: 0 };
  const steps: AbandonedLeaseSteps = {
    async end() {
      await gate;
      if (++calls.end <= failures.end) throw new Error('Connection is closed.');
    },
    async release() {
      if (++calls.release <= failures.release) throw new Error("Stream isn't writeable");
      return true;
    },
  };
  return { steps, calls };
}

/** What Redis holds of an abandoned lease's write (absent at first; a test makes it land late), undone by the steps. */
function lateWrite() {
  const redis = { active: false, claimed: false };
  const steps: AbandonedLeaseSteps = {
    async end() {
      redis.active = false;
    },
    async release() {
      const freed = redis.claimed;
      redis.claimed = false;
      return freed;
    },
  };
  return { redis, steps };
}

function capture() {
  const lines: string[] = [];
  return { lines, log: pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) }) };
}

const lease = (over: Partial<AbandonedLease> = {}): AbandonedLease => ({
  leaseId: `lease-${Math.random()}`,
  proofKey: 'jti:abc',
  reason: 'store unavailable',
  untilMs: Date.now() + 60_000,
  ...over,
});

describe('AbandonedLeases', () => {
  it('retries each step on its own until it succeeds, then holds nothing', async () => {
    const { steps, calls } = flakySteps({ end: 0, release: 2 });
    const abandoned = new AbandonedLeases(steps, capture().log);
    await abandoned.add(lease());
    expect(abandoned.size).toBe(1);
    await waitFor('the proof to be released', async () => abandoned.size === 0, 5_000);
    expect(calls).toEqual({ end: 1, release: 3 });
  });

  it('answers once the proof is released, while the lease is still being ended', async () => {
    let open!: () => void;
    const { steps, calls } = flakySteps({ end: 0, release: 0 }, new Promise<void>((r) => (open = r)));
    const abandoned = new AbandonedLeases(steps, capture().log);
    await abandoned.add(lease());
    expect(calls.release).toBe(1);
    expect(abandoned.size).toBe(1);
    open();
    await waitFor('the lease to be ended', async () => abandoned.size === 0);
  });

  it('frees a held proof at once for a retry of the same proof', async () => {
    const { steps, calls } = flakySteps({ end: 0, release: 1 });
    const abandoned = new AbandonedLeases(steps, capture().log);
    await abandoned.add(lease({ proofKey: 'jti:held' }));
    expect(await abandoned.releaseNow('jti:other')).toBe(false);
    expect(await abandoned.releaseNow('jti:held')).toBe(true);
    expect(calls.release).toBe(2);
    abandoned.close();
  });

  it('tries again soon after a reconnection, not at the next turn of its backoff', async () => {
    const { steps, calls } = flakySteps({ end: 4, release: 0 });
    const abandoned = new AbandonedLeases(steps, capture().log);
    await abandoned.add(lease());
    // Four failures (at 0, 250, 750 and 1,750 ms) put the next try 2,000 ms away.
    await waitFor('four failed tries', async () => calls.end === 4, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 10));
    const at = Date.now();
    abandoned.retryNow();
    await waitFor('the lease to be ended', async () => abandoned.size === 0, 3_000, 5);
    // Within the reconnection's spread (250 ms), well before the backoff's turn.
    expect(Date.now() - at).toBeLessThan(1_500);
    abandoned.close();
  });

  it('spreads a reconnection\'s retries wider when thousands are held', async () => {
    let down = true;
    const tried: number[] = [];
    const steps: AbandonedLeaseSteps = {
      async end() {
        if (down) throw new Error('Connection is closed.');
        tried.push(Date.now());
      },
      release: async () => true,
    };
    const abandoned = new AbandonedLeases(steps, capture().log);
    for (let i = 0; i < 4_000; i++) await abandoned.add(lease({ proofKey: null }));
    down = false;
    const at = Date.now();
    abandoned.retryNow();
    await waitFor('every lease to be ended', async () => abandoned.size === 0, 5_000, 10);
    // 4,000 held: spread over 500 ms, not 250 (a few land later on a busy machine).
    expect(tried.filter((t) => t - at > 300).length).toBeGreaterThan(1_000);
    abandoned.close();
  });

  it('frees the proof of whichever abandoned lease still holds it, when several share it', async () => {
    // The job's first attempt wrote lease A and its claim; its retry, lease B, failed after
    // reaching Redis too and found the proof held by A (its release frees nothing).
    let aFails = true;
    const steps: AbandonedLeaseSteps = {
      end: async () => undefined,
      release: async (a) => {
        if (a.leaseId === 'lease-a') {
          if (aFails) throw new Error('Connection is closed.');
          return true;
        }
        return false;
      },
    };
    const abandoned = new AbandonedLeases(steps, capture().log);
    await abandoned.add(lease({ leaseId: 'lease-a', proofKey: 'jti:shared' }));
    await abandoned.add(lease({ leaseId: 'lease-b', proofKey: 'jti:shared' }));
    await waitFor('lease B to be done', async () => abandoned.size === 1);
    aFails = false;
    expect(await abandoned.releaseNow('jti:shared')).toBe(true);
    abandoned.close();
  });

  it('counts a proof freed by a try that landed while the refused retry was on its way', async () => {
    let ending!: () => void;
    const steps: AbandonedLeaseSteps = { end: () => new Promise<void>((r) => (ending = r)), release: async () => true };
    const abandoned = new AbandonedLeases(steps, capture().log);
    // The first try frees the proof; a retry of it refused meanwhile (its write sent before) asks after.
    await abandoned.add(lease({ proofKey: 'jti:raced' }));
    expect(await abandoned.releaseNow('jti:raced')).toBe(true);
    ending();
    abandoned.close();
  });

  it('does not count a proof as freed when another lease holds it since (the record names that lease)', async () => {
    let tries = 0;
    // The first try fails (Redis away), so the proof is still to be released when the retry comes
    // in; by then another lease holds it, and the owner check frees nothing.
    const steps: AbandonedLeaseSteps = {
      end: async () => undefined,
      release: async () => {
        if (++tries === 1) throw new Error('Connection is closed.');
        return false;
      },
    };
    const abandoned = new AbandonedLeases(steps, capture().log);
    await abandoned.add(lease({ proofKey: 'jti:taken' }));
    expect(await abandoned.releaseNow('jti:taken')).toBe(false);
    expect(tries).toBe(2);
    abandoned.close();
  });

  it('gives up on a lease once it and its proof have expired, and says so', async () => {
    let now = 1_000_000;
    const { steps } = flakySteps({ end: Infinity, release: Infinity });
    const { lines, log } = capture();
    const abandoned = new AbandonedLeases(steps, log, () => now);
    await abandoned.add(lease({ leaseId: 'lease-gone', untilMs: now + 1_000 }));
    await waitFor('the first try to settle', async () => lines.some((l) => l.includes('could not end')));
    now += 2_000;
    await waitFor('the lease to be given up', async () => abandoned.size === 0, 5_000);
    const warning = lines.map((l) => JSON.parse(l)).find((l) => l.msg.startsWith('gave up'));
    expect(warning).toMatchObject({ lease_id: 'lease-gone', ended: false, proof_released: false });
  });

  it('counts a revocation written on the primary but short of replicas as done', async () => {
    let ends = 0;
    const steps: AbandonedLeaseSteps = {
      end: async () => {
        ends++;
        throw new NotReplicatedError(0, 1, 1);
      },
      release: async () => true,
    };
    const abandoned = new AbandonedLeases(steps, capture().log);
    await abandoned.add(lease());
    await waitFor('the lease to be done', async () => abandoned.size === 0);
    expect(ends).toBe(1);
  });

  it('a lease with no proof claimed only needs ending', async () => {
    const { steps, calls } = flakySteps({ end: 0, release: 0 });
    const abandoned = new AbandonedLeases(steps, capture().log);
    await abandoned.add(lease({ proofKey: null }));
    await waitFor('the lease to be ended', async () => abandoned.size === 0);
    expect(calls).toEqual({ end: 1, release: 0 });
  });
  it('on a Cluster, undoes once more a write that lands after it was undone (a late resend)', async () => {
    const { redis, steps } = lateWrite();
    const abandoned = new AbandonedLeases(steps, capture().log, Date.now, { lateWritesMs: 1_500 });
    await abandoned.add(lease());
    await new Promise((r) => setTimeout(r, 100));
    Object.assign(redis, { active: true, claimed: true });
    // Still held, though both steps went through, and a reconnection's retries (spread over
    // 250 ms) do not cut the wait short.
    abandoned.retryNow();
    await new Promise((r) => setTimeout(r, 500));
    expect(abandoned.size).toBe(1);
    expect(redis).toEqual({ active: true, claimed: true });
    await waitFor('the late write to be undone', async () => abandoned.size === 0, 5_000);
    expect(redis).toEqual({ active: false, claimed: false });
  });

  it('frees at once a proof that a late write claimed while the second run waits', async () => {
    const { redis, steps } = lateWrite();
    const abandoned = new AbandonedLeases(steps, capture().log, Date.now, { lateWritesMs: 5_000 });
    await abandoned.add(lease({ proofKey: 'jti:late' }));
    await waitFor('the first run to go through', async () => abandoned.size === 1 && !redis.claimed, 1_000);
    await new Promise((r) => setTimeout(r, 50));
    redis.claimed = true;
    // The job's retry, refused as a replay: the proof is freed now, not after the wait.
    expect(await abandoned.releaseNow('jti:late')).toBe(true);
    expect(redis.claimed).toBe(false);
    abandoned.close();
  });

});
