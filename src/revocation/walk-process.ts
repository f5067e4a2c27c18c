/**
 * Bulk revocations walk in a process of their own, forked by the API process, which also queues
 * their effects. A walk of a million leases keeps Node busy for seconds working out each step's
 * flips. On the API's event loop the exchanges beside it had a p99 of 3-6x quiet; on a thread of
 * the API process, still 3x (though that loop was 90% idle); in a process of its own, at quiet but
 * for the call's end, when the million revoked ids came back to the API process to be queued as
 * effects jobs. So they do not come back: the walker queues them and answers with the count. The
 * walker has its own Redis connection, so a walk's steps and their WAITs stay on one connection.
 *
 * The walker can always be done without: while it is not connected (just started, or cut off) or
 * gone, a walk runs in the API process as it used to (revoke-leases.ts).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { StoreUnavailableError } from '../errors.ts';
import { NotReplicatedError } from '../redis/replicated-write.ts';
import type { LeaseSelector, RevokeInput, RevokeWhereOptions } from '../leases/store.ts';
import type { WalkReply, WalkRequest, WalkerConfig, WireError } from './walk-process-wire.ts';

export interface WalkProcessOptions extends WalkerConfig {
  /** Records the walker's walks could not read (see RedisLeaseStoreOptions.onUnreadable). */
  onUnreadable: (id: string) => void;
  /** The walker failed or stopped; walks go on without it. Must not throw. */
  onError: (err: Error) => void;
}

/** What a walk did: how many leases it revoked; `queueError` when their effects were not queued. */
export interface Walked {
  revoked: number;
  queueError?: string;
}

export interface WalkProcess {
  /**
   * Revokes what `selector` matches and queues the effects, in the walker; null when the walker
   * cannot take the walk now (the caller walks). Throws what the walk threw (503 for Redis).
   */
  revokeAndQueue(selector: LeaseSelector, input: RevokeInput, opts: RevokeWhereOptions): Promise<Walked | null>;
  /** The walker's pid while it runs (for an operator's ps, and the tests). */
  pid(): number | undefined;
  close(): Promise<void>;
}

/** How long a walk waits for a walker that is starting before it goes without. */
const READY_WAIT_MS = 2_000;
/** After the walker stops, walks go without it this long before it is started again. */
const RESTART_AFTER_MS = 5_000;

interface Call {
  resolve: (walked: Walked | null) => void;
  reject: (err: Error) => void;
}

/** Under tsx or vitest the entry is TypeScript, and the walker runs it through tsx too. */
function forkWalker(): ChildProcess {
  const here = import.meta.url;
  const ts = here.endsWith('.ts');
  const entry = fileURLToPath(new URL(ts ? './walk-process-entry.ts' : './walk-process-entry.js', here));
  // Not the API's own execArgv: an --inspect port would clash.
  return fork(entry, [], { execArgv: ts ? ['--import', 'tsx'] : [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function thrownAgain(e: WireError): Error {
  switch (e.kind) {
    case 'not-replicated':
      return new NotReplicatedError(e.acked, e.wanted);
    case 'unavailable':
      return new StoreUnavailableError(e.detail);
    case 'invalid':
      return new TypeError(e.message);
    default:
      return new Error(e.message);
  }
}

export function startWalkProcess(opts: WalkProcessOptions): WalkProcess {
  const { onUnreadable, onError, ...config } = opts;
  const calls = new Map<number, Call>();
  let nextCall = 1;
  let child: ChildProcess | null = null;
  let ready = false;
  let readyWaiters: (() => void)[] = [];
  let restartAt = 0;
  let closed = false;

  const wakeWaiters = (): void => {
    for (const w of readyWaiters) w();
    readyWaiters = [];
  };
  // Never what keeps the API process alive, except while a walk is in the walker.
  const hold = (c: ChildProcess, on: boolean): void => {
    if (on) c.channel?.ref();
    else c.channel?.unref();
  };
  const send = (c: ChildProcess, m: WalkRequest): void => {
    if (c.connected) c.send(m);
  };

  const onMessage = (c: ChildProcess, m: WalkReply): void => {
    if ('ready' in m) {
      ready = true;
      return wakeWaiters();
    }
    if ('unreadable' in m) return onUnreadable(m.unreadable);
    const call = calls.get(m.call);
    if (!call) return;
    calls.delete(m.call);
    if (calls.size === 0) hold(c, false);
    if ('notReady' in m) call.resolve(null);
    else if ('error' in m) call.reject(thrownAgain(m.error));
    else call.resolve(m.queueError === undefined ? { revoked: m.revoked } : { revoked: m.revoked, queueError: m.queueError });
  };

  const start = (): ChildProcess | null => {
    if (child || closed || Date.now() < restartAt) return child;
    let c: ChildProcess;
    try {
      c = forkWalker();
    } catch (err) {
      restartAt = Date.now() + RESTART_AFTER_MS;
      onError(err instanceof Error ? err : new Error(String(err)));
      return null;
    }
    c.on('message', (m: WalkReply) => onMessage(c, m));
    c.on('error', (err) => onError(err));
    c.once('exit', (code, signal) => {
      if (child !== c) return;
      child = null;
      ready = false;
      wakeWaiters();
      if (!closed) {
        restartAt = Date.now() + RESTART_AFTER_MS;
        onError(new Error(`the bulk revocation process exited (${signal ?? code})`));
      }
      for (const call of calls.values()) call.reject(new StoreUnavailableError('the bulk revocation process stopped mid-walk'));
      calls.clear();
    });
    send(c, { init: config });
    hold(c, false);
    child = c;
    return c;
  };

  const whenReady = async (): Promise<boolean> => {
    if (ready) return true;
    if (!child) return false;
    const timer = new Promise<void>((r) => setTimeout(r, READY_WAIT_MS).unref());
    await Promise.race([new Promise<void>((r) => readyWaiters.push(r)), timer]);
    return ready;
  };

  start();
  return {
    async revokeAndQueue(selector, input, walkOpts) {
      if (!start() || !(await whenReady()) || !child?.connected) return null;
      const c = child;
      const call = nextCall++;
      return new Promise<Walked | null>((resolve, reject) => {
        calls.set(call, { resolve, reject });
        hold(c, true);
        send(c, { call, selector, input, opts: walkOpts });
      });
    },
    pid: () => child?.pid,
    async close() {
      closed = true;
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      // The walker closes its connection and exits; SIGKILL is for one that does not.
      send(c, { close: true });
      const timer = setTimeout(() => c.kill('SIGKILL'), 1_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
