import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Child processes running TypeScript entries with tsx, for the multi-process and crash suites. */

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const WORKER_CHILD = fileURLToPath(new URL('./worker-child.ts', import.meta.url));
export const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

export interface Child {
  proc: ChildProcess;
  /** stdout lines so far */
  lines: string[];
  /** stderr text so far, for failure messages */
  stderr(): string;
  /** Resolves when a stdout line satisfies pred (including one already seen). */
  waitLine(pred: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  kill(signal: NodeJS.Signals): Promise<void>;
}

export function startChild(file: string, env: Record<string, string>, name = file): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let err = '';
  let partial = '';
  const waiters = new Set<() => void>();
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    for (const w of waiters) w();
  });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err = (err + d).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    proc,
    lines,
    stderr: () => err,
    waitLine(pred, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = lines.find(pred);
          if (hit !== undefined) {
            done();
            resolve(hit);
          } else if (proc.exitCode !== null || proc.signalCode !== null) {
            done();
            reject(new Error(`${name} exited (${proc.exitCode ?? proc.signalCode}) before the expected line; stderr: ${err}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: no expected line within ${timeoutMs} ms; stdout: ${lines.slice(-5).join(' | ')}; stderr: ${err}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
          proc.off('exit', check);
        };
        waiters.add(check);
        proc.once('exit', check);
        check();
      });
    },
    async kill(signal) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      await exited;
    },
  };
}
