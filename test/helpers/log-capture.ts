import { pino, type Logger } from 'pino';
import { expect } from 'vitest';

/** A pino logger whose lines are kept in `lines`; `bindings` are those of a child logger. */
export function captureLog(level = 'info', bindings?: Record<string, string>): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const root = pino({ level, base: { service: 'leash' } }, { write: (s: string) => void lines.push(s) });
  return { log: bindings ? root.child(bindings) : root, lines };
}

/** A log line's fields but its time (which differs between two loggers), checking it is a number. */
export function withoutTime(line: string): Record<string, unknown> {
  const { time, ...rest } = JSON.parse(line) as Record<string, unknown>;
  expect(typeof time).toBe('number');
  return rest;
}
