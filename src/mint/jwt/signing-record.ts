/**
 * What the brokers (and break-glass) record about each signing key, so `leash keys prune` dates a
 * key's retirement from its last signature rather than from its successor's file: until when the
 * key may have signed, and until when a token it signed may still be live (epoch ms).
 */
export interface KeyUse {
  signedUntilMs: number;
  liveUntilMs: number;
}

export interface SigningRecord {
  /** Raises the kid's record to at least `use`; never lowers it (another broker may sign later). */
  note(kid: string, use: KeyUse): Promise<void>;
  /** Every kid recorded; a kid absent here never had a signature recorded. */
  read(): Promise<Map<string, KeyUse>>;
}

/** Where a broker without Redis (dev mode) keeps the record, for `leash keys prune` to read. */
export const SIGNING_RECORD_FILE = 'signing-record.json';

/** The larger of two records of the same kid, field by field. */
export const laterUse = (a: KeyUse | undefined, b: KeyUse): KeyUse =>
  a ? { signedUntilMs: Math.max(a.signedUntilMs, b.signedUntilMs), liveUntilMs: Math.max(a.liveUntilMs, b.liveUntilMs) } : b;
