import { startBroker, exchangeProof, type BrokerOptions, type TestBroker } from './broker.ts';
import { startFakeIssuer, fixtureClaims } from './fake-issuer.ts';
import { AUD, e2ePolicy, type IssuerSet } from './policies.ts';
import { startRedis, type TestRedis } from './redis-server.ts';

/** A private Redis, four fake CI/workload issuers and a broker trusting them (e2ePolicy). */
export interface E2E {
  redis: TestRedis;
  issuers: IssuerSet;
  broker: TestBroker;
  /** A GitHub-Actions-shaped proof (push-main fixture) with a fresh jti; `extra` overrides claims. */
  githubProof(extra?: Record<string, unknown>): Promise<string>;
  /** A live operator token (rule `operators`: leash:admin + leash:introspect, audience = the broker). */
  operatorToken(): Promise<string>;
  close(): Promise<void>;
}

let seq = 0;

export async function startE2E(opts: Omit<BrokerOptions, 'policy' | 'redisUrl'> & { persist?: boolean } = {}): Promise<E2E> {
  const { persist, ...brokerOpts } = opts;
  const redis = await startRedis({ persist: persist ?? false });
  const issuers: IssuerSet = {
    github: await startFakeIssuer({ alg: 'RS256' }),
    gitlab: await startFakeIssuer({ alg: 'RS256' }),
    k8s: await startFakeIssuer({ alg: 'RS256' }),
    spiffe: await startFakeIssuer({ alg: 'ES256' }),
  };
  const broker = await startBroker({ ...brokerOpts, policy: e2ePolicy(issuers), redisUrl: redis.url });
  const githubProof = (extra: Record<string, unknown> = {}) =>
    issuers.github.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: issuers.github.url, aud: AUD, jti: `e2e-${process.pid}-${++seq}`, ...extra });
  return {
    redis,
    issuers,
    broker,
    githubProof,
    async operatorToken() {
      const proof = await githubProof({ sub: `repo:octo-org/ops:ref:refs/heads/main:${++seq}` });
      const res = await exchangeProof(broker.url, proof, { audience: broker.config.issuer });
      if (res.status !== 200) throw new Error(`operator exchange failed: ${JSON.stringify(res.body)}`);
      return res.body.access_token as string;
    },
    async close() {
      await broker.close();
      for (const i of Object.values(issuers)) await i.close();
      await redis.destroy();
    },
  };
}
