/**
 * One keep-alive HTTP/1.1 connection that sends a request and reads its answer, with no more work
 * than that: the request goes out in one write, the answer is read by Content-Length or chunked
 * framing (http-answer.ts: interim 1xx answers skipped, malformed framing an error, never a wait).
 * node:http's client costs the load generator several times the CPU per request, and on a
 * two-core machine that CPU is taken from the server being measured. wrk and autocannon keep
 * their clients this lean for the same reason.
 */
import { connect, type Socket } from 'node:net';
import { EMPTY, parseAnswer, type Answer } from './http-answer.ts';

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

export class HttpConnection {
  private socket: Socket | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private pending: Pending | null = null;
  /** Filled in by parseAnswer for each answer: no result object per request. */
  private readonly answer: Answer = { status: 0, body: EMPTY, used: 0, close: false };

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
    const a = parseAnswer(this.buf, this.answer);
    if (a === null) return;
    // A broken answer fails this request and its connection; the next request opens a new one.
    if (typeof a === 'string') return this.fail(a);
    const text = p.wantBody || a.status !== 200 ? a.body.toString('utf8') : '';
    a.body = EMPTY;
    this.buf = this.buf.subarray(a.used);
    if (a.close) this.close();
    this.settle({ status: a.status, body: text });
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
