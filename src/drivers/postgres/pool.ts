/**
 * `pg` pools per (integration, database, purpose), closed when idle, with SSL modes and
 * AbortSignal-aware sessions. Shared by the postgres and redshift drivers.
 *
 * Purposes: `main` (the session a call works on), `lock` (the session holding the
 * transaction-scoped advisory lock) and `db` (statements in another database). They are
 * separate pools so that a call holding one connection while waiting for another can
 * never starve the pool it waits on.
 */
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import type { Logger } from 'pino';
import { LatchkeyError } from '../../errors.js';
import { abortError, raceAbort } from '../sql/core.js';
import type { Row, SqlSession } from '../sql/dialect.js';
import type { SslMode } from './config.js';
import { mapPgError } from './errors.js';

export type PoolPurpose = 'main' | 'lock' | 'db';

/**
 * Every service session searches only `pg_catalog` (then its own temporary schema), never
 * `public` or `"$user"`: a grantee who can create objects in a schema of the default
 * `search_path` could otherwise plant a function or operator that matches the agent's
 * calls more closely than the built-in one (`public.starts_with(name, text)` over
 * `pg_catalog.starts_with(text, text)`) and have it run as the service account. Set once
 * per new connection, before its first statement (PostgreSQL and Redshift alike).
 */
export const SERVICE_SEARCH_PATH = 'SET search_path TO pg_catalog, pg_temp';

/** Connections of the pools whose search_path is already set (see SERVICE_SEARCH_PATH). */
const securedClients = new WeakSet<pg.ClientBase>();

/** How to reach one server as the service account. */
export interface PgConnectionSpec {
  /** Stable key of the integration and its connection config (not containing secrets). */
  key: string;
  host: string;
  port: number;
  user: string;
  /** A password, or a function called for every new connection (IAM tokens, rotated secrets). */
  password: string | (() => Promise<string>);
  sslMode: SslMode;
  /** What the connection trusts (`trustedCas`); `undefined`: Node's default store. */
  ca: string | string[] | undefined;
  max: number;
  idleTimeoutMs: number;
  connectTimeoutMs: number;
}

type SslOption = false | ConnectionOptions;

export function sslOptionsFor(
  mode: Exclude<SslMode, 'allow' | 'prefer'> | 'require',
  host: string,
  ca: string | string[] | undefined,
): SslOption {
  switch (mode) {
    case 'disable':
      return false;
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
      return {
        rejectUnauthorized: true,
        ...(ca ? { ca } : {}),
        checkServerIdentity: () => undefined,
      };
    case 'verify-full':
      return { rejectUnauthorized: true, ...(ca ? { ca } : {}), servername: host };
  }
}

interface PoolEntry {
  pool: pg.Pool;
  active: number;
  lastUsed: number;
}

/** Statements that rewrite a shared catalog row (an ACL) and may meet a concurrent writer. */
const ACL_STATEMENT = /^\s*(GRANT|REVOKE|ALTER\s+DEFAULT\s+PRIVILEGES)\b/i;
const MAX_ACL_ATTEMPTS = 8;

/**
 * PostgreSQL updates an object's ACL in place without locking it, so two sessions
 * granting on the same database or schema at once (two grantees, two replicas) can get
 * `XX000 tuple concurrently updated`. The statement changed nothing: run it again after
 * a short random pause.
 */
export function isConcurrentUpdate(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return (
    e.code === 'XX000' && typeof e.message === 'string' && /concurrently updated/.test(e.message)
  );
}

export async function retryConcurrentUpdate<T>(sql: string, run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (attempt >= MAX_ACL_ATTEMPTS || !ACL_STATEMENT.test(sql) || !isConcurrentUpdate(err))
        throw err;
      await new Promise((r) => setTimeout(r, 2 + Math.floor(Math.random() * 10 * attempt)));
    }
  }
}

/**
 * What one checked-out client went through: `broken` (destroy it on release instead of
 * returning it to the pool) and `lost`, the error that ended its connection.
 */
export interface ClientState {
  broken: boolean;
  lost?: unknown;
}

/** True when the error means the connection itself is gone (not just the statement). */
export function isConnectionLoss(err: unknown): boolean {
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    severity?: unknown;
    code?: unknown;
    message?: unknown;
  };
  if (e.severity === 'FATAL' || e.severity === 'PANIC') return true;
  const code = typeof e.code === 'string' ? e.code : '';
  if (/^(08|57P)/.test(code) || code === '25P03') return true;
  return mapPgError(err).code === 'E_CONNECT';
}

/** The retryable error of a statement sent on (or cut off with) a connection that is gone. */
export function connectionLost(cause: unknown): LatchkeyError {
  const mapped = mapPgError(cause);
  if (mapped.code === 'E_CONNECT') return mapped;
  return new LatchkeyError(
    'E_CONNECT',
    `the connection to the server was lost (${mapped.message})`,
    { cause, ...(mapped.details ? { details: { ...mapped.details } } : {}) },
  );
}

