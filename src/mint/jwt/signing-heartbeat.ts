import type { Logger } from '../../observability/logger.ts';
import type { KeyStore } from './keystore.ts';
import type { SigningRecord } from './signing-record.ts';

/** How often a broker records its active key: one write a minute, off the request path. */
export const SIGNING_BEAT_MS = 60_000;
/**
 * How far ahead each beat vouches: the key counts as signing until then. Five beats, so a few
 * failed or late writes (a stalled event loop, a Redis blip) never leave a signing key unrecorded.
 */
export const SIGNING_HORIZON_MS = 5 * SIGNING_BEAT_MS;

export interface SigningHeartbeatOptions {
  keys: KeyStore;
  record: SigningRecord;
  /** The longest token lifetime the policy in force grants (largest max_ttl), seconds. */
  longestTokenSeconds: () => number;
  clockSkewSeconds: number;
  now: () => number;
  log: Logger;
}

export interface SigningHeartbeat {
  /** Records the active key now; never throws (a failure is logged, the next beat retries). */
  beat(): Promise<void>;
  stop(): void;
}

/**
 * Records in the signing record that this broker's active key signs until now + horizon, and that
 * its tokens may be live until that plus the longest token lifetime and the skew. Beating on a
 * timer rather than per signature costs the token endpoint nothing, and covers a broker that
 * signs with a pinned old key or reloads late: it keeps vouching for the key it actually uses.
 */
export function startSigningHeartbeat(opts: SigningHeartbeatOptions): SigningHeartbeat {
  const beat = async (): Promise<void> => {
    const kid = opts.keys.active().kid;
    const signedUntilMs = opts.now() + SIGNING_HORIZON_MS;
    const liveUntilMs = signedUntilMs + (opts.longestTokenSeconds() + opts.clockSkewSeconds) * 1000;
    try {
      await opts.record.note(kid, { signedUntilMs, liveUntilMs });
    } catch (err) {
      opts.log.warn({ kid, err: (err as Error).message }, 'could not record the signing key in use; retrying at the next beat');
    }
  };
  const timer = setInterval(() => void beat(), SIGNING_BEAT_MS);
  timer.unref();
  return { beat, stop: () => clearInterval(timer) };
}
