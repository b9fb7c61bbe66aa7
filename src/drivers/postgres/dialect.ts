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
} from '../sql/dialect.js';
import { grantMarker, parseGrantMarker, parseUserMarker, userMarker } from '../sql/marker.js';
import { databasesOf } from '../sql/resources.js';
import type { SqlEngine } from '../sql/username.js';
import { USERNAME_LIMITS } from '../sql/username.js';
import { mapPgError } from './errors.js';
import { scramVerifier } from './scram.js';

/** PostgreSQL identifiers are at most 63 bytes (NAMEDATALEN - 1); longer ones are silently truncated. */
export const PG_IDENTIFIER_BYTES = 63;

/** Predefined roles that amount to control of the server: never granted through `role:<name>`. */
export const FORBIDDEN_ROLES = new Set([
  'rds_superuser',
  'rds_replication',
  'rds_password',
  'rdsadmin',
  'pg_execute_server_program',
  'pg_read_server_files',
  'pg_write_server_files',
  'pg_signal_backend',
  'pg_checkpoint',
  'pg_create_subscription',
  'pg_database_owner',
]);

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

const SYSTEM_SCHEMA = `n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname !~ '^pg_(toast|temp_)'`;

type Priv = 'read' | 'write' | 'admin';

/** Relations per REVOKE statement. */
const REVOKE_BATCH = 500;

