/**
 * Which databases the demo runs on (issue 16): the PostgreSQL at the configured URL when
 * one answers, otherwise an embedded PostgreSQL 15 with password authentication that the
 * demo starts and removes; the MariaDB/MySQL scene only when a server answers.
 */
import mysql from 'mysql2/promise';
import pg from 'pg';
import {
  EmbeddedPostgresUnavailable,
  startEmbeddedPostgres,
  type EmbeddedPostgres,
} from './embedded-postgres.js';

const PROBE_TIMEOUT_MS = 3_000;

/** A URL without its password, for printing. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/** The server version when a PostgreSQL answers at `url`, else why not. Bounded. */
export async function probePostgres(
  url: string,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<{ version: string } | { error: string }> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const r = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return { version: r.rows[0]?.v ?? '?' };
  } catch (err) {
    return { error: err instanceof Error ? err.message || err.name : String(err) };
  } finally {
    await Promise.race([
      client.end().catch(() => undefined),
      new Promise((r) => setTimeout(r, timeoutMs).unref()),
    ]);
  }
}

/** The server version when a MariaDB/MySQL answers at `url`, else why not. Bounded. */
export async function probeMysql(
  url: string,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<{ version: string } | { error: string }> {
  let conn: mysql.Connection | undefined;
  try {
    conn = await mysql.createConnection({ uri: url, connectTimeout: timeoutMs });
    conn.on('error', () => undefined);
    const [rows] = await conn.query<mysql.RowDataPacket[]>({
      sql: 'SELECT VERSION() AS v',
      timeout: timeoutMs,
    });
    const v: unknown = rows[0]?.v;
    return { version: typeof v === 'string' ? v : '?' };
  } catch (err) {
    return { error: err instanceof Error ? err.message || err.name : String(err) };
  } finally {
    conn?.destroy();
  }
}

export interface DemoPostgres {
  /** The admin URL the scene must use. */
  url: string;
  /** One line for the reader: which server, and whether it checks passwords. */
  description: string;
  /** True when logins are checked (the embedded server); false for a trusting local one. */
  checksPasswords: boolean;
  embedded?: EmbeddedPostgres;
}

/**
 * The PostgreSQL for the demo: `configuredUrl` if it answers, else an embedded one.
 * @throws Error with the reason when neither works.
 */
export async function demoPostgres(configuredUrl: string): Promise<DemoPostgres> {
  const probe = await probePostgres(configuredUrl);
  if ('version' in probe) {
    return {
      url: configuredUrl,
      description: `PostgreSQL ${probe.version} at ${redactUrl(configuredUrl)} (already running)`,
      checksPasswords: false,
    };
  }
  let embedded: EmbeddedPostgres;
  try {
    embedded = await startEmbeddedPostgres({ auth: 'scram-sha-256', keepSignalHooks: false });
  } catch (err) {
    const why =
      err instanceof EmbeddedPostgresUnavailable
        ? err.message
        : err instanceof Error
          ? err.message
          : String(err);
    throw new Error(
      `no PostgreSQL answers at ${redactUrl(configuredUrl)} (${probe.error}), and the embedded one could not start: ${why}`,
    );
  }
  const version = await probePostgres(embedded.url);
  return {
    url: embedded.url,
    description:
      `embedded PostgreSQL ${'version' in version ? version.version : '15'} on 127.0.0.1:${embedded.port}, ` +
      `password authentication on, in a temporary directory removed at the end ` +
      `(nothing answered at ${redactUrl(configuredUrl)}: ${probe.error})`,
    checksPasswords: true,
    embedded,
  };
}
