import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Examples import the package's own `leash/verify`: tests run them against the source, not dist/.
  resolve: { alias: { 'leash/verify': new URL('./src/verify/index.ts', import.meta.url).pathname } },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file starts its own redis-server; two forks keep the 2-core machine responsive.
    pool: 'forks',
    maxWorkers: 2,
    globalSetup: ['test/global-setup.ts'],
    reporters: ['default'],
  },
});
