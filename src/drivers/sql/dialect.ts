/**
 * The SQL dialect: everything engine-specific the engine-neutral core (`core.ts`) needs.
 *
 * Glossary
 * - **engine**: `postgres`, `redshift`, `mysql` or `mariadb`. One dialect per engine.
 * - **session** (`SqlSession`): one open connection that runs statements in order. Values
 *   are bound by the dialect's own placeholder style (`$1` for pg, `?` for mysql2); the
 *   core never writes SQL, it only calls dialect methods.
 * - **scope** (`SqlScope`): what one driver call works in: a session on the maintenance
 *   database (PostgreSQL/Redshift) or the server (MySQL), a way to run statements in
 *   another database, the AbortSignal, the service-account name and the prefix.
 * - **user** / **login**: the grantee's database account (`deriveUsername`). Carries our
 *   **marker** (PostgreSQL role comment, MySQL user attribute/comment, Redshift group
 *   membership) so cleanup and revoke never touch an account we did not create.
 * - **grant role**: one role per grant (`<prefix>g_<grantId>`) holding exactly that
 *   grant's privileges, granted to the user. Its marker records the `GrantRecord`
 *   (grant id, user, permission, resources, expiry): the database itself is the journal.
 * - **login lock**: `NOLOGIN` (PostgreSQL/Redshift) or `ACCOUNT LOCK` (MySQL/MariaDB);
 *   blocks new logins without dropping anything.
 * - **login expiry**: `VALID UNTIL` (PostgreSQL/Redshift); MySQL has none, so the
 *   optional `setLoginExpiry` is absent there and the sweep alone enforces expiry.
 * - **user lock**: serializes work on one username across agent replicas
 *   (`pg_advisory_xact_lock`, `GET_LOCK`). Held for the duration of the callback.
 * - **sessions**: the user's open connections (`pg_stat_activity`, `stv_sessions`,
 *   `information_schema.PROCESSLIST`); terminated with `pg_terminate_backend` / `KILL`.
 * - **owned objects**: tables etc. a user created; on cleanup made inert and reassigned to a
 *   powerless holding role (default; never the service account) or dropped, in every database.
 *
 * Rules for dialect implementers
 * - Every identifier goes through `quoteIdent` (or is bound as a value); never
 *   concatenate a name. Passwords that cannot be bound go through `quoteLiteral`.
 * - Every method is idempotent where it can be (`IF EXISTS`, check-then-act under the
 *   user lock): "already there" and "already gone" are not errors.
 * - Throw native errors freely; the core maps them once through `mapError`.
 */
import type { LatchkeyError } from '../../errors.js';
import type { SqlEngine } from './username.js';

export type Row = Record<string, unknown>;

/** One open connection. */
export interface SqlSession {
  /** Runs one statement with bound values; resolves with its rows (empty for DDL). */
  query(sql: string, values?: readonly unknown[]): Promise<Row[]>;
}

