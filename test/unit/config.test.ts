import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { describeRedis } from '../../src/redis/connect.ts';
import { RedisUrlError, parseRedisUrl } from '../../src/redis/redis-url.ts';

const refused = (env: Record<string, string>): ConfigError => {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected the configuration to be refused');
};

describe('configuration from the environment', () => {
  it('defaults: dev mode on 127.0.0.1:8080, issuer from host and port, keys/dev, role all', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ port: 8080, host: '127.0.0.1', dev: true, devIssuer: true, issuer: 'http://127.0.0.1:8080', keysDir: 'keys/dev', role: 'all', policyPath: 'policy.example.yaml' });
  });

  it('with REDIS_URL it is the real thing: no dev issuer, keys/ by default', () => {
    const c = loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', LEASH_ISSUER: 'https://leash.example.com/' });
    expect(c).toMatchObject({ dev: false, devIssuer: false, keysDir: 'keys', issuer: 'https://leash.example.com', signatureThread: true });
    expect(loadConfig({ LEASH_SIGNATURE_THREAD: 'off' }).signatureThread).toBe(false);
    // A client's X-Request-Id is not the request's id unless a proxy in front is trusted to set it.
    expect(loadConfig({}).trustRequestId).toBe(false);
    expect(loadConfig({ LEASH_TRUST_REQUEST_ID: 'true' }).trustRequestId).toBe(true);
    // Refusals are capped apart from the events that issued or ended credentials.
    expect(loadConfig({})).toMatchObject({ auditMaxEvents: 400_000, auditMaxDenials: 400_000 });
    expect(loadConfig({ LEASH_AUDIT_MAX_DENIALS: '5000' }).auditMaxDenials).toBe(5000);
    // A dedicated worker runs below the API and Redis on a shared host unless told otherwise.
    expect(loadConfig({}).workerNice).toBe(10);
    expect(loadConfig({ LEASH_WORKER_NICE: '0' }).workerNice).toBe(0);
    // Any free port when the issuer is given; surrounding spaces are forgiven.
    expect(loadConfig({ PORT: '0', LEASH_ISSUER: 'https://leash.example.com' })).toMatchObject({ port: 0, issuer: 'https://leash.example.com' });
    expect(loadConfig({ PORT: ' 9000 ' }).issuer).toBe('http://127.0.0.1:9000');
    expect(loadConfig({ LEASH_ISSUER: 'https://leash.example.com/tenant-a/' }).issuer).toBe('https://leash.example.com/tenant-a');
    // The same port number on another address is another listener.
    expect(loadConfig({ REDIS_URL: 'redis://r:6379', HOST: '10.0.0.5', PORT: '9000', LEASH_METRICS_HOST: '127.0.0.1', LEASH_METRICS_PORT: '9000' })).toMatchObject({ port: 9000, metricsPort: 9000 });
  });

  it.each([
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ REDIS_URL: 'http://localhost:6379' }, 'REDIS_URL'],
    [{ LEASH_ROLE: 'manager' }, 'LEASH_ROLE'],
    [{ LEASH_ISSUER: 'not a url' }, 'LEASH_ISSUER'],
    [{ LEASH_CLOCK_SKEW: '3600' }, 'LEASH_CLOCK_SKEW'],
    [{ LEASH_MAX_BODY_BYTES: '-1' }, 'LEASH_MAX_BODY_BYTES'],
    [{ HOST: '0.0.0.0' }, 'REDIS_URL'],
    [{ HOST: '0.0.0.0', REDIS_URL: 'redis://r:6379', LEASH_DEV: '1' }, 'LEASH_DEV'],
    [{ LEASH_ROLE: 'worker' }, 'LEASH_ROLE'],
    [{ LEASH_SIGNATURE_THREAD: 'maybe' }, 'LEASH_SIGNATURE_THREAD'],
    [{ LEASH_METRICS_PUBLIC: 'sometimes' }, 'LEASH_METRICS_PUBLIC'],
    [{ LEASH_METRICS_PORT: 'nine' }, 'LEASH_METRICS_PORT'],
    [{ LEASH_TRUST_REQUEST_ID: 'perhaps' }, 'LEASH_TRUST_REQUEST_ID'],
    [{ LEASH_AUDIT_MAX_DENIALS: '8' }, 'LEASH_AUDIT_MAX_DENIALS'],
    [{ LEASH_AUDIT_MAX_DENIALS: 'lots' }, 'LEASH_AUDIT_MAX_DENIALS'],
    [{ LEASH_WORKER_NICE: '20' }, 'LEASH_WORKER_NICE'],
    [{ LEASH_WORKER_NICE: '-5' }, 'LEASH_WORKER_NICE'],
    // Read as decimal digits only: a blank, hex or exponent is a typo, not port 0, 80 or 1000.
    [{ PORT: ' ' }, 'PORT'],
    [{ PORT: '0x50' }, 'PORT'],
    [{ PORT: '1e3' }, 'PORT'],
    [{ PORT: '80.5' }, 'PORT'],
    [{ LEASH_RATE_LIMIT_SUBJECT: '1e2' }, 'LEASH_RATE_LIMIT_SUBJECT'],
    // Any free port only where the issuer does not depend on it.
    [{ PORT: '0' }, 'PORT'],
    [{ PORT: '9000', LEASH_METRICS_PORT: '9000' }, 'LEASH_METRICS_PORT'],
    // An issuer is a URL with at most a path: metadata paths are appended to it, and it is logged.
    [{ LEASH_ISSUER: 'https://leash.example.com/?x=1' }, 'LEASH_ISSUER'],
    [{ LEASH_ISSUER: 'https://leash.example.com/#top' }, 'LEASH_ISSUER'],
    [{ LEASH_ISSUER: 'https://u:p@leash.example.com' }, 'LEASH_ISSUER'],
    [{ LEASH_ISSUER: 'https://leash.example.com/a b' }, 'LEASH_ISSUER'],
  ])('%o is refused naming %s', (env, variable) => {
    const e = refused(env as Record<string, string>);
    expect(e.variable).toBe(variable);
    expect(e.message.startsWith(`${variable}:`)).toBe(true);
  });

  it('/metrics on the API port is public only in dev mode unless LEASH_METRICS_PUBLIC says; the metrics port binds to HOST unless LEASH_METRICS_HOST says', () => {
    const redis = { REDIS_URL: 'redis://127.0.0.1:6379' };
    expect(loadConfig({})).toMatchObject({ metricsPublic: true, metricsPort: undefined, metricsHost: '127.0.0.1' });
    expect(loadConfig(redis)).toMatchObject({ metricsPublic: false, metricsHost: '127.0.0.1' });
    expect(loadConfig({ ...redis, LEASH_METRICS_PUBLIC: 'true' }).metricsPublic).toBe(true);
    expect(loadConfig({ LEASH_METRICS_PUBLIC: 'false' }).metricsPublic).toBe(false);
    expect(loadConfig({ ...redis, HOST: '10.0.0.5' }).metricsHost).toBe('10.0.0.5');
    expect(loadConfig({ ...redis, HOST: '0.0.0.0', LEASH_METRICS_PORT: '9100', LEASH_METRICS_HOST: '10.1.2.3' })).toMatchObject({ host: '0.0.0.0', metricsPort: 9100, metricsHost: '10.1.2.3' });
  });

  it('a bad value stops the real process with a message naming the variable', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env: { ...process.env, PORT: 'abc' }, encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^leash: cannot start: invalid configuration: PORT: /m);
  });

  it('a bad policy file stops the start naming the path inside it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'leash-badpolicy-'));
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, 'issuers: [{ name: gh, issuer: "https://token.actions.githubusercontent.com", audiences: [a] }]\nrules:\n  - name: r\n    issuer: gh\n    grant: { scopes: [a], ttl: 2h, max_ttl: 1h }\n');
    try {
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env: { ...process.env, PORT: '0', LEASH_ISSUER: 'http://127.0.0.1:1', LEASH_POLICY: policy }, encoding: 'utf8', timeout: 30_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(policy);
      expect(r.stderr).toMatch(/rules\[0\]\.grant/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a missing policy file stops the start and says how to make one from the example', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env: { ...process.env, PORT: '0', LEASH_ISSUER: 'http://127.0.0.1:1', LEASH_POLICY: 'no-such-policy.yaml' }, encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('LEASH_POLICY: cannot read no-such-policy.yaml (ENOENT)');
    expect(r.stderr).toContain('cp policy.example.yaml policy.yaml');
  });
});

