import { startRedisSentinel } from '../helpers/redis-sentinel.ts';
import { deploymentContracts } from './deployment-contracts.ts';

// A real Sentinel set (a primary, 2 replicas, 3 sentinels) through ioredis's Sentinel client.
deploymentContracts('redis sentinel', startRedisSentinel);
