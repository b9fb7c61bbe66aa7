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
    globalSetup: ['test/helpers/global-setup.ts', 'test/helpers/global-setup-pg-password.ts'],
    // In CI a JSON report too, from which .ci/run prints the plain "N passed, N failed" line.
    reporters: process.env.CI
      ? ['default', ['json', { outputFile: '.ci/vitest-report.json' }]]
      : ['default'],
    // The AWS SDK warns once per process that it will require Node 22 from 2027; in tests
    // that line repeats for every file and buries real output. The agent itself keeps it.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  },
});
