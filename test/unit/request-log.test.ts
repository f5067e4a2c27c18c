import { describe, expect, it } from 'vitest';
import { captureLog, withoutTime } from '../helpers/log-capture.ts';
import type { AuditEvent } from '../../src/audit/events.ts';
import { auditEventJson } from '../../src/audit/event-json.ts';
import { logRequest, type RequestLogFields } from '../../src/observability/request-log.ts';

const fields: RequestLogFields = { request_id: 'req-1', method: 'POST', route: '/token', status: 200, ms: 3.25, client: '127.0.0.1' };
const audit = {
  type: 'exchange.allowed',
  time: 1_796_000_000_000,
  actor: 'repo:octo-org/octo-repo:ref:refs/heads/main',
  request_id: 'req-1',
  lease_id: 'AAAAAAAAAAAAAAAAAAAAAA',
  claims: { repository: 'octo-org/octo-repo', ref: 'refs/heads/main', note: 'quote " and \\ and \u2028 and é' },
  asked: { kind: 'jwt', scopes: null },
} as unknown as AuditEvent;

describe('the access-log line of a request', () => {
  it('is the line pino writes for the same fields and audit event, keys in the same order', () => {
    const mine = captureLog('info');
    const theirs = captureLog('info');
    logRequest(mine.log, fields, audit);
    theirs.log.info({ ...fields, audit }, 'request');
    expect(mine.lines).toHaveLength(1);
    expect(mine.lines[0]!.endsWith('}\n')).toBe(true);
    expect(withoutTime(mine.lines[0]!)).toEqual(withoutTime(theirs.lines[0]!));
    expect(Object.keys(JSON.parse(mine.lines[0]!))).toEqual(Object.keys(JSON.parse(theirs.lines[0]!)));
  });

  it('reuses the JSON the audit stream got, and carries a refusal and a child logger bindings', () => {
    const { log, lines } = captureLog('info');
    const json = auditEventJson(audit);
    expect(auditEventJson(audit)).toBe(json);
    logRequest(log.child({ replica: 'api-2' }), { ...fields, status: 400, error: { code: 'invalid_scope', detail: 'x' } }, audit);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 30, service: 'leash', replica: 'api-2', status: 400, error: { code: 'invalid_scope' }, msg: 'request' });
    expect(JSON.stringify(line.audit)).toBe(json);
  });

  it('a request without an audit event has no audit key; above info level nothing is written', () => {
    const { log, lines } = captureLog('info');
    logRequest(log, fields, undefined);
    expect(JSON.parse(lines[0]!)).not.toHaveProperty('audit');
    const quiet = captureLog('warn');
    logRequest(quiet.log, fields, audit);
    expect(quiet.lines).toEqual([]);
  });
});