describe('REDIS_URL', () => {
  it.each([
    ['redis://127.0.0.1:6379', { kind: 'standalone', tls: false, node: { host: '127.0.0.1', port: 6379 }, db: 0 }],
    ['rediss://:s3cret@redis.internal:6380/2', { kind: 'standalone', tls: true, password: 's3cret', db: 2 }],
    ['redis://leash:p%40ss@[::1]:6379', { kind: 'standalone', username: 'leash', password: 'p@ss', node: { host: '::1', port: 6379 } }],
    ['redis+sentinel://:pw@s1:26379,s2:26380,s3/leash-primary?sentinel_password=sp', {
      kind: 'sentinel', tls: false, name: 'leash-primary', password: 'pw', sentinelPassword: 'sp',
      sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26380 }, { host: 's3', port: 26379 }],
    }],
    ['rediss+sentinel://s1:26379/m', { kind: 'sentinel', tls: true, name: 'm' }],
    ['redis+cluster://u:pw@n1:7000,n2:7001', { kind: 'cluster', tls: false, username: 'u', password: 'pw', nodes: [{ host: 'n1', port: 7000 }, { host: 'n2', port: 7001 }] }],
    ['rediss+cluster://n1:7000', { kind: 'cluster', tls: true }],
  ])('%s is accepted', (url, shape) => {
    expect(loadConfig({ REDIS_URL: url }).redisUrl).toBe(url);
    expect(parseRedisUrl(url)).toMatchObject(shape);
  });

  it.each([
    ['a Unix socket path', '/var/run/redis.sock'],
    ['another scheme', 'http://localhost:6379'],
    ['a typo in the scheme', 'redis+sentinal://s1:26379/m'],
    ['Sentinel without a master name', 'redis+sentinel://s1:26379,s2:26379'],
    ['several hosts on redis://', 'redis://a:6379,b:6379'],
    ['a database on a Cluster', 'redis+cluster://n1:7000/1'],
    ['a database that is not a number', 'redis://h:6379/zero'],
    ['an unknown query parameter', 'redis://:pw@h:6379?password=leaked'],
    ['sentinel_password on redis://', 'redis://h:6379?sentinel_password=x'],
    ['a port out of range', 'redis://h:70000'],
    ['an empty host', 'redis+cluster://n1:7000,'],
    ["an unencoded '#' in the password", 'redis://:leaked#1@h:6379'],
  ])('%s is refused naming REDIS_URL and the accepted forms, without the password', (_, url) => {
    const e = refused({ REDIS_URL: url });
    expect(e.variable).toBe('REDIS_URL');
    expect(e.message.startsWith('REDIS_URL: ')).toBe(true);
    for (const form of ['redis://', 'rediss://', 'redis+sentinel://', 'rediss+sentinel://', 'redis+cluster://', 'rediss+cluster://']) {
      expect(e.message).toContain(form);
    }
    expect(e.message).not.toContain('leaked');
    expect(() => parseRedisUrl(url)).toThrow(RedisUrlError);
  });

  it('says why: a scheme it does not take, or a # to percent-encode', () => {
    expect(refused({ REDIS_URL: 'redis+sentinal://s1:26379/m' }).message).toContain('the scheme redis+sentinal:// is not one Leash accepts');
    expect(refused({ REDIS_URL: 'redis://:pa#ss@h:6379' }).message).toContain("it holds a '#': percent-encode it as %23");
    expect(refused({ REDIS_URL: 'redis://h:6379#x' }).message).not.toContain('scheme');
  });

  it('describes a deployment for logs without its credentials', () => {
    expect(describeRedis('redis+sentinel://u:secret@s1:26379,s2:26379/m?sentinel_password=other')).toBe('redis+sentinel://s1:26379,s2:26379/m');
    expect(describeRedis('rediss+cluster://:secret@n1:7000')).toBe('rediss+cluster://n1:7000');
    expect(describeRedis('redis://:secret@h:6379/3')).toBe('redis://h:6379/3');
  });

  it('takes LEASH_REDIS_MIN_REPLICAS, LEASH_REDIS_WAIT_MS and LEASH_ALLOW_EVICTION', () => {
    expect(loadConfig({})).toMatchObject({ redisMinReplicas: 0, redisWaitMs: 1000, allowEviction: false });
    expect(loadConfig({ LEASH_REDIS_MIN_REPLICAS: '2', LEASH_REDIS_WAIT_MS: '250', LEASH_ALLOW_EVICTION: '1' }))
      .toMatchObject({ redisMinReplicas: 2, redisWaitMs: 250, allowEviction: true });
    expect(refused({ LEASH_REDIS_MIN_REPLICAS: '-1' }).variable).toBe('LEASH_REDIS_MIN_REPLICAS');
    expect(refused({ LEASH_REDIS_MIN_REPLICAS: 'one' }).variable).toBe('LEASH_REDIS_MIN_REPLICAS');
    expect(refused({ LEASH_REDIS_WAIT_MS: '0' }).variable).toBe('LEASH_REDIS_WAIT_MS');
    expect(refused({ LEASH_ALLOW_EVICTION: 'maybe' }).variable).toBe('LEASH_ALLOW_EVICTION');
  });
});