function tablePrivs(p: Priv): string {
  return p === 'read'
    ? 'SELECT'
    : p === 'write'
      ? 'SELECT, INSERT, UPDATE, DELETE'
      : 'ALL PRIVILEGES';
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
    return scope.withLockSession(async (lock) => {
      await lock.query('BEGIN');
      try {
        await lock.query('SELECT pg_advisory_xact_lock($1::bigint)', [lockKey(username)]);
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
    const row = rows[0];
    if (!row) return null;
    const marker = parseUserMarker(str(row.marker));
    return {
      username,
      managed: marker !== null,
      canLogin: row.can_login === true,
      passwordIssuedFor: marker?.issuedFor ?? null,
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

  /** CREATE ROLE, its marker (with the grant the password is issued for) and `rds_iam`: one transaction. */
  async createUser(scope: SqlScope, spec: CreateUserSpec): Promise<void> {
    const u = quoteIdent(spec.username);
    const pw = spec.password === null ? 'PASSWORD NULL' : await this.passwordClause(spec.password);
    const marker = quoteLiteral(userMarker(spec.password === null ? null : spec.issuedFor));
    await this.inTransaction(scope, async () => {
      await scope.session.query(
        `CREATE ROLE ${u} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT ${pw}`,
      );
      await scope.session.query(`COMMENT ON ROLE ${u} IS ${marker}`);
      if (spec.iamAuth) await scope.session.query(`GRANT rds_iam TO ${u}`);
    });
  }

  /** The new verifier and the marker naming the grant it is issued for: one transaction. */
  async setPassword(
    scope: SqlScope,
    username: string,
    password: string,
    issuedFor: string | null,
  ): Promise<void> {
    const u = quoteIdent(username);
    const clause = await this.passwordClause(password);
    await this.inTransaction(scope, async () => {
      await scope.session.query(`ALTER ROLE ${u} WITH ${clause}`);
      await scope.session.query(`COMMENT ON ROLE ${u} IS ${quoteLiteral(userMarker(issuedFor))}`);
    });
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
    }
    const dbs = databasesOf(record.resources);
    for (const db of dbs) {
      const rows = await scope.session.query(
        'SELECT datallowconn FROM pg_database WHERE datname = $1',
        [db],
      );
      if (!rows[0])
        throw new LatchkeyError('E_NOT_FOUND', `database ${JSON.stringify(db)} does not exist`);
      if (rows[0].datallowconn !== true) {
        throw new LatchkeyError(
          'E_GUARDRAIL',
          `database ${JSON.stringify(db)} does not allow connections`,
        );
      }
    }
    for (const r of record.resources) {
      if (r.kind === 'schema') {
        const rows = await scope.onDatabase(r.database, (s) =>
          s.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [r.schema]),
        );
        if (!rows[0])
          throw new LatchkeyError(
            'E_NOT_FOUND',
            `schema ${JSON.stringify(r.schema)} does not exist`,
          );
      } else if (r.kind === 'table') {
        const rows = await scope.onDatabase(r.database, (s) =>
          s.query(
            `SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','v','m','f','p')`,
            [r.schema ?? 'public', r.table],
          ),
        );
        if (!rows[0]) {
          throw new LatchkeyError(
            'E_NOT_FOUND',
            `table ${JSON.stringify(`${r.schema ?? 'public'}.${r.table}`)} does not exist`,
          );
        }
      } else if (r.kind === 'role') {
        await this.checkGrantableRole(scope, r.role);
      }
    }
  }

  protected async checkGrantableRole(scope: SqlScope, role: string): Promise<void> {
    const rows = await scope.session
      .query(
        `SELECT rolsuper OR rolcreaterole OR rolreplication OR rolbypassrls AS powerful,
              pg_has_role(oid, 'rds_superuser', 'MEMBER') AS rds_super
         FROM pg_roles WHERE rolname = $1`,
        [role],
      )
      .catch(async (err: unknown) => {
        // rds_superuser exists only on RDS.
        if ((err as { code?: unknown }).code !== '42704') throw err;
        return scope.session.query(
          `SELECT rolsuper OR rolcreaterole OR rolreplication OR rolbypassrls AS powerful, false AS rds_super
           FROM pg_roles WHERE rolname = $1`,
          [role],
        );
      });
    const row = rows[0];
    if (!row) throw new LatchkeyError('E_NOT_FOUND', `role ${JSON.stringify(role)} does not exist`);
    if (row.powerful === true || row.rds_super === true || FORBIDDEN_ROLES.has(role)) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `role ${JSON.stringify(role)} is too powerful to be granted`,
      );
    }
    if (role === scope.serviceAccount || role.startsWith(scope.prefix)) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `role ${JSON.stringify(role)} is the service account or managed by Latchkey`,
      );
    }
  }

  async getGrantRole(scope: SqlScope, role: string): Promise<GrantRoleState> {
    const rows = await scope.session.query(
      `SELECT shobj_description(r.oid, 'pg_authid') AS marker FROM pg_roles r WHERE r.rolname = $1`,
      [role],
    );
    const row = rows[0];
    if (!row) return { exists: false };
    const record = parseGrantMarker(role, str(row.marker), this.hasSchemas);
    return record === null
      ? { exists: true, managed: false }
      : { exists: true, managed: true, record };
  }

  async createGrantRole(scope: SqlScope, record: GrantRecord): Promise<void> {
    await scope.session.query(`CREATE ROLE ${quoteIdent(record.role)} WITH NOLOGIN INHERIT`);
    await this.updateGrantRecord(scope, record);
  }

  async updateGrantRecord(scope: SqlScope, record: GrantRecord): Promise<void> {
    await scope.session.query(
      `COMMENT ON ROLE ${quoteIdent(record.role)} IS ${quoteLiteral(grantMarker(record))}`,
    );
  }

  /** Statements granting `record` in the maintenance session and per database. */
  async grantPrivileges(scope: SqlScope, record: GrantRecord): Promise<void> {
    const role = quoteIdent(record.role);
    const p = record.permission;
    if (p.kind === 'role') {
      await scope.session.query(`GRANT ${quoteIdent(p.role)} TO ${role}`);
      return;
    }
    for (const db of databasesOf(record.resources)) {
      const dbPriv = p.kind === 'admin' ? 'ALL PRIVILEGES' : 'CONNECT';
      await scope.session.query(`GRANT ${dbPriv} ON DATABASE ${quoteIdent(db)} TO ${role}`);
    }
    if (p.kind === 'connect') return;
    const priv: Priv = p.kind;
    for (const r of record.resources) {
      if (r.kind === 'database') {
        await scope.onDatabase(r.database, async (s) => {
          const schemas = await s.query(
            `SELECT n.nspname FROM pg_namespace n WHERE ${SYSTEM_SCHEMA} ORDER BY 1`,
          );
          for (const row of schemas)
            await this.grantOnSchema(s, str(row.nspname) ?? '', role, priv);
        });
      } else if (r.kind === 'schema') {
        await scope.onDatabase(r.database, (s) => this.grantOnSchema(s, r.schema, role, priv));
      } else if (r.kind === 'table') {
        await scope.onDatabase(r.database, (s) =>
          this.grantOnTable(s, r.schema ?? 'public', r.table, role, priv),
        );
      }
    }
  }

  protected async grantOnSchema(
    s: SqlSession,
    schema: string,
    role: string,
    priv: Priv,
  ): Promise<void> {
    const sch = quoteIdent(schema);
    await s.query(`GRANT ${schemaPrivs(priv)} ON SCHEMA ${sch} TO ${role}`);
    await s.query(`GRANT ${tablePrivs(priv)} ON ALL TABLES IN SCHEMA ${sch} TO ${role}`);
    const seq = sequencePrivs(priv);
    if (seq) await s.query(`GRANT ${seq} ON ALL SEQUENCES IN SCHEMA ${sch} TO ${role}`);
    // Future tables: for objects the service account creates, and for those of the schema
    // owner when the service account may act for it.
    for (const owner of await this.defaultPrivilegeOwners(s, schema)) {
      const forRole = owner === null ? '' : `FOR ROLE ${quoteIdent(owner)} `;
      await s.query(
        `ALTER DEFAULT PRIVILEGES ${forRole}IN SCHEMA ${sch} GRANT ${tablePrivs(priv)} ON TABLES TO ${role}`,
      );
      if (seq)
        await s.query(
          `ALTER DEFAULT PRIVILEGES ${forRole}IN SCHEMA ${sch} GRANT ${seq} ON SEQUENCES TO ${role}`,
        );
    }
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

  protected async grantOnTable(
    s: SqlSession,
    schema: string,
    table: string,
    role: string,
    priv: Priv,
  ): Promise<void> {
    const sch = quoteIdent(schema);
    await s.query(`GRANT USAGE ON SCHEMA ${sch} TO ${role}`);
    await s.query(`GRANT ${tablePrivs(priv)} ON TABLE ${sch}.${quoteIdent(table)} TO ${role}`);
    const seq = sequencePrivs(priv);
    if (!seq) return;
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
      await s.query(
        `GRANT ${seq} ON SEQUENCE ${quoteIdent(str(row.schema) ?? '')}.${quoteIdent(str(row.name) ?? '')} TO ${role}`,
      );
    }
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

  protected async revokeInDatabase(
    scope: SqlScope,
    database: string,
    roleName: string,
  ): Promise<void> {
    const role = quoteIdent(roleName);
    const exists = await scope.session.query(
      'SELECT 1 FROM pg_database WHERE datname = $1 AND datallowconn',
      [database],
    );
    if (!exists[0]) return;
    await this.inDatabaseIfExists(scope, database, async (s) => {
      const oidRows = await s.query('SELECT oid FROM pg_roles WHERE rolname = $1', [roleName]);
      const oid = oidRows[0]?.oid;
      if (oid === undefined) return;
      await s.query(`REVOKE ALL PRIVILEGES ON DATABASE ${quoteIdent(database)} FROM ${role}`);
      const defaults = await s.query(
        `SELECT DISTINCT pg_get_userbyid(d.defaclrole) AS owner, n.nspname AS schema, d.defaclobjtype AS objtype
           FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace,
                LATERAL aclexplode(d.defaclacl) a
          WHERE a.grantee = $1`,
        [oid],
      );
      for (const row of defaults) {
        const kind = { r: 'TABLES', S: 'SEQUENCES', f: 'FUNCTIONS', T: 'TYPES', n: 'SCHEMAS' }[
          str(row.objtype) ?? ''
        ];
        if (!kind) continue;
        const schema = str(row.schema);
        await s.query(
          `ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(str(row.owner) ?? '')}${schema ? ` IN SCHEMA ${quoteIdent(schema)}` : ''} REVOKE ALL ON ${kind} FROM ${role}`,
        );
      }
      // Exactly the relations whose ACL names the role, in batches (a schema-wide REVOKE
      // would fail on tables the service account has no rights on at all).
      const rels = await s.query(
        `SELECT DISTINCT n.nspname AS schema, c.relname AS name, c.relkind = 'S' AS is_seq
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL aclexplode(c.relacl) a
          WHERE a.grantee = $1 ORDER BY 1, 2`,
        [oid],
      );
      for (const isSeq of [false, true]) {
        const names = rels
          .filter((r) => (r.is_seq === true) === isSeq)
          .map((r) => `${quoteIdent(str(r.schema) ?? '')}.${quoteIdent(str(r.name) ?? '')}`);
        for (let i = 0; i < names.length; i += REVOKE_BATCH) {
          const list = names.slice(i, i + REVOKE_BATCH).join(', ');
          await s.query(
            `REVOKE ALL PRIVILEGES ON ${isSeq ? 'SEQUENCE' : 'TABLE'} ${list} FROM ${role}`,
          );
        }
      }
      const schemas = await s.query(
        `SELECT n.nspname AS schema FROM pg_namespace n, LATERAL aclexplode(n.nspacl) a WHERE a.grantee = $1`,
        [oid],
      );
      for (const row of schemas) {
        await s.query(`REVOKE ALL ON SCHEMA ${quoteIdent(str(row.schema) ?? '')} FROM ${role}`);
      }
    });
  }

  async dropGrantRole(scope: SqlScope, record: GrantRecord): Promise<void> {
    try {
      await scope.session.query(`DROP ROLE IF EXISTS ${quoteIdent(record.role)}`);
    } catch (err) {
      if ((err as { code?: unknown }).code !== '2BP01') throw err;
      // Privileges left in a database outside the record: revoke everywhere, then retry.
      for (const db of await this.connectableDatabases(scope))
        await this.revokeInDatabase(scope, db, record.role);
      await scope.session.query(`DROP ROLE IF EXISTS ${quoteIdent(record.role)}`);
    }
  }

  async listGrantRoles(scope: SqlScope, filter: { username?: string }): Promise<GrantRecord[]> {
    const rows = await scope.session.query(
      `SELECT r.rolname, shobj_description(r.oid, 'pg_authid') AS marker
         FROM pg_roles r WHERE starts_with(r.rolname, $1) ORDER BY r.rolname`,
      [`${scope.prefix}g_`],
    );
    const out: GrantRecord[] = [];
    for (const row of rows) {
      const rec = parseGrantMarker(str(row.rolname) ?? '', str(row.marker), this.hasSchemas);
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
    const sa = quoteIdent(scope.serviceAccount);
    for (const db of await this.connectableDatabases(scope)) {
      await this.inDatabaseIfExists(scope, db, async (s) => {
        if (options.ownedObjects === 'reassign') await s.query(`REASSIGN OWNED BY ${u} TO ${sa}`);
        await s.query(`DROP OWNED BY ${u}`);
      });
    }
    await scope.session.query(`DROP ROLE IF EXISTS ${u}`);
  }
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