/**
 * A session over one pg client. Marks the client broken when aborted mid-statement or
 * when its connection is lost; a statement on a lost connection fails with `E_CONNECT`.
 *
 * One abort listener serves the whole checkout (not one per statement: adding and removing
 * an AbortSignal listener costs more than the rest of a short statement's client work).
 * When the signal fires during a statement, `onAbort` runs and the statement fails at once;
 * a statement asked for after the signal fired is not sent. `close()` removes the listener (on release).
 */
export function clientSession(
  client: pg.ClientBase,
  signal: AbortSignal,
  state: ClientState,
  onAbort?: () => void,
): SqlSession & { close(): void } {
  const running = new Set<(err: Error) => void>();
  const abort = (): void => {
    if (running.size === 0) return; // nothing to stop; the next statement is not sent
    state.broken = true;
    onAbort?.();
    const err = abortError(signal);
    for (const fail of running) fail(err);
    running.clear();
  };
  signal.addEventListener('abort', abort, { once: true });
  const send = (sql: string, values: unknown[]): Promise<pg.QueryResult<Row>> => {
    if (signal.aborted) {
      state.broken = true;
      return Promise.reject(abortError(signal));
    }
    return new Promise((resolve, reject) => {
      running.add(reject);
      client.query<Row>(sql, values).then(
        (res) => {
          running.delete(reject);
          resolve(res);
        },
        (err: unknown) => {
          running.delete(reject);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  };
  return {
    async query(sql: string, values?: readonly unknown[]): Promise<Row[]> {
      if (state.lost !== undefined) throw connectionLost(state.lost);
      try {
        // Text and values as two arguments: pg copies a config object, not a string.
        const res = await retryConcurrentUpdate(sql, () =>
          send(sql, values === undefined ? [] : (values as unknown[])),
        );
        return res.rows;
      } catch (err) {
        if (signal.aborted) throw err;
        if (state.lost !== undefined || isConnectionLoss(err)) {
          state.broken = true;
          state.lost ??= err;
          throw connectionLost(err);
        }
        throw err;
      }
    },
    close(): void {
      signal.removeEventListener('abort', abort);
    },
  };
}

export class PgPools {
  private readonly pools = new Map<string, PoolEntry>();
  private readonly resolvedSsl = new Map<string, SslOption>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly logger: Logger,
    private readonly options: { sweepIntervalMs?: number; now?: () => number } = {},
  ) {
    this.timer = setInterval(() => void this.closeIdle(), options.sweepIntervalMs ?? 10_000);
    this.timer.unref();
  }

  private now(): number {
    return this.options.now ? this.options.now() : Date.now();
  }

  /** Number of open pools (tests, metrics). */
  get size(): number {
    return this.pools.size;
  }

  /** Runs `fn` with a session on `database`, released (destroyed if broken) afterwards. */
  async withSession<T>(
    spec: PgConnectionSpec,
    database: string,
    purpose: PoolPurpose,
    signal: AbortSignal,
    fn: (session: SqlSession) => Promise<T>,
    /** Called once if the server ends this connection while it is held. */
    onLost?: (err: Error) => void,
  ): Promise<T> {
    if (this.closed) throw new LatchkeyError('E_CANCELLED', 'driver is closed');
    if (signal.aborted) throw abortError(signal);
    const entry = await this.entry(spec, database, purpose, signal);
    entry.active++;
    entry.lastUsed = this.now();
    const state: ClientState = { broken: false };
    let client: pg.PoolClient | undefined;
    let session: (SqlSession & { close(): void }) | undefined;
    // A checked-out client has no listener of the pool: without ours, a connection the
    // server ends (failover, pg_terminate_backend, idle_in_transaction_session_timeout)
    // while we hold it would be an uncaught 'error' event and end the process.
    const onError = (err: Error): void => {
      state.broken = true;
      if (state.lost === undefined) onLost?.(err);
      state.lost ??= err;
      this.logger.warn(
        { err: mapPgError(err).toWire(), database, purpose },
        'PostgreSQL connection lost while in use',
      );
    };
    try {
      const connecting = entry.pool.connect();
      client = await raceAbort(connecting, signal, () => {
        connecting.then((c) => c.release(true)).catch(() => undefined);
      }).catch((err: unknown) => {
        throw mapPgError(err);
      });
      client.on('error', onError);
      const pid = (client as unknown as { processID?: unknown }).processID;
      session = clientSession(client, signal, state, () => {
        // Closing the socket alone does not stop a running statement on the server.
        if (typeof pid === 'number') void this.cancelBackend(spec, database, pid);
      });
      if (!securedClients.has(client)) {
        try {
          await session.query(SERVICE_SEARCH_PATH);
        } catch (err) {
          state.broken = true; // never hand on a connection with the default search_path
          throw err;
        }
        securedClients.add(client);
      }
      return await fn(session);
    } catch (err) {
      if (signal.aborted) state.broken = true;
      throw err;
    } finally {
      session?.close();
      if (client) {
        client.removeListener('error', onError);
        // A broken client is destroyed, never handed to the next command.
        client.release(state.broken ? true : undefined);
      }
      entry.active--;
      entry.lastUsed = this.now();
    }
  }

  private async entry(
    spec: PgConnectionSpec,
    database: string,
    purpose: PoolPurpose,
    signal: AbortSignal,
  ): Promise<PoolEntry> {
    const key = `${spec.key}\u0000${database}\u0000${purpose}`;
    const existing = this.pools.get(key);
    if (existing) return existing;
    const ssl = await this.ssl(spec, database, signal);
    const again = this.pools.get(key);
    if (again) return again;
    const pool = new pg.Pool({
      host: spec.host,
      port: spec.port,
      user: spec.user,
      password: spec.password,
      database,
      ssl,
      max: spec.max,
      idleTimeoutMillis: spec.idleTimeoutMs,
      connectionTimeoutMillis: spec.connectTimeoutMs,
      application_name: 'latchkey',
      allowExitOnIdle: true,
    });
    pool.on('error', (err) => {
      this.logger.warn(
        { err: mapPgError(err).toWire(), database },
        'idle PostgreSQL connection failed',
      );
    });
    const entry: PoolEntry = { pool, active: 0, lastUsed: this.now() };
    this.pools.set(key, entry);
    return entry;
  }

  /**
   * Cancels the statement running on backend `pid` (ours: same role), from a short-lived
   * separate connection. Best effort: errors are only logged.
   */
  private async cancelBackend(
    spec: PgConnectionSpec,
    database: string,
    pid: number,
  ): Promise<void> {
    const client = new pg.Client({
      host: spec.host,
      port: spec.port,
      user: spec.user,
      password: spec.password,
      database,
      ssl:
        this.resolvedSsl.get(spec.key) ??
        sslOptionsFor(
          spec.sslMode === 'allow' || spec.sslMode === 'prefer' ? 'disable' : spec.sslMode,
          spec.host,
          spec.ca,
        ),
      connectionTimeoutMillis: spec.connectTimeoutMs,
      application_name: 'latchkey',
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query(SERVICE_SEARCH_PATH);
      await client.query('SELECT pg_cancel_backend($1)', [pid]);
    } catch (err) {
      this.logger.warn(
        { err: mapPgError(err).toWire(), pid },
        'could not cancel an aborted statement',
      );
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Resolves `prefer`/`allow` once per server by trying the preferred way first. */
  private async ssl(
    spec: PgConnectionSpec,
    database: string,
    signal: AbortSignal,
  ): Promise<SslOption> {
    if (spec.sslMode !== 'prefer' && spec.sslMode !== 'allow')
      return sslOptionsFor(spec.sslMode, spec.host, spec.ca);
    const cached = this.resolvedSsl.get(spec.key);
    if (cached !== undefined) return cached;
    const first: SslOption = spec.sslMode === 'prefer' ? { rejectUnauthorized: false } : false;
    const second: SslOption = spec.sslMode === 'prefer' ? false : { rejectUnauthorized: false };
    const probe = async (ssl: SslOption): Promise<void> => {
      const client = new pg.Client({
        host: spec.host,
        port: spec.port,
        user: spec.user,
        password: spec.password,
        database,
        ssl,
        connectionTimeoutMillis: spec.connectTimeoutMs,
        application_name: 'latchkey',
      });
      client.on('error', () => undefined);
      try {
        await raceAbort(client.connect(), signal, () => void client.end().catch(() => undefined));
      } finally {
        await client.end().catch(() => undefined);
      }
    };
    let chosen: SslOption = first;
    try {
      await probe(first);
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      const message = err instanceof Error ? err.message : '';
      const code = (err as { code?: unknown }).code;
      const tlsRefused = spec.sslMode === 'prefer' && /does not support SSL/i.test(message);
      const plainRefused =
        spec.sslMode === 'allow' && (code === '28000' || /no encryption|SSL/i.test(message));
      if (!tlsRefused && !plainRefused) throw mapPgError(err);
      chosen = second;
    }
    this.resolvedSsl.set(spec.key, chosen);
    return chosen;
  }

  /** Closes pools unused for longer than their idle timeout. */
  async closeIdle(): Promise<void> {
    const now = this.now();
    const ends: Promise<void>[] = [];
    for (const [key, entry] of this.pools) {
      const idleMs = entry.pool.options.idleTimeoutMillis ?? 60_000;
      if (entry.active === 0 && now - entry.lastUsed >= idleMs) {
        this.pools.delete(key);
        ends.push(entry.pool.end().catch(() => undefined));
      }
    }
    await Promise.all(ends);
  }

  /** Closes every pool of one integration (after a password change). */
  async closeKey(specKey: string): Promise<void> {
    const ends: Promise<void>[] = [];
    for (const [key, entry] of this.pools) {
      if (key.startsWith(`${specKey}\u0000`)) {
        this.pools.delete(key);
        ends.push(entry.pool.end().catch(() => undefined));
      }
    }
    this.resolvedSsl.delete(specKey);
    await Promise.all(ends);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    const entries = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(entries.map((e) => e.pool.end().catch(() => undefined)));
  }
}
