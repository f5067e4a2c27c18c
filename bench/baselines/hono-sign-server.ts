/**
 * Child-process entry for baseline A: a bare Hono route on @hono/node-server that answers each
 * POST /token with one freshly signed ES256 JWT (node:crypto sign, ieee-p1363 encoding). No
 * verification, no storage, no logging: the floor under any JWT-issuing endpoint on this stack.
 */
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { freePort } from '../../test/helpers/redis-server.ts';
import { serveChild } from '../child.ts';

serveChild(async () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid: 'bench' })).toString('base64url');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const app = new Hono();
  app.post('/token', async (c) => {
    await c.req.text();
    const now = Math.floor(Date.now() / 1000);
    const payload = { iss: url, sub: 'repo:octo-org/app:ref:refs/heads/main', aud: 'https://deploy.acme.internal', iat: now, exp: now + 600, jti: randomUUID(), scope: 'deploy:write artifacts:read' };
    const input = `${header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    const sig = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    return c.json({ access_token: `${input}.${sig}`, token_type: 'Bearer', expires_in: 600 }, 200, { 'Cache-Control': 'no-store' });
  });
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, () => resolve(s));
    s.once('error', reject);
  });
  return { url, close: () => new Promise<void>((r) => server.close(() => r())) };
});
