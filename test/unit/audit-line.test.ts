import { describe, expect, it } from 'vitest';
import { captureLog, withoutTime } from '../helpers/log-capture.ts';
import type { AuditEvent } from '../../src/audit/events.ts';
import { logAuditEvents } from '../../src/observability/audit-line.ts';
import { auditEventJson, withStreamId } from '../../src/audit/event-json.ts';

const event = {
  type: 'lease.expired',
  time: 1_796_000_000_000,
  lease_id: 'AAAAAAAAAAAAAAAAAAAAAA',
  rule: 'gh-deploy',
  issuer: 'github',
  subject: 'repo:octo-org/octo-repo:ref:refs/heads/main "quoted" \\ \u2028 é',
  task_id: null,
  actor: 'worker',
  reason: 'expired',
  kind: 'jwt',
  serial: null,
  lag_ms: 12,
  id: '1796000000000-0-3',
} as unknown as AuditEvent;

describe('the log line of an audit event', () => {
  it('is the line pino writes for { audit } with msg "audit", bindings and key order included', () => {
    const mine = captureLog('info', { role: 'worker' });
    const theirs = captureLog('info', { role: 'worker' });
    logAuditEvents(mine.log, [event]);
    theirs.log.info({ audit: event }, 'audit');
    expect(mine.lines).toHaveLength(1);
    expect(mine.lines[0]!.endsWith('}\n')).toBe(true);
    expect(withoutTime(mine.lines[0]!)).toEqual(withoutTime(theirs.lines[0]!));
    expect(Object.keys(JSON.parse(mine.lines[0]!))).toEqual(Object.keys(JSON.parse(theirs.lines[0]!)));
  });

  it('of several events are the lines pino writes for each, in order, handed over in one write', () => {
    const second = { ...event, type: 'lease.revoked', lease_id: 'BBBBBBBBBBBBBBBBBBBBBB', reason: 'task completed', id: '1796000000000-1-3' } as unknown as AuditEvent;
    const mine = captureLog('info', { role: 'worker' });
    const theirs = captureLog('info', { role: 'worker' });
    logAuditEvents(mine.log, [event, second]);
    theirs.log.info({ audit: event }, 'audit');
    theirs.log.info({ audit: second }, 'audit');
    expect(mine.writes).toBe(1);
    expect(mine.lines.map(withoutTime)).toEqual(theirs.lines.map(withoutTime));
  });

  it('writes nothing below the info level, or for no events', () => {
    const quiet = captureLog('warn', { role: 'worker' });
    logAuditEvents(quiet.log, [event]);
    const none = captureLog('info', { role: 'worker' });
    logAuditEvents(none.log, []);
    expect(none.writes).toBe(0);
    expect(quiet.lines).toHaveLength(0);
  });

  it('of an ending given its stream id after its JSON was made is the JSON the event now has', () => {
    const { id: _id, ...bare } = event as unknown as Record<string, unknown>;
    const json = JSON.stringify(bare);
    const marked = withStreamId(bare as unknown as AuditEvent, json, '1796000000000-7-12');
    expect(auditEventJson(marked)).toBe(JSON.stringify(marked));
    expect(JSON.parse(auditEventJson(marked)).id).toBe('1796000000000-7-12');
  });
});
