/** Baseline A: a bare Hono route doing one ES256 sign per request, same load as the exchange. */
import { startChild } from '../child.ts';
import { describeLoad, type LoadConfig } from '../exchange-load.ts';
import { runLoad, type LoadResult } from '../load-generator.ts';

const isJwtAnswer = (body: string): boolean => {
  try {
    return (JSON.parse(body) as { access_token?: string }).access_token?.split('.').length === 3;
  } catch {
    return false;
  }
};

export async function benchHonoSign(cfg: LoadConfig): Promise<LoadResult> {
  const child = await startChild({ entry: 'baselines/hono-sign-server.ts', name: 'baseline-hono-sign' });
  try {
    // Same request size as an exchange (a form carrying a ~1 KB JWT), so parsing costs are alike.
    const body = `grant_type=client_credentials&scope=deploy%3Awrite&filler=${'x'.repeat(1100)}`;
    const r = await runLoad({ name: 'baseline A: bare Hono + one ES256 sign', targets: [child.url], ...cfg, next: () => ({ path: '/token', body }), check: isJwtAnswer, cpuOf: { server: child.pid } });
    describeLoad(r);
    return r;
  } finally {
    await child.stop();
  }
}
