/**
 * Hands revoked leases to the worker, which runs their effects (LeaseStore.finalize). The status
 * flip has already happened when enqueue is called; a lost job is caught by the periodic sweep.
 */
export interface RevocationQueue {
  enqueue(leaseIds: string[]): Promise<void>;
  /** Jobs waiting or running, for metrics and the bench. */
  depth(): Promise<number>;
  close(): Promise<void>;
}
