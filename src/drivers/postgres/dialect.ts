/**
 * The PostgreSQL dialect of the SQL core (12–17, RDS and self-hosted).
 *
 * - users and grant roles are roles; the marker is the role COMMENT (JSON, see
 *   `sql/marker.ts`);
 * - passwords are sent as SCRAM-SHA-256 verifiers computed locally;
 * - the user lock is `pg_advisory_xact_lock(<64-bit hash of the username>)` held in a
 *   transaction on the lock session;
 * - privileges on schemas and tables are granted and revoked in their own database.
 */
import { createHash } from 'node:crypto';
import { LatchkeyError } from '../../errors.js';
import type {
  CreateUserSpec,
  DropUserOptions,
  GrantRecord,
  GrantRoleState,
  Row,
  SqlDialect,
  SqlResource,
  SqlScope,
  SqlSession,
  SqlUserInfo,
  UserAndGrant,
} from '../sql/dialect.js';
import {
  grantMarker,
  isUserMarker,
  minimalGrantMarker,
  grantRecordOf,
  parseMinimalGrantMarker,
  parseUserMarker,
  userMarker,
  HOLDING_MARKER,
  isHoldingMarker,
} from '../sql/marker.js';
import { databasesOf } from '../sql/resources.js';
import type { SqlEngine } from '../sql/username.js';
import { USERNAME_LIMITS } from '../sql/username.js';
import { mapPgError } from './errors.js';
import {
  RoleGraph,
  checkResourceNotProtected,
  grantableSchemaCondition,
  holdingRoleName,
  journalSchemaName,
} from './guardrails.js';
import { scramVerifier } from './scram.js';

/** PostgreSQL identifiers are at most 63 bytes (NAMEDATALEN - 1); longer ones are silently truncated. */
export const PG_IDENTIFIER_BYTES = 63;

export { FORBIDDEN_ROLES } from './guardrails.js';

export function quoteIdent(name: string): string {
  if (name.length === 0) throw new LatchkeyError('E_INVALID', 'empty identifier');
  if (name.includes('\u0000'))
    throw new LatchkeyError('E_INVALID', 'identifiers cannot contain NUL');
  if (Buffer.byteLength(name, 'utf8') > PG_IDENTIFIER_BYTES) {
    throw new LatchkeyError('E_INVALID', `identifier longer than ${PG_IDENTIFIER_BYTES} bytes`);
  }
  return `"${name.replace(/"/g, '""')}"`;
}

