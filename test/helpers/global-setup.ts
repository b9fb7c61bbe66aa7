/**
 * Runs once before the suite: the real PostgreSQL and MariaDB the integration tests use
 * must answer. When one does not, the whole run fails with a message saying how to get
 * it, instead of tests being skipped silently.
 *
 * Bounded: each check gives up after CHECK_TIMEOUT_MS (connect and query alike), and its
 * connection is closed whatever happens, so a server that accepts but never answers
 * fails the run at once instead of holding the main vitest process (issue 18).
 */
import pg from 'pg';
import mysql from 'mysql2/promise';
import { mysqlTestUrl, pgTestUrl } from './endpoints.js';

const CHECK_TIMEOUT_MS = 5_000;

async function checkPg(): Promise<string | null> {
  const client = new pg.Client({
    connectionString: pgTestUrl(),
    connectionTimeoutMillis: CHECK_TIMEOUT_MS,
    query_timeout: CHECK_TIMEOUT_MS,
  });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (err) {
    return `PostgreSQL at ${redactUrl(pgTestUrl())} is not reachable (${(err as Error).message})`;
  } finally {
    // Bounded: end() waits for a server that may be the one not answering.
    await Promise.race([
      client.end().catch(() => undefined),
      new Promise((r) => setTimeout(r, CHECK_TIMEOUT_MS).unref()),
    ]);
  }
}

async function checkMysql(): Promise<string | null> {
  let conn: mysql.Connection | undefined;
  try {
    conn = await mysql.createConnection({
      uri: mysqlTestUrl(),
      connectTimeout: CHECK_TIMEOUT_MS,
    });
    await conn.query({ sql: 'SELECT 1', timeout: CHECK_TIMEOUT_MS });
    await conn.end();
    return null;
  } catch (err) {
    // A server that does not answer would not answer a polite end() either.
    conn?.destroy();
    return `MariaDB/MySQL at ${redactUrl(mysqlTestUrl())} is not reachable (${(err as Error).message})`;
  }
}

function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

export default async function setup(): Promise<void> {
  const problems = (await Promise.all([checkPg(), checkMysql()])).filter(
    (p): p is string => p !== null,
  );
  if (problems.length > 0) {
    throw new Error(
      `Integration databases are required:\n  - ${problems.join('\n  - ')}\n` +
        'Start them (see README "Test databases") or point LATCHKEY_TEST_PG_URL / LATCHKEY_TEST_MYSQL_URL at them.',
    );
  }
}
