/**
 * REDIS_URL, parsed into what connect.ts needs: one server, a Sentinel set or a Cluster. Only the
 * forms in REDIS_URL_FORMS (README "Redis deployments") are accepted; ioredis would take anything
 * else as a Unix socket path or ignore parts of it, which a typo should never silently become.
 */

export interface HostPort {
  host: string;
  port: number;
}

interface Credentials {
  /** Data nodes' ACL user and password (never logged). */
  username?: string;
  password?: string;
}

export type RedisTarget =
  | ({ kind: 'standalone'; tls: boolean; node: HostPort; db: number } & Credentials)
  | ({ kind: 'sentinel'; tls: boolean; sentinels: HostPort[]; name: string; sentinelPassword?: string } & Credentials)
  | ({ kind: 'cluster'; tls: boolean; nodes: HostPort[] } & Credentials);

export const REDIS_URL_FORMS = [
  'redis://[[user]:password@]host:port[/db]',
  'rediss://[[user]:password@]host:port[/db]',
  'redis+sentinel://[[user]:password@]host1:port1,host2:port2[,...]/<master name>[?sentinel_password=...]',
  'rediss+sentinel://... (the same, over TLS)',
  'redis+cluster://[[user]:password@]host1:port1,host2:port2[,...]',
  'rediss+cluster://... (the same, over TLS)',
] as const;

/** A REDIS_URL that is none of the accepted forms; the message never repeats the URL (it may hold a password). */
export class RedisUrlError extends Error {
  readonly code = 'ERR_REDIS_URL';
  constructor(readonly reason: string) {
    super(`${reason}; the accepted forms are ${REDIS_URL_FORMS.join(', ')}`);
    this.name = 'RedisUrlError';
  }
}

const SHAPE = /^(rediss?)(?:\+(sentinel|cluster))?:\/\/(?:([^@/?#]*)@)?([^/?#]*)(?:\/([^?#]*))?(?:\?([^#]*))?$/;
const DEFAULT_PORT = { standalone: 6379, sentinel: 26379, cluster: 6379 } as const;

export function parseRedisUrl(url: string): RedisTarget {
  const m = SHAPE.exec(url);
  if (!m) {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1];
    if (!scheme) throw new RedisUrlError('it is not a URL');
    if (!/^rediss?(\+(sentinel|cluster))?$/.test(scheme)) throw new RedisUrlError(`the scheme ${scheme}:// is not one Leash accepts`);
    // The scheme is fine, so a '#' (never part of these forms) made the rest unreadable: most often
    // an unencoded '#' in a password.
    throw new RedisUrlError(url.includes('#') ? "it holds a '#': percent-encode it as %23 (in a password too)" : 'it is not one of these forms');
  }
  const [, scheme, mode, userinfo, hostList, path, query] = m;
  const kind = mode === 'sentinel' ? 'sentinel' : mode === 'cluster' ? 'cluster' : 'standalone';
  const tls = scheme === 'rediss';
  const creds = credentials(userinfo);
  const hosts = hostList!.split(',').map((h) => hostPort(h, DEFAULT_PORT[kind]));
  const params = queryParams(query);

  if (kind === 'standalone') {
    if (hosts.length !== 1) throw new RedisUrlError(`${scheme}:// takes one host; use redis+sentinel:// or redis+cluster:// for several`);
    noParams(params, []);
    if (path !== undefined && path !== '' && !/^\d{1,2}$/.test(path)) throw new RedisUrlError('the database after the host must be a number from 0 to 99');
    return { kind, tls, node: hosts[0]!, db: path ? Number(path) : 0, ...creds };
  }
  if (kind === 'sentinel') {
    const name = path === undefined ? '' : decode(path, 'the master name');
    if (name === '' || name.includes('/')) throw new RedisUrlError('a Sentinel URL ends with /<master name>');
    noParams(params, ['sentinel_password']);
    const sentinelPassword = params.get('sentinel_password');
    return { kind, tls, sentinels: hosts, name, ...creds, ...(sentinelPassword ? { sentinelPassword } : {}) };
  }
  if (path !== undefined && path !== '') throw new RedisUrlError('a Cluster URL has no path: Redis Cluster has only database 0');
  noParams(params, []);
  return { kind, tls, nodes: hosts, ...creds };
}

function credentials(userinfo: string | undefined): Credentials {
  if (userinfo === undefined) return {};
  const cut = userinfo.indexOf(':');
  const username = decode(cut < 0 ? userinfo : userinfo.slice(0, cut), 'the user name');
  const password = cut < 0 ? '' : decode(userinfo.slice(cut + 1), 'the password');
  // `user@host` without a colon is a password-less user name, as in redis-cli's -u.
  return { ...(username ? { username } : {}), ...(password ? { password } : {}) };
}

function hostPort(text: string, defaultPort: number): HostPort {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(text);
  if (!m) throw new RedisUrlError(text === '' ? 'a host is missing' : 'a host is not host:port');
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65535) throw new RedisUrlError('a port is not between 1 and 65535');
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function queryParams(query: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!query) return out;
  for (const pair of query.split('&')) {
    const cut = pair.indexOf('=');
    const key = cut < 0 ? pair : pair.slice(0, cut);
    if (out.has(key)) throw new RedisUrlError(`the query gives ${key} twice`);
    out.set(key, decode(cut < 0 ? '' : pair.slice(cut + 1), key));
  }
  return out;
}

function noParams(params: Map<string, string>, allowed: string[]): void {
  for (const key of params.keys()) {
    if (!allowed.includes(key)) {
      throw new RedisUrlError(allowed.length ? `the only query parameter is ${allowed.join(', ')}, not ${key}` : `this form takes no query parameters (${key})`);
    }
  }
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new RedisUrlError(`${what} is not valid percent-encoding`);
  }
}

/** What a log line may say about the deployment: scheme and hosts, never a user name or password. */
export function describeRedisTarget(t: RedisTarget): string {
  const hosts = (list: HostPort[]): string => list.map((h) => (h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`)).join(',');
  const s = t.tls ? 'rediss' : 'redis';
  if (t.kind === 'standalone') return `${s}://${hosts([t.node])}/${t.db}`;
  if (t.kind === 'sentinel') return `${s}+sentinel://${hosts(t.sentinels)}/${t.name}`;
  return `${s}+cluster://${hosts(t.nodes)}`;
}