/** A string literal safe under any `standard_conforming_strings` setting. */
export function quoteLiteral(value: string): string {
  if (value.includes('\u0000')) throw new LatchkeyError('E_INVALID', 'literals cannot contain NUL');
  const body = value.replace(/'/g, "''");
  return value.includes('\\') ? `E'${body.replace(/\\/g, '\\\\')}'` : `'${body}'`;
}

/** Signed 64-bit advisory-lock key of a username (same on every replica). */
export function lockKey(username: string): string {
  return createHash('sha256')
    .update(`latchkey:user:${username}`)
    .digest()
    .readBigInt64BE(0)
    .toString();
}

/**
 * The postgres driver's scope also names the database its `session` is connected to (the
 * maintenance database), so work in that database can share a round trip with the rest.
 */
export interface PgScope extends SqlScope {
  readonly maintenanceDatabase?: string;
}

function maintenanceOf(scope: SqlScope): string | undefined {
  return (scope as PgScope).maintenanceDatabase;
}

/** A lock key as a SQL literal (it is our own decimal number; checked all the same). */
function lockKeyLiteral(key: string): string {
  if (!/^-?\d{1,19}$/.test(key)) throw new LatchkeyError('E_INTERNAL', 'bad lock key');
  return `${key}::bigint`;
}

/**
 * Sends statements that bind no values as one simple-protocol query: one round trip, run
 * by the server as one implicit transaction (all or nothing). Every name and literal in
 * them has gone through `quoteIdent`/`quoteLiteral`.
 */
async function batch(s: SqlSession, statements: readonly string[]): Promise<void> {
  if (statements.length > 0) await s.query(statements.join('; '));
}

type Priv = 'read' | 'write' | 'admin';

/** Relations per REVOKE statement. */
const REVOKE_BATCH = 500;

/**
 * `admin` on tables is every privilege except TRIGGER: a trigger the grantee puts on a
 * table it does not own would run its code as whoever writes that table, after revoke.
 */
function tablePrivs(p: Priv): string {
  return p === 'read'
    ? 'SELECT'
    : p === 'write'
      ? 'SELECT, INSERT, UPDATE, DELETE'
      : 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES';
}
function sequencePrivs(p: Priv): string | null {
  return p === 'read' ? null : p === 'write' ? 'USAGE, SELECT' : 'ALL PRIVILEGES';
}
function schemaPrivs(p: Priv): string {
  return p === 'admin' ? 'ALL PRIVILEGES' : 'USAGE';
}

export interface PgDialectOptions {
  engine?: SqlEngine;
}

export class PostgresDialect implements SqlDialect {
  readonly engine: SqlEngine;
  readonly maxUsernameLength: number;
  readonly hasSchemas = true;

  constructor(opts: PgDialectOptions = {}) {
    this.engine = opts.engine ?? 'postgres';
    this.maxUsernameLength = USERNAME_LIMITS[this.engine];
  }

  quoteIdent(name: string): string {
    return quoteIdent(name);
  }
  quoteLiteral(value: string): string {
    return quoteLiteral(value);
  }
  mapError(err: unknown): LatchkeyError {
    return mapPgError(err);
  }

  async withUserLock<T>(scope: SqlScope, username: string, fn: () => Promise<T>): Promise<T> {
    const key = lockKey(username);
    return scope.withLockSession(async (lock) => {
      try {
        // One round trip: BEGIN opens the transaction block, which outlives the query.
        await lock.query(`BEGIN; SELECT pg_advisory_xact_lock(${lockKeyLiteral(key)})`);
        const result = await fn();
        await lock.query('COMMIT');
        return result;
      } catch (err) {
        await lock.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  async getUser(scope: SqlScope, username: string): Promise<SqlUserInfo | null> {
    const rows = await scope.session.query(
      `SELECT r.rolcanlogin AS can_login, shobj_description(r.oid, 'pg_authid') AS marker
         FROM pg_roles r WHERE r.rolname = $1`,
      [username],
    );
    return userOf(username, rows[0]);
  }

  /**
   * The user, the grant role and (with `grants`) the user's grant roles in one query: what
   * `getUser`, `getGrantRole` and `listGrantRoles({ username })` read, in one snapshot. Each
   * part is then read exactly as those methods read it. Without a journal yet, or in a
   * dialect that reads users or grant roles its own way (Redshift), the three reads.
   */
  async readUserAndGrant(
    scope: SqlScope,
    username: string,
    role: string,
    options: { grants: boolean },
  ): Promise<UserAndGrant> {
    const separately = async (): Promise<UserAndGrant> => {
      const user = await this.getUser(scope, username);
      const state = await this.getGrantRole(scope, role);
      return options.grants
        ? { user, role: state, grants: await this.listGrantRoles(scope, { username }) }
        : { user, role: state };
    };
    if (
      this.getUser !== PostgresDialect.prototype.getUser ||
      this.getGrantRole !== PostgresDialect.prototype.getGrantRole ||
      this.listGrantRoles !== PostgresDialect.prototype.listGrantRoles
    ) {
      return separately();
    }
    const t = this.journalTable(scope);
    let rows: Row[];
    try {
      rows = await scope.session.query(
        `SELECT 'u' AS part, r.rolname, r.rolcanlogin AS can_login,
                shobj_description(r.oid, 'pg_authid') AS marker, NULL::varchar AS record
           FROM pg_roles r WHERE r.rolname = $1
         UNION ALL
         SELECT 'r', r.rolname, NULL, shobj_description(r.oid, 'pg_authid'), j.record
           FROM pg_roles r LEFT JOIN ${t} j ON j.role = r.rolname WHERE r.rolname = $2${
             options.grants
               ? `
         UNION ALL
         SELECT 'g', r.rolname, NULL, shobj_description(r.oid, 'pg_authid'), j.record
           FROM pg_roles r LEFT JOIN ${t} j ON j.role = r.rolname
          WHERE starts_with(r.rolname, $3) AND (j.username = $1 OR j.role IS NULL)`
               : ''
           }
         ORDER BY 1, 2`,
        options.grants ? [username, role, `${scope.prefix}g_`] : [username, role],
      );
    } catch (err) {
      if (!isNoJournal(err)) throw err;
      return separately();
    }
    const part = (p: string): Row[] => rows.filter((r) => r.part === p);
    const user = userOf(username, part('u')[0]);
    const state = await this.grantRoleOf(scope, role, part('r'));
    if (!options.grants) return { user, role: state };
    const found = part('g');
    return {
      user,
      role: state,
      grants: await this.grantRolesOf(scope, found, journalOf(found), { username }),
    };
  }

  /**
   * Runs `fn` in one transaction on the session (PostgreSQL role DDL is transactional), so
   * a crash or a dropped connection in the middle leaves nothing of it.
   */
  protected async inTransaction(scope: SqlScope, fn: () => Promise<void>): Promise<void> {
    await scope.session.query('BEGIN');
    try {
      await fn();
      await scope.session.query('COMMIT');
    } catch (err) {
      await scope.session.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  async passwordClause(password: string): Promise<string> {
    return `PASSWORD ${quoteLiteral(await scramVerifier(password))}`;
  }

  /**
   * CREATE ROLE, its marker (with the grant the password is issued for) and `rds_iam`: one
   * simple query, so one implicit transaction (a crash leaves all of it or nothing) and one
   * round trip.
   */
  async createUser(scope: SqlScope, spec: CreateUserSpec): Promise<boolean | void> {
    const u = quoteIdent(spec.username);
    const pw = spec.password === null ? 'PASSWORD NULL' : await this.passwordClause(spec.password);
    const marker = quoteLiteral(userMarker(spec.password === null ? null : spec.issuedFor));
    const until =
      spec.loginExpiry === undefined
        ? ''
        : ` VALID UNTIL ${quoteLiteral(spec.loginExpiry === null ? 'infinity' : spec.loginExpiry.toISOString())}`;
    await batch(scope.session, [
      `CREATE ROLE ${u} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT ${pw}${until}`,
      `COMMENT ON ROLE ${u} IS ${marker}`,
      ...(spec.iamAuth ? [`GRANT rds_iam TO ${u}`] : []),
    ]);
    return spec.loginExpiry !== undefined;
  }

  /** The new verifier and the marker naming the grant it is issued for: one implicit transaction. */
  async setPassword(
    scope: SqlScope,
    username: string,
    password: string,
    issuedFor: string | null,
  ): Promise<void> {
    const u = quoteIdent(username);
    const clause = await this.passwordClause(password);
    await batch(scope.session, [
      `ALTER ROLE ${u} WITH ${clause}`,
      `COMMENT ON ROLE ${u} IS ${quoteLiteral(userMarker(issuedFor))}`,
    ]);
  }

  async setLogin(scope: SqlScope, username: string, enabled: boolean): Promise<void> {
    await scope.session.query(
      `ALTER ROLE ${quoteIdent(username)} WITH ${enabled ? 'LOGIN' : 'NOLOGIN'}`,
    );
  }

  async setLoginExpiry(scope: SqlScope, username: string, expiresAt: Date | null): Promise<void> {
    const until = expiresAt === null ? 'infinity' : expiresAt.toISOString();
    await scope.session.query(
      `ALTER ROLE ${quoteIdent(username)} VALID UNTIL ${quoteLiteral(until)}`,
    );
  }

  async validateGrant(scope: SqlScope, record: GrantRecord): Promise<void> {
    for (const r of record.resources) {
      for (const name of namesOf(r)) quoteIdent(name);
      checkResourceNotProtected(r, scope.prefix);
    }
    const allowsConnections = (db: string, row: Row | undefined): void => {
      if (!row)
        throw new LatchkeyError('E_NOT_FOUND', `database ${JSON.stringify(db)} does not exist`);
      if (row.datallowconn !== true) {
        throw new LatchkeyError(
          'E_GUARDRAIL',
          `database ${JSON.stringify(db)} does not allow connections`,
        );
      }
    };
    // The maintenance database's check rides with the first check of an object in it.
    const maintenance = maintenanceOf(scope);
    const objectsIn = (db: string): boolean =>
      record.resources.some(
        (r) => (r.kind === 'table' || r.kind === 'schema') && r.database === db,
      );
    const folded = new Set<string>();
    for (const db of databasesOf(record.resources)) {
      if (db === maintenance && objectsIn(db)) {
        folded.add(db);
        continue;
      }
      const rows = await scope.session.query(
        'SELECT datallowconn FROM pg_database WHERE datname = $1',
        [db],
      );
      allowsConnections(db, rows[0]);
    }
    const databaseColumn =
      ', (SELECT datallowconn FROM pg_database WHERE datname = current_database()) AS datallowconn';
    for (const r of record.resources) {
      if (r.kind === 'schema' || r.kind === 'table') {
        const withDb = folded.delete(r.database);
        const rows = await scope.onDatabase(r.database, (s) =>
          r.kind === 'schema'
            ? s.query(
                `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS found${withDb ? databaseColumn : ''}`,
                [r.schema],
              )
            : s.query(
                `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','v','m','f','p')) AS found${withDb ? databaseColumn : ''}`,
                [r.schema ?? 'public', r.table],
              ),
        );
        if (withDb) allowsConnections(r.database, rows[0]);
        if (rows[0]?.found !== true) {
          throw new LatchkeyError(
            'E_NOT_FOUND',
            r.kind === 'schema'
              ? `schema ${JSON.stringify(r.schema)} does not exist`
              : `table ${JSON.stringify(`${r.schema ?? 'public'}.${r.table}`)} does not exist`,
          );
        }
      } else if (r.kind === 'role') {
        await this.checkGrantableRole(scope, r.role);
      }
    }
  }

  /**
   * A role may be granted only when nothing in its whole membership closure leads to
   * superuser-like rights, the service account, a managed role, or an ADMIN OPTION.
   * @throws LatchkeyError E_NOT_FOUND, E_GUARDRAIL (naming the path)
   */
  protected async checkGrantableRole(scope: SqlScope, role: string): Promise<void> {
    const graph = await RoleGraph.load(scope.session);
    if (!graph.has(role))
      throw new LatchkeyError('E_NOT_FOUND', `role ${JSON.stringify(role)} does not exist`);
    const danger = graph.dangerPath(role, {
      serviceAccount: scope.serviceAccount,
      prefix: scope.prefix,
    });
    if (danger !== null) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `role ${JSON.stringify(role)} may not be granted: ${danger}`,
      );
    }
  }

  // ----- grant records: a minimal role comment + the journal ----------------------------

  /** `"<prefix>meta".grants`: the grant journal, in the maintenance database. */
  protected journalTable(scope: SqlScope): string {
    return `${quoteIdent(journalSchemaName(scope.prefix))}.grants`;
  }

  /**
   * Creates the journal if missing and keeps it private: owned by the service account
   * (a schema of that name owned by anyone else is refused), no access for PUBLIC.
   * @throws LatchkeyError E_GUARDRAIL, E_PRIVILEGE
   */
  protected async ensureJournal(scope: SqlScope): Promise<void> {
    const schema = journalSchemaName(scope.prefix);
    const m = quoteIdent(schema);
    const owner = async (): Promise<Row | undefined> =>
      (
        await scope.session.query(
          `SELECT n.nspowner = r.oid AS ours,
                  (SELECT c.relowner = r.oid FROM pg_class c
                    WHERE c.relnamespace = n.oid AND c.relname = 'grants') AS table_ours
             FROM pg_namespace n, pg_roles r
            WHERE n.nspname = $1 AND r.rolname = current_user`,
          [schema],
        )
      )[0];
    let row = await owner();
    if (row === undefined || row.table_ours !== true) {
      // Two first grants at once would both create the journal and one would fail (a
      // duplicate type or table, inside its transaction). Creation is serialised by a
      // transaction-scoped advisory lock; whoever waited sees the other's schema and table.
      await scope.session.query('SELECT pg_advisory_xact_lock($1::bigint)', [
        lockKey(`\u0000journal\u0000${schema}`),
      ]);
      row = await owner();
    }
    if (row === undefined) {
      try {
        await scope.session.query(`CREATE SCHEMA IF NOT EXISTS ${m}`).catch(ignoreCreateRace);
      } catch (err) {
        if ((err as { code?: unknown }).code !== '42501') throw err;
        throw new LatchkeyError(
          'E_PRIVILEGE',
          `the service account cannot create its journal schema ${JSON.stringify(schema)} in the maintenance database: grant it CREATE on that database`,
        );
      }
      row = await owner();
    }
    if (row?.ours !== true || row.table_ours === false) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `schema ${JSON.stringify(schema)} (Latchkey's journal) is owned by another role`,
      );
    }
    if (row.table_ours !== true) {
      await scope.session
        .query(
          `CREATE TABLE IF NOT EXISTS ${m}.grants (role VARCHAR(128) NOT NULL, username VARCHAR(128) NOT NULL, record VARCHAR(65535) NOT NULL)`,
        )
        .catch(ignoreCreateRace);
    }
    // Default privileges of the database may have granted something: take it back.
    await scope.session.query(
      `REVOKE ALL ON SCHEMA ${m} FROM PUBLIC; REVOKE ALL ON TABLE ${m}.grants FROM PUBLIC`,
    );
  }

  /** Journal rows by role (all, or one user's); none when there is no journal yet. */
  protected async readJournal(
    scope: SqlScope,
    filter: { role?: string; username?: string },
  ): Promise<Map<string, string>> {
    const where =
      filter.role !== undefined
        ? 'WHERE role = $1'
        : filter.username !== undefined
          ? 'WHERE username = $1'
          : '';
    const values = filter.role ?? filter.username;
    try {
      const rows = await scope.session.query(
        `SELECT role, record FROM ${this.journalTable(scope)} ${where}`,
        values === undefined ? [] : [values],
      );
      return new Map(rows.map((r) => [str(r.role) ?? '', str(r.record) ?? '']));
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === '3F000' || code === '42P01') return new Map();
      throw err;
    }
  }

  /**
   * Writes the record in one round trip once the journal exists: the statement itself
   * checks that the journal is still ours and private (what `ensureJournal` makes sure of)
   * and writes nothing otherwise. Only when it wrote nothing, or there is no journal yet,
   * does `ensureJournal` run (create, repair or refuse), then the write again.
   * @throws LatchkeyError E_GUARDRAIL, E_PRIVILEGE (from ensureJournal)
   */
  protected async writeJournal(scope: SqlScope, record: GrantRecord): Promise<void> {
    const t = this.journalTable(scope);
    const write = async (): Promise<boolean> =>
      (
        await scope.session.query(
          `WITH ok AS (SELECT 1 WHERE ${journalIsPrivate('$4')}),
                gone AS (DELETE FROM ${t} WHERE role = $1 AND EXISTS (SELECT 1 FROM ok))
           INSERT INTO ${t} (role, username, record) SELECT $1, $2, $3 FROM ok RETURNING 1 AS written`,
          [record.role, record.username, grantMarker(record), journalSchemaName(scope.prefix)],
        )
      ).length > 0;
    try {
      if (await write()) return;
    } catch (err) {
      if (!isNoJournal(err)) throw err;
    }
    await this.ensureJournal(scope);
    if (!(await write())) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `Latchkey's journal ${JSON.stringify(journalSchemaName(scope.prefix))} is not the service account's alone`,
      );
    }
  }

  /**
   * The record of a grant role from its comment: the old format carries the whole record;
   * the minimal marker points at the journal. A marked role whose journal row is missing
   * still belongs to us: it is returned with what the server itself knows (its member
   * user, no resources), so revoke and cleanup can still take it away.
   */
  protected async recordOf(
    scope: SqlScope,
    role: string,
    marker: string | undefined,
    journal: Map<string, string>,
  ): Promise<GrantRecord | null> {
    // The marker is minimal (v2, the record in the journal) unless the role predates it.
    if (!parseMinimalGrantMarker(marker)) return grantRecordOf(role, marker, this.hasSchemas);
    const fromJournal = grantRecordOf(role, journal.get(role), this.hasSchemas);
    if (fromJournal !== null) return fromJournal;
    const members = await scope.session.query(
      `SELECT u.rolname, shobj_description(u.oid, 'pg_authid') AS marker
         FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
        WHERE g.rolname = $1 ORDER BY u.rolname`,
      [role],
    );
    const user = members.find((r) => isUserMarker(str(r.marker)));
    const username = str(user?.rolname);
    if (username === undefined) return null;
    return { grantId: role, role, username, permission: { kind: 'connect' }, resources: [] };
  }

  /**
   * The role's marker and its journal row in one query; without a journal yet, the marker
   * alone (and the journal read only for a minimal marker, which then finds nothing).
   */
  async getGrantRole(scope: SqlScope, role: string): Promise<GrantRoleState> {
    let rows: Row[];
    let journal: Map<string, string> | undefined;
    try {
      rows = await scope.session.query(
        `SELECT shobj_description(r.oid, 'pg_authid') AS marker, j.record
           FROM pg_roles r LEFT JOIN ${this.journalTable(scope)} j ON j.role = r.rolname
          WHERE r.rolname = $1`,
        [role],
      );
      journal = journalOf(rows.map((r) => ({ ...r, rolname: role })));
    } catch (err) {
      if (!isNoJournal(err)) throw err;
      rows = await scope.session.query(
        `SELECT shobj_description(r.oid, 'pg_authid') AS marker FROM pg_roles r WHERE r.rolname = $1`,
        [role],
      );
    }
    return this.grantRoleOf(scope, role, rows, journal);
  }

  /**
   * A grant role's state from the rows of its query (its marker, joined with its journal
   * rows; `journal` undefined when there was no journal to join).
   */
  protected async grantRoleOf(
    scope: SqlScope,
    role: string,
    rows: readonly Row[],
    joined: Map<string, string> | undefined = journalOf(rows.map((r) => ({ ...r, rolname: role }))),
  ): Promise<GrantRoleState> {
    let journal = joined;
    const row = rows[0];
    if (!row) return { exists: false };
    const marker = str(row.marker);
    journal ??= parseMinimalGrantMarker(marker)
      ? await this.readJournal(scope, { role })
      : new Map<string, string>();
    const record = await this.recordOf(scope, role, marker, journal);
    return record === null
      ? { exists: true, managed: false }
      : { exists: true, managed: true, record };
  }

  /**
   * Journal row first, then the role and its minimal marker in one implicit transaction
   * (one simple-protocol query), so a role never exists without its marker.
   */
  async createGrantRole(scope: SqlScope, record: GrantRecord): Promise<void> {
    await this.writeJournal(scope, record);
    const r = quoteIdent(record.role);
    await scope.session.query(
      `CREATE ROLE ${r} WITH NOLOGIN INHERIT; COMMENT ON ROLE ${r} IS ${quoteLiteral(minimalGrantMarker())}`,
    );
  }

  /** Writes the record to the journal and the minimal marker (migrates old comments). */
  async updateGrantRecord(scope: SqlScope, record: GrantRecord): Promise<void> {
    await this.writeJournal(scope, record);
    await scope.session.query(
      `COMMENT ON ROLE ${quoteIdent(record.role)} IS ${quoteLiteral(minimalGrantMarker())}`,
    );
  }

  /**
   * Grants `record`: the database privileges on the maintenance session, the rest in each
   * resource's database, each database's statements in one round trip (one implicit
   * transaction; the maintenance database's together with the database privileges).
   */
  async grantPrivileges(scope: SqlScope, record: GrantRecord): Promise<void> {
    await this.grantPrivilegesThen(scope, record, undefined);
  }

  /**
   * `grantPrivileges` then `grantRoleToUser`: the membership goes in the same simple query
   * as the last of the privileges when that query runs on the maintenance session (one
   * round trip fewer, and the membership never without those privileges). In a dialect
   * that grants its own way (Redshift), the two calls.
   */
  async grantPrivilegesAndRole(
    scope: SqlScope,
    record: GrantRecord,
    member: GrantRecord,
  ): Promise<void> {
    if (
      this.grantPrivileges !== PostgresDialect.prototype.grantPrivileges ||
      this.grantRoleToUser !== PostgresDialect.prototype.grantRoleToUser
    ) {
      await this.grantPrivileges(scope, record);
      await this.grantRoleToUser(scope, member);
      return;
    }
    const membership = `GRANT ${quoteIdent(member.role)} TO ${quoteIdent(member.username)}`;
    if (!(await this.grantPrivilegesThen(scope, record, membership)))
      await this.grantRoleToUser(scope, member);
  }

  /**
   * Grants `record`; `then` (a statement for the maintenance session) rides with the last
   * query when that query is on the maintenance session. Resolves whether it did.
   */
  protected async grantPrivilegesThen(
    scope: SqlScope,
    record: GrantRecord,
    then: string | undefined,
  ): Promise<boolean> {
    const role = quoteIdent(record.role);
    const p = record.permission;
    const tail = then === undefined ? [] : [then];
    if (p.kind === 'role') {
      await batch(scope.session, [`GRANT ${quoteIdent(p.role)} TO ${role}`, ...tail]);
      return then !== undefined;
    }
    const dbs = databasesOf(record.resources);
    const dbPriv = p.kind === 'admin' ? 'ALL PRIVILEGES' : 'CONNECT';
    const onMain = dbs.map((db) => `GRANT ${dbPriv} ON DATABASE ${quoteIdent(db)} TO ${role}`);
    const maintenance = maintenanceOf(scope);
    const inDb = (db: string): SqlResource[] =>
      p.kind === 'connect'
        ? []
        : record.resources.filter((r) => r.kind !== 'role' && r.database === db);
    // The maintenance database's own statements go with the database privileges.
    const merged = maintenance !== undefined && inDb(maintenance).length > 0;
    const withResources = dbs.filter((db) => inDb(db).length > 0);
    const lastDb = withResources[withResources.length - 1];
    if (!merged) {
      const last = withResources.length === 0;
      await batch(scope.session, last ? [...onMain, ...tail] : onMain);
      if (last) return then !== undefined;
    }
    if (p.kind === 'connect') return false;
    const priv: Priv = p.kind;
    // `then` rides with the last batch only when that one is the maintenance session's.
    const thenSent = merged && lastDb === maintenance && then !== undefined;
    for (const db of dbs) {
      const resources = inDb(db);
      if (resources.length === 0) continue;
      await scope.onDatabase(db, async (s) => {
        const statements = merged && db === maintenance ? [...onMain] : [];
        for (const r of resources) {
          if (r.kind === 'database') {
            // Never system schemas, never the agent's journal.
            const schemas = await s.query(
              `SELECT n.nspname FROM pg_namespace n WHERE ${grantableSchemaCondition('$1')} ORDER BY 1`,
              [journalSchemaName(scope.prefix)],
            );
            for (const row of schemas)
              statements.push(...(await this.grantOnSchema(s, str(row.nspname) ?? '', role, priv)));
          } else if (r.kind === 'schema') {
            statements.push(...(await this.grantOnSchema(s, r.schema, role, priv)));
          } else if (r.kind === 'table') {
            statements.push(
              ...(await this.grantOnTable(s, r.schema ?? 'public', r.table, role, priv)),
            );
          }
        }
        if (thenSent && db === maintenance) statements.push(...tail);
        await batch(s, statements);
      });
    }
    return thenSent;
  }

  /** The statements granting `priv` on a schema, its tables and its future tables. */
  protected async grantOnSchema(
    s: SqlSession,
    schema: string,
    role: string,
    priv: Priv,
  ): Promise<string[]> {
    const sch = quoteIdent(schema);
    const out = [
      `GRANT ${schemaPrivs(priv)} ON SCHEMA ${sch} TO ${role}`,
      `GRANT ${tablePrivs(priv)} ON ALL TABLES IN SCHEMA ${sch} TO ${role}`,
    ];
    const seq = sequencePrivs(priv);
    if (seq) out.push(`GRANT ${seq} ON ALL SEQUENCES IN SCHEMA ${sch} TO ${role}`);
    // Future tables: for objects the service account creates, and for those of the schema
    // owner when the service account may act for it.
    for (const owner of await this.defaultPrivilegeOwners(s, schema)) {
      const forRole = owner === null ? '' : `FOR ROLE ${quoteIdent(owner)} `;
      out.push(
        `ALTER DEFAULT PRIVILEGES ${forRole}IN SCHEMA ${sch} GRANT ${tablePrivs(priv)} ON TABLES TO ${role}`,
      );
      if (seq)
        out.push(
          `ALTER DEFAULT PRIVILEGES ${forRole}IN SCHEMA ${sch} GRANT ${seq} ON SEQUENCES TO ${role}`,
        );
    }
    return out;
  }

  /** null = current user; plus the schema owner when it differs and we are a member of it. */
  protected async defaultPrivilegeOwners(
    s: SqlSession,
    schema: string,
  ): Promise<(string | null)[]> {
    const rows = await s.query(
      `SELECT pg_get_userbyid(n.nspowner) AS owner,
              n.nspowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
                AND pg_has_role(current_user, n.nspowner, 'MEMBER') AS usable
         FROM pg_namespace n WHERE n.nspname = $1`,
      [schema],
    );
    const row = rows[0];
    const owner = str(row?.owner);
    return row?.usable === true && owner ? [null, owner] : [null];
  }

  /** The statements granting `priv` on one table (and the sequences behind its columns). */
  protected async grantOnTable(
    s: SqlSession,
    schema: string,
    table: string,
    role: string,
    priv: Priv,
  ): Promise<string[]> {
    const sch = quoteIdent(schema);
    const out = [
      `GRANT USAGE ON SCHEMA ${sch} TO ${role}`,
      `GRANT ${tablePrivs(priv)} ON TABLE ${sch}.${quoteIdent(table)} TO ${role}`,
    ];
    const seq = sequencePrivs(priv);
    if (!seq) return out;
    // Sequences behind serial/identity columns of the table.
    const seqs = await s.query(
      `SELECT sn.nspname AS schema, sc.relname AS name
         FROM pg_class t JOIN pg_namespace tn ON tn.oid = t.relnamespace
         JOIN pg_depend d ON d.refobjid = t.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a','i')
         JOIN pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S'
         JOIN pg_namespace sn ON sn.oid = sc.relnamespace
        WHERE tn.nspname = $1 AND t.relname = $2`,
      [schema, table],
    );
    for (const row of seqs) {
      out.push(
        `GRANT ${seq} ON SEQUENCE ${quoteIdent(str(row.schema) ?? '')}.${quoteIdent(str(row.name) ?? '')} TO ${role}`,
      );
    }
    return out;
  }

  async grantRoleToUser(scope: SqlScope, record: GrantRecord): Promise<void> {
    await scope.session.query(`GRANT ${quoteIdent(record.role)} TO ${quoteIdent(record.username)}`);
  }

  /** Revokes everything the grant role holds in the databases of its record. */
  async revokePrivileges(scope: SqlScope, record: GrantRecord): Promise<void> {
    for (const db of databasesOf(record.resources)) {
      await this.revokeInDatabase(scope, db, record.role);
    }
  }

  /**
   * Takes back everything the role holds in `database`: one query reads what it holds
   * there (database, default privileges, relations, schemas), one simple query revokes it
   * all (one implicit transaction).
   */
  protected async revokeInDatabase(
    scope: SqlScope,
    database: string,
    roleName: string,
  ): Promise<void> {
    // The maintenance database is the one the session is connected to.
    if (database !== maintenanceOf(scope)) {
      const exists = await scope.session.query(
        'SELECT 1 FROM pg_database WHERE datname = $1 AND datallowconn',
        [database],
      );
      if (!exists[0]) return;
    }
    await this.inDatabaseIfExists(scope, database, async (s) => {
      await batch(s, await this.revokeStatements(s, database, roleName));
    });
  }

  /**
   * What takes back everything the role holds in the database `s` is connected to: read in
   * one query (database, default privileges, relations, schemas); none when the role is gone.
   */
  protected async revokeStatements(
    s: SqlSession,
    database: string,
    roleName: string,
  ): Promise<string[]> {
    const role = quoteIdent(roleName);
    const held = await s.query(
      `WITH g AS (SELECT oid FROM pg_roles WHERE rolname = $1)
         SELECT 'role' AS kind, NULL::text AS owner, NULL::text AS schema, NULL::text AS name, NULL::text AS objtype
           FROM g
         UNION ALL
         SELECT DISTINCT 'default', pg_get_userbyid(d.defaclrole)::text, n.nspname::text, NULL, d.defaclobjtype::text
           FROM g, pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace,
                LATERAL aclexplode(d.defaclacl) a
          WHERE a.grantee = g.oid
         UNION ALL
         SELECT DISTINCT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, NULL, n.nspname::text, c.relname::text, NULL
           FROM g, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL aclexplode(c.relacl) a
          WHERE a.grantee = g.oid
         UNION ALL
         SELECT DISTINCT 'schema', NULL, n.nspname::text, NULL, NULL
           FROM g, pg_namespace n, LATERAL aclexplode(n.nspacl) a
          WHERE a.grantee = g.oid`,
      [roleName],
    );
    if (!held.some((r) => r.kind === 'role')) return [];
    const statements = [`REVOKE ALL PRIVILEGES ON DATABASE ${quoteIdent(database)} FROM ${role}`];
    for (const row of held.filter((r) => r.kind === 'default')) {
      const kind = { r: 'TABLES', S: 'SEQUENCES', f: 'FUNCTIONS', T: 'TYPES', n: 'SCHEMAS' }[
        str(row.objtype) ?? ''
      ];
      if (!kind) continue;
      const schema = str(row.schema);
      statements.push(
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(str(row.owner) ?? '')}${schema ? ` IN SCHEMA ${quoteIdent(schema)}` : ''} REVOKE ALL ON ${kind} FROM ${role}`,
      );
    }
    // Exactly the relations whose ACL names the role, in batches (a schema-wide REVOKE
    // would fail on tables the service account has no rights on at all).
    for (const kind of ['table', 'sequence'] as const) {
      const names = held
        .filter((r) => r.kind === kind)
        .map((r) => [str(r.schema) ?? '', str(r.name) ?? ''] as const)
        .sort((a, b) => (a[0] === b[0] ? cmp(a[1], b[1]) : cmp(a[0], b[0])))
        .map(([sch, name]) => `${quoteIdent(sch)}.${quoteIdent(name)}`);
      for (let i = 0; i < names.length; i += REVOKE_BATCH) {
        const list = names.slice(i, i + REVOKE_BATCH).join(', ');
        statements.push(
          `REVOKE ALL PRIVILEGES ON ${kind === 'sequence' ? 'SEQUENCE' : 'TABLE'} ${list} FROM ${role}`,
        );
      }
    }
    for (const row of held.filter((r) => r.kind === 'schema')) {
      statements.push(`REVOKE ALL ON SCHEMA ${quoteIdent(str(row.schema) ?? '')} FROM ${role}`);
    }
    return statements;
  }

  /**
   * `revokePrivileges` then `dropGrantRole`, the maintenance database's revokes sent in the
   * drop's own simple query (one implicit transaction: privileges taken back and the role
   * dropped together, or neither). In a dialect that revokes or drops its own way
   * (Redshift), the two calls.
   */
  async revokeAndDropGrantRole(scope: SqlScope, record: GrantRecord): Promise<void> {
    if (
      this.revokePrivileges !== PostgresDialect.prototype.revokePrivileges ||
      this.dropGrantRole !== PostgresDialect.prototype.dropGrantRole
    ) {
      await this.revokePrivileges(scope, record);
      await this.dropGrantRole(scope, record);
      return;
    }
    const maintenance = maintenanceOf(scope);
    let withDrop: string[] = [];
    for (const db of databasesOf(record.resources)) {
      if (db === maintenance)
        withDrop = await this.revokeStatements(scope.session, db, record.role);
      else await this.revokeInDatabase(scope, db, record.role);
    }
    await this.dropGrantRole(scope, record, withDrop);
  }

  /**
   * Drops the grant role and forgets its journal row in one simple query (one implicit
   * transaction: never a row without its role's drop, nor the reverse).
   */
  async dropGrantRole(
    scope: SqlScope,
    record: GrantRecord,
    /** Statements sent first in the same query (`revokeAndDropGrantRole`); not after a retry. */
    before: readonly string[] = [],
  ): Promise<void> {
    const drop = `DROP ROLE IF EXISTS ${quoteIdent(record.role)}`;
    const forget = `DELETE FROM ${this.journalTable(scope)} WHERE role = ${quoteLiteral(record.role)}`;
    let journal = true;
    let revokedEverywhere = false;
    let first = before;
    for (;;) {
      try {
        await batch(scope.session, [...first, ...(journal ? [drop, forget] : [drop])]);
        return;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (journal && isNoJournal(err)) {
          journal = false; // no journal (yet): nothing to forget
          continue;
        }
        if (code !== '2BP01' || revokedEverywhere) throw err;
        // Privileges left in a database outside the record: revoke everywhere (the
        // statements sent with the drop were undone with it), then retry.
        for (const db of await this.connectableDatabases(scope))
          await this.revokeInDatabase(scope, db, record.role);
        revokedEverywhere = true;
        first = [];
      }
    }
  }

  /** The grant roles with their journal rows in one query (the roles alone without a journal). */
  async listGrantRoles(scope: SqlScope, filter: { username?: string }): Promise<GrantRecord[]> {
    let found: Row[];
    let journal: Map<string, string> | undefined;
    try {
      // One user's: only roles whose journal row names that user, or that have none (a
      // record in the comment, or a lost row), so a grant does not parse every grant's record.
      const forUser =
        filter.username === undefined ? '' : ' AND (j.username = $2 OR j.role IS NULL)';
      found = await scope.session.query(
        `SELECT r.rolname, shobj_description(r.oid, 'pg_authid') AS marker, j.record
           FROM pg_roles r LEFT JOIN ${this.journalTable(scope)} j ON j.role = r.rolname
          WHERE starts_with(r.rolname, $1)${forUser} ORDER BY r.rolname`,
        filter.username === undefined
          ? [`${scope.prefix}g_`]
          : [`${scope.prefix}g_`, filter.username],
      );
      journal = journalOf(found);
    } catch (err) {
      if (!isNoJournal(err)) throw err;
      found = await scope.session.query(
        `SELECT r.rolname, shobj_description(r.oid, 'pg_authid') AS marker
           FROM pg_roles r WHERE starts_with(r.rolname, $1) ORDER BY r.rolname`,
        [`${scope.prefix}g_`],
      );
    }
    return this.grantRolesOf(scope, found, journal, filter);
  }

  /**
   * The grant records from the rows of a grant-role query (`rolname`, `marker`, joined with
   * the journal's `record`; `joined` undefined when there was no journal to join).
   */
  protected async grantRolesOf(
    scope: SqlScope,
    found: readonly Row[],
    joined: Map<string, string> | undefined,
    filter: { username?: string },
  ): Promise<GrantRecord[]> {
    const journal =
      joined ??
      (found.some((r) => parseMinimalGrantMarker(str(r.marker)))
        ? await this.readJournal(scope, {})
        : new Map<string, string>());
    // One row per role (a role with several journal rows: the last one, as readJournal).
    const rows = [...new Map(found.map((r) => [str(r.rolname) ?? '', r])).values()];
    const out: GrantRecord[] = [];
    for (const row of rows) {
      const rec = await this.recordOf(scope, str(row.rolname) ?? '', str(row.marker), journal);
      if (rec && (filter.username === undefined || rec.username === filter.username)) out.push(rec);
    }
    return out;
  }

  async countSessions(scope: SqlScope, username: string): Promise<number> {
    const rows = await scope.session.query(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()',
      [username],
    );
    return Number(rows[0]?.n ?? 0);
  }

  async terminateSessions(scope: SqlScope, username: string): Promise<number> {
    const rows = await scope.session.query(
      `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n
         FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()`,
      [username],
    );
    return Number(rows[0]?.n ?? 0);
  }

  async connectableDatabases(scope: SqlScope): Promise<string[]> {
    const rows = await scope.session.query(
      `SELECT datname FROM pg_database
        WHERE datallowconn AND has_database_privilege(datname, 'CONNECT') ORDER BY datname`,
    );
    const all = rows.map((r) => str(r.datname) ?? '').filter((d) => d !== '');
    return scope.databases ? all.filter((d) => scope.databases?.includes(d)) : all;
  }

  /** Runs `fn` in `database`, skipping a database dropped meanwhile (3D000). */
  protected async inDatabaseIfExists(
    scope: SqlScope,
    database: string,
    fn: (s: SqlSession) => Promise<void>,
  ): Promise<void> {
    try {
      await scope.onDatabase(database, fn);
    } catch (err) {
      if ((err as { code?: unknown }).code === '3D000') return;
      const cause = (err as { cause?: { code?: unknown } }).cause;
      if (cause?.code === '3D000') return;
      throw err;
    }
  }

  /**
   * The holding role: NOLOGIN, no attributes, no memberships, marked; created when
   * missing. A role of that name that is not ours, or that anyone but the service account
   * is a member of, is refused: its members would own what cleanup hands over.
   * @throws LatchkeyError E_GUARDRAIL
   */
  async ensureHoldingRole(scope: SqlScope): Promise<string> {
    const name = holdingRoleName(scope.prefix);
    const h = quoteIdent(name);
    const check = async (): Promise<Row | undefined> =>
      (
        await scope.session.query(
          `SELECT shobj_description(r.oid, 'pg_authid') AS marker,
                  r.rolcanlogin OR r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls AS powerful,
                  EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid) AS is_member,
                  EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles x ON x.oid = m.member
                           WHERE m.roleid = r.oid AND x.rolname <> current_user) AS has_members
             FROM pg_roles r WHERE r.rolname = $1`,
          [name],
        )
      )[0];
    let row = await check();
    if (row === undefined) {
      await scope.session.query(
        `CREATE ROLE ${h} WITH NOLOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE; COMMENT ON ROLE ${h} IS ${quoteLiteral(HOLDING_MARKER)}`,
      );
      row = await check();
    }
    if (
      !isHoldingMarker(str(row?.marker)) ||
      row?.powerful === true ||
      row?.is_member === true ||
      row?.has_members === true
    ) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `role ${JSON.stringify(name)} is not Latchkey's powerless holding role (marker, attributes or memberships)`,
      );
    }
    // REASSIGN OWNED needs the rights of the target role too.
    const member = await scope.session.query(`SELECT pg_has_role(current_user, $1, 'USAGE') AS m`, [
      name,
    ]);
    if (member[0]?.m !== true) await scope.session.query(`GRANT ${h} TO CURRENT_USER`);
    return name;
  }

  /**
   * Makes the objects `username` owns in this database inert before they change hands:
   * `SECURITY DEFINER` routines become `SECURITY INVOKER`, and every privilege others
   * (PUBLIC included) hold on its relations, routines and schemas is revoked.
   */
  protected async neutralizeOwnedObjects(s: SqlSession, username: string): Promise<void> {
    const definers = await s.query(
      `SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid) AS args
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.proowner = (SELECT oid FROM pg_roles WHERE rolname = $1) AND p.prosecdef`,
      [username],
    );
    for (const f of definers) {
      await s.query(
        `ALTER ROUTINE ${quoteIdent(str(f.nspname) ?? '')}.${quoteIdent(str(f.proname) ?? '')}(${str(f.args) ?? ''}) SECURITY INVOKER`,
      );
    }
    // Grantees other than the owner; NULL = PUBLIC. Routines have PUBLIC EXECUTE by default
    // (a NULL ACL), so PUBLIC is always revoked on them.
    const acl = await s.query(
      `WITH u AS (SELECT oid FROM pg_roles WHERE rolname = $1)
       SELECT 'TABLE' AS kind, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS obj,
              CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, u, LATERAL aclexplode(c.relacl) a
        WHERE c.relowner = u.oid AND c.relkind IN ('r','p','v','m','f') AND a.grantee <> u.oid
       UNION
       SELECT 'SEQUENCE', quote_ident(n.nspname) || '.' || quote_ident(c.relname),
              CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, u, LATERAL aclexplode(c.relacl) a
        WHERE c.relowner = u.oid AND c.relkind = 'S' AND a.grantee <> u.oid
       UNION
       SELECT 'SCHEMA', quote_ident(n.nspname),
              CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END
         FROM pg_namespace n, u, LATERAL aclexplode(n.nspacl) a
        WHERE n.nspowner = u.oid AND a.grantee <> u.oid
       UNION
       SELECT 'ROUTINE', quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')',
              CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, u,
              LATERAL aclexplode(coalesce(p.proacl, acldefault('f', u.oid))) a
        WHERE p.proowner = u.oid AND a.grantee <> u.oid`,
      [username],
    );
    for (const row of acl) {
      const grantee = str(row.grantee);
      await s.query(
        `REVOKE ALL ON ${str(row.kind) ?? ''} ${str(row.obj) ?? ''} FROM ${grantee === undefined ? 'PUBLIC' : quoteIdent(grantee)} CASCADE`,
      );
    }
  }

  /**
   * `REASSIGN OWNED` to the holding role. A new owner needs CREATE on each object's
   * schema: the holding role gets it only for the statement, and loses it right after.
   */
  protected async reassignToHolding(
    s: SqlSession,
    username: string,
    holding: string,
  ): Promise<void> {
    const rows = await s.query(
      `WITH u AS (SELECT oid FROM pg_roles WHERE rolname = $1),
            o AS (SELECT relnamespace AS ns FROM pg_class, u WHERE relowner = u.oid
                  UNION SELECT pronamespace FROM pg_proc, u WHERE proowner = u.oid
                  UNION SELECT typnamespace FROM pg_type, u WHERE typowner = u.oid)
       SELECT DISTINCT n.nspname FROM o JOIN pg_namespace n ON n.oid = o.ns
        WHERE n.nspname <> 'pg_toast' AND NOT has_schema_privilege($2, n.oid, 'CREATE')`,
      [username, holding.slice(1, -1).replace(/""/g, '"')],
    );
    const schemas = rows.map((r) => quoteIdent(str(r.nspname) ?? ''));
    for (const sch of schemas) await s.query(`GRANT CREATE ON SCHEMA ${sch} TO ${holding}`);
    try {
      await s.query(`REASSIGN OWNED BY ${quoteIdent(username)} TO ${holding}`);
    } finally {
      for (const sch of schemas) await s.query(`REVOKE CREATE ON SCHEMA ${sch} FROM ${holding}`);
    }
  }

  /**
   * Drops the login after dealing with what it owns, in every database:
   * - `reassign` (default): its objects are made inert (`neutralizeOwnedObjects`) and
   *   handed to the powerless holding role, never to the service account;
   * - `drop`: its objects are dropped.
   * Then `DROP OWNED` takes away every privilege granted to it, and the role is dropped.
   */
  async dropUser(scope: SqlScope, username: string, options: DropUserOptions): Promise<void> {
    const u = quoteIdent(username);
    const exists = await scope.session.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [
      username,
    ]);
    if (!exists[0]) return;
    // REASSIGN/DROP OWNED need the privileges of the role: a CREATEROLE service account
    // (or rds_superuser) may make itself a member of a role it manages.
    const member = await scope.session.query(`SELECT pg_has_role(current_user, $1, 'USAGE') AS m`, [
      username,
    ]);
    if (member[0]?.m !== true) await scope.session.query(`GRANT ${u} TO CURRENT_USER`);
    const holding =
      options.ownedObjects === 'reassign' ? quoteIdent(await this.ensureHoldingRole(scope)) : null;
    for (const db of await this.connectableDatabases(scope)) {
      await this.inDatabaseIfExists(scope, db, async (s) => {
        if (holding !== null) {
          await this.neutralizeOwnedObjects(s, username);
          await this.reassignToHolding(s, username, holding);
        }
        await s.query(`DROP OWNED BY ${u}`);
      });
    }
    await scope.session.query(`DROP ROLE IF EXISTS ${u}`);
  }
}

