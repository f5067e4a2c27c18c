/**
 * Reads one HTTP/1.1 answer off the front of a buffer, for the bench's lean client
 * (http-connection.ts). Strict where a loose reading could loop or wait forever: a chunk size that
 * is not hex, a size line or head with no CRLF in sight, chunk data not closed by CRLF, or a body
 * larger than any Leash answer are errors, not "need more bytes". Interim 1xx answers are skipped;
 * 101 is an error (this client never asks to switch protocols). It allocates no result object: the
 * caller owns `out` and gets it back filled in.
 */

/** A final answer; `used` counts every byte it took, interim 1xx answers before it included. */
export interface Answer {
  status: number;
  body: Buffer;
  used: number;
  /** The server said Connection: close. */
  close: boolean;
}

export const EMPTY = Buffer.alloc(0);
/** Far above any Leash answer; a size beyond it is a broken peer, not a big body. */
export const MAX_BODY = 16 * 1024 * 1024;
const MAX_HEAD = 64 * 1024;
const MAX_SIZE_LINE = 1024;
const HEADER_END = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');
const HTTP_1 = Buffer.from('HTTP/1.');
const CR = 13;
const LF = 10;

const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)[ \t]*\r/i;
const CHUNKED = /\r\ntransfer-encoding:[^\r]*chunked/i;
const CLOSE = /\r\nconnection:[^\r]*close/i;

/** The answer at the start of buf: `out` once complete, null while more bytes are needed, a string saying what is wrong. */
export function parseAnswer(buf: Buffer, out: Answer): Answer | string | null {
  let at = 0;
  for (;;) {
    const end = buf.indexOf(HEADER_END, at);
    if (end === -1) return buf.length - at > MAX_HEAD ? 'answer head without an end within 64 KiB' : null;
    const status = statusOf(buf, at, end);
    if (status < 0) return `not an HTTP/1.x status line: ${JSON.stringify(buf.toString('latin1', at, Math.min(end, at + 40)))}`;
    if (status >= 200) return readFinal(buf, at, end, status, out);
    if (status === 101) return '101 Switching Protocols: this client speaks HTTP/1.1 only';
    if (status < 100) return `status ${status} is not an HTTP status`;
    at = end + 4; // 100 Continue, 103 Early Hints...: no body, the final answer follows
  }
}

function readFinal(buf: Buffer, at: number, end: number, status: number, out: Answer): Answer | string | null {
  const head = buf.toString('latin1', at, end + 2);
  const start = end + 4;
  let got: Answer | string | null;
  // Transfer-Encoding wins over Content-Length (RFC 9112, 6.3).
  if (CHUNKED.test(head)) {
    got = readChunked(buf, start, out);
  } else {
    const length = CONTENT_LENGTH.exec(head);
    if (length) {
      const n = length[1]!.length > 9 ? Infinity : Number(length[1]);
      if (n > MAX_BODY) return `Content-Length ${length[1]} above ${MAX_BODY}`;
      if (buf.length < start + n) return null;
      out.body = buf.subarray(start, start + n);
      out.used = start + n;
      got = out;
    } else if (status === 204 || status === 304) {
      out.body = EMPTY;
      out.used = start;
      got = out;
    } else {
      return `answer with neither Content-Length nor chunked framing (status ${status})`;
    }
  }
  if (got !== out) return got;
  out.status = status;
  out.close = CLOSE.test(head);
  return out;
}

/** The three-digit status of a status line from `at`, or -1. */
function statusOf(buf: Buffer, at: number, end: number): number {
  // "HTTP/1.x NNN" is 12 bytes; a reason phrase may follow.
  if (end - at < 12 || buf.compare(HTTP_1, 0, 7, at, at + 7) !== 0 || buf[at + 8] !== 32) return -1;
  let status = 0;
  for (let i = at + 9; i < at + 12; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return -1;
    status = status * 10 + d;
  }
  return end - at === 12 || buf[at + 12] === 32 ? status : -1;
}

/** A complete chunked body from `from` into `out`, null while more bytes are needed, or what is wrong. */
function readChunked(buf: Buffer, from: number, out: Answer): Answer | string | null {
  const parts: Buffer[] = [];
  let total = 0;
  let at = from;
  for (;;) {
    const lineEnd = buf.indexOf(CRLF, at);
    if (lineEnd === -1) return buf.length - at > MAX_SIZE_LINE ? 'chunk size line without CRLF' : null;
    const size = chunkSize(buf, at, lineEnd);
    if (size < 0) return `malformed chunk size ${JSON.stringify(buf.toString('latin1', at, Math.min(lineEnd, at + 40)))}`;
    total += size;
    if (total > MAX_BODY) return `chunked body above ${MAX_BODY}`;
    const dataStart = lineEnd + 2;
    if (size === 0) {
      const used = trailersEnd(buf, dataStart);
      if (typeof used !== 'number') return used;
      out.body = parts.length === 1 ? parts[0]! : Buffer.concat(parts, total);
      out.used = used;
      return out;
    }
    const dataEnd = dataStart + size;
    if (buf.length < dataEnd + 2) return null;
    if (buf[dataEnd] !== CR || buf[dataEnd + 1] !== LF) return 'chunk data not followed by CRLF';
    parts.push(buf.subarray(dataStart, dataEnd));
    at = dataEnd + 2;
  }
}

/** Where the trailer section from `at` ends (just past its empty line), null while incomplete, or what is wrong. */
function trailersEnd(buf: Buffer, at: number): number | string | null {
  if (buf.length < at + 2) return null;
  if (buf[at] === CR) return buf[at + 1] === LF ? at + 2 : 'malformed end of chunked body';
  const end = buf.indexOf(HEADER_END, at);
  if (end !== -1) return end + 4;
  return buf.length - at > MAX_HEAD ? 'chunked trailers without an end within 64 KiB' : null;
}

/** The hex size of a chunk-size line (extensions allowed after ";"), or -1 when it is not one. */
function chunkSize(buf: Buffer, from: number, to: number): number {
  let size = 0;
  let i = from;
  for (; i < to; i++) {
    const v = hexValue(buf[i]!);
    if (v < 0) break;
    // Eight hex digits already pass MAX_BODY; more is a broken peer (and would lose precision).
    if (i - from === 8) return -1;
    size = size * 16 + v;
  }
  if (i === from) return -1;
  while (i < to && (buf[i] === 32 || buf[i] === 9)) i++;
  if (i === to) return size;
  if (buf[i] !== 59) return -1; // ";" starts a chunk extension
  for (; i < to; i++) {
    const c = buf[i]!;
    if ((c < 32 && c !== 9) || c === 127) return -1;
  }
  return size;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}
