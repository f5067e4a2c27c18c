// cluster-key-slot ships no types: Redis Cluster's key -> slot (CRC16 of the hash tag, mod 16384).
declare module 'cluster-key-slot' {
  export default function calculateSlot(key: string | Buffer): number;
}
