import { randomBytes } from 'node:crypto';

/**
 * A certificate serial of 128 random bits (CA/B Forum asks for at least 64), lower-case hex.
 * The top bit is cleared so the DER INTEGER is positive without a padding byte, and the first
 * byte is non-zero so the encoding is minimal.
 */
export function newSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}
