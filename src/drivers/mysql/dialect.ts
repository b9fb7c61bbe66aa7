/**
 * The MySQL/MariaDB side of the SQL access model: statement helpers shared by both
 * flavors, and `FlavorOps`, what differs between MySQL 8 and MariaDB.
 *
 * Glossary (see also src/drivers/sql/dialect.ts)
 * - **statement** (`Stmt`): SQL text with `?` placeholders and the values bound to them.
 *   Identifiers are never bound: they are validated and quoted with backticks here.
 *   Values (passwords, JSON attributes, names compared in `WHERE`) are always bound;
 *   mysql2 sends them as escaped literals where the server has no placeholder (DDL).
 * - **grant role**: `<prefix>g_<grantId>`, holding exactly one grant's privileges.
 * - **default role** (MariaDB only): `<prefix>d_<hash(user@host)>`, the one role a
 *   MariaDB session activates at login; it holds the user's grant roles and is also the
 *   proof that Latchkey created the user (see docs/drivers/mysql.md, "Marker").
 * - **grant record**: the core's `GrantRecord` (grant id, user, permission, resources,
 *   expiry). MySQL keeps it as the grant role's `ATTRIBUTE`; MariaDB roles have none, so
 *   it is a row of `<metaDatabase>.grants`, keyed by the role name.
 */
import { LatchkeyError } from '../../errors.js';
import { shortHash } from '../sql/username.js';
import type { GrantRecord, GrantRoleState, Row, SqlSession, SqlUserInfo } from '../sql/dialect.js';

export interface Stmt {
  readonly sql: string;
  readonly values?: readonly unknown[];
}

export type PrivilegeTarget =
  | { readonly kind: 'database'; readonly database: string }
  | { readonly kind: 'table'; readonly database: string; readonly table: string };

/** Where Latchkey's accounts live and how they are named, fixed per integration. */
export interface AccountSettings {
  /** Host part of every account Latchkey creates. */
  readonly accountHost: string;
  /** Database holding Latchkey's grant records on MariaDB (see dialect-mariadb.ts). */
  readonly metaDatabase: string;
}

/**
 * What differs between MySQL 8 and MariaDB, below the core's `SqlDialect` (implemented
 * once for both in sql-dialect.ts). Methods that read take the core's session.
 */
export interface FlavorOps {
  readonly engine: 'mysql' | 'mariadb';
  /** Longest user or role name the engine accepts (MySQL 32, MariaDB 80). */
  readonly maxNameLength: number;
  /** Global privileges the service account needs besides the shared ones (for check). */
  readonly extraRequiredPrivileges: readonly RequiredPrivilege[];
  /** The system table with one row per account (`User`, `Host` columns). */
  readonly accountTable: 'mysql.user' | 'mysql.global_priv';
  /** `` `user`@`host` `` */
  account(user: string, host: string): string;
  /** A role as GRANT/REVOKE/DROP name it (`` `r` `` on MariaDB, `` `r`@`%` `` on MySQL). */
  role(name: string): string;

  /**
   * CREATE USER with the marker, plus what a new user needs (MariaDB: its default role), so
   * that a crash leaves no unmarked user; finishes a user `getUser` reports `incomplete`.
   * The password goes to the server only as a hash (see password-hash.ts).
   */
  createUser(
    session: SqlSession,
    user: string,
    host: string,
    auth: { password: string | null; issuedFor: string | null },
    prefix: string,
    /** What `getUser` just returned under the same lock (null: none); read when absent. */
    known?: SqlUserInfo | null,
  ): Promise<void>;
  /** New password (as a hash) and the record of the grant it is issued for (null: rotate). */
  setPassword(
    session: SqlSession,
    user: string,
    host: string,
    password: string,
    issuedFor: string | null,
  ): Promise<void>;
  /** DROP USER, plus what goes with it. */
  dropUserStatements(user: string, host: string, prefix: string): Stmt[];
  getUser(
    session: SqlSession,
    user: string,
    host: string,
    prefix: string,
  ): Promise<SqlUserInfo | null>;

  getGrantRole(session: SqlSession, role: string): Promise<GrantRoleState>;
  createGrantRole(session: SqlSession, record: GrantRecord): Promise<void>;
  updateGrantRecord(session: SqlSession, record: GrantRecord): Promise<void>;
  dropGrantRole(session: SqlSession, role: string): Promise<void>;
  listGrantRoles(session: SqlSession, prefix: string, username?: string): Promise<GrantRecord[]>;
  /** Makes the grant role active at every login of the user. */
  attachStatements(role: string, user: string, host: string, prefix: string): Stmt[];

  /** An existing (customer) role as `SHOW GRANTS FOR` names it. */
  existingRole(existing: { name: string; host: string }): string;
  /**
   * The DEFINER values (as information_schema prints them) under which objects created by
   * the user run: the account itself and, on MariaDB, its default role
   * (`CREATE DEFINER = CURRENT_ROLE …`).
   */
  definersOf(user: string, host: string, prefix: string): string[];
  /**
   * Server-side expiry (MariaDB and MySQL 8): creates, moves or (for a record without
   * `expiresAt`) removes the EVENT that ends the grant at its expiry even when no agent
   * runs. Idempotent. Without the EVENT privilege it does nothing (the sweep alone).
   */
  scheduleExpiry?(session: SqlSession, record: GrantRecord, expiry: ExpiryContext): Promise<void>;
  /** Removes the grant's expiry EVENT, if any. */
  unscheduleExpiry?(session: SqlSession, role: string, expiry: ExpiryContext): Promise<void>;
  /** Grants an existing (customer) role to a grant role. */
  grantExistingRole(existing: { name: string; host: string }, role: string): Stmt;
  /** Existing roles not created by Latchkey (discover, validate). */
  listRoles(session: SqlSession, prefix: string): Promise<{ name: string; host: string }[]>;
}

