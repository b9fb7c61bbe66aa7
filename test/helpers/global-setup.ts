/**
 * Runs once before the suite: the real PostgreSQL and MariaDB the integration tests use
 * must answer. When one does not, the whole run fails with a message saying how to get
 * it, instead of tests being skipped silently.
 */
import pg from 'pg';
import mysql from 'mysql2/promise';
import { mysqlTestUrl, pgTestUrl } from './endpoints.js';

async function checkPg(): Promise<string | null> {
  const client = new pg.Client({ connectionString: pgTestUrl(), connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (err) {
    return `PostgreSQL at ${redactUrl(pgTestUrl())} is not reachable (${(err as Error).message})`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function checkMysql(): Promise<string | null> {
  try {
    const conn = await mysql.createConnection({ uri: mysqlTestUrl(), connectTimeout: 5000 });
    await conn.query('SELECT 1');
    await conn.end();
    return null;
  } catch (err) {
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
