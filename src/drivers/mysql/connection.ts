/**
 * Connections of the `mysql` driver: one mysql2 pool per integration (keyed by its id and
 * a fingerprint of its non-secret config), TLS modes, IAM auth tokens, server detection,
 * and AbortSignal-aware sessions.
 *
 * TLS modes (libpq names, as for PostgreSQL):
 *
 * | sslMode | mysql2 | falls back |
 * |---|---|---|
 * | disable | no TLS | — |
 * | allow | plain first | to TLS (unverified) when the server refuses plain |
 * | prefer (default) | TLS, unverified | to plain when the server has no TLS |
 * | require | TLS, unverified (verified against `caBundle` when one is given, as libpq does) | — |
 * | verify-ca | TLS, chain checked against `caBundle` (or the Node.js store) | — |
 * | verify-full | as verify-ca, and the host name must match the certificate | — |
 *
 * IAM auth: the service account logs in with a fresh RDS token per connection, sent by
 * the `mysql_clear_password` plugin, which the config schema only allows over TLS.
 */
import { readFile } from 'node:fs/promises';
import mysql from 'mysql2/promise';
import type { PoolConnection as CorePoolConnection } from 'mysql2';
import type { Pool, PoolOptions, SslOptions } from 'mysql2/promise';
import { LatchkeyError } from '../../errors.js';
import { abortError, raceAbort } from '../sql/core.js';
import { rdsCaCertificates, trustedCas } from '../sql/tls.js';
import type { Row, SqlSession } from '../sql/dialect.js';
import { RDS_CA_BUNDLE, type Flavor, type MysqlConfig, type SslMode } from './config.js';
import { mapMysqlError, mysqlErrno } from './errors.js';

/**
 * The session settings every connection of the driver runs first, before any other
 * statement: an explicit `sql_mode` (no `NO_BACKSLASH_ESCAPES`, no `ANSI_QUOTES`, no
 * `ORACLE`/`PIPES_AS_CONCAT`…), so that whatever mode the server was started with, values
 * escaped by mysql2 and identifiers quoted with backticks parse exactly as written; and UTC,
 * so that event schedules (`AT …`) mean what the driver computed. Valid on MySQL 8 and MariaDB.
 */
export const SESSION_SETUP_SQL =
  "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'";

/** Core connections that already ran `SESSION_SETUP_SQL`. */
const prepared = new WeakSet<object>();

function preparedKey(conn: { connection?: unknown }): object {
  return typeof conn.connection === 'object' && conn.connection !== null ? conn.connection : conn;
}

/** True when `conn` (or the core connection under it) already ran `SESSION_SETUP_SQL`. */
export function isPrepared(conn: { connection?: unknown }): boolean {
  return prepared.has(preparedKey(conn));
}

/**
 * Runs `SESSION_SETUP_SQL` once per underlying connection (pooled connections are reused).
 * @throws the native error: the caller must not use the connection then.
 */
export async function prepareSession(conn: {
  query(sql: string): Promise<unknown>;
  connection?: unknown;
}): Promise<void> {
  const key = preparedKey(conn);
  if (prepared.has(key)) return;
  await conn.query(SESSION_SETUP_SQL);
  prepared.add(key);
}

/**
 * mysql2 options of the service account's pooled connections besides login, TLS and
 * timeouts (the benchmark's direct reference uses the same). `trace: false`: mysql2's
 * promise API would otherwise capture a stack trace on every statement (to graft onto a
 * failure's stack), the largest single client-side CPU cost of a grant in the bench
 * profile. Sessions send on the callback connection, which never captures one; the
 * option keeps any promise-API use (and the bench's direct reference) alike.
 */
export const CLIENT_OPTIONS = {
  charset: 'utf8mb4_general_ci',
  supportBigNumbers: true,
  dateStrings: true,
  multipleStatements: false,
  trace: false,
} as const satisfies PoolOptions;

/** How the service account logs in. */
export interface ServiceLogin {
  user: string;
  /** A password (secret store), or a function called for every new connection (IAM token). */
  password: string | (() => Promise<string>);
}

export interface ServerInfo {
  flavor: Flavor;
  /** `VERSION()` as the server reports it. */
  version: string;
}

