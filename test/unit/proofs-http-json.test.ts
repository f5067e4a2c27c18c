import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchJson } from '../../src/proofs/http-json.ts';
import { usableSigningKeys } from '../../src/proofs/key-select.ts';
import { thrown } from '../helpers/thrown.ts';

describe('fetchJson refuses with a stable code per cause', () => {
  let server: Server;
  let base: string;
  const hung = new Set<import('node:http').ServerResponse>();

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/ok') return res.end('{"a":1}');
      if (req.url === '/status') return res.writeHead(500).end('{}');
      if (req.url === '/text') return res.end('<html>');
      if (req.url === '/big-declared') return res.writeHead(200, { 'content-length': '2048' }).end('x'.repeat(2048));
      if (req.url === '/big-streamed') {
        res.writeHead(200);
        res.write('x'.repeat(1500));
        return res.end('x'.repeat(1500));
      }
      hung.add(res); // /hang: never answers
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const res of hung) res.destroy();
    await new Promise((r) => server.close(r));
  });

  const get = (path: string, timeoutMs = 2_000) => fetchJson(`${base}${path}`, { fetch, timeoutMs, maxBytes: 1024 });

  it('answers the parsed body on 200 JSON', async () => {
    await expect(get('/ok')).resolves.toEqual({ a: 1 });
  });

  it.each([
    ['a non-200 status', '/status', 'ERR_HTTP_JSON_STATUS'],
    ['a body that is not JSON', '/text', 'ERR_HTTP_JSON_NOT_JSON'],
    ['a declared length over the cap', '/big-declared', 'ERR_HTTP_JSON_TOO_LARGE'],
    ['a streamed body over the cap', '/big-streamed', 'ERR_HTTP_JSON_TOO_LARGE'],
  ])('%s', async (_name, path, code) => {
    await expect(get(path)).rejects.toMatchObject({ name: 'HttpJsonError', code });
  });

  it('an issuer that never answers times out', async () => {
    await expect(get('/hang', 100)).rejects.toMatchObject({ name: 'HttpJsonError', code: 'ERR_HTTP_JSON_TIMEOUT' });
  });

  it('a closed port is unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await expect(fetchJson(`http://127.0.0.1:${port}/`, { fetch, timeoutMs: 2_000 })).rejects.toMatchObject({ code: 'ERR_HTTP_JSON_UNREACHABLE' });
  });
});

describe('usableSigningKeys', () => {
  it.each([null, [], { keys: 'x' }, 'keys'])('refuses a document that is not a JWK Set: %j', (doc) => {
    expect(thrown(() => usableSigningKeys(doc))).toMatchObject({ name: 'JwksDocumentError', code: 'ERR_JWKS_INVALID' });
  });
});