/** What one driver call works in. */
export interface SqlScope {
  /** Session on the maintenance database (PostgreSQL/Redshift) or the server (MySQL). */
  readonly session: SqlSession;
  /**
   * Runs `fn` with a session connected to `database` (PostgreSQL needs one per database
   * for schema/table privileges and for owned objects). MySQL passes its own session.
   */
  onDatabase<T>(database: string, fn: (session: SqlSession) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` with a second, separate session on the maintenance database (PostgreSQL
   * holds its transaction-scoped user lock there while the work autocommits on
   * `session`, so each step is committed at once and visible to other databases).
   * MySQL may pass `session` itself.
   */
  withLockSession<T>(fn: (session: SqlSession) => Promise<T>): Promise<T>;
  readonly signal: AbortSignal;
  /** The service account's own username (never revoked, cleaned up or granted to). */
  readonly serviceAccount: string;
  /** Prefix of every user and role Latchkey creates (`lk_`). */
  readonly prefix: string;
  /**
   * Databases the driver may visit for "every database" work (cleanup of owned objects,
   * revoke fallbacks); undefined = every database the service account can connect to.
   */
  readonly databases?: readonly string[] | undefined;
}

/** A resource as the core understands it, parsed from a protocol `ResourceRef`. */
export type SqlResource =
  | { kind: 'database'; database: string }
  | { kind: 'schema'; database: string; schema: string }
  /** `schema` is null on engines without schemas (MySQL: database = schema). */
  | { kind: 'table'; database: string; schema: string | null; table: string }
  | { kind: 'role'; role: string };

/** Permissions every SQL driver offers. `role:<name>` grants membership of an existing role. */
export type SqlPermission =
  | { kind: 'connect' }
  | { kind: 'read' }
  | { kind: 'write' }
  | { kind: 'admin' }
  | { kind: 'role'; role: string };

/** One grant, as recorded on its grant role (the marker). */
export interface GrantRecord {
  grantId: string;
  /** The grant role's name. */
  role: string;
  /** The grantee's username. */
  username: string;
  permission: SqlPermission;
  resources: SqlResource[];
  /** ISO timestamp; absent for grants without expiry. */
  expiresAt?: string;
}

/** A database account as the dialect sees it. */
export interface SqlUserInfo {
  username: string;
  /** Carries Latchkey's marker. */
  managed: boolean;
  /** Not locked (`LOGIN`, not `ACCOUNT LOCK`). */
  canLogin: boolean;
  /**
   * The grant whose result carries the user's current password, recorded atomically with
   * (or before) each password change; null after a rotate, under IAM auth, or when unknown.
   * A re-run of that same grant may be a re-delivery whose result was lost: it issues a
   * fresh password (see `grantFlow`).
   */
  passwordIssuedFor: string | null;
  /**
   * Creation was started and recorded (marked first) but not finished, on engines whose
   * user DDL is not transactional (MariaDB). `createUser` finishes it; never delivered.
   */
  incomplete?: boolean;
}

/** State of a grant role name in the target. */
export type GrantRoleState =
  | { exists: false }
  /** Exists without our marker (or with a marker we cannot read): never touched. */
  | { exists: true; managed: false }
  | { exists: true; managed: true; record: GrantRecord };

/** What `SqlDialect.readUserAndGrant` answers. */
export interface UserAndGrant {
  user: SqlUserInfo | null;
  role: GrantRoleState;
  /** The user's grant roles (with `grants` only). */
  grants?: GrantRecord[];
}

export interface CreateUserSpec {
  username: string;
  /** Null under IAM database authentication (no password; `rds_iam` membership instead). */
  password: string | null;
  iamAuth: boolean;
  /** The grant whose result will carry `password` (null under IAM auth). */
  issuedFor: string | null;
  /**
   * What `getUser` returned for this user under the same user lock, when the caller has
   * just read it (null: no such user): a dialect that needs it does not read it again.
   */
  known?: SqlUserInfo | null;
  /**
   * The new login's expiry (null: none), when the caller knows it already: a dialect that
   * can set it in the same statement as the user does so and resolves `true`; otherwise
   * the caller sets it afterwards (`setLoginExpiry`).
   */
  loginExpiry?: Date | null;
}

export interface DropUserOptions {
  /** What happens to objects the user owns, in every database. */
  ownedObjects: 'reassign' | 'drop';
}

export interface SqlDialect {
  readonly engine: SqlEngine;
  /** Longest login name the engine accepts (63, 127, 32, 80). */
  readonly maxUsernameLength: number;
  /** PostgreSQL/Redshift: database → schema → table. MySQL: database → table. */
  readonly hasSchemas: boolean;

  quoteIdent(name: string): string;
  quoteLiteral(value: string): string;

  /**
   * Runs `fn` holding the engine lock on `username` (PostgreSQL: a transaction on the
   * lock session holding `pg_advisory_xact_lock`, ended when `fn` settles; MySQL:
   * `GET_LOCK`/`RELEASE_LOCK`). Statements `fn` runs on `scope.session` autocommit.
   * Every change to a user happens inside it. Waits at most the call's deadline.
   */
  withUserLock<T>(scope: SqlScope, username: string, fn: () => Promise<T>): Promise<T>;

  /** The account, or null when it does not exist. */
  getUser(scope: SqlScope, username: string): Promise<SqlUserInfo | null>;
  /**
   * Creates the login with our marker (and `rds_iam` membership under IAM auth), so that a
   * crash at any point leaves either nothing, a marked user, or a user `getUser` reports
   * `incomplete` (then a second call finishes it): never an unmarked user. Records
   * `spec.issuedFor` as `passwordIssuedFor`. The password reaches the server only as a
   * hash or verifier. Resolves `true` when it also set `spec.loginExpiry`.
   */
  createUser(scope: SqlScope, spec: CreateUserSpec): Promise<boolean | void>;
  /**
   * Sets a new password (as a hash or verifier) and records `issuedFor` (a grant id, or null
   * for a rotate) atomically with it, or before it where the engine cannot do both at once.
   */
  setPassword(
    scope: SqlScope,
    username: string,
    password: string,
    issuedFor: string | null,
  ): Promise<void>;
  /** `LOGIN`/`NOLOGIN`, `ACCOUNT UNLOCK`/`ACCOUNT LOCK`. */
  setLogin(scope: SqlScope, username: string, enabled: boolean): Promise<void>;
  /** `VALID UNTIL` the given time, or `'infinity'` for null. Absent on MySQL/MariaDB. */
  setLoginExpiry?(scope: SqlScope, username: string, expiresAt: Date | null): Promise<void>;

  /**
   * Checks that every database, schema, table and role of the record exists and may be
   * granted (guardrails such as superuser roles), before anything changes.
   * @throws LatchkeyError E_NOT_FOUND, E_GUARDRAIL
   */
  validateGrant(scope: SqlScope, record: GrantRecord): Promise<void>;

  getGrantRole(scope: SqlScope, role: string): Promise<GrantRoleState>;
  /** Creates the grant role carrying `record` as its marker (comment/attribute). */
  createGrantRole(scope: SqlScope, record: GrantRecord): Promise<void>;
  /** Rewrites the marker (e.g. a new expiry on a re-grant). */
  updateGrantRecord(scope: SqlScope, record: GrantRecord): Promise<void>;
  /** Grants the record's privileges to its role. Idempotent. */
  grantPrivileges(scope: SqlScope, record: GrantRecord): Promise<void>;
  /**
   * Optional: `grantPrivileges(record)` then `grantRoleToUser(member)`, in fewer round trips
   * where the engine allows (the membership never before the privileges it carries).
   */
  grantPrivilegesAndRole?(scope: SqlScope, record: GrantRecord, member: GrantRecord): Promise<void>;
  /** Makes the user a member of the grant role (MariaDB: through the per-user default role). */
  grantRoleToUser(scope: SqlScope, record: GrantRecord): Promise<void>;
  /** Takes back every privilege the role holds, in every database it was granted in. */
  revokePrivileges(scope: SqlScope, record: GrantRecord): Promise<void>;
  /** Drops the grant role (and membership). Idempotent. */
  dropGrantRole(scope: SqlScope, record: GrantRecord): Promise<void>;
  /**
   * Optional: `revokePrivileges` then `dropGrantRole`, in fewer round trips where the engine
   * allows (and never leaving less revoked than the two calls would).
   */
  revokeAndDropGrantRole?(scope: SqlScope, record: GrantRecord): Promise<void>;
  /** Managed grant roles of one user, or of every user of this prefix when `username` is omitted. */
  listGrantRoles(scope: SqlScope, filter: { username?: string }): Promise<GrantRecord[]>;
  /**
   * Optional: `getUser(username)`, `getGrantRole(role)` and, with `grants`,
   * `listGrantRoles({ username })`, answered as those would answer them but in one round
   * trip where the engine allows (one snapshot, under the user lock). Without it the core
   * calls the three one by one.
   */
  readUserAndGrant?(
    scope: SqlScope,
    username: string,
    role: string,
    options: { grants: boolean },
  ): Promise<UserAndGrant>;

  /** Number of the user's open sessions. */
  countSessions(scope: SqlScope, username: string): Promise<number>;
  /** Terminates the user's open sessions; resolves with how many were ended. */
  terminateSessions(scope: SqlScope, username: string): Promise<number>;

  /** Reassigns or drops owned objects in every database, then drops the login. */
  dropUser(scope: SqlScope, username: string, options: DropUserOptions): Promise<void>;

  /** Native error → LatchkeyError, in one function (SQLSTATE, errno). */
  mapError(err: unknown): LatchkeyError;
}