/** Reads the CA bundle: PEM text, a path to a PEM file, or `aws-rds`. */
export async function loadCaBundle(
  caBundle: string | undefined,
): Promise<string | string[] | undefined> {
  if (caBundle === undefined) return undefined;
  if (caBundle === RDS_CA_BUNDLE) return [...rdsCaCertificates()];
  if (caBundle.includes('-----BEGIN')) return caBundle;
  try {
    return await readFile(caBundle, 'utf8');
  } catch (err) {
    throw new LatchkeyError('E_INVALID', `caBundle file ${caBundle} cannot be read`, {
      cause: err,
    });
  }
}

/**
 * What connections of `config` trust: its `caBundle`, else Node's roots plus the RDS bundle
 * for an AWS endpoint; `LATCHKEY_CA_BUNDLE_FILE` (`extraCa`) is always added (`sql/tls.ts`).
 */
export async function caFor(
  config: Pick<MysqlConfig, 'caBundle' | 'host' | 'extraCa'>,
): Promise<string | string[] | undefined> {
  return trustedCas({
    configured: await loadCaBundle(config.caBundle),
    host: config.host,
    extra: config.extraCa,
  });
}

/** The mysql2 `ssl` option of a definite mode (`undefined` = no TLS). */
export function sslOptionsFor(
  mode: Exclude<SslMode, 'allow' | 'prefer'>,
  ca: string | string[] | undefined,
): SslOptions | undefined {
  switch (mode) {
    case 'disable':
      return undefined;
    case 'require':
      return ca === undefined
        ? { rejectUnauthorized: false }
        : { ca, rejectUnauthorized: true, verifyIdentity: false };
    case 'verify-ca':
      return {
        ...(ca === undefined ? {} : { ca }),
        rejectUnauthorized: true,
        verifyIdentity: false,
      };
    case 'verify-full':
      return {
        ...(ca === undefined ? {} : { ca }),
        rejectUnauthorized: true,
        verifyIdentity: true,
      };
  }
}

/** The `ssl` options to try, in order, for a mode. */
export function tlsAttempts(
  mode: SslMode,
  ca: string | string[] | undefined,
): (SslOptions | undefined)[] {
  switch (mode) {
    case 'allow':
      return [undefined, sslOptionsFor('require', ca)];
    case 'prefer':
      return [sslOptionsFor('require', ca), undefined];
    default:
      return [sslOptionsFor(mode, ca)];
  }
}

/** Errors after which `allow`/`prefer` try the next TLS choice. */
function isTlsFallbackError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  const errno = mysqlErrno(err);
  return code === 'HANDSHAKE_NO_SSL_SUPPORT' || errno === 3159 || errno === 1045;
}

/** mysql2 options for a login: static password, or a token per connection via the cleartext plugin. */
export function loginOptions(
  login: ServiceLogin,
): Pick<PoolOptions, 'user' | 'password' | 'authPlugins'> {
  if (typeof login.password === 'string') return { user: login.user, password: login.password };
  const token = login.password;
  return {
    user: login.user,
    authPlugins: {
      mysql_clear_password: () => async () => Buffer.from(`${await token()}\0`),
    },
  };
}

/** mysql2's callback connection (`.connection` of its promise wrappers). */
interface CallbackConnection {
  query(
    sql: string,
    values: unknown[] | undefined,
    cb: (err: Error | null, rows?: unknown) => void,
  ): unknown;
}

