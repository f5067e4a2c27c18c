import { pino, type Logger } from 'pino';
import { expect } from 'vitest';

/**
 * A pino logger whose lines are kept in `lines` (each with its newline) and whose destination
 * writes are counted in `writes`; `bindings` are those of a child logger.
 */
export function captureLog(level = 'info', bindings?: Record<string, string>): { log: Logger; lines: string[]; readonly writes: number } {
  const lines: string[] = [];
  let writes = 0;
  const write = (s: string): void => {
    writes++;
    for (const line of s.split(/(?<=\n)/)) lines.push(line);
  };
  const root = pino({ level, base: { service: 'leash' } }, { write });
  return {
    log: bindings ? root.child(bindings) : root,
    lines,
    get writes() {
      return writes;
    },
  };
}

/** A log line's fields but its time (which differs between two loggers), checking it is a number. */
export function withoutTime(line: string): Record<string, unknown> {
  const { time, ...rest } = JSON.parse(line) as Record<string, unknown>;
  expect(typeof time).toBe('number');
  return rest;
}
