/**
 * Runs once before the suite: the real PostgreSQL and MariaDB the integration tests use
 * must answer. In CI, when one does not, the whole run fails with a message saying how to
 * get it, instead of tests being skipped silently.
 *
 * Outside CI, a machine with only Node.js still runs the suite (issue 16): when no
 * PostgreSQL answers, one embedded PostgreSQL 15 (trusting 127.0.0.1 like the shared test
 * server; src/demo/embedded-postgres.ts) is started for the whole run and provided to the
 * tests as `pgEmbeddedUrl` (test/helpers/pg-endpoint-env.ts); the MariaDB/MySQL tests are
 * left out by vitest.config.ts (LATCHKEY_TEST_MYSQL_ABSENT) with one line saying so.
 *
 * Bounded: each check gives up after CHECK_TIMEOUT_MS (connect and query alike), and its
 * connection is closed whatever happens, so a server that accepts but never answers
 * fails the run at once instead of holding the main vitest process (issue 18).
 */
import type { TestProject } from 'vitest/node';
import { probeMysql, probePostgres, redactUrl } from '../../src/demo/databases.js';
import { startEmbeddedPostgres } from '../../src/demo/embedded-postgres.js';
import { mysqlTestUrl, pgTestUrl } from './endpoints.js';
import { acquireShared } from './shared-server.js';

const CHECK_TIMEOUT_MS = 5_000;

/** `null` when a PostgreSQL answers at LATCHKEY_TEST_PG_URL, else why not (bounded). */
async function checkPg(): Promise<string | null> {
  const probe = await probePostgres(pgTestUrl(), CHECK_TIMEOUT_MS);
  return 'error' in probe
    ? `PostgreSQL at ${redactUrl(pgTestUrl())} is not reachable (${probe.error})`
    : null;
}

/** `null` when a MariaDB/MySQL answers at LATCHKEY_TEST_MYSQL_URL, else why not (bounded). */
async function checkMysql(): Promise<string | null> {
  const probe = await probeMysql(mysqlTestUrl(), CHECK_TIMEOUT_MS);
  return 'error' in probe
    ? `MariaDB/MySQL at ${redactUrl(mysqlTestUrl())} is not reachable (${probe.error})`
    : null;
}

export default async function setup(
  project: TestProject,
): Promise<(() => Promise<void>) | undefined> {
  const ci = Boolean(process.env.CI);
  const mysqlAbsent = !ci && process.env.LATCHKEY_TEST_MYSQL_ABSENT === '1';
  const [pgProblem, mysqlProblem] = await Promise.all([
    checkPg(),
    mysqlAbsent ? Promise.resolve(null) : checkMysql(),
  ]);
  let stopEmbedded: (() => Promise<void>) | undefined;
  const problems: string[] = [];
  if (pgProblem !== null && !ci) {
    try {
      let started = false;
      const { value: embedded, release } = await acquireShared(
        'pg-fallback',
        () => {
          started = true;
          return startEmbeddedPostgres({ auth: 'trust' });
        },
        (e) => e.stop(),
      );
      stopEmbedded = release;
      project.provide('pgEmbeddedUrl', embedded.url);
      if (started) {
        process.stderr.write(
          `\n${pgProblem}: this run uses an embedded PostgreSQL 15 on 127.0.0.1:${embedded.port} instead ` +
            '(removed at the end; in CI a missing PostgreSQL fails the run).\n\n',
        );
      }
    } catch (err) {
      problems.push(`${pgProblem}; the embedded fallback failed too: ${(err as Error).message}`);
    }
  } else if (pgProblem !== null) {
    problems.push(pgProblem);
  }
  if (mysqlProblem !== null) problems.push(mysqlProblem);
  if (problems.length > 0) {
    await stopEmbedded?.();
    throw new Error(
      `Integration databases are required:\n  - ${problems.join('\n  - ')}\n` +
        'Start them (see README "Test databases") or point LATCHKEY_TEST_PG_URL / LATCHKEY_TEST_MYSQL_URL at them.',
    );
  }
  if (!stopEmbedded) project.provide('pgEmbeddedUrl', undefined);
  return stopEmbedded;
}