/** Minimal connection shape a session needs (mysql2 Connection/PoolConnection). */
export interface QueryableConnection {
  query(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
  destroy(): void;
  /** The callback connection underneath, when there is one: statements go to it directly. */
  readonly connection?: unknown;
}

/** What one connection went through: `broken` (never reuse it) and `lost`, the error that ended it. */
export interface ConnectionState {
  broken: boolean;
  lost?: unknown;
}

/** mysql2's error for a statement sent on a connection it already knows is closed (no code). */
const CLOSED_STATE = /closed state/i;

/** True when the error means the connection itself is gone (not just the statement). */
export function isConnectionLoss(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { fatal?: unknown; message?: unknown };
  if (e.fatal === true) return true;
  if (typeof e.message === 'string' && CLOSED_STATE.test(e.message)) return true;
  const errno = mysqlErrno(err);
  // ER_CONNECTION_KILLED (MariaDB), ER_SERVER_SHUTDOWN, server gone away / lost, ER_CLIENT_INTERACTION_TIMEOUT
  return errno === 1927 || errno === 1053 || errno === 2006 || errno === 2013 || errno === 4031;
}

/** The retryable error of a statement sent on (or cut off with) a connection that is gone. */
export function connectionLost(cause: unknown, operation: string): LatchkeyError {
  const mapped = mapMysqlError(cause, operation);
  if (mapped.code === 'E_CONNECT') return mapped;
  return new LatchkeyError('E_CONNECT', `${operation}: lost the connection to the server`, {
    cause,
    ...(mapped.details ? { details: { ...mapped.details } } : {}),
  });
}

/**
 * Listens for the `error` event of a connection for as long as we hold it: mysql2 emits
 * it when the server ends a connection (KILL, failover, wait_timeout) while no statement
 * runs, and an `error` event without a listener ends the process. The connection is
 * marked lost and destroyed; the statement that meets it fails with `E_CONNECT`.
 * Returns the function that removes the listener.
 */
export function watchConnection(
  conn: {
    on(event: 'error', l: (err: Error) => void): unknown;
    removeListener(event: 'error', l: (err: Error) => void): unknown;
  },
  state: ConnectionState,
  onLost?: (err: Error) => void,
): () => void {
  const listener = (err: Error): void => {
    state.broken = true;
    if (state.lost === undefined) {
      state.lost = err;
      onLost?.(err);
    }
  };
  conn.on('error', listener);
  return () => void conn.removeListener('error', listener);
}

/** A session over one connection; `release` must be called before the connection is handed back. */
export interface ConnectionSession extends SqlSession {
  /** Stops watching the call's AbortSignal (the connection may go to another call next). */
  release(): void;
}

/** A callback pool connection as a `QueryableConnection` (statements go to it directly). */
function queryableOf(conn: CorePoolConnection): QueryableConnection {
  return {
    query: (sql, values) =>
      new Promise<[unknown, unknown]>((resolve, reject) => {
        conn.query(sql, values, (err: Error | null, rows: unknown, fields: unknown) => {
          if (err) reject(err);
          else resolve([rows, fields]);
        });
      }),
    destroy: () => conn.destroy(),
    connection: conn,
  };
}

/** A promise connection as a callback one (connections without `.connection`). */
function fallbackOf(conn: QueryableConnection): CallbackConnection {
  return {
    query(sql, values, cb) {
      conn.query(sql, values).then(
        (r) => cb(null, r[0]),
        (err: unknown) =>
          cb(err instanceof Error ? err : new Error('mysql2 failed', { cause: err })),
      );
    },
  };
}

function callbackConnectionOf(conn: QueryableConnection): CallbackConnection | undefined {
  const c = conn.connection as Partial<CallbackConnection> | null | undefined;
  return typeof c === 'object' && c !== null && typeof c.query === 'function'
    ? (c as CallbackConnection)
    : undefined;
}

/**
 * A core `SqlSession` over one connection. Native errors are rethrown as they are (the
 * dialect maps them once), except on a lost connection: then `E_CONNECT`, and the
 * connection is destroyed. On abort (during a statement or between two) the connection is
 * destroyed at once, which also ends the statement on the server and frees any GET_LOCK
 * it held, and the statement in flight fails with the abort's error.
 *
 * One abort listener per session (not one per statement), and statements go to mysql2's
 * callback connection when there is one (no promise wrapper, no stack capture per statement).
 */
export function connectionSession(
  conn: QueryableConnection,
  signal: AbortSignal,
  state: ConnectionState,
): ConnectionSession {
  const lose = (err: unknown): LatchkeyError => {
    state.broken = true;
    state.lost ??= err;
    conn.destroy();
    return connectionLost(state.lost, 'running a statement');
  };
  /** Rejecters of the statements in flight (one, unless a caller runs several at once). */
  const inFlight = new Set<(err: unknown) => void>();
  const onAbort = (): void => {
    state.broken = true;
    conn.destroy();
    const err = abortError(signal);
    for (const reject of [...inFlight]) reject(err);
    inFlight.clear();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  const target = callbackConnectionOf(conn) ?? fallbackOf(conn);
  // No named closure per statement below: one callback, the rejecter kept in `inFlight`.
  return {
    query(sql: string, values?: readonly unknown[]): Promise<Row[]> {
      if (signal.aborted) {
        state.broken = true;
        conn.destroy();
        return Promise.reject(abortError(signal));
      }
      if (state.lost !== undefined) return Promise.reject(lose(state.lost));
      const bound = values === undefined ? undefined : (values as unknown[]);
      return new Promise<Row[]>((resolve, reject) => {
        inFlight.add(reject);
        // One inline callback (not a named closure: under tsx each would also cost a __name call).
        try {
          target.query(sql, bound, (err: unknown, rows?: unknown) => {
            if (!inFlight.delete(reject)) return; // aborted: already rejected
            if (!err) resolve(Array.isArray(rows) ? (rows as Row[]) : []);
            else if (!signal.aborted && (state.lost !== undefined || isConnectionLoss(err)))
              reject(lose(err));
            else
              reject(
                err instanceof Error
                  ? err
                  : new Error('mysql2 failed without an Error', { cause: err }),
              );
          });
        } catch (err) {
          if (inFlight.delete(reject)) {
            reject(err instanceof Error ? err : new Error('mysql2 failed', { cause: err }));
          }
        }
      });
    },
    release(): void {
      signal.removeEventListener('abort', onAbort);
    },
  };
}

export function detectFlavor(version: string): Flavor {
  return /mariadb/i.test(version) ? 'mariadb' : 'mysql';
}

/** Refuses servers the driver was not built for. */
export function assertSupportedServer(info: ServerInfo, configured: Flavor | 'auto'): void {
  if (configured !== 'auto' && configured !== info.flavor) {
    throw new LatchkeyError(
      'E_INVALID',
      `the integration is configured as ${configured} but the server is ${info.flavor} (${info.version})`,
    );
  }
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(info.version);
  const [major, minor, patch] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
  if (info.flavor === 'mariadb' && (major < 10 || (major === 10 && minor < 6))) {
    throw new LatchkeyError(
      'E_UNSUPPORTED',
      `MariaDB ${info.version} is not supported (10.6 or later is needed)`,
    );
  }
  if (info.flavor === 'mysql' && (major < 8 || (major === 8 && minor === 0 && patch < 21))) {
    throw new LatchkeyError(
      'E_UNSUPPORTED',
      `MySQL ${info.version} is not supported (8.0.21 or later is needed)`,
    );
  }
}

interface PoolEntry {
  pool: Pool;
  server: ServerInfo;
  /** The service account's user name. */
  user: string;
  /** Calls holding a connection of this pool. */
  active: number;
  /** Dropped: ends as soon as no call holds a connection. */
  closing: boolean;
}

function endWhenIdle(entry: PoolEntry): void {
  if (entry.closing && entry.active === 0) void entry.pool.end().catch(() => undefined);
}

/** Where the service-account login comes from (secret store or IAM), resolved per pool. */
export type LoginSource = (signal: AbortSignal) => Promise<ServiceLogin>;

/** One pool per integration key; created on first use, closed on `close`/`drop`. */
export class MysqlPools {
  private readonly entries = new Map<string, Promise<PoolEntry>>();
  private closed = false;

  /**
   * Runs `fn` with a session of the service account; the connection is released (or
   * destroyed when the call was aborted mid-statement) afterwards.
   */
  async withSession<T>(
    key: string,
    config: MysqlConfig,
    login: LoginSource,
    signal: AbortSignal,
    fn: (session: SqlSession, server: ServerInfo, serviceUser: string) => Promise<T>,
  ): Promise<T> {
    if (this.closed) throw new LatchkeyError('E_CANCELLED', 'the mysql driver is closed');
    if (signal.aborted) throw abortError(signal);
    const entry = await this.entry(key, config, login, signal);
    entry.active++;
    try {
      // mysql2's callback pool: no promise wrapper (an EventEmitter with listeners) per command.
      let conn: CorePoolConnection;
      try {
        const getting = new Promise<CorePoolConnection>((resolve, reject) => {
          entry.pool.pool.getConnection((err, c) => {
            if (err) reject(err);
            else resolve(c);
          });
        });
        conn = await raceAbort(getting, signal, () => {
          getting.then((c) => c.release()).catch(() => undefined);
        });
      } catch (err) {
        throw mapMysqlError(err, 'connecting as the service account', signal);
      }
      const state: ConnectionState = { broken: false };
      const unwatch = watchConnection(conn, state);
      const queryable = queryableOf(conn);
      try {
        if (!isPrepared(conn)) await raceAbort(prepareSession(queryable), signal, () => undefined);
      } catch (err) {
        // Destroyed, never released; its error listener stays so a late error is harmless.
        conn.destroy();
        throw mapMysqlError(err, 'connecting as the service account', signal);
      }
      const session = connectionSession(queryable, signal, state);
      try {
        return await fn(session, entry.server, entry.user);
      } finally {
        session.release();
        unwatch();
        // A broken connection is destroyed, never handed to the next command.
        if (state.broken) conn.destroy();
        else conn.release();
      }
    } finally {
      entry.active--;
      endWhenIdle(entry);
    }
  }

  /**
   * Forgets the pool of `key` (a changed config, a rotation, an auth failure); it ends as
   * soon as no running call holds one of its connections.
   */
  async drop(key: string): Promise<void> {
    const pending = this.entries.get(key);
    this.entries.delete(key);
    const entry = await pending?.catch(() => undefined);
    if (entry) {
      entry.closing = true;
      endWhenIdle(entry);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.entries.keys()];
    await Promise.all(all.map((k) => this.drop(k)));
  }

  private entry(
    key: string,
    config: MysqlConfig,
    login: LoginSource,
    signal: AbortSignal,
  ): Promise<PoolEntry> {
    let e = this.entries.get(key);
    if (!e) {
      e = createPoolEntry(config, login, signal);
      this.entries.set(key, e);
      e.catch(() => {
        if (this.entries.get(key) === e) this.entries.delete(key);
      });
    }
    return e;
  }
}

/** Opens one probe connection per TLS choice until one works; returns the pool built on it. */
async function createPoolEntry(
  config: MysqlConfig,
  loginSource: LoginSource,
  signal: AbortSignal,
): Promise<PoolEntry> {
  const login = await loginSource(signal);
  const ca = await caFor(config);
  const attempts = tlsAttempts(config.sslMode, ca);
  let lastError: unknown;
  for (let i = 0; i < attempts.length; i++) {
    const ssl = attempts[i];
    const base: PoolOptions = {
      host: config.host,
      port: config.port,
      ...loginOptions(login),
      ...(ssl === undefined ? {} : { ssl }),
      connectTimeout: config.connectTimeoutMs,
      ...CLIENT_OPTIONS,
    };
    let probe: mysql.Connection | undefined;
    try {
      const connecting = mysql.createConnection(base);
      probe = await raceAbort(connecting, signal, () => {
        connecting.then((c) => c.destroy()).catch(() => undefined);
      });
      // Lost while idle: the pending or next query fails; the event must not end the process.
      probe.on('error', () => undefined);
      const [rows] = await raceAbort(probe.query('SELECT VERSION() AS version'), signal, () =>
        probe?.destroy(),
      );
      const first = Array.isArray(rows) ? (rows[0] as Row | undefined) : undefined;
      const version = typeof first?.version === 'string' ? first.version : '';
      await probe.end().catch(() => undefined);
      const server: ServerInfo = { flavor: detectFlavor(version), version };
      assertSupportedServer(server, config.flavor);
      const pool = mysql.createPool({
        ...base,
        connectionLimit: config.poolSize,
        maxIdle: config.poolSize,
        idleTimeout: 60_000,
        enableKeepAlive: true,
        waitForConnections: true,
        queueLimit: 0,
      });
      return { pool, server, user: login.user, active: 0, closing: false };
    } catch (err) {
      probe?.destroy();
      if (err instanceof LatchkeyError) throw err;
      lastError = err;
      if (signal.aborted || i === attempts.length - 1 || !isTlsFallbackError(err)) break;
    }
  }
  throw mapMysqlError(
    lastError,
    `connecting to ${config.host}:${config.port} as the service account`,
    signal,
  );
}

/** Opens one connection as another login (a grantee, or the service account with a new password). */
export async function verifyLogin(
  config: MysqlConfig,
  login: { user: string; password: string },
  signal: AbortSignal,
): Promise<void> {
  const ca = await caFor(config);
  const attempts = tlsAttempts(config.sslMode, ca);
  let lastError: unknown;
  for (const ssl of attempts) {
    try {
      const connecting = mysql.createConnection({
        host: config.host,
        port: config.port,
        user: login.user,
        password: login.password,
        ...(ssl === undefined ? {} : { ssl }),
        connectTimeout: config.connectTimeoutMs,
      });
      const conn = await raceAbort(connecting, signal, () => {
        connecting.then((c) => c.destroy()).catch(() => undefined);
      });
      conn.on('error', () => undefined); // lost: the query below fails instead
      await conn.query('SELECT 1');
      await conn.end();
      return;
    } catch (err) {
      lastError = err;
      if (signal.aborted || !isTlsFallbackError(err)) break;
    }
  }
  throw mapMysqlError(lastError, `logging in as ${login.user}`, signal);
}
