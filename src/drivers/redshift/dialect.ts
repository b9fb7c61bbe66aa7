/**
 * The Redshift dialect of the SQL core.
 *
 * Redshift speaks the PostgreSQL wire protocol but differs where it matters here:
 * - users (`CREATE USER`) and roles (`CREATE ROLE`, `GRANT ROLE r TO u`, privileges
 *   granted `TO ROLE r`); no `NOLOGIN`: a login is blocked with `PASSWORD DISABLE`;
 * - no `COMMENT ON ROLE`, and no advisory locks: the markers and grant records live in a
 *   small journal schema in the maintenance database (`<prefix>meta.users`,
 *   `<prefix>meta.grants`), and the user lock is `LOCK <prefix>meta.lock` in a
 *   transaction on the lock session (coarse: one Latchkey change at a time per cluster);
 * - passwords are sent as `md5<md5(password || username)>`, never in clear;
 * - sessions from `stv_sessions`, ended with `pg_terminate_backend`;
 * - discovery from `svv_redshift_databases`, `svv_redshift_schemas`,
 *   `svv_redshift_tables` and `svv_roles`, all readable from one connection.
 *
 * The journal statements (schema, tables, lock, records) are valid PostgreSQL and are
 * tested against the real PostgreSQL; the rest is tested by the exact statements produced.
 */
import { createHash } from 'node:crypto';
import { LatchkeyError } from '../../errors.js';
import type {
  CreateUserSpec,
  DropUserOptions,
  GrantRecord,
  GrantRoleState,
  SqlScope,
  SqlSession,
  SqlUserInfo,
} from '../sql/dialect.js';
import { grantMarker, parseGrantMarker } from '../sql/marker.js';
import { databasesOf } from '../sql/resources.js';
import { PostgresDialect, quoteIdent, quoteLiteral, str } from '../postgres/dialect.js';
import {
  checkResourceNotProtected,
  holdingRoleName,
  journalSchemaName,
} from '../postgres/guardrails.js';

