import fc from 'fast-check';
import { Command } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { OneBufferCommand, encodeCommand, type CommandArg } from '../../src/redis/one-buffer-command.ts';

/** The bytes ioredis itself sends for a command: its toWritable, as the socket encodes a string. */
function ioredisBytes(name: string, args: CommandArg[]): Buffer {
  const w = new Command(name, args, { replyEncoding: 'utf8' }).toWritable({});
  return typeof w === 'string' ? Buffer.from(w) : w;
}

const arg: fc.Arbitrary<CommandArg> = fc.oneof(
  fc.string({ unit: 'grapheme' }),
  // Lone surrogates included: both must encode them the same way (as U+FFFD).
  fc.string({ unit: 'binary' }),
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
);

describe('a command encoded into one Buffer', () => {
  it('is byte for byte what ioredis sends for the same command', () => {
    fc.assert(
      fc.property(fc.constantFrom('evalsha', 'eval', 'set'), fc.array(arg, { maxLength: 30 }), (name, args) => {
        expect(encodeCommand(name, args).equals(ioredisBytes(name, args))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps what the command names as keys, so a Cluster routes it by their slot', () => {
    const cmd = new OneBufferCommand('evalsha', ['0123456789abcdef0123456789abcdef01234567', 2, '{leash:3}:due', '{leash:3}:leases', 'argv', 7]);
    expect(cmd.getKeys()).toEqual(['{leash:3}:due', '{leash:3}:leases']);
    expect(cmd.getSlot()).toBe(new Command('get', ['{leash:3}:x']).getSlot());
    expect(cmd.toWritable().toString()).toBe(
      '*7\r\n$7\r\nevalsha\r\n$40\r\n0123456789abcdef0123456789abcdef01234567\r\n$1\r\n2\r\n$13\r\n{leash:3}:due\r\n$16\r\n{leash:3}:leases\r\n$4\r\nargv\r\n$1\r\n7\r\n',
    );
  });
});