/** What an expiry EVENT needs besides the grant record. */
export interface ExpiryContext {
  /** Prefix of the integration's users and roles. */
  readonly prefix: string;
  /** Host part of the grantee's account. */
  readonly host: string;
  /** The per-user GET_LOCK name (serializes the event with the agent's own work). */
  readonly lockName: string;
}

/** A privilege the service account must hold, for `check`. */
export interface RequiredPrivilege {
  /** Privilege name as SHOW GRANTS prints it. */
  readonly privilege: string;
  /** `*.*` or a database name (`mysql`). */
  readonly on: '*.*' | { readonly database: string };
  /** Other privileges that also satisfy it (e.g. SUPER). */
  readonly alternatives?: readonly string[];
  /** Why the driver needs it, in words. */
  readonly why: string;
}

// ---------------------------------------------------------------------------------------
// Identifiers

/** Longest database, table or role-host identifier MySQL and MariaDB accept. */
export const MAX_IDENTIFIER = 64;

/** Quotes an identifier with backticks (a backtick inside is doubled). */
export function quoteIdent(name: string): string {
  if (name.includes('\0'))
    throw new LatchkeyError('E_INVALID', 'identifier contains a NUL character');
  return '`' + name.replace(/`/g, '``') + '`';
}

/**
 * Checks a database or table name before it is used: refused cleanly (E_INVALID) when the
 * server could not hold it, so no half-applied grant follows.
 */
export function assertObjectName(name: string, what: 'database' | 'table'): void {
  if (name.length === 0) throw new LatchkeyError('E_INVALID', `${what} name is empty`);
  if ([...name].length > MAX_IDENTIFIER) {
    throw new LatchkeyError(
      'E_INVALID',
      `${what} name is longer than ${MAX_IDENTIFIER} characters`,
    );
  }
  if (name.includes('\0'))
    throw new LatchkeyError('E_INVALID', `${what} name contains a NUL character`);
  if (/\s$/.test(name)) throw new LatchkeyError('E_INVALID', `${what} name ends with a space`);
}

/**
 * A database name as it must appear in a database-level GRANT: `_` and `%` are wildcards
 * there, so they are escaped to match only this database. A backslash cannot be
 * expressed unambiguously and is refused.
 */
export function grantDatabasePattern(database: string): string {
  if (database.includes('\\')) {
    throw new LatchkeyError(
      'E_INVALID',
      'database names containing a backslash cannot be granted at database level',
    );
  }
  return database.replace(/[_%]/g, (c) => `\\${c}`);
}

export function privilegeTarget(target: PrivilegeTarget): string {
  return target.kind === 'database'
    ? `${quoteIdent(grantDatabasePattern(target.database))}.*`
    : `${quoteIdent(target.database)}.${quoteIdent(target.table)}`;
}

/** Only known privilege keywords reach SQL text. */
const PRIVILEGE_WORDS = new Set([
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
  'SHOW VIEW',
  'ALL PRIVILEGES',
]);

export function privilegeList(privileges: readonly string[]): string {
  for (const p of privileges) {
    if (!PRIVILEGE_WORDS.has(p))
      throw new LatchkeyError('E_INTERNAL', `unknown privilege keyword ${p}`);
  }
  return privileges.join(', ');
}

/** `LIKE` pattern matching names that start with `prefix` (with `_`/`%`/`\` escaped). */
export function likePrefix(prefix: string): string {
  return prefix.replace(/[\\_%]/g, (c) => `\\${c}`) + '%';
}

/** The statement that takes the per-user lock; `got` is 1 when held. */
export function lockStatement(name: string, timeoutSeconds: number): Stmt {
  return { sql: 'SELECT GET_LOCK(?, ?) AS got', values: [name, timeoutSeconds] };
}

export function unlockStatement(name: string): Stmt {
  return { sql: 'SELECT RELEASE_LOCK(?) AS released', values: [name] };
}

/** The user's connections in the process list (ids), excluding our own. */
export function sessionsStatement(user: string): Stmt {
  return {
    sql: 'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()',
    values: [user],
  };
}

export function killStatement(id: number): Stmt {
  if (!Number.isSafeInteger(id) || id < 0)
    throw new LatchkeyError('E_INTERNAL', 'bad connection id');
  return { sql: 'KILL CONNECTION ?', values: [id] };
}

export function str(row: Row, key: string): string {
  const v = row[key];
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  return '';
}

/** Runs one statement on a session. */
export function run(session: SqlSession, stmt: Stmt): Promise<Row[]> {
  return session.query(stmt.sql, stmt.values);
}

// ---------------------------------------------------------------------------------------
// Expiry EVENTs (server-side expiry, both flavors)

/** Name of the EVENT that ends grant role `role` at its expiry (at most 64 characters). */
export function expiryEventName(role: string, prefix: string): string {
  return `${prefix}x_${shortHash(role, 24)}`;
}

/**
 * A string literal for a stored program's body, where nothing can be bound: quotes doubled,
 * which parses the same in every sql_mode; a backslash or NUL is refused (it would not).
 */
export function bodyLiteral(value: string): string {
  if (value.includes('\\') || value.includes('\0')) {
    throw new LatchkeyError('E_INVALID', 'name contains a backslash or NUL');
  }
  return `'${value.replace(/'/g, "''")}'`;
}

/** `YYYY-MM-DD HH:MM:SS` in UTC, rounded up to the second (the sessions run in UTC). */
export function eventTime(iso: string): string {
  const ms = Math.ceil(new Date(iso).getTime() / 1000) * 1000;
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}
