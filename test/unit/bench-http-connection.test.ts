import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EMPTY, MAX_BODY, parseAnswer, type Answer } from '../../bench/http-answer.ts';
import { HttpConnection } from '../../bench/http-connection.ts';

/**
 * The bench's own HTTP client against a raw TCP server that answers with exactly the bytes a test
 * gives it: malformed chunk sizes fail the request (they used to loop forever: parseInt gave NaN),
 * interim 1xx answers are skipped, and any split of an answer into packets reads the same.
 */

const fresh = (): Answer => ({ status: 0, body: EMPTY, used: 0, close: false });

interface RawServer {
  port: number;
  connections: number;
  close(): Promise<void>;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A TCP server that calls `answer` for each request it reads (a head, then its Content-Length body), n counting from 0. */
async function rawServer(answer: (socket: Socket, n: number) => void | Promise<void>): Promise<RawServer> {
  const state = { connections: 0 };
  const sockets = new Set<Socket>();
  let n = 0;
  const server = createServer((socket) => {
    state.connections++;
    socket.setNoDelay(true); // each write its own packet, as far as TCP allows
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = '';
    socket.setEncoding('latin1').on('data', (d: string) => {
      buf += d;
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        buf = buf.slice(end + 4 + length);
        void answer(socket, n++);
      }
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    get connections() { return state.connections; },
    async close() {
      for (const s of sockets) s.destroy();
    },
  };
}

// Long enough that a reply arriving by timeout can be told from one that failed at once.
const TIMEOUT_MS = 20_000;
const post = (c: HttpConnection, wantBody = true) => c.post('/token', 'a=1', {}, wantBody);

describe('parseAnswer', () => {
  const ok = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n';
  const answers: Record<string, string> = {
    'chunked': ok,
    'content-length': 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello',
    '100 continue, then chunked': `HTTP/1.1 100 Continue\r\n\r\n${ok}`,
    'chunked with trailers': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nx-check: 1\r\n\r\n',
    '204 with no framing': 'HTTP/1.1 204 No Content\r\n\r\n',
  };

  it.each(Object.entries(answers))('%s: needs more bytes at every byte boundary, then reads the whole answer', (_name, text) => {
    const full = Buffer.from(text, 'latin1');
    const whole = parseAnswer(full, fresh());
    expect(typeof whole).toBe('object');
    for (let i = 0; i < full.length; i++) expect(parseAnswer(full.subarray(0, i), fresh())).toBeNull();
    // And with the next answer already behind it, `used` stops at its end.
    const two = Buffer.concat([full, full]);
    const first = parseAnswer(two, fresh()) as Answer;
    expect(first.used).toBe(full.length);
    expect(first.body.toString()).toBe((whole as Answer).body.toString());
  });

  it('reads status, body and Connection: close', () => {
    const a = parseAnswer(Buffer.from(`HTTP/1.1 100 Continue\r\n\r\n${ok}`), fresh()) as Answer;
    expect(a).toMatchObject({ status: 200, close: false });
    expect(a.body.toString()).toBe('hello, world');
    const c = parseAnswer(Buffer.from('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}'), fresh()) as Answer;
    expect(c).toMatchObject({ status: 400, close: true });
  });

  const broken: Record<string, string> = {
    'a chunk size that is not hex (parseInt gave NaN)': 'zz\r\nhello\r\n0\r\n\r\n',
    'a negative chunk size': '-5\r\nhello\r\n0\r\n\r\n',
    'a 0x prefix': '0x5\r\nhello\r\n0\r\n\r\n',
    'an empty chunk size': '\r\nhello\r\n0\r\n\r\n',
    'an absurdly large chunk size': 'ffffffffffff\r\nhello\r\n0\r\n\r\n',
    'a size above the body cap': `${(MAX_BODY + 1).toString(16)}\r\nhello\r\n`,
    'a bare LF after the size': '5\nhello\r\n0\r\n\r\n',
    'a size line with no CRLF in sight': `5${' '.repeat(2_000)}`,
    'chunk data not followed by CRLF': '5\r\nhelloXY0\r\n\r\n',
    'a CR without LF ending the body': '0\r\n\rX',
  };

  it.each(Object.entries(broken))('%s is an error, not a wait for more bytes', (_name, body) => {
    const got = parseAnswer(Buffer.from(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${body}`, 'latin1'), fresh());
    expect(typeof got).toBe('string');
  });

  it.each([
    ['101 Switching Protocols', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'],
    ['a status line that is not HTTP', 'SSH-2.0-OpenSSH_9.6\r\n\r\n'],
    ['a status below 100', 'HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n'],
    ['a Content-Length above the cap', `HTTP/1.1 200 OK\r\ncontent-length: ${MAX_BODY + 1}\r\n\r\n`],
    ['no framing on a 200', 'HTTP/1.1 200 OK\r\n\r\nhello'],
  ])('%s is an error', (_name, text) => {
    expect(typeof parseAnswer(Buffer.from(text, 'latin1'), fresh())).toBe('string');
  });
});

describe('HttpConnection against a raw server', () => {
  it('a malformed chunk size fails the request at once, and the next request gets a fresh connection', async () => {
    const s = await rawServer((socket, n) => {
      socket.write(n === 0
        ? 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'
        : 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
    const c = new HttpConnection('127.0.0.1', s.port, TIMEOUT_MS);
    try {
      const bad = await post(c);
      expect(bad.status).toBe(0);
      expect(bad.error).toMatch(/chunk size/);
      expect(await post(c)).toEqual({ status: 200, body: 'ok' });
      expect(s.connections).toBe(2);
    } finally {
      c.close();
      await s.close();
    }
  });

  it('skips a 100 Continue (sent as its own packet) and reads the 200 after it', async () => {
    const s = await rawServer(async (socket) => {
      socket.write('HTTP/1.1 100 Continue\r\n\r\n');
      await new Promise((r) => setTimeout(r, 20)); // its own packet, most likely: both readings must work
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n{"a":1}');
    });
    const c = new HttpConnection('127.0.0.1', s.port, TIMEOUT_MS);
    try {
      expect(await post(c)).toEqual({ status: 200, body: '{"a":1}' });
    } finally {
      c.close();
      await s.close();
    }
  });

  it('a 101 answer fails the request', async () => {
    const s = await rawServer((socket) => { socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n'); });
    const c = new HttpConnection('127.0.0.1', s.port, TIMEOUT_MS);
    try {
      const r = await post(c);
      expect(r.status).toBe(0);
      expect(r.error).toMatch(/101/);
    } finally {
      c.close();
      await s.close();
    }
  });

  it('reads the same answer however it is split, byte by byte included, over one keep-alive connection', async () => {
    const answer = Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n');
    let split = 0;
    const s = await rawServer(async (socket) => {
      // Request k is answered in two writes cut at byte k (0: all at once); the last one a byte at a time.
      if (split === answer.length) {
        for (const b of answer) {
          socket.write(Buffer.of(b));
          await new Promise((r) => setImmediate(r));
        }
        return;
      }
      socket.write(answer.subarray(0, split));
      await new Promise((r) => setImmediate(r));
      socket.write(answer.subarray(split));
    });
    const c = new HttpConnection('127.0.0.1', s.port, TIMEOUT_MS);
    try {
      for (split = 0; split <= answer.length; split++) {
        expect(await post(c)).toEqual({ status: 200, body: 'hello, world' });
      }
      expect(s.connections).toBe(1);
    } finally {
      c.close();
      await s.close();
    }
  });

  it('keeps the body of a 200 only when asked, and always for other statuses', async () => {
    const s = await rawServer((socket, n) => {
      socket.write(n < 2 ? 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok' : 'HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\nno');
    });
    const c = new HttpConnection('127.0.0.1', s.port, TIMEOUT_MS);
    try {
      expect(await post(c, false)).toEqual({ status: 200, body: '' });
      expect(await post(c, true)).toEqual({ status: 200, body: 'ok' });
      expect(await post(c, false)).toEqual({ status: 400, body: 'no' });
      expect(s.connections).toBe(1);
    } finally {
      c.close();
      await s.close();
    }
  });
});
