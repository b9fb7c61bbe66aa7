import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Integration tests each use their own database and users, so files may run in parallel.
    fileParallelism: true,
    reporters: process.env.CI ? ['default'] : ['default'],
    globalSetup: ['test/helpers/global-setup.ts'],
  },
});
