import type { Deps } from '../deps.ts';
import type { Lease } from '../leases/lease.ts';
import type { CreateOptions } from '../leases/store.ts';
import type { Logger } from '../observability/logger.ts';
import { NotReplicatedError } from '../redis/replicated-write.ts';
import { revokeLeases } from '../revocation/revoke-leases.ts';

/**
 * A lease whose write the exchange cannot count as done (Redis refused to confirm it, or never
 * answered), so no credential was handed out for it. It may still be in Redis, active, holding its
 * proof's replay record: both are undone here.
 */
export interface AbandonedLease {
  leaseId: string;
  /** The proof's replay key when it was claimed with the lease, else null. */
  proofKey: string | null;
  /** The revocation's reason. */
  reason: AbandonReason;
  /** epoch ms after which there is nothing left worth undoing (the lease and the proof have both expired). */
  untilMs: number;
}

export interface AbandonedLeaseSteps {
  /** Ends the lease if it is active; done (no throw) when it is unknown or already ended. */
  end(a: AbandonedLease): Promise<void>;
  /** Frees the proof's replay record while this lease holds it (true), else leaves it (false): done either way. */
  release(a: AbandonedLease, proofKey: string): Promise<boolean>;
}

interface Pending {
  lease: AbandonedLease;
  ended: boolean;
  /** The release step is done: the proof freed, or found held by another lease. */
  released: boolean;
  /** The release freed the proof (a later exchange of it may have claimed it again since). */
  freed: boolean;
  /** The release in flight, shared by whoever needs it meanwhile. */
  releasing?: Promise<void>;
  delayMs: number;
  timer?: NodeJS.Timeout;
  /** Both steps went through once, and run once more after lateWritesMs, for a write landing late. */
  rechecking: boolean;
}

/**
 * Retries from 250 ms, doubling to a short 2 s (a CI job retrying its 503 meanwhile is refused as a
 * replay until the proof is freed); on reconnection, spread over 250 ms (longer past 2,000 held).
 */
const RETRY_MS = { first: 250, max: 2_000, reconnectSpread: 250 } as const;
/** Past 2,000 held, a reconnection's retries are spread wider: about 8 leases a millisecond. */
const RECONNECT_LEASES_PER_MS = 8;
/** Held for retry at once; past it a new one is tried once, then left to expire (warned every 10 s). */
const HELD = { max: 10_000, warnEveryMs: 10_000 } as const;

/**
 * Undoes abandoned leases, retrying each step until it succeeds or the lease's `untilMs` passes.
 * One try is not enough: when a primary dies after taking a lease write (and passing it to a
 * replica) but before answering, the first try fails too, and the lease would then outlive the
 * failover active with no credential behind it and its proof used, so the CI job's retry with the
 * same proof would be refused as a replay. Retries live in this process: if it stops, the lease
 * still ends at its expiry.
 */
export class AbandonedLeases {
  private readonly pending = new Map<string, Pending>();
  /** The same, by proof key (one proof may be left with several: a job's retries can each fail so). */
  private readonly byProof = new Map<string, Pending[]>();
  private closed = false;
  /** Leases tried once only since the last warning, and when that was (one line per 10 s at most). */
  private unheld = 0;
  private warnedAt = -Infinity;

  /**
   * How long after the undoing first went through a lease write may still land, its caller already
   * told it failed (0: never). A Cluster client's timeout settles a command but leaves it to be
   * sent again when its node's connection closes; so on a Cluster both steps run once more this
   * long after they first went through (no-ops when nothing landed).
   */
  private readonly lateWritesMs: number;

  constructor(
    private readonly steps: AbandonedLeaseSteps,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    opts: { lateWritesMs?: number } = {},
  ) {
    this.lateWritesMs = opts.lateWritesMs ?? 0;
  }

  /**
   * Takes a lease to undo and makes the first try at once. Resolves once the proof's first release
   * has been tried, so that a retry the client sends on the 503 finds the proof free when Redis
   * answered; the lease's own ending goes on in the background.
   */
  async add(lease: AbandonedLease): Promise<void> {
    if (this.closed || this.pending.has(lease.leaseId)) return;
    const p: Pending = {
      lease, ended: false, released: lease.proofKey === null, freed: false, delayMs: RETRY_MS.first, rechecking: false,
    };
    const held = this.pending.size < HELD.max;
    if (held) this.hold(p);
    else this.overflowed();
    const releasing = this.tryRelease(p);
    void Promise.all([this.tryEnd(p), releasing]).then(() => {
      if (held) this.settle(p);
    });
    await releasing;
  }

  /**
   * For an exchange refused as a replay: frees the proof now if a lease abandoned here holds it,
   * so that the job's retry is not refused while the next try waits. True when the proof was freed
   * (now, by a try in flight, or by one that landed while the refused write was on its way).
   */
  async releaseNow(proofKey: string): Promise<boolean> {
    const held = this.byProof.get(proofKey) ?? [];
    // Waiting to run again: a late write may have claimed the proof since the release went through.
    for (const p of held) if (p.rechecking && p.released && p.releasing === undefined) p.released = false;
    await Promise.all(held.map((p) => this.tryRelease(p)));
    return held.some((p) => p.freed);
  }

