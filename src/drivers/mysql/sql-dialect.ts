/**
 * The core's `SqlDialect` for MySQL 8 and MariaDB: one implementation over `FlavorOps`
 * (dialect-mysql.ts, dialect-mariadb.ts). An instance is built per integration, since the
 * account host and the MariaDB metadata database come from its config.
 */
import { BoundedCache } from '../../bounded-cache.js';
import { LatchkeyError } from '../../errors.js';
import type {
  CreateUserSpec,
  DropUserOptions,
  GrantRecord,
  GrantRoleState,
  Row,
  SqlDialect,
  SqlScope,
  SqlSession,
  SqlUserInfo,
} from '../sql/dialect.js';
import type { SqlPermission } from '../sql/dialect.js';
import { shortHash } from '../sql/username.js';
import {
  assertObjectName,
  grantDatabasePattern,
  killStatement,
  lockStatement,
  privilegeList,
  privilegeTarget,
  quoteIdent,
  run,
  sessionsStatement,
  str,
  unlockStatement,
  type AccountSettings,
  type ExpiryContext,
  type FlavorOps,
  type PrivilegeTarget,
  type Stmt,
} from './dialect.js';
import { mapMysqlError, mysqlErrno } from './errors.js';
import {
  dangerousGrantLine,
  grantLinesOf,
  parseRoleGrantLine,
  type RoleName,
} from './show-grants.js';

/** Schemas that are never granted and hidden from discover by default. */
export const SYSTEM_SCHEMAS = ['mysql', 'sys', 'information_schema', 'performance_schema'] as const;

export function isSystemSchema(name: string): boolean {
  return (SYSTEM_SCHEMAS as readonly string[]).includes(name.toLowerCase());
}

/**
 * Databases no grant may name and no granted role may hold a privilege on: the system
 * schemas and the agent's own records (`metaDatabase`), compared without regard to case.
 */
export function guardedDatabases(metaDatabase: string): string[] {
  return [...SYSTEM_SCHEMAS, metaDatabase];
}

/** Why `database` may never be a grant target, or null. */
export function forbiddenDatabase(database: string, metaDatabase: string): string | null {
  if (isSystemSchema(database)) return `system schema ${database} cannot be granted`;
  if (database.toLowerCase() === metaDatabase.toLowerCase()) {
    return `database ${database} holds Latchkey's own grant records and cannot be granted`;
  }
  return null;
}

/**
 * Privileges per permission, at database and table level. `connect` (databases only) is
 * `SHOW VIEW` on the database: MySQL has no connect privilege, and a login without any
 * privilege on a database cannot select it (`USE db`, or `database` in the client's
 * connection options); `SHOW VIEW` alone reads no row and no view definition.
 */
export function privilegesFor(permission: SqlPermission): readonly string[] {
  switch (permission.kind) {
    case 'connect':
      return ['SHOW VIEW'];
    case 'read':
      return ['SELECT', 'SHOW VIEW'];
    case 'write':
      return ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'SHOW VIEW'];
    case 'admin':
      return ['ALL PRIVILEGES'];
    case 'role':
      return [];
  }
}

/** Lock names computed lately (a revoke takes its user's lock twice). */
const lockNames = new BoundedCache<string, string>(256);

/** The GET_LOCK name of an account (at most 64 characters, as the server requires). */
export function userLockName(user: string, host: string): string {
  return lockNames.get(`${user}@${host}`, (account) => `latchkey:u:${shortHash(account, 40)}`);
}

/** errno of KILL for a thread that is already gone. */
const ER_NO_SUCH_THREAD = 1094;
/** errno of KILL of another account's thread without CONNECTION_ADMIN / SUPER. */
const ER_KILL_DENIED = 1095;
/** errno of SHOW GRANTS FOR an account or role that does not exist. */
const ER_NONEXISTING_GRANT = 1141;
/** Nested roles followed at most by the `role:<name>` guardrail. */
const MAX_ROLE_CLOSURE = 200;

/**
 * Follows `role` and every role granted to it (the whole closure a grantee would inherit)
 * through `SHOW GRANTS FOR`, and says why one of them must not be handed out (see
 * `dangerousGrantLine`), naming the path: `a → b holds SUPER ON *.*`. Null when none does.
 */
