import type { Config } from '../config.ts';

/** The start banner of dev mode: a copy-paste walk-through of the whole flow with curl. */
export function devBanner(config: Config, operatorToken: string | undefined): string {
  const u = config.issuer;
  const lines = [
    '',
    `  Leash dev mode: ${config.redisUrl ? 'Redis' : 'memory'} lease store, dev keys in ` + config.keysDir + ', policy ' + config.policyPath,
    '  Not for production: set REDIS_URL (and keys/) for the real thing.',
    '',
    '  Try the whole flow:',
    '',
    `  # 1. a workload proof from the built-in dev issuer (claims like a GitHub Actions job of acme/app)`,
    `  PROOF=$(curl -s -X POST ${u}/dev/proof -H 'content-type: application/json' -d '{}' | sed -E 's/.*"id_token":"([^"]+)".*/\\1/')`,
    '',
    `  # 2. exchange it for a scoped, short-lived token (RFC 8693)`,
    `  TOKEN=$(curl -s ${u}/token -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \\`,
    `    -d subject_token_type=urn:ietf:params:oauth:token-type:id_token -d subject_token="$PROOF" \\`,
    `    -d scope=artifacts:read -d ttl=300 -d task_id=demo-1 | sed -E 's/.*"access_token":"([^"]+)".*/\\1/')`,
    '',
    `  # 3. decode it`,
    `  node -e 'console.log(JSON.parse(Buffer.from(process.argv[1].split(".")[1], "base64url")))' "$TOKEN"`,
    '',
    `  # 4. the task is done: end its leases`,
    `  curl -s -X POST ${u}/v1/tasks/demo-1/complete -H "authorization: Bearer $TOKEN"`,
    '',
  ];
  if (operatorToken) {
    lines.push(
      '  Dev operator token (1 hour, every scope the policy grants to sub operator:dev):',
      `  export LEASH_URL=${u} LEASH_TOKEN=${operatorToken}`,
      `  curl -s ${u}/v1/leases -H "authorization: Bearer $LEASH_TOKEN"`,
      '',
    );
  }
  return lines.join('\n') + '\n';
}