/**
 * `CREATE … IF NOT EXISTS` is not atomic: two grants for different users (different user
 * locks) creating the journal at once may collide on the catalog's unique indexes. The
 * other one created it: that is success.
 */
function ignoreCreateRace(err: unknown): Row[] {
  const code = (err as { code?: unknown }).code;
  if (code === '23505' || code === '42P06' || code === '42P07' || code === '42710') return [];
  throw err;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The journal (its schema or its table) does not exist (yet). */
/** A user from its row (`can_login`, `marker`), null without one. */
function userOf(username: string, row: Row | undefined): SqlUserInfo | null {
  if (!row) return null;
  const marker = parseUserMarker(str(row.marker));
  return {
    username,
    managed: marker !== null,
    canLogin: row.can_login === true,
    passwordIssuedFor: marker?.issuedFor ?? null,
  };
}

function isNoJournal(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === '3F000' || code === '42P01';
}

/** Journal rows of a query that joined the journal (`rolname`, `record`), by role. */
function journalOf(rows: readonly Row[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of rows) {
    const record = str(r.record);
    if (record !== undefined) out.set(str(r.rolname) ?? '', record);
  }
  return out;
}

/**
 * SQL condition: the journal schema named by `schemaParam` and its `grants` table belong
 * to the service account and grant nothing to PUBLIC (what `ensureJournal` leaves).
 */
function journalIsPrivate(schemaParam: string): string {
  return `EXISTS (SELECT 1 FROM pg_namespace n
                    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'grants' AND c.relkind = 'r'
                    JOIN pg_roles me ON me.rolname = current_user
                   WHERE n.nspname = ${schemaParam} AND n.nspowner = me.oid AND c.relowner = me.oid
                     AND NOT EXISTS (SELECT 1 FROM aclexplode(n.nspacl) a WHERE a.grantee = 0)
                     AND NOT EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0))`;
}

function namesOf(r: SqlResource): string[] {
  switch (r.kind) {
    case 'database':
      return [r.database];
    case 'schema':
      return [r.database, r.schema];
    case 'table':
      return [r.database, r.schema ?? 'public', r.table];
    case 'role':
      return [r.role];
  }
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Rows to strings of one column (helper for discovery). */
export function column(rows: Row[], name: string): string[] {
  return rows.map((r) => str(r[name])).filter((v): v is string => v !== undefined);
}
