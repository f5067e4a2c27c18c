/**
 * Printing for humans and for scripts. Results go to stdout, everything else (notes, warnings,
 * prompts) to stderr, so `$(leash ...)` and `| jq` only ever see the result.
 */

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** One compact JSON document per line (for streams such as `audit tail --follow`). */
export function printJsonLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function printLine(text = ''): void {
  process.stdout.write(`${text}\n`);
}

export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

// C0, DEL and C1 controls: subjects and reasons come from proofs and callers, and an escape
// sequence printed raw could rewrite the operator's terminal.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** Makes a value safe to print in a terminal: control characters become `?`. */
export const clean = (value: unknown): string => (value === null || value === undefined ? '-' : String(value).replace(CONTROL, '?'));

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function printTable(headers: string[], rows: unknown[][]): void {
  const cells = [headers, ...rows.map((row) => row.map(clean))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  for (const row of cells) {
    const line = row.map((cell, i) => (i === row.length - 1 ? cell : (cell ?? '').padEnd(widths[i]!))).join('  ');
    printLine(line.trimEnd());
  }
}

/** `1h2m`, `9m12s`, `45s`: short enough for a table column. */
export function formatSeconds(total: number): string {
  let s = Math.max(0, Math.round(total));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d > 0) return `${d}d${h > 0 ? `${h}h` : ''}`;
  if (h > 0) return `${h}h${m > 0 ? `${m}m` : ''}`;
  if (m > 0) return `${m}m${s > 0 ? `${s}s` : ''}`;
  return `${s}s`;
}

/** Relative to now: `in 9m12s` or `3m ago`. */
export function formatRelative(epochSeconds: number, nowSeconds = Date.now() / 1000): string {
  const delta = epochSeconds - nowSeconds;
  return delta >= 0 ? `in ${formatSeconds(delta)}` : `${formatSeconds(-delta)} ago`;
}

export const formatTime = (epochSeconds: number | null | undefined): string =>
  typeof epochSeconds === 'number' ? new Date(epochSeconds * 1000).toISOString() : '-';
