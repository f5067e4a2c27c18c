import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit/events.ts';
import { rawLineTarget } from '../../src/observability/pino-raw-line.ts';
import { logRequest, type RequestLogFields } from '../../src/observability/request-log.ts';

/** The adapter over pino's internals: these fail when a pino upgrade moves what it reads. */
function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = pino({ level: 'info', base: { service: 'leash' } }, { write: (s: string) => void lines.push(s) });
  return { log, lines };
}

const withoutTime = (line: string): Record<string, unknown> => {
  const { time, ...rest } = JSON.parse(line) as Record<string, unknown>;
  expect(typeof time).toBe('number');
  return rest;
};

const fields: RequestLogFields = { request_id: 'req-1', method: 'POST', route: '/token', status: 200, ms: 1.5, client: '127.0.0.1' };
const audit = { type: 'exchange.allowed', time: 1_796_000_000_000, lease_id: 'AAAAAAAAAAAAAAAAAAAAAA' } as AuditEvent;

/** A pino logger whose internals are not where the adapter looks (a pino that moved them). */
function withoutInternals(log: Logger): Logger {
  const hidden = new Set<PropertyKey>([pino.symbols.streamSym, pino.symbols.chindingsSym]);
  return new Proxy(log, {
    get(target, key) {
      if (hidden.has(key)) return undefined;
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe("pino's internals behind rawLineTarget", () => {
  it('the installed pino exports the symbols and keeps its destination and bindings behind them', () => {
    expect(typeof pino.symbols.streamSym).toBe('symbol');
    expect(typeof pino.symbols.chindingsSym).toBe('symbol');
    const { log } = capture();
    const target = rawLineTarget(log.child({ replica: 'api-2' }));
    expect(target).not.toBeNull();
    expect(target!.bindings).toBe(',"service":"leash","replica":"api-2"');
  });

  it('a line written to that destination reads as the one pino writes itself', () => {
    const mine = capture();
    const theirs = capture();
    const target = rawLineTarget(mine.log)!;
    target.stream.write(`{"level":30,"time":${Date.now()}${target.bindings},"status":200,"msg":"request"}\n`);
    theirs.log.info({ status: 200 }, 'request');
    expect(withoutTime(mine.lines[0]!)).toEqual(withoutTime(theirs.lines[0]!));
  });

  it('is null when the symbols or what they hold are missing', () => {
    const { log } = capture();
    expect(rawLineTarget(log, {})).toBeNull();
    expect(rawLineTarget(log, { streamSym: Symbol('other'), chindingsSym: pino.symbols.chindingsSym })).toBeNull();
    expect(rawLineTarget(withoutInternals(log))).toBeNull();
  });

  it("without them the request's line goes through pino's public API, and reads the same", () => {
    const direct = capture();
    const fallback = capture();
    logRequest(direct.log, fields, audit);
    logRequest(withoutInternals(fallback.log), fields, audit);
    expect(fallback.lines).toHaveLength(1);
    expect(withoutTime(fallback.lines[0]!)).toEqual(withoutTime(direct.lines[0]!));
  });
});
