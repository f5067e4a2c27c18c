import { startRedisCluster } from '../helpers/redis-cluster.ts';
import { deploymentContracts } from './deployment-contracts.ts';

// A real 3-primary, 3-replica Redis Cluster through ioredis's Cluster client.
deploymentContracts('redis cluster', startRedisCluster);
