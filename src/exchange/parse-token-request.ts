import { LeashError } from '../errors.ts';
import {
  GRANT_TYPE_TOKEN_EXCHANGE,
  REQUESTABLE_TOKEN_TYPES,
  SUBJECT_TOKEN_TYPES,
  TASK_ID_PATTERN,
  TASK_ID_RULE,
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_X509,
  type ExchangeRequest,
} from './request.ts';

/** RFC 8693 allows these to repeat; RFC 6749 section 3.2 forbids repeating any other. */
const REPEATABLE = new Set(['audience', 'resource']);
const KNOWN = new Set([
  'grant_type', 'subject_token', 'subject_token_type', 'requested_token_type', 'scope', 'audience',
  'resource', 'actor_token', 'actor_token_type', 'ttl', 'task_id', 'csr',
  // client authentication is not used by Leash (the proof is the credential) but is tolerated
  'client_id',
]);
// RFC 6749 appendix A.4: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const MAX_AUDIENCES = 16;

const bad = (description: string): LeashError => new LeashError('invalid_request', description);

/** Turns the form body of POST /token into an ExchangeRequest, or refuses it with invalid_request. */
export function parseTokenRequest(form: URLSearchParams): ExchangeRequest {
  const single = readSingles(form);
  const grantType = single.get('grant_type');
  if (grantType === undefined) throw bad('grant_type is required');
  if (grantType !== GRANT_TYPE_TOKEN_EXCHANGE) {
    throw new LeashError('unsupported_grant_type', `grant_type must be ${GRANT_TYPE_TOKEN_EXCHANGE}`);
  }
  if (single.has('actor_token') || single.has('actor_token_type')) {
    throw bad('delegation (actor_token) is not supported yet');
  }
  const subjectToken = single.get('subject_token');
  if (!subjectToken) throw bad('subject_token is required');
  const subjectTokenType = single.get('subject_token_type');
  if (!subjectTokenType) throw bad('subject_token_type is required');
  if (!(SUBJECT_TOKEN_TYPES as readonly string[]).includes(subjectTokenType)) {
    throw bad(`subject_token_type must be one of ${SUBJECT_TOKEN_TYPES.join(', ')}`);
  }
  const requestedTokenType = single.get('requested_token_type') ?? TOKEN_TYPE_ACCESS_TOKEN;
  if (!(REQUESTABLE_TOKEN_TYPES as readonly string[]).includes(requestedTokenType)) {
    throw bad(`requested_token_type must be one of ${REQUESTABLE_TOKEN_TYPES.join(', ')}`);
  }
  const kind = requestedTokenType === TOKEN_TYPE_X509 ? 'x509' : 'jwt';
  const csr = single.get('csr');
  if (kind === 'x509' && !csr) throw bad('csr is required for an X.509 certificate');
  if (kind === 'jwt' && csr !== undefined) throw bad('csr is only accepted with requested_token_type ' + TOKEN_TYPE_X509);

  return {
    subjectToken,
    subjectTokenType,
    requestedTokenType,
    kind,
    scopes: parseScope(single.get('scope')),
    audiences: parseAudiences(form),
    ttl: parseTtl(single.get('ttl')),
    taskId: parseTaskId(single.get('task_id')),
    csr,
  };
}

function readSingles(form: URLSearchParams): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of form) {
    if (!KNOWN.has(name)) continue; // RFC 6749 section 3.2: unrecognized parameters are ignored
    if (REPEATABLE.has(name)) continue;
    if (out.has(name)) throw bad(`${name} must not be repeated`);
    out.set(name, value);
  }
  return out;
}

function parseScope(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const tokens = raw.split(' ');
  if (raw.length === 0 || tokens.some((t) => !SCOPE_TOKEN.test(t))) {
    throw new LeashError('invalid_scope', 'scope must be scope-tokens separated by single spaces (RFC 6749 section 3.3)');
  }
  return [...new Set(tokens)];
}

function parseAudiences(form: URLSearchParams): string[] | undefined {
  const values = [...form.getAll('audience'), ...form.getAll('resource')];
  if (values.length === 0) return undefined;
  if (values.length > MAX_AUDIENCES) throw bad(`at most ${MAX_AUDIENCES} audience and resource values are accepted`);
  for (const v of values) {
    if (v.length === 0 || v.length > 512 || /[\x00-\x20\x7F]/.test(v)) {
      throw new LeashError('invalid_target', 'audience and resource values must be non-empty, at most 512 characters, without spaces or control characters');
    }
  }
  return [...new Set(values)];
}

function parseTtl(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^[1-9][0-9]{0,8}$/.test(raw)) throw bad('ttl must be a whole number of seconds, at least 1');
  return Number(raw);
}

function parseTaskId(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (!TASK_ID_PATTERN.test(raw)) throw bad(TASK_ID_RULE);
  return raw;
}
