/**
 * One keep-alive HTTP/1.1 connection that sends a request and reads its answer, with no more work
 * than that: the request goes out in one write, the answer is read by Content-Length (or chunked
 * framing). node:http's client costs the load generator several times the CPU per request, and on
 * a two-core machine that CPU is taken from the server being measured. wrk and autocannon keep
 * their clients this lean for the same reason.
 */
import { connect, type Socket } from 'node:net';

export interface Reply {
  status: number;
  body: string;
  error?: string;
}

interface Pending {
  wantBody: boolean;
  resolve: (r: Reply) => void;
  timer: NodeJS.Timeout;
}

const HEADER_END = Buffer.from('\r\n\r\n');

export class HttpConnection {
  private socket: Socket | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private pending: Pending | null = null;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly timeoutMs: number,
  ) {}

  /** POSTs `body` (a form) to `path`; the answer's body is kept when `wantBody` or not a 200. */
  post(path: string, body: string, headers: Record<string, string>, wantBody: boolean): Promise<Reply> {
    return new Promise((resolve) => {
      const socket = this.open();
      const timer = setTimeout(() => this.fail(`no answer within ${this.timeoutMs} ms`), this.timeoutMs);
      this.pending = { wantBody, resolve, timer };
      let head = `POST ${path} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
      for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
      socket.write(`${head}\r\n${body}`);
    });
  }

  close(): void {
    this.socket?.destroy();
    this.socket = null;
  }

  private open(): Socket {
    if (this.socket && !this.socket.destroyed) return this.socket;
    const socket = connect({ host: this.host, port: this.port, noDelay: true });
    this.buf = Buffer.alloc(0);
    // Events of a socket this connection has already let go are no concern of the current request.
    socket.on('data', (chunk: Buffer) => {
      if (this.socket !== socket) return;
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.parse();
    });
    socket.on('error', (err) => {
      if (this.socket === socket) this.fail(err.message);
    });
    socket.on('close', () => {
      if (this.socket === socket) this.fail('connection closed');
    });
    this.socket = socket;
    return socket;
  }

  private parse(): void {
    const p = this.pending;
    if (!p) return;
    const end = this.buf.indexOf(HEADER_END);
    if (end === -1) return;
    const head = this.buf.toString('latin1', 0, end);
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const start = end + 4;
    let body: Buffer;
    let used: number;
    if (length) {
      used = start + Number(length[1]);
      if (this.buf.length < used) return;
      body = this.buf.subarray(start, used);
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const chunked = readChunked(this.buf, start);
      if (!chunked) return;
      ({ body, used } = chunked);
    } else {
      return this.fail(`answer with neither Content-Length nor chunked framing (status ${status})`);
    }
    const text = p.wantBody || status !== 200 ? body.toString('utf8') : '';
    this.buf = this.buf.subarray(used);
    if (/\r\nconnection:\s*close/i.test(head)) this.close();
    this.settle({ status, body: text });
  }

  private fail(error: string): void {
    this.close();
    this.settle({ status: 0, body: '', error });
  }

  private settle(reply: Reply): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    clearTimeout(p.timer);
    p.resolve(reply);
  }
}

/** A complete chunked body starting at `from`, or null while more bytes are needed. */
function readChunked(buf: Buffer, from: number): { body: Buffer; used: number } | null {
  const parts: Buffer[] = [];
  let at = from;
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', at);
    if (lineEnd === -1) return null;
    const size = parseInt(buf.toString('latin1', at, lineEnd), 16);
    const dataStart = lineEnd + 2;
    if (size === 0) {
      const trailerEnd = buf.indexOf('\r\n', dataStart);
      return trailerEnd === -1 ? null : { body: Buffer.concat(parts), used: trailerEnd + 2 };
    }
    if (buf.length < dataStart + size + 2) return null;
    parts.push(buf.subarray(dataStart, dataStart + size));
    at = dataStart + size + 2;
  }
}