/** Redshift passwords: 8–64 characters, upper, lower and a digit. */
export function redshiftPasswordHash(password: string, username: string): string {
  if (
    password.length < 8 ||
    password.length > 64 ||
    !/[A-Z]/.test(password) ||
    !/[a-z]/.test(password) ||
    !/[0-9]/.test(password)
  ) {
    throw new LatchkeyError(
      'E_INVALID',
      'Redshift passwords need 8-64 characters with upper, lower case and a digit',
    );
  }
  if (/['"\\/@ ]/.test(password))
    throw new LatchkeyError('E_INVALID', `Redshift passwords cannot contain ' " \\ / @ or space`);
  return `md5${createHash('md5')
    .update(password + username, 'utf8')
    .digest('hex')}`;
}

/**
 * The roles of a Redshift cluster as the `role:<name>` guardrail sees them, read once
 * (three queries, whatever the number of roles): which roles are granted to which
 * (`svv_role_grants`), which hold a system privilege (`svv_system_privileges`: CREATE
 * USER, ALTER USER, …), and which hold any privilege on the agent's journal schema
 * (`svv_schema_privileges`, in the maintenance database).
 */
export class RedshiftRoleGraph {
  private constructor(
    private readonly nested: ReadonlyMap<string, readonly string[]>,
    private readonly systemPrivileges: ReadonlyMap<string, string>,
    private readonly journalHolders: ReadonlySet<string>,
  ) {}

  static async load(session: SqlSession, prefix: string): Promise<RedshiftRoleGraph> {
    const edges = await session.query('SELECT role_name, granted_role_name FROM svv_role_grants');
    const privs = await session.query(
      `SELECT identity_name, system_privilege FROM svv_system_privileges WHERE identity_type = 'role'`,
    );
    const journal = await session.query(
      `SELECT DISTINCT identity_name FROM svv_schema_privileges WHERE identity_type = 'role' AND namespace_name = $1`,
      [journalSchemaName(prefix)],
    );
    const nested = new Map<string, string[]>();
    for (const e of edges) {
      const from = str(e.role_name);
      const to = str(e.granted_role_name);
      if (from === undefined || to === undefined) continue;
      nested.set(from, [...(nested.get(from) ?? []), to]);
    }
    const systemPrivileges = new Map<string, string>();
    for (const p of privs) {
      const name = str(p.identity_name);
      const priv = str(p.system_privilege);
      if (name !== undefined && priv !== undefined && !systemPrivileges.has(name))
        systemPrivileges.set(name, priv);
    }
    const holders = new Set(
      journal.map((r) => str(r.identity_name)).filter((n): n is string => n !== undefined),
    );
    return new RedshiftRoleGraph(nested, systemPrivileges, holders);
  }

  /**
   * Why `role` may not be granted, as a path (`"a" → "b": a system role`), or null: the
   * role or any role nested in it, transitively, is a system role (`sys:*`, among them
   * `sys:superuser`), the service account or Latchkey's own, holds a system privilege, or
   * holds privileges on the journal. Breadth-first, so the shortest path is named.
   */
  dangerPath(role: string, ctx: { serviceAccount: string; prefix: string }): string | null {
    const parent = new Map<string, string | null>([[role, null]]);
    const queue = [role];
    const path = (r: string): string => {
      const out: string[] = [];
      for (let cur: string | null | undefined = r; cur; cur = parent.get(cur))
        out.unshift(JSON.stringify(cur));
      return out.join(' \u2192 ');
    };
    for (let i = 0; i < queue.length; i++) {
      const r = queue[i] as string;
      if (r.startsWith('sys:')) return `${path(r)}: a system role`;
      if (r === ctx.serviceAccount || r.startsWith(ctx.prefix))
        return `${path(r)}: managed by Latchkey`;
      const priv = this.systemPrivileges.get(r);
      if (priv !== undefined) return `${path(r)}: holds the system privilege ${priv}`;
      if (this.journalHolders.has(r))
        return `${path(r)}: holds privileges on Latchkey's journal schema`;
      for (const n of this.nested.get(r) ?? []) {
        if (parent.has(n)) continue;
        parent.set(n, r);
        queue.push(n);
      }
    }
    return null;
  }
}

type Priv = 'read' | 'write' | 'admin';
const TABLE_PRIVS: Record<Priv, string> = {
  read: 'SELECT',
  write: 'SELECT, INSERT, UPDATE, DELETE',
  admin: 'ALL PRIVILEGES',
};

export class RedshiftDialect extends PostgresDialect {
  constructor() {
    super({ engine: 'redshift' });
  }

  /** The journal schema of a prefix. */
  meta(scope: SqlScope): string {
    return quoteIdent(`${scope.prefix}meta`);
  }

  /** Creates the journal if missing (idempotent, valid PostgreSQL too). */
  async ensureMeta(scope: SqlScope): Promise<void> {
    const m = this.meta(scope);
    await scope.session.query(`CREATE SCHEMA IF NOT EXISTS ${m}`);
    await scope.session.query(`CREATE TABLE IF NOT EXISTS ${m}.lock (id INTEGER)`);
    await scope.session.query(
      `CREATE TABLE IF NOT EXISTS ${m}.users (username VARCHAR(128) NOT NULL, locked BOOLEAN NOT NULL)`,
    );
    await scope.session.query(
      `CREATE TABLE IF NOT EXISTS ${m}.grants (role VARCHAR(128) NOT NULL, username VARCHAR(128) NOT NULL, record VARCHAR(65535) NOT NULL)`,
    );
    await scope.session.query(
      `CREATE TABLE IF NOT EXISTS ${m}.passwords (username VARCHAR(128) NOT NULL, issued_for VARCHAR(256))`,
    );
    // The journal is the agent's alone: nobody else reads the records or takes the lock.
    await scope.session.query(`REVOKE ALL ON SCHEMA ${m} FROM PUBLIC`);
    await scope.session.query(
      `REVOKE ALL ON TABLE ${m}.lock, ${m}.users, ${m}.grants, ${m}.passwords FROM PUBLIC`,
    );
  }

  /**
   * Records which grant's result carries the user's password (null: a rotate), in one
   * transaction of plain DML, so the record is never missing halfway.
   */
  protected async recordIssuedFor(
    scope: SqlScope,
    username: string,
    issuedFor: string | null,
  ): Promise<void> {
    await this.inTransaction(scope, async () => {
      await scope.session.query(`DELETE FROM ${this.meta(scope)}.passwords WHERE username = $1`, [
        username,
      ]);
      await scope.session.query(
        `INSERT INTO ${this.meta(scope)}.passwords (username, issued_for) VALUES ($1, $2)`,
        [username, issuedFor],
      );
    });
  }

  override async withUserLock<T>(
    scope: SqlScope,
    _username: string,
    fn: () => Promise<T>,
  ): Promise<T> {
    await this.ensureMeta(scope);
    return scope.withLockSession(async (lock) => {
      await lock.query('BEGIN');
      try {
        await lock.query(`LOCK ${this.meta(scope)}.lock`);
        const result = await fn();
        await lock.query('COMMIT');
        return result;
      } catch (err) {
        await lock.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  override async getUser(scope: SqlScope, username: string): Promise<SqlUserInfo | null> {
    const rows = await scope.session.query('SELECT usename FROM pg_user WHERE usename = $1', [
      username,
    ]);
    if (!rows[0]) return null;
    const marks = await scope.session.query(
      `SELECT locked FROM ${this.meta(scope)}.users WHERE username = $1`,
      [username],
    );
    const mark = marks[0];
    const issued =
      mark === undefined
        ? []
        : await scope.session.query(
            `SELECT issued_for FROM ${this.meta(scope)}.passwords WHERE username = $1`,
            [username],
          );
    return {
      username,
      managed: mark !== undefined,
      canLogin: mark !== undefined && mark.locked !== true,
      passwordIssuedFor: str(issued[0]?.issued_for) ?? null,
    };
  }

  override async createUser(scope: SqlScope, spec: CreateUserSpec): Promise<void> {
    if (spec.password === null) {
      throw new LatchkeyError(
        'E_UNSUPPORTED',
        'Redshift grantees get a password (IAM auth is for the service account only)',
      );
    }
    const u = quoteIdent(spec.username);
    const hash = quoteLiteral(redshiftPasswordHash(spec.password, spec.username));
    // Mark first (one DML transaction): a crash before CREATE USER leaves a mark without a
    // user, which getUser ignores and the next createUser replaces; never an unmarked user.
    await this.inTransaction(scope, async () => {
      await scope.session.query(`DELETE FROM ${this.meta(scope)}.users WHERE username = $1`, [
        spec.username,
      ]);
      await scope.session.query(
        `INSERT INTO ${this.meta(scope)}.users (username, locked) VALUES ($1, false)`,
        [spec.username],
      );
      await scope.session.query(`DELETE FROM ${this.meta(scope)}.passwords WHERE username = $1`, [
        spec.username,
      ]);
      await scope.session.query(
        `INSERT INTO ${this.meta(scope)}.passwords (username, issued_for) VALUES ($1, $2)`,
        [spec.username, spec.issuedFor],
      );
    });
    try {
      await scope.session.query(`CREATE USER ${u} PASSWORD ${hash} NOCREATEDB NOCREATEUSER`);
    } catch (err) {
      // Someone else's user of that name appeared meanwhile: take the mark back (only then:
      // after a lost connection the user may well exist, and must stay marked).
      if ((err as { code?: unknown }).code !== '42710') throw err;
      await scope.session
        .query(`DELETE FROM ${this.meta(scope)}.users WHERE username = $1`, [spec.username])
        .catch(() => undefined);
      throw err;
    }
  }

  /**
   * Records the grant the password is issued for, then changes it (Redshift user DDL and
   * the journal cannot share a transaction). A crash in between leaves the old password
   * with the new record: a re-run of that same grant then issues a password again.
   */
  override async setPassword(
    scope: SqlScope,
    username: string,
    password: string,
    issuedFor: string | null,
  ): Promise<void> {
    const hash = quoteLiteral(redshiftPasswordHash(password, username));
    await this.recordIssuedFor(scope, username, issuedFor);
    await scope.session.query(`ALTER USER ${quoteIdent(username)} PASSWORD ${hash}`);
  }

  /** Redshift has no NOLOGIN: blocking is `PASSWORD DISABLE`; the grant flow sets a new password to unblock. */
  override async setLogin(scope: SqlScope, username: string, enabled: boolean): Promise<void> {
    if (!enabled) await scope.session.query(`ALTER USER ${quoteIdent(username)} PASSWORD DISABLE`);
    await scope.session.query(
      `UPDATE ${this.meta(scope)}.users SET locked = $2 WHERE username = $1`,
      [username, !enabled],
    );
  }

  override async setLoginExpiry(
    scope: SqlScope,
    username: string,
    expiresAt: Date | null,
  ): Promise<void> {
    const until =
      expiresAt === null
        ? 'infinity'
        : expiresAt.toISOString().replace('T', ' ').replace('Z', '+00');
    await scope.session.query(
      `ALTER USER ${quoteIdent(username)} VALID UNTIL ${quoteLiteral(until)}`,
    );
  }

  override async validateGrant(scope: SqlScope, record: GrantRecord): Promise<void> {
    for (const r of record.resources) {
      checkResourceNotProtected(r, scope.prefix);
      if (r.kind === 'database') quoteIdent(r.database);
      if (r.kind === 'schema') [r.database, r.schema].forEach((n) => quoteIdent(n));
      if (r.kind === 'table')
        [r.database, r.schema ?? 'public', r.table].forEach((n) => quoteIdent(n));
      if (r.kind === 'role') quoteIdent(r.role);
    }
    for (const r of record.resources) {
      if (r.kind === 'database') {
        const rows = await scope.session.query(
          'SELECT 1 FROM svv_redshift_databases WHERE database_name = $1',
          [r.database],
        );
        if (!rows[0])
          throw new LatchkeyError(
            'E_NOT_FOUND',
            `database ${JSON.stringify(r.database)} does not exist`,
          );
      } else if (r.kind === 'schema') {
        const rows = await scope.session.query(
          'SELECT 1 FROM svv_redshift_schemas WHERE database_name = $1 AND schema_name = $2',
          [r.database, r.schema],
        );
        if (!rows[0])
          throw new LatchkeyError(
            'E_NOT_FOUND',
            `schema ${JSON.stringify(r.schema)} does not exist`,
          );
      } else if (r.kind === 'table') {
        const rows = await scope.session.query(
          'SELECT 1 FROM svv_redshift_tables WHERE database_name = $1 AND schema_name = $2 AND table_name = $3',
          [r.database, r.schema ?? 'public', r.table],
        );
        if (!rows[0])
          throw new LatchkeyError(
            'E_NOT_FOUND',
            `table ${JSON.stringify(`${r.schema ?? 'public'}.${r.table}`)} does not exist`,
          );
      } else {
        const rows = await scope.session.query('SELECT 1 FROM svv_roles WHERE role_name = $1', [
          r.role,
        ]);
        if (!rows[0])
          throw new LatchkeyError('E_NOT_FOUND', `role ${JSON.stringify(r.role)} does not exist`);
        const graph = await RedshiftRoleGraph.load(scope.session, scope.prefix);
        const danger = graph.dangerPath(r.role, scope);
        if (danger !== null) {
          throw new LatchkeyError(
            'E_GUARDRAIL',
            `role ${JSON.stringify(r.role)} may not be granted: ${danger}`,
          );
        }
      }
    }
  }

  override async getGrantRole(scope: SqlScope, role: string): Promise<GrantRoleState> {
    const rows = await scope.session.query('SELECT 1 FROM svv_roles WHERE role_name = $1', [role]);
    const recs = await scope.session.query(
      `SELECT record FROM ${this.meta(scope)}.grants WHERE role = $1`,
      [role],
    );
    if (!rows[0] && !recs[0]) return { exists: false };
    const record = parseGrantMarker(role, str(recs[0]?.record), this.hasSchemas);
    return record === null
      ? { exists: true, managed: false }
      : { exists: true, managed: true, record };
  }

  override async createGrantRole(scope: SqlScope, record: GrantRecord): Promise<void> {
    await scope.session.query(`CREATE ROLE ${quoteIdent(record.role)}`);
    await scope.session.query(
      `INSERT INTO ${this.meta(scope)}.grants (role, username, record) VALUES ($1, $2, $3)`,
      [record.role, record.username, grantMarker(record)],
    );
  }

  override async updateGrantRecord(scope: SqlScope, record: GrantRecord): Promise<void> {
    await scope.session.query(`UPDATE ${this.meta(scope)}.grants SET record = $2 WHERE role = $1`, [
      record.role,
      grantMarker(record),
    ]);
  }

  override async grantPrivileges(scope: SqlScope, record: GrantRecord): Promise<void> {
    const role = `ROLE ${quoteIdent(record.role)}`;
    const p = record.permission;
    if (p.kind === 'role') {
      await scope.session.query(`GRANT ROLE ${quoteIdent(p.role)} TO ${role}`);
      return;
    }
    if (p.kind === 'connect') return; // every Redshift user may connect to every database
    const priv: Priv = p.kind;
    for (const db of databasesOf(record.resources)) {
      if (priv === 'admin')
        await scope.session.query(`GRANT CREATE, TEMP ON DATABASE ${quoteIdent(db)} TO ${role}`);
    }
    for (const r of record.resources) {
      if (r.kind === 'database') {
        await scope.onDatabase(r.database, async (s) => {
          const schemas = await s.query(
            `SELECT schema_name FROM svv_redshift_schemas WHERE database_name = $1
                AND schema_name NOT IN ('pg_catalog','information_schema') AND schema_name NOT LIKE 'pg\\_%'
                AND schema_name <> $2 ORDER BY 1`,
            [r.database, journalSchemaName(scope.prefix)],
          );
          for (const row of schemas)
            await this.grantSchema(s, str(row.schema_name) ?? '', role, priv);
        });
      } else if (r.kind === 'schema') {
        await scope.onDatabase(r.database, (s) => this.grantSchema(s, r.schema, role, priv));
      } else if (r.kind === 'table') {
        await scope.onDatabase(r.database, async (s) => {
          const sch = quoteIdent(r.schema ?? 'public');
          await s.query(`GRANT USAGE ON SCHEMA ${sch} TO ${role}`);
          await s.query(
            `GRANT ${TABLE_PRIVS[priv]} ON TABLE ${sch}.${quoteIdent(r.table)} TO ${role}`,
          );
        });
      }
    }
  }

  private async grantSchema(
    s: SqlSession,
    schema: string,
    role: string,
    priv: Priv,
  ): Promise<void> {
    const sch = quoteIdent(schema);
    await s.query(`GRANT ${priv === 'admin' ? 'ALL' : 'USAGE'} ON SCHEMA ${sch} TO ${role}`);
    await s.query(`GRANT ${TABLE_PRIVS[priv]} ON ALL TABLES IN SCHEMA ${sch} TO ${role}`);
    await s.query(
      `ALTER DEFAULT PRIVILEGES IN SCHEMA ${sch} GRANT ${TABLE_PRIVS[priv]} ON TABLES TO ${role}`,
    );
  }

  override async grantRoleToUser(scope: SqlScope, record: GrantRecord): Promise<void> {
    await scope.session.query(
      `GRANT ROLE ${quoteIdent(record.role)} TO ${quoteIdent(record.username)}`,
    );
  }

  /** Default privileges name the role and survive `DROP ROLE … FORCE`: revoke them first. */
  override async revokePrivileges(scope: SqlScope, record: GrantRecord): Promise<void> {
    const role = `ROLE ${quoteIdent(record.role)}`;
    const p = record.permission;
    if (p.kind === 'connect' || p.kind === 'role') return;
    for (const r of record.resources) {
      if (r.kind !== 'schema' && r.kind !== 'database') continue;
      await scope.onDatabase(r.database, async (s) => {
        const schemas =
          r.kind === 'schema'
            ? [r.schema]
            : (
                await s.query(
                  `SELECT DISTINCT schema_name FROM svv_default_privileges WHERE grantee_name = $1 AND grantee_type = 'role'`,
                  [record.role],
                )
              ).map((row) => str(row.schema_name) ?? '');
        for (const schema of schemas.filter((x) => x !== '')) {
          await s.query(
            `ALTER DEFAULT PRIVILEGES IN SCHEMA ${quoteIdent(schema)} REVOKE ALL ON TABLES FROM ${role}`,
          );
        }
      });
    }
  }

  override async dropGrantRole(scope: SqlScope, record: GrantRecord): Promise<void> {
    const exists = await scope.session.query('SELECT 1 FROM svv_roles WHERE role_name = $1', [
      record.role,
    ]);
    if (exists[0]) await scope.session.query(`DROP ROLE ${quoteIdent(record.role)} FORCE`);
    await scope.session.query(`DELETE FROM ${this.meta(scope)}.grants WHERE role = $1`, [
      record.role,
    ]);
  }

  override async listGrantRoles(
    scope: SqlScope,
    filter: { username?: string },
  ): Promise<GrantRecord[]> {
    if (filter.username === undefined) await this.ensureMeta(scope); // a sweep may come first
    const rows =
      filter.username === undefined
        ? await scope.session.query(
            `SELECT role, record FROM ${this.meta(scope)}.grants ORDER BY role`,
          )
        : await scope.session.query(
            `SELECT role, record FROM ${this.meta(scope)}.grants WHERE username = $1 ORDER BY role`,
            [filter.username],
          );
    const out: GrantRecord[] = [];
    for (const row of rows) {
      const rec = parseGrantMarker(str(row.role) ?? '', str(row.record), this.hasSchemas);
      if (rec) out.push(rec);
    }
    return out;
  }

  override async countSessions(scope: SqlScope, username: string): Promise<number> {
    const rows = await scope.session.query(
      'SELECT count(*) AS n FROM stv_sessions WHERE TRIM(user_name) = $1 AND process <> pg_backend_pid()',
      [username],
    );
    return Number(rows[0]?.n ?? 0);
  }

  override async terminateSessions(scope: SqlScope, username: string): Promise<number> {
    const rows = await scope.session.query(
      'SELECT process FROM stv_sessions WHERE TRIM(user_name) = $1 AND process <> pg_backend_pid()',
      [username],
    );
    let n = 0;
    for (const row of rows) {
      const r = await scope.session.query('SELECT pg_terminate_backend($1) AS ok', [
        Number(row.process),
      ]);
      if (r[0]?.ok === true || r[0]?.ok === 1) n++;
    }
    return n;
  }

  override async connectableDatabases(scope: SqlScope): Promise<string[]> {
    const rows = await scope.session.query(
      `SELECT database_name FROM svv_redshift_databases WHERE database_type = 'local' ORDER BY 1`,
    );
    const all = rows.map((r) => str(r.database_name) ?? '').filter((d) => d !== '');
    return scope.databases ? all.filter((d) => scope.databases?.includes(d)) : all;
  }

  /**
   * The holding user (Redshift owners are users): `<prefix>holding`, password disabled,
   * no CREATEDB/CREATEUSER, in no role. Created when missing; one that is a superuser or
   * holds a role is refused. Never in the journal's users, so never cleaned up or granted.
   * @throws LatchkeyError E_GUARDRAIL
   */
  async ensureHoldingUser(scope: SqlScope): Promise<string> {
    const name = holdingRoleName(scope.prefix);
    const rows = await scope.session.query(
      'SELECT usesuper, usecreatedb FROM pg_user WHERE usename = $1',
      [name],
    );
    const row = rows[0];
    if (row === undefined) {
      await scope.session.query(
        `CREATE USER ${quoteIdent(name)} PASSWORD DISABLE NOCREATEDB NOCREATEUSER`,
      );
      return name;
    }
    const roles = await scope.session.query(
      'SELECT role_name FROM svv_user_grants WHERE user_name = $1',
      [name],
    );
    if (row.usesuper === true || row.usecreatedb === true || roles.length > 0) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `user ${JSON.stringify(name)} is not Latchkey's powerless holding user (attributes or roles)`,
      );
    }
    return name;
  }

  /**
   * Redshift has no REASSIGN/DROP OWNED, and no ALTER FUNCTION … SECURITY INVOKER: what the
   * user owns is dealt with one object at a time, in every local database:
   * - functions and stored procedures: `SECURITY DEFINER` ones are dropped (they would run
   *   as whoever owns them); the others lose `EXECUTE` for `PUBLIC` and go to the holding
   *   user;
   * - tables and views: every privilege others hold on them is revoked (`PUBLIC`, users,
   *   roles, groups), then they go to the holding user;
   * - schemas: to the holding user.
   * Never to the service account. With `ownedObjects: "drop"` everything is dropped.
   */
  override async dropUser(
    scope: SqlScope,
    username: string,
    options: DropUserOptions,
  ): Promise<void> {
    const exists = await scope.session.query('SELECT usesysid FROM pg_user WHERE usename = $1', [
      username,
    ]);
    if (!exists[0]) {
      await scope.session.query(`DELETE FROM ${this.meta(scope)}.users WHERE username = $1`, [
        username,
      ]);
      return;
    }
    const drop = options.ownedObjects === 'drop';
    const holding = drop ? '' : quoteIdent(await this.ensureHoldingUser(scope));
    for (const db of await this.connectableDatabases(scope)) {
      await this.inDatabaseIfExists(scope, db, async (s) => {
        await this.dealWithRoutines(s, username, drop, holding);
        const owned = await s.query(
          `SELECT schemaname, tablename FROM pg_tables WHERE tableowner = $1
           UNION ALL SELECT schemaname, viewname FROM pg_views WHERE viewowner = $1 ORDER BY 1, 2`,
          [username],
        );
        const shared =
          drop || owned.length === 0
            ? new Map<string, string[]>()
            : await this.othersOnRelations(s, username);
        for (const row of owned) {
          const schema = str(row.schemaname) ?? '';
          const table = str(row.tablename) ?? '';
          const name = `${quoteIdent(schema)}.${quoteIdent(table)}`;
          if (drop) {
            await s.query(`DROP TABLE IF EXISTS ${name} CASCADE`);
            continue;
          }
          await s.query(`REVOKE ALL ON TABLE ${name} FROM PUBLIC`);
          for (const grantee of shared.get(`${schema}\u0000${table}`) ?? [])
            await s.query(`REVOKE ALL ON TABLE ${name} FROM ${grantee}`);
          await s.query(`ALTER TABLE ${name} OWNER TO ${holding}`);
        }
        const schemas = await s.query(
          'SELECT nspname FROM pg_namespace WHERE nspowner = (SELECT usesysid FROM pg_user WHERE usename = $1)',
          [username],
        );
        for (const row of schemas) {
          const sch = quoteIdent(str(row.nspname) ?? '');
          if (drop) await s.query(`DROP SCHEMA IF EXISTS ${sch} CASCADE`);
          else await s.query(`ALTER SCHEMA ${sch} OWNER TO ${holding}`);
        }
      });
    }
    await scope.session.query(`DROP USER IF EXISTS ${quoteIdent(username)}`);
    await scope.session.query(`DELETE FROM ${this.meta(scope)}.users WHERE username = $1`, [
      username,
    ]);
  }

  /**
   * The user's functions and stored procedures in this database (`pg_proc`, with
   * `pg_proc_info.prokind` telling procedures apart): `SECURITY DEFINER` ones (or all,
   * with `drop`) are dropped; the others lose PUBLIC's EXECUTE and go to `holding`.
   */
  private async dealWithRoutines(
    s: SqlSession,
    username: string,
    drop: boolean,
    holding: string,
  ): Promise<void> {
    const routines = await s.query(
      `SELECT n.nspname, p.proname, oidvectortypes(p.proargtypes) AS args, p.prosecdef,
              COALESCE(i.prokind, 'f') AS prokind
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         LEFT JOIN pg_proc_info i ON i.prooid = p.oid
        WHERE p.proowner = (SELECT usesysid FROM pg_user WHERE usename = $1)
        ORDER BY 1, 2, 3`,
      [username],
    );
    for (const r of routines) {
      const kind = str(r.prokind) === 'p' ? 'PROCEDURE' : 'FUNCTION';
      // Argument types as the catalog prints them (format_type: built-in type names).
      const name = `${quoteIdent(str(r.nspname) ?? '')}.${quoteIdent(str(r.proname) ?? '')}(${str(r.args) ?? ''})`;
      if (drop || r.prosecdef === true) {
        await s.query(`DROP ${kind} ${name}`);
        continue;
      }
      await s.query(`REVOKE EXECUTE ON ${kind} ${name} FROM PUBLIC`);
      await s.query(`ALTER ${kind} ${name} OWNER TO ${holding}`);
    }
  }

  /**
   * Who else holds privileges on the user's tables and views (`svv_relation_privileges`),
   * by schema and table, as a REVOKE names them (`"u"`, `ROLE "r"`, `GROUP "g"`, `PUBLIC`).
   */
  private async othersOnRelations(s: SqlSession, username: string): Promise<Map<string, string[]>> {
    const rows = await s.query(
      `SELECT DISTINCT namespace_name, relation_name, identity_name, identity_type
         FROM svv_relation_privileges WHERE NOT (identity_type = 'user' AND identity_name = $1)`,
      [username],
    );
    const out = new Map<string, string[]>();
    for (const r of rows) {
      const type = str(r.identity_type);
      const name = str(r.identity_name) ?? '';
      const grantee =
        type === 'public'
          ? 'PUBLIC'
          : type === 'role'
            ? `ROLE ${quoteIdent(name)}`
            : type === 'group'
              ? `GROUP ${quoteIdent(name)}`
              : type === 'user'
                ? quoteIdent(name)
                : null;
      if (grantee === null || grantee === 'PUBLIC') continue; // PUBLIC: revoked for every object
      const key = `${str(r.namespace_name) ?? ''}\u0000${str(r.relation_name) ?? ''}`;
      out.set(key, [...(out.get(key) ?? []), grantee]);
    }
    return out;
  }
}
