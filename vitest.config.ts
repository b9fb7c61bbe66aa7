import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // `include` is per project below: with `extends: true` a root one would be concatenated
    // into every project's own list.
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Integration tests each use their own database and users, so files may run in parallel.
    fileParallelism: true,
    globalSetup: ['test/helpers/global-setup.ts'],
    // In CI a JSON report too, from which .ci/run prints the plain "N passed, N failed" line.
    reporters: process.env.CI
      ? ['default', ['json', { outputFile: '.ci/vitest-report.json' }]]
      : ['default'],
    // The AWS SDK warns once per process that it will require Node 22 from 2027; in tests
    // that line repeats for every file and buries real output. The agent itself keeps it.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    projects: [
      {
        extends: true,
        test: {
          name: 'default',
          include: ['test/**/*.test.ts'],
          exclude: ['**/node_modules/**', 'test/**/*.modes.test.ts'],
        },
      },
      {
        // The MariaDB driver tests again, against a private MariaDB started with
        // --sql-mode=NO_BACKSLASH_ESCAPES,ANSI_QUOTES and the event scheduler on
        // (test/helpers/global-setup-mysql-modes.ts). The shared server is not touched.
        extends: true,
        test: {
          name: 'mariadb-modes',
          include: [
            'test/integration/drivers/mysql/driver.test.ts',
            'test/integration/drivers/mysql/safety.test.ts',
            'test/integration/drivers/mysql/*.modes.test.ts',
          ],
          globalSetup: ['test/helpers/global-setup-mysql-modes.ts'],
          setupFiles: ['test/helpers/mysql-modes-env.ts'],
        },
      },
    ],
  },
});