export async function dangerousRolePath(
  session: SqlSession,
  ops: FlavorOps,
  role: RoleName,
  guarded: readonly string[],
): Promise<string | null> {
  const seen = new Set<string>();
  // Roles granted to a role first, then its own lines: MariaDB's SHOW GRANTS FOR a role
  // also prints the grants of the roles it holds, so the deepest holder is named.
  const visit = async (r: RoleName, path: string[]): Promise<string | null> => {
    const key = `${r.name}@${r.host}`;
    if (seen.has(key)) return null;
    seen.add(key);
    if (seen.size > MAX_ROLE_CLOSURE) {
      return `${role.name} has more than ${MAX_ROLE_CLOSURE} nested roles`;
    }
    let lines: string[];
    try {
      lines = grantLinesOf(await run(session, { sql: `SHOW GRANTS FOR ${ops.existingRole(r)}` }));
    } catch (err) {
      if (mysqlErrno(err) === ER_NONEXISTING_GRANT) return null;
      throw err;
    }
    for (const line of lines) {
      const granted = parseRoleGrantLine(line);
      for (const child of granted?.roles ?? []) {
        const why = await visit(child, [...path, child.name]);
        if (why !== null) return why;
      }
    }
    for (const line of lines) {
      const why = dangerousGrantLine(line, guarded);
      if (why !== null) return `${path.join(' → ')} ${why}`;
    }
    return null;
  };
  return visit(role, [role.name]);
}

/** A database (`table` null) or table whose existence a grant checks. */
interface Probe {
  database: string;
  table: string | null;
}

function objectsOf(rows: readonly Row[]): { kind: string; db: string; name: string }[] {
  return rows.map((r) => ({ kind: str(r, 'kind'), db: str(r, 'db'), name: str(r, 'name') }));
}

export interface MysqlDialectOptions extends AccountSettings {
  readonly lockTimeoutSeconds: number;
}

