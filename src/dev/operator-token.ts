import type { Deps } from '../deps.ts';
import { exchange } from '../exchange/exchange.ts';
import { TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN } from '../exchange/request.ts';
import type { DevIssuer } from './dev-issuer.ts';


/**
 * Dev mode's operator token goes through the same exchange and policy as everyone else's
 * (rule dev-operator of the example policy): no side door, and it is leased and audited.
 */
export async function mintDevOperatorToken(deps: Deps, devIssuer: DevIssuer): Promise<string> {
  const proof = devIssuer.mint({ sub: 'operator:dev', name: 'dev operator' });
  const res = await exchange(
    deps,
    {
      subjectToken: proof,
      subjectTokenType: TOKEN_TYPE_ID_TOKEN,
      requestedTokenType: TOKEN_TYPE_ACCESS_TOKEN,
      kind: 'jwt',
      scopes: undefined,
      audiences: [deps.config.issuer],
      ttl: 3600,
      taskId: undefined,
      csr: undefined,
    },
    { clientAddr: null, requestId: 'dev-start' },
  );
  return res.access_token;
}