  /**
   * Tries every held lease again soon (Redis is back: a reconnection), not at its next turn; spread
   * over RETRY_MS.reconnectSpread (longer for more than 2,000) so that thousands do not land on a
   * primary just promoted at once.
   */
  retryNow(): void {
    const spreadMs = Math.max(RETRY_MS.reconnectSpread, this.pending.size / RECONNECT_LEASES_PER_MS);
    for (const p of this.pending.values()) {
      if (p.timer === undefined || p.rechecking) continue;
      clearTimeout(p.timer);
      this.schedule(p, Math.random() * spreadMs);
    }
  }

  /** Leases still to undo (for tests and metrics). */
  get size(): number {
    return this.pending.size;
  }

  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.byProof.clear();
  }

  private async tryEnd(p: Pending): Promise<void> {
    try {
      await this.steps.end(p.lease);
      p.ended = true;
    } catch (err) {
      // Revoked on the primary, short of replicas only: enough for a lease with nothing behind it,
      // and retrying would add a WAIT every turn for as long as the replicas are away.
      if (err instanceof NotReplicatedError) {
        p.ended = true;
        return;
      }
      this.log.debug({ err, lease_id: p.lease.leaseId }, 'could not end an abandoned lease yet');
    }
  }

  private tryRelease(p: Pending): Promise<void> {
    const proofKey = p.lease.proofKey;
    if (p.released || proofKey === null) return Promise.resolve();
    p.releasing ??= this.steps.release(p.lease, proofKey).then(
      (freed) => {
        p.released = true;
        p.freed = freed;
      },
      (err: unknown) => this.log.debug({ err, lease_id: p.lease.leaseId }, 'could not release an abandoned lease\'s proof yet'),
    ).finally(() => {
      p.releasing = undefined;
    });
    return p.releasing;
  }

  /** Drops a lease that is fully undone or out of time; otherwise schedules its next try. */
  private settle(p: Pending): void {
    if (this.closed || this.pending.get(p.lease.leaseId) !== p) return;
    if (p.ended && p.released) {
      if (this.lateWritesMs > 0 && !p.rechecking) {
        p.rechecking = true;
        this.schedule(p, this.lateWritesMs, true);
        return;
      }
      this.drop(p);
      return;
    }
    if (this.now() >= p.lease.untilMs) {
      this.drop(p);
      this.log.warn(
        { lease_id: p.lease.leaseId, ended: p.ended, proof_released: p.released },
        'gave up undoing an abandoned lease: it has expired, with no credential behind it',
      );
      return;
    }
    this.schedule(p, p.delayMs);
    p.delayMs = Math.min(p.delayMs * 2, RETRY_MS.max);
  }

  private overflowed(): void {
    this.unheld++;
    const now = this.now();
    if (now - this.warnedAt < HELD.warnEveryMs) return;
    this.log.warn({ held: this.pending.size, tried_once: this.unheld }, 'too many abandoned leases held for retry; new ones are tried once, then left to expire');
    this.warnedAt = now;
    this.unheld = 0;
  }

  /** The next try after `delayMs`; `again`: both steps, though they went through before. */
  private schedule(p: Pending, delayMs: number, again = false): void {
    p.timer = setTimeout(() => {
      p.timer = undefined;
      if (again) {
        p.ended = false;
        p.released = p.lease.proofKey === null;
      }
      void this.retry(p);
    }, delayMs);
    p.timer.unref();
  }

  private hold(p: Pending): void {
    this.pending.set(p.lease.leaseId, p);
    const key = p.lease.proofKey;
    if (key !== null) this.byProof.set(key, [...(this.byProof.get(key) ?? []), p]);
  }

  private drop(p: Pending): void {
    this.pending.delete(p.lease.leaseId);
    const key = p.lease.proofKey;
    if (key === null) return;
    const rest = (this.byProof.get(key) ?? []).filter((q) => q !== p);
    if (rest.length > 0) this.byProof.set(key, rest);
    else this.byProof.delete(key);
  }

  /** Both steps at once: the release, which the job's retry waits on, never waits on the revocation's WAIT. */
  private async retry(p: Pending): Promise<void> {
    await Promise.all([p.ended ? undefined : this.tryEnd(p), this.tryRelease(p)]);
    this.settle(p);
  }
}

/**
 * The steps on a broker's store: the lease is revoked as any other (its effects queued), the proof
 * freed by its owner. `deps` is read at each step: the broker's deps hold this.
 */
export function abandonedLeaseSteps(deps: () => Deps): AbandonedLeaseSteps {
  return {
    async end(a) {
      await revokeLeases(deps(), [a.leaseId], { reason: a.reason, by: 'leash', path: 'internal' });
    },
    release: (a, proofKey) => deps().store.releaseProof(a.leaseId, proofKey),
  };
}

/** Why a lease was abandoned: its revocation's reason (by `leash`). */
export const ABANDON_REASONS = ['store unavailable', 'not replicated', 'minting failed'] as const;
export type AbandonReason = (typeof ABANDON_REASONS)[number];

/** A proof's claim as the exchange made it with its lease (undefined: the proof is not single-use). */
export type ReplayClaim = CreateOptions['replay'];

/**
 * Hands a lease whose credential was never handed out to be ended, and its proof freed: kept for
 * retries until both the lease and the proof have expired.
 */
export async function abandon(deps: Deps, lease: Lease, replay: ReplayClaim, reason: AbandonReason): Promise<void> {
  const untilMs = Math.max(lease.expires_at * 1000, deps.now() + (replay?.ttlSeconds ?? 0) * 1000);
  await deps.abandoned.add({ leaseId: lease.id, proofKey: replay?.key ?? null, reason, untilMs });
}
