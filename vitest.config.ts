import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';
import type { InlineConfig } from 'vitest/node';
import { mysqlTestUrl } from './test/helpers/endpoints.js';
import { PROGRESS_DIR_ENV, ProgressReporter } from './test/helpers/progress-reporter.js';

// Set by scripts/test-watchdog.ts (what .ci/run uses): progress events for the watchdog
// and, on its signal, diagnostics of a stuck run. Unset, nothing changes.
const progressDir = process.env[PROGRESS_DIR_ENV];

// In CI a JSON report too, from which .ci/run prints the plain "N passed, N failed" line,
// and vitest's hanging-process reporter, which names what keeps the process alive.
type ReporterEntry = Extract<NonNullable<InlineConfig['reporters']>, unknown[]>[number];
const reporters: ReporterEntry[] = ['default'];
if (process.env.CI) {
  const json: ['json', { outputFile: string }] = ['json', { outputFile: '.ci/vitest-report.json' }];
  reporters.push(json, 'hanging-process');
}
if (progressDir) reporters.push(new ProgressReporter(progressDir));

// The mariadb-modes project starts a private MariaDB from a local server install. Outside
// CI, a machine without one (e.g. databases in Docker only) runs without that project and
// says so once; in CI it always runs, so a missing server fails the run.
const BIN_DIRS = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'];
const hasBinary = (names: string[]): boolean =>
  names.some((n) => BIN_DIRS.some((d) => existsSync(join(d, n))));
const mariadbInstalled =
  hasBinary(['mariadbd', 'mysqld']) && hasBinary(['mariadb-install-db', 'mysql_install_db']);
const runModes = Boolean(process.env.CI) || mariadbInstalled;
if (!runModes && process.env.LATCHKEY_MODES_NOTICE !== 'shown') {
  process.env.LATCHKEY_MODES_NOTICE = 'shown'; // once, though the config is loaded more than once
  process.stderr.write(
    '\nNOT RUN: the mariadb-modes tests (MariaDB with NO_BACKSLASH_ESCAPES,ANSI_QUOTES) need a local ' +
      'MariaDB server install: apt-get install mariadb-server (it need not be running).\n\n',
  );
}

// Outside CI, a machine with only Node.js runs what it can (issue 16): PostgreSQL falls
// back to an embedded server (test/helpers/global-setup.ts), and the MariaDB/MySQL tests
// are left out with one line saying how to get them when nothing answers at
// LATCHKEY_TEST_MYSQL_URL. In CI nothing is left out: a missing database fails the run.
const MYSQL_ONLY_FILES = ['test/integration/drivers/mysql/**', 'test/e2e/conn-drops.test.ts'];
async function tcpAnswers(url: string): Promise<boolean> {
  let host = '127.0.0.1';
  let port = 3306;
  try {
    const u = new URL(url);
    host = u.hostname || host;
    port = u.port ? Number(u.port) : port;
  } catch {
    return false;
  }
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_500, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
const mysqlUrl = mysqlTestUrl();
const mysqlAbsent = !process.env.CI && !(await tcpAnswers(mysqlUrl));
// For the global setup in this process; `test.env` below carries it to the workers.
if (mysqlAbsent) process.env.LATCHKEY_TEST_MYSQL_ABSENT = '1';
if (mysqlAbsent && process.env.LATCHKEY_MYSQL_NOTICE !== 'shown') {
  process.env.LATCHKEY_MYSQL_NOTICE = 'shown';
  process.stderr.write(
    `\nNOT RUN: the MariaDB/MySQL tests (${MYSQL_ONLY_FILES.join(', ')} and the MySQL half of ` +
      `test/e2e/databases.test.ts): nothing answers at ${mysqlUrl.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@')}. ` +
      'To run them: apt-get install mariadb-server (README "Test databases"), or point LATCHKEY_TEST_MYSQL_URL at one.\n\n',
  );
}

export default defineConfig({
  test: {
    // `include` is per project below: with `extends: true` a root one would be concatenated
    // into every project's own list.
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // A worker that does not stop within this is reported by vitest ("Timeout terminating
    // forks worker"), and a main process that does not exit is reported with its handles.
    teardownTimeout: 10_000,
    pool: 'forks',
    // Integration tests each use their own database and users, so files may run in parallel.
    fileParallelism: true,
    globalSetup: [
      // one entry per line: several branches add their own
      'test/helpers/global-setup.ts',
      'test/helpers/global-setup-pg-password.ts',
    ],
    // Under the watchdog every fork worker preloads its half of the hang diagnostics.
    execArgv: progressDir
      ? ['--import', new URL('./test/helpers/hang-diagnostics.mjs', import.meta.url).href]
      : [],
    reporters,
    // The AWS SDK warns once per process that it will require Node 22 from 2027; in tests
    // that line repeats for every file and buries real output. The agent itself keeps it.
    env: {
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      ...(mysqlAbsent ? { LATCHKEY_TEST_MYSQL_ABSENT: '1' } : {}),
    },
    // Points LATCHKEY_TEST_PG_URL at the embedded server when global-setup started one.
    setupFiles: ['test/helpers/pg-endpoint-env.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'default',
          include: ['test/**/*.test.ts'],
          exclude: [
            '**/node_modules/**',
            'test/**/*.modes.test.ts',
            ...(mysqlAbsent ? MYSQL_ONLY_FILES : []),
          ],
        },
      },
      ...(runModes
        ? [
            {
              // The MariaDB driver tests again, against a private MariaDB started with
              // --sql-mode=NO_BACKSLASH_ESCAPES,ANSI_QUOTES and the event scheduler on
              // (test/helpers/global-setup-mysql-modes.ts). The shared server is not touched.
              extends: true as const,
              test: {
                name: 'mariadb-modes',
                include: [
                  'test/integration/drivers/mysql/driver.test.ts',
                  'test/integration/drivers/mysql/safety.test.ts',
                  'test/integration/drivers/mysql/inventory.test.ts',
                  'test/integration/drivers/mysql/*.modes.test.ts',
                ],
                globalSetup: ['test/helpers/global-setup-mysql-modes.ts'],
                setupFiles: ['test/helpers/mysql-modes-env.ts'],
              },
            },
          ]
        : []),
    ],
  },
});
