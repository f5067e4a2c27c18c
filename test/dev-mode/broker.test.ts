import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../helpers/redis-server.ts';
import { GRANT, ID_TOKEN, postToken } from '../helpers/broker.ts';

// `npm start` with nothing configured: memory store, generated dev keys, the dev issuer, the banner.
let child: ChildProcess;
let out = '';
let url: string;
const keysDir = mkdtempSync(join(tmpdir(), 'leash-devmode-'));

beforeAll(async () => {
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), LEASH_KEYS_DIR: join(keysDir, 'dev') };
  delete env.REDIS_URL;
  child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const deadline = Date.now() + 30_000;
  while (!out.includes('Dev operator token') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}, 40_000);
afterAll(async () => {
  child?.kill('SIGTERM');
  await new Promise((r) => child?.once('exit', r));
  rmSync(keysDir, { recursive: true, force: true });
});

it('generates dev keys and a dev CA in the layout of keys/', () => {
  expect(existsSync(join(keysDir, 'dev', 'jwt'))).toBe(true);
  for (const f of ['ca.key.pem', 'ca.pem', 'root.pem']) expect(existsSync(join(keysDir, 'dev', 'ca', f))).toBe(true);
});

it('prints the curl walk-through and a dev operator token', () => {
  expect(out).toContain(`curl -s -X POST ${url}/dev/proof`);
  expect(out).toContain(`${url}/token`);
  expect(out).toMatch(/LEASH_TOKEN=ey[\w-]+\.[\w-]+\.[\w-]+/);
});

it('the walk-through works: a dev proof with default claims exchanges under the example policy', async () => {
  const discovery = await (await fetch(`${url}/dev/.well-known/openid-configuration`)).json();
  expect(discovery.issuer).toBe(`${url}/dev`);
  const { id_token } = await (await fetch(`${url}/dev/proof`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json();
  const res = await postToken(url, { grant_type: GRANT, subject_token_type: ID_TOKEN, subject_token: id_token, scope: 'artifacts:read', ttl: '300', task_id: 'demo-1' });
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ scope: 'artifacts:read', expires_in: 300, token_type: 'Bearer' });
  const done = await fetch(`${url}/v1/tasks/demo-1/complete`, { method: 'POST', headers: { authorization: `Bearer ${res.body.access_token}` } });
  expect(await done.json()).toMatchObject({ task_id: 'demo-1', revoked: 1 });
});

it('the printed operator token works on the operator API', async () => {
  const token = /LEASH_TOKEN=(\S+)/.exec(out)![1]!;
  const res = await fetch(`${url}/v1/leases?limit=5`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  expect(Array.isArray((await res.json()).leases)).toBe(true);
});