export function createMysqlSqlDialect(ops: FlavorOps, options: MysqlDialectOptions): SqlDialect {
  const host = options.accountHost;
  const guarded = guardedDatabases(options.metaDatabase);
  const expiryContext = (scope: SqlScope, username: string): ExpiryContext => ({
    prefix: scope.prefix,
    host,
    lockName: userLockName(username, host),
  });

  async function sessionIds(session: SqlSession, username: string): Promise<number[]> {
    const rows = await run(session, sessionsStatement(username));
    return rows.map((r) => Number(str(r, 'id'))).filter((n) => Number.isSafeInteger(n));
  }

  /**
   * Views, routines, triggers and events that run as the user (or, on MariaDB, as its
   * default role: `DEFINER = CURRENT_ROLE`, which carries every grant of the user).
   * `onlyIfNoAccount`: none at all when the account exists (one round trip for both
   * questions; the server skips the scans then).
   *
   * On MariaDB the same question costs the server about a quarter of what the four
   * information_schema scans cost (measured: ~8 ms → ~2 ms of server CPU per grant of a
   * new user on an almost empty server): routines and events are read from `mysql.proc`
   * and `mysql.event`, where information_schema reads them from (same DEFINER text,
   * compared as information_schema compares it: case-insensitively; `SELECT` on `mysql.*`
   * is a documented requirement, and `mysql.event` also holds the events of schemas
   * without `EVENT` for the service account, which information_schema.EVENTS hides from
   * it); views and triggers skip `information_schema` and `performance_schema`, where no
   * view or trigger can exist (the server refuses to create one there, even for root, in
   * any letter case), and whose tables the VIEWS scan otherwise opens one by one (most of
   * the cost). The schema names are compared exactly (a database `Performance_Schema` is
   * still scanned).
   *
   * `probes`: names whose existence `validateGrant` checks, answered in the same round trip
   * (rows of kind `found <i>`, `name` holding the database or table name found).
   */
  function definerStatement(
    username: string,
    prefix: string,
    onlyIfNoAccount: boolean,
    probes: readonly Probe[] = [],
  ): Stmt {
    const definers = ops.definersOf(username, host, prefix);
    const list = definers.map(() => '?').join(', ');
    const noAccount = onlyIfNoAccount
      ? ` AND NOT EXISTS (SELECT 1 FROM ${ops.accountTable} WHERE User = ? AND Host = ?)`
      : '';
    const values: unknown[] = onlyIfNoAccount ? [...definers, username, host] : definers;
    let parts: string[];
    if (ops.engine === 'mariadb') {
      const noSystem = "COLLATE utf8mb3_bin NOT IN ('information_schema', 'performance_schema')";
      const definer = 'CONVERT(definer USING utf8mb4) COLLATE utf8mb4_general_ci';
      parts = [
        `SELECT 'VIEW' AS kind, TABLE_SCHEMA AS db, TABLE_NAME AS name FROM information_schema.VIEWS WHERE TABLE_SCHEMA ${noSystem} AND DEFINER IN (${list})${noAccount}`,
        `SELECT type, db, name FROM mysql.proc WHERE ${definer} IN (${list})${noAccount}`,
        `SELECT 'TRIGGER', TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA ${noSystem} AND DEFINER IN (${list})${noAccount}`,
        `SELECT 'EVENT', db, name FROM mysql.event WHERE ${definer} IN (${list})${noAccount}`,
      ];
    } else {
      parts = [
        `SELECT 'VIEW' AS kind, TABLE_SCHEMA AS db, TABLE_NAME AS name FROM information_schema.VIEWS WHERE DEFINER IN (${list})${noAccount}`,
        `SELECT ROUTINE_TYPE, ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema.ROUTINES WHERE DEFINER IN (${list})${noAccount}`,
        `SELECT 'TRIGGER', TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS WHERE DEFINER IN (${list})${noAccount}`,
        `SELECT 'EVENT', EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS WHERE DEFINER IN (${list})${noAccount}`,
      ];
    }
    const all = [...values, ...values, ...values, ...values];
    probes.forEach((probe, i) => {
      if (probe.table === null) {
        parts.push(
          `SELECT 'found ${i}', SCHEMA_NAME, SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`,
        );
        all.push(probe.database);
      } else {
        parts.push(
          `SELECT 'found ${i}', TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
        );
        all.push(probe.database, probe.table);
      }
    });
    return { sql: parts.join(' UNION ALL '), values: all };
  }

  async function definerObjects(
    session: SqlSession,
    username: string,
    prefix: string,
  ): Promise<{ kind: string; db: string; name: string }[]> {
    return objectsOf(await run(session, definerStatement(username, prefix, false)));
  }

  const dialect: SqlDialect = {
    engine: ops.engine,
    maxUsernameLength: ops.maxNameLength,
    hasSchemas: false,

    quoteIdent,

    quoteLiteral(value: string): string {
      // Only `'` is doubled; a backslash means different things under NO_BACKSLASH_ESCAPES,
      // so it is refused rather than guessed.
      if (value.includes('\\') || value.includes('\0')) {
        throw new LatchkeyError(
          'E_INVALID',
          'value contains a backslash or NUL and cannot be a literal',
        );
      }
      return `'${value.replace(/'/g, "''")}'`;
    },

    async withUserLock<T>(scope: SqlScope, username: string, fn: () => Promise<T>): Promise<T> {
      const name = userLockName(username, host);
      const rows = await run(scope.session, lockStatement(name, options.lockTimeoutSeconds));
      const got = rows[0] === undefined ? '' : str(rows[0], 'got');
      if (got !== '1') {
        throw new LatchkeyError(
          'E_CONFLICT',
          `another operation on user ${username} holds its lock (waited ${options.lockTimeoutSeconds}s); retry`,
        );
      }
      try {
        return await fn();
      } finally {
        if (!scope.signal.aborted) {
          await run(scope.session, unlockStatement(name)).catch(() => undefined);
        }
      }
    },

    getUser(scope: SqlScope, username: string): Promise<SqlUserInfo | null> {
      return ops.getUser(scope.session, username, host, scope.prefix);
    },

    async createUser(scope: SqlScope, spec: CreateUserSpec): Promise<void> {
      await ops.createUser(
        scope.session,
        spec.username,
        host,
        {
          password: spec.iamAuth ? null : spec.password,
          issuedFor: spec.iamAuth ? null : spec.issuedFor,
        },
        scope.prefix,
        spec.known,
      );
    },

    async setPassword(
      scope: SqlScope,
      username: string,
      password: string,
      issuedFor: string | null,
    ): Promise<void> {
      await ops.setPassword(scope.session, username, host, password, issuedFor);
    },

    async setLogin(scope: SqlScope, username: string, enabled: boolean): Promise<void> {
      await run(scope.session, {
        sql: `ALTER USER ${ops.account(username, host)} ACCOUNT ${enabled ? 'UNLOCK' : 'LOCK'}`,
      });
    },

    async validateGrant(scope: SqlScope, record: GrantRecord): Promise<void> {
      if (record.role.length > ops.maxNameLength) {
        throw new LatchkeyError(
          'E_INVALID',
          `grant role name longer than ${ops.maxNameLength} characters`,
        );
      }
      // A new account must not bring objects left by an earlier account of the same name
      // (usernames are deterministic) back to life with this grant's rights. On MariaDB the
      // existence of the grant's databases and tables is asked in the same round trip.
      const probes: Probe[] = [];
      /** Which probe asks for which resource. */
      const probeOf = new Map<object, number>();
      if (ops.engine === 'mariadb') {
        for (const r of record.resources) {
          if (r.kind !== 'database' && r.kind !== 'table') continue;
          probeOf.set(r, probes.length);
          probes.push({ database: r.database, table: r.kind === 'table' ? r.table : null });
        }
      }
      const rows = await run(
        scope.session,
        definerStatement(record.username, scope.prefix, true, probes),
      );
      {
        const orphans = objectsOf(rows.filter((x) => !str(x, 'kind').startsWith('found ')));
        if (orphans.length > 0) {
          const list = orphans
            .slice(0, 5)
            .map((o) => `${o.kind} ${o.db}.${o.name}`)
            .join(', ');
          throw new LatchkeyError(
            'E_GUARDRAIL',
            `an earlier account ${record.username} left ${orphans.length} object(s) with it as DEFINER (${list}); ` +
              'a new account would give them its rights: drop them first',
          );
        }
      }
      /** Names found: from the probes above, or asked now (MySQL). */
      const found = async (resource: object, stmt: Stmt, name: string): Promise<boolean> => {
        const probe = probeOf.get(resource);
        if (probe === undefined) {
          return (await run(scope.session, stmt)).some((x) => str(x, 'name') === name);
        }
        const kind = `found ${probe}`;
        return rows.some((x) => str(x, 'kind') === kind && str(x, 'name') === name);
      };
      for (const r of record.resources) {
        if (r.kind === 'schema')
          throw new LatchkeyError('E_INVALID', 'MySQL has no schemas; use database resources');
        if (r.kind === 'role') {
          if (r.role.startsWith(scope.prefix)) {
            throw new LatchkeyError(
              'E_GUARDRAIL',
              `role ${r.role} is managed by Latchkey and cannot be granted as a role`,
            );
          }
          const roles = (await ops.listRoles(scope.session, scope.prefix)).filter(
            (x) => x.name === r.role,
          );
          if (roles.length === 0)
            throw new LatchkeyError('E_NOT_FOUND', `role ${r.role} does not exist`);
          for (const existing of roles) {
            const why = await dangerousRolePath(scope.session, ops, existing, guarded);
            if (why !== null) {
              throw new LatchkeyError(
                'E_GUARDRAIL',
                `role ${r.role} cannot be granted: ${why} (a grantee could keep or widen access beyond the grant)`,
              );
            }
          }
          continue;
        }
        assertObjectName(r.database, 'database');
        const forbidden = forbiddenDatabase(r.database, options.metaDatabase);
        if (forbidden !== null) throw new LatchkeyError('E_GUARDRAIL', forbidden);
        if (r.kind === 'database') {
          grantDatabasePattern(r.database); // refuses what cannot be expressed
          const exists = await found(
            r,
            {
              sql: 'SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
              values: [r.database],
            },
            r.database,
          );
          if (!exists) {
            throw new LatchkeyError('E_NOT_FOUND', `database ${r.database} does not exist`);
          }
        } else {
          assertObjectName(r.table, 'table');
          const exists = await found(
            r,
            {
              sql: 'SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
              values: [r.database, r.table],
            },
            r.table,
          );
          if (!exists) {
            throw new LatchkeyError('E_NOT_FOUND', `table ${r.database}.${r.table} does not exist`);
          }
        }
      }
    },

    getGrantRole(scope: SqlScope, role: string): Promise<GrantRoleState> {
      return ops.getGrantRole(scope.session, role);
    },

    async createGrantRole(scope: SqlScope, record: GrantRecord): Promise<void> {
      // The expiry EVENT is scheduled by grantRoleToUser, which every run of a grant
      // reaches: a crash between the role and its event is mended by the re-run.
      await ops.createGrantRole(scope.session, record);
    },

    async updateGrantRecord(scope: SqlScope, record: GrantRecord): Promise<void> {
      await ops.updateGrantRecord(scope.session, record);
      // A re-grant with another expiry (or none) moves (or removes) the server-side expiry.
      await ops.scheduleExpiry?.(scope.session, record, expiryContext(scope, record.username));
    },

    async grantPrivileges(scope: SqlScope, record: GrantRecord): Promise<void> {
      const privileges = privilegesFor(record.permission);
      for (const r of record.resources) {
        if (r.kind === 'role') {
          const roles = await ops.listRoles(scope.session, scope.prefix);
          const existing =
            roles.find((x) => x.name === r.role && (x.host === '' || x.host === '%')) ??
            roles.find((x) => x.name === r.role);
          if (!existing) throw new LatchkeyError('E_NOT_FOUND', `role ${r.role} does not exist`);
          await run(scope.session, ops.grantExistingRole(existing, record.role));
          continue;
        }
        if (privileges.length === 0 || r.kind === 'schema') continue;
        const target: PrivilegeTarget =
          r.kind === 'database'
            ? { kind: 'database', database: r.database }
            : { kind: 'table', database: r.database, table: r.table };
        await run(scope.session, {
          sql: `GRANT ${privilegeList(privileges)} ON ${privilegeTarget(target)} TO ${ops.role(record.role)}`,
        });
      }
    },

    async grantRoleToUser(scope: SqlScope, record: GrantRecord): Promise<void> {
      for (const s of ops.attachStatements(record.role, record.username, host, scope.prefix)) {
        await run(scope.session, s);
      }
      // Server-side expiry (idempotent: CREATE OR REPLACE / IF NOT EXISTS + ALTER).
      if (record.expiresAt !== undefined) {
        await ops.scheduleExpiry?.(scope.session, record, expiryContext(scope, record.username));
      }
    },

    async revokePrivileges(): Promise<void> {
      // Dropping the grant role (dropGrantRole) takes every privilege it holds with it,
      // on both engines, at once for every session: nothing to do before.
    },

    async dropGrantRole(scope: SqlScope, record: GrantRecord): Promise<void> {
      await ops.dropGrantRole(scope.session, record.role);
      await ops.unscheduleExpiry?.(
        scope.session,
        record.role,
        expiryContext(scope, record.username),
      );
    },

    listGrantRoles(scope: SqlScope, filter: { username?: string }): Promise<GrantRecord[]> {
      return ops.listGrantRoles(scope.session, scope.prefix, filter.username);
    },

    async countSessions(scope: SqlScope, username: string): Promise<number> {
      return (await sessionIds(scope.session, username)).length;
    },

    async terminateSessions(scope: SqlScope, username: string): Promise<number> {
      let ended = 0;
      for (const id of await sessionIds(scope.session, username)) {
        try {
          await run(scope.session, killStatement(id));
          ended++;
        } catch (err) {
          const errno = mysqlErrno(err);
          if (errno === ER_NO_SUCH_THREAD) continue;
          if (errno !== ER_KILL_DENIED) throw err;
          // RDS for MySQL 8.0.36+ / 8.4 and RDS for MariaDB do not let CONNECTION_ADMIN or
          // SUPER be granted; RDS's own procedure ends the session (EXECUTE on it needed).
          try {
            await run(scope.session, { sql: 'CALL mysql.rds_kill(?)', values: [id] });
            ended++;
          } catch (rdsErr) {
            if (mysqlErrno(rdsErr) === ER_NO_SUCH_THREAD) continue;
            throw err;
          }
        }
      }
      return ended;
    },

    async dropUser(scope: SqlScope, username: string, opts: DropUserOptions): Promise<void> {
      const objects = await definerObjects(scope.session, username, scope.prefix);
      if (objects.length > 0) {
        if (opts.ownedObjects === 'reassign') {
          const list = objects
            .slice(0, 5)
            .map((o) => `${o.kind} ${o.db}.${o.name}`)
            .join(', ');
          throw new LatchkeyError(
            'E_GUARDRAIL',
            `user ${username} is the DEFINER of ${objects.length} object(s) (${list}); MySQL cannot reassign a definer in place: ` +
              'recreate them with another DEFINER, or set the integration setting ownedObjects to "drop"',
          );
        }
        for (const o of objects) {
          const name = `${quoteIdent(o.db)}.${quoteIdent(o.name)}`;
          const kind = ['VIEW', 'PROCEDURE', 'FUNCTION', 'TRIGGER', 'EVENT'].includes(o.kind)
            ? o.kind
            : null;
          if (kind !== null) await run(scope.session, { sql: `DROP ${kind} IF EXISTS ${name}` });
        }
      }
      for (const s of ops.dropUserStatements(username, host, scope.prefix))
        await run(scope.session, s);
    },

    mapError(err: unknown): LatchkeyError {
      return mapMysqlError(err, 'database operation');
    },
  };
  return dialect;
}
