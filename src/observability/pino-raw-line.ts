import { pino, type Logger } from 'pino';

/** Where a hand-built log line goes: pino's destination, and the bindings it puts on every line. */
export interface RawLineTarget {
  stream: { write(line: string): unknown };
  /** The logger's (and its parents') bindings as pino serialized them: `,"key":value...`. */
  bindings: string;
}

/** pino's own symbols, or an empty set when a pino version stops exporting them. */
type PinoSymbols = Partial<Record<'streamSym' | 'chindingsSym', symbol>>;

/**
 * The one place Leash reaches into pino's internals (request-log.ts): the destination stream and
 * serialized bindings behind `pino.symbols`. Null when they are not where this pino keeps them,
 * so the caller falls back to the public `logger.info(obj, msg)`. test/unit/pino-raw-line checks
 * the installed pino still has them and that the line matches pino's own.
 */
export function rawLineTarget(log: Logger, symbols: PinoSymbols = (pino as { symbols?: PinoSymbols }).symbols ?? {}): RawLineTarget | null {
  const { streamSym, chindingsSym } = symbols;
  if (typeof streamSym !== 'symbol' || typeof chindingsSym !== 'symbol') return null;
  const fields = log as unknown as Record<symbol, unknown>;
  const stream = fields[streamSym] as RawLineTarget['stream'] | undefined;
  const bindings = fields[chindingsSym];
  if (typeof stream?.write !== 'function' || typeof bindings !== 'string') return null;
  return { stream, bindings };
}
