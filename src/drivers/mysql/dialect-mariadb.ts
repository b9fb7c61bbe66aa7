/**
 * MariaDB 10.6+ flavor.
 *
 * - MariaDB activates one role per session, so each user gets a per-user **default role**
 *   (`<prefix>d_<hash(user@host)>`) that holds the user's grant roles and is set as the
 *   user's default role.
 * - **Marker.** MariaDB has no user comment or attribute. A user is ours when its name
 *   starts with the prefix AND its default role is granted to it (a `mysql.roles_mapping`
 *   row that only an account holding admin option on our role could have created). The
 *   name binds the role to one `user@host`, so granting one user's marker to another proves
 *   nothing.
 * - **Grant records.** MariaDB roles carry no comment either, so the core's grant record
 *   (grant id, user, permission, resources, expiry) is a row of `<metaDatabase>.grants`,
 *   keyed by the role name, written before the role is created and deleted after it is
 *   dropped. A role without a row is not ours; a row without a role is ignored.
 */
import { createHash } from 'node:crypto';
import { LatchkeyError } from '../../errors.js';
import type { GrantRecord, GrantRoleState, Row, SqlSession, SqlUserInfo } from '../sql/dialect.js';
import { BoundedCache } from '../../bounded-cache.js';
import { grantMarker, grantRecordOf } from '../sql/marker.js';
import { shortHash } from '../sql/username.js';
import { mysqlErrno } from './errors.js';
import { mysqlNativePasswordHash } from './password-hash.js';
import {
  bodyLiteral,
  eventTime,
  expiryEventName,
  likePrefix,
  quoteIdent,
  run,
  str,
  type AccountSettings,
  type ExpiryContext,
  type FlavorOps,
  type RequiredPrivilege,
  type Stmt,
} from './dialect.js';

export const MARIADB_NAME_LIMIT = 80;

/** Default roles computed lately (a grant names its user's up to four times). */
const defaultRoles = new BoundedCache<string, string>(256);

/** The per-user default role (also the marker) of `user@host`. */
export function mariadbDefaultRole(user: string, host: string, prefix: string): string {
  return defaultRoles.get(
    `${prefix}\0${user}@${host}`,
    () => `${prefix}d_${shortHash(`${user}@${host}`, 16)}`,
  );
}

/** SHA-256 of a stored authentication string (the record never holds the hash itself). */
export function authFingerprint(authString: string): string {
  return createHash('sha256').update(`latchkey:auth:${authString}`, 'utf8').digest('hex');
}

/** Name of the EVENT that ends grant role `role` at its expiry (at most 64 characters). */
export function mariadbExpiryEvent(role: string, prefix: string): string {
  return expiryEventName(role, prefix);
}

export { eventTime };

/**
 * The expiry EVENT of a grant: at `expiresAt`, on the server, whether or not an agent
 * runs, it does what the agent's revoke does, under the same per-user lock:
 * drop the grant role (its privileges leave every session at once) and its record; when
 * the user has no other grant role left, lock the account and end its sessions.
 * It runs as the service account (DEFINER = CURRENT_USER) and is dropped once it has run.
 */
export function expiryEventStatement(
  meta: string,
  record: GrantRecord,
  ctx: ExpiryContext,
  metaTable: string,
): Stmt {
  if (record.expiresAt === undefined) throw new LatchkeyError('E_INTERNAL', 'no expiry');
  const event = `${quoteIdent(meta)}.${quoteIdent(mariadbExpiryEvent(record.role, ctx.prefix))}`;
  const defaultRole = mariadbDefaultRole(record.username, ctx.host, ctx.prefix);
  const grantPrefix = `${ctx.prefix}g_`;
  const body = [
    'BEGIN',
    `DO GET_LOCK(${bodyLiteral(ctx.lockName)}, 60);`,
    `DROP ROLE IF EXISTS ${quoteIdent(record.role)};`,
    `DELETE FROM ${metaTable} WHERE role = ${bodyLiteral(record.role)};`,
    `IF NOT EXISTS (SELECT 1 FROM mysql.roles_mapping WHERE User = ${bodyLiteral(defaultRole)} AND Host = '' ` +
      `AND LEFT(Role, ${[...grantPrefix].length}) = ${bodyLiteral(grantPrefix)}) THEN`,
    `ALTER USER IF EXISTS ${quoteIdent(record.username)}@${quoteIdent(ctx.host)} ACCOUNT LOCK;`,
    `KILL CONNECTION USER ${quoteIdent(record.username)};`,
    'END IF;',
    `DO RELEASE_LOCK(${bodyLiteral(ctx.lockName)});`,
    'END',
  ].join('\n');
  return {
    sql:
      `CREATE OR REPLACE DEFINER = CURRENT_USER EVENT ${event} ON SCHEDULE AT ${bodyLiteral(eventTime(record.expiresAt))} ` +
      `ON COMPLETION NOT PRESERVE COMMENT ${bodyLiteral(`latchkey: expiry of ${record.role}`)} DO ${body}`,
  };
}

/** A JSON_OBJECT column: mysql2 hands it over parsed (a JSON column) or as text; NULL → none. */
function jsonRow(v: unknown): Row | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'string' || Buffer.isBuffer(v)) {
    const parsed: unknown = JSON.parse(v.toString());
    return typeof parsed === 'object' && parsed !== null ? (parsed as Row) : undefined;
  }
  return typeof v === 'object' ? (v as Row) : undefined;
}

/** errnos of a missing EVENT privilege (the grant then relies on the sweep alone). */
const NO_EVENT_PRIVILEGE = new Set([1044, 1142, 1227]);

/** errnos meaning "the grant-record table or its database does not exist (yet)". */
const NO_TABLE = new Set([1146, 1049]);

export function createMariadbOps(settings: AccountSettings): FlavorOps {
  const meta = `${quoteIdent(settings.metaDatabase)}.${quoteIdent('grants')}`;
  let metaReady: Promise<void> | null = null;

  const account = (user: string, host: string): string => `${quoteIdent(user)}@${quoteIdent(host)}`;
  const role = (name: string): string => quoteIdent(name);

  async function ensureMeta(session: SqlSession): Promise<void> {
    metaReady ??= (async () => {
      await run(session, {
        sql: `CREATE DATABASE IF NOT EXISTS ${quoteIdent(settings.metaDatabase)}`,
      });
      await run(session, {
        sql:
          `CREATE TABLE IF NOT EXISTS ${meta} (` +
          '`role` VARCHAR(128) NOT NULL PRIMARY KEY, `username` VARCHAR(128) NOT NULL, `record` LONGTEXT NOT NULL, ' +
          '`updated_at` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, KEY `by_username` (`username`)' +
          ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
      });
    })().catch((err: unknown) => {
      metaReady = null;
      throw err;
    });
    return metaReady;
  }

  const users = `${quoteIdent(settings.metaDatabase)}.${quoteIdent('users')}`;
  let usersReady: Promise<void> | null = null;

  /** The per-user record: which grant the password is issued for, and a fingerprint of the hash. */
  async function ensureUsers(session: SqlSession): Promise<void> {
    await ensureMeta(session);
    usersReady ??= run(session, {
      sql:
        `CREATE TABLE IF NOT EXISTS ${users} (` +
        '`username` VARCHAR(128) NOT NULL, `host` VARCHAR(255) NOT NULL, `issued_for` VARCHAR(256) NULL, ' +
        '`auth_fp` CHAR(64) NOT NULL, ' +
        '`updated_at` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, PRIMARY KEY (`username`, `host`)' +
        ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
    }).then(
      () => undefined,
      (err: unknown) => {
        usersReady = null;
        throw err;
      },
    );
    return usersReady;
  }

  /** Writes the user record (committed at once: InnoDB, autocommit). */
  async function recordUser(
    session: SqlSession,
    user: string,
    host: string,
    issuedFor: string | null,
    hash: string,
  ): Promise<void> {
    await ensureUsers(session);
    await run(session, {
      sql: `INSERT INTO ${users} (username, host, issued_for, auth_fp) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE issued_for = VALUES(issued_for), auth_fp = VALUES(auth_fp)`,
      values: [user, host, issuedFor, authFingerprint(hash)],
    });
  }

  /** The default role, granted and made default: the marker (idempotent). */
  async function markUser(
    session: SqlSession,
    user: string,
    host: string,
    prefix: string,
  ): Promise<void> {
    const a = account(user, host);
    const d = role(mariadbDefaultRole(user, host, prefix));
    await run(session, { sql: `CREATE ROLE IF NOT EXISTS ${d}` });
    await run(session, { sql: `GRANT ${d} TO ${a}` });
    await run(session, { sql: `SET DEFAULT ROLE ${d} FOR ${a}` });
  }

  async function setPassword(
    session: SqlSession,
    user: string,
    host: string,
    password: string,
    issuedFor: string | null,
  ): Promise<void> {
    const hash = mysqlNativePasswordHash(password);
    // Record first (DDL cannot share a transaction with it): a crash in between leaves the
    // old password with the new record, and a re-run of that grant issues one again.
    await recordUser(session, user, host, issuedFor, hash);
    await run(session, {
      sql: `ALTER USER ${account(user, host)} IDENTIFIED BY PASSWORD ?`,
      values: [hash],
    });
  }

  // getUser's statements (fixed per integration; only the values change).
  const accountCols =
    "SELECT User AS name, JSON_VALUE(Priv, '$.account_locked') AS locked, " +
    "JSON_VALUE(Priv, '$.authentication_string') AS auth";
  const accountFrom = 'FROM mysql.global_priv WHERE User = ? AND Host = ?';
  const markerSql =
    'SELECT 1 AS ok FROM mysql.roles_mapping WHERE User = ? AND Host = ? AND Role = ?';
  const recordSql = `SELECT issued_for, auth_fp FROM ${users} WHERE username = ? AND host = ?`;
  const accountSql = `${accountCols} ${accountFrom}`;
  const combinedSql =
    `${accountCols}, EXISTS (${markerSql}) AS marked, ` +
    `(SELECT JSON_OBJECT('issued_for', issued_for, 'auth_fp', auth_fp) FROM ${users} WHERE username = ? AND host = ?) AS record ${accountFrom}`;

  async function getUser(
    session: SqlSession,
    user: string,
    host: string,
    prefix: string,
  ): Promise<SqlUserInfo | null> {
    const ours = user.startsWith(prefix);
    const markerValues = [user, host, mariadbDefaultRole(user, host, prefix)];
    let row: Row | undefined;
    let marked = false;
    let record: Row | undefined;
    let combined = false;
    if (ours) {
      // The account, its marker and its record in one round trip (once the record table exists).
      try {
        row = (
          await run(session, {
            sql: combinedSql,
            values: [...markerValues, user, host, user, host],
          })
        )[0];
        combined = true;
        if (row === undefined) return null;
        marked = str(row, 'marked') === '1';
        record = jsonRow(row.record);
      } catch (err) {
        if (!NO_TABLE.has(mysqlErrno(err) ?? 0)) throw err;
      }
    }
    if (!combined) {
      row = (await run(session, { sql: accountSql, values: [user, host] }))[0];
    }
    if (row === undefined) return null;
    const locked = str(row, 'locked');
    const canLogin = locked !== '1' && locked !== 'true';
    if (!ours) {
      return { username: user, managed: false, canLogin, passwordIssuedFor: null };
    }
    if (!combined) {
      marked = (await run(session, { sql: markerSql, values: markerValues })).length > 0;
      record = (
        await readMeta(() => run(session, { sql: recordSql, values: [user, host] }), [])
      )[0];
    }
    // Without the default role, the user is ours only when our record, written before
    // CREATE USER, holds the fingerprint of exactly the hash it has: a crash interrupted
    // its creation. Anyone else's user of that name has another hash.
    const incomplete =
      !marked &&
      record !== undefined &&
      str(row, 'auth') !== '' &&
      str(record, 'auth_fp') === authFingerprint(str(row, 'auth'));
    const issued = record === undefined ? '' : str(record, 'issued_for');
    return {
      username: user,
      managed: marked || incomplete,
      canLogin,
      passwordIssuedFor: (marked || incomplete) && issued !== '' ? issued : null,
      ...(incomplete ? { incomplete: true } : {}),
    };
  }

  async function readMeta<T>(fn: () => Promise<T>, empty: T): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (NO_TABLE.has(mysqlErrno(err) ?? 0)) return empty;
      throw err;
    }
  }

  async function unscheduleExpiry(
    session: SqlSession,
    name: string,
    ctx: ExpiryContext,
  ): Promise<void> {
    const event = `${quoteIdent(settings.metaDatabase)}.${quoteIdent(mariadbExpiryEvent(name, ctx.prefix))}`;
    try {
      await run(session, { sql: `DROP EVENT IF EXISTS ${event}` });
    } catch (err) {
      const errno = mysqlErrno(err) ?? 0;
      if (!NO_EVENT_PRIVILEGE.has(errno) && !NO_TABLE.has(errno)) throw err;
    }
  }

  const extraRequiredPrivileges: RequiredPrivilege[] = [
    {
      privilege: 'CONNECTION ADMIN',
      on: '*.*',
      alternatives: ['SUPER'],
      why: "to KILL a grantee's open sessions on revoke",
    },
    {
      privilege: 'CREATE',
      on: { database: settings.metaDatabase },
      why: `to create the grant-record table ${settings.metaDatabase}.grants`,
    },
    {
      privilege: 'EVENT',
      on: { database: settings.metaDatabase },
      why: `to schedule each grant's server-side expiry (an EVENT in ${settings.metaDatabase})`,
    },
  ];

  return {
    engine: 'mariadb',
    accountTable: 'mysql.global_priv',
    maxNameLength: MARIADB_NAME_LIMIT,
    extraRequiredPrivileges,
    account,
    role,

    async createUser(session, user, host, auth, prefix, known): Promise<void> {
      if (auth.password === null) {
        throw new LatchkeyError(
          'E_UNSUPPORTED',
          'grantee IAM authentication is available on RDS for MySQL only, not on MariaDB',
        );
      }
      // The caller (the grant, under the user lock) has usually just read the user.
      const existing = known !== undefined ? known : await getUser(session, user, host, prefix);
      if (existing?.incomplete === true) {
        // Created and recorded by a run that crashed before the marker: mark it, then give
        // it a fresh password for this result (its first one was never delivered).
        await markUser(session, user, host, prefix);
        await setPassword(session, user, host, auth.password, auth.issuedFor);
        return;
      }
      // Mark first: the record (with a fingerprint of the hash about to be set) before the
      // user, so a crash right after CREATE USER leaves a user getUser recognizes as ours
      // (incomplete), never an unmarked one. No IF NOT EXISTS: someone else's user of that
      // name makes this fail, and its hash does not match our record.
      const hash = mysqlNativePasswordHash(auth.password);
      await recordUser(session, user, host, auth.issuedFor, hash);
      await run(session, {
        sql: `CREATE USER ${account(user, host)} IDENTIFIED BY PASSWORD ?`,
        values: [hash],
      });
      await markUser(session, user, host, prefix);
    },

    setPassword,

    dropUserStatements(user, host, prefix): Stmt[] {
      return [
        { sql: `DROP USER IF EXISTS ${account(user, host)}` },
        { sql: `DROP ROLE IF EXISTS ${role(mariadbDefaultRole(user, host, prefix))}` },
      ];
    },

    getUser,

    /** The role and its record in one round trip (the role alone before the record table exists). */
    async getGrantRole(session, name): Promise<GrantRoleState> {
      const roleSql = "FROM mysql.global_priv WHERE User = ? AND Host = ''";
      let rows: Row[];
      try {
        rows = await run(session, {
          sql: `SELECT User AS name, (SELECT record FROM ${meta} WHERE role = ? LIMIT 1) AS record ${roleSql}`,
          values: [name, name],
        });
      } catch (err) {
        if (!NO_TABLE.has(mysqlErrno(err) ?? 0)) throw err;
        rows = await run(session, { sql: `SELECT User AS name ${roleSql}`, values: [name] });
      }
      const first = rows[0];
      if (first === undefined) return { exists: false };
      const text = str(first, 'record');
      const record = grantRecordOf(name, text, false);
      return record === null
        ? { exists: true, managed: false }
        : { exists: true, managed: true, record };
    },

    async createGrantRole(session, record: GrantRecord): Promise<void> {
      await ensureMeta(session);
      await run(session, {
        sql: `INSERT INTO ${meta} (role, username, record) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE username = VALUES(username), record = VALUES(record)`,
        values: [record.role, record.username, grantMarker(record)],
      });
      await run(session, { sql: `CREATE ROLE IF NOT EXISTS ${role(record.role)}` });
    },

    async updateGrantRecord(session, record: GrantRecord): Promise<void> {
      await ensureMeta(session);
      await run(session, {
        sql: `UPDATE ${meta} SET username = ?, record = ? WHERE role = ?`,
        values: [record.username, grantMarker(record), record.role],
      });
    },

    async dropGrantRole(session, name): Promise<void> {
      await run(session, { sql: `DROP ROLE IF EXISTS ${role(name)}` });
      await readMeta(
        () => run(session, { sql: `DELETE FROM ${meta} WHERE role = ?`, values: [name] }),
        [],
      );
    },

    async listGrantRoles(session, prefix, username): Promise<GrantRecord[]> {
      const values: unknown[] = [likePrefix(`${prefix}g_`)];
      let sql =
        `SELECT r.role AS role, r.record AS record FROM ${meta} r ` +
        "JOIN mysql.global_priv g ON g.User = r.role AND g.Host = '' WHERE r.role LIKE ?";
      if (username !== undefined) {
        sql += ' AND r.username = ?';
        values.push(username);
      }
      sql += ' ORDER BY r.role';
      const rows = await readMeta(() => run(session, { sql, values }), []);
      return rows
        .map((r) => grantRecordOf(str(r, 'role'), str(r, 'record'), false))
        .filter(
          (g): g is GrantRecord =>
            g !== null && (username === undefined || g.username === username),
        );
    },

    attachStatements(name, user, host, prefix): Stmt[] {
      return [{ sql: `GRANT ${role(name)} TO ${role(mariadbDefaultRole(user, host, prefix))}` }];
    },

    async scheduleExpiry(session, record, ctx): Promise<void> {
      if (record.expiresAt === undefined) {
        await unscheduleExpiry(session, record.role, ctx);
        return;
      }
      await ensureMeta(session);
      try {
        await run(session, expiryEventStatement(settings.metaDatabase, record, ctx, meta));
      } catch (err) {
        // Without EVENT on the metadata database the sweep alone ends the grant (check says so).
        if (!NO_EVENT_PRIVILEGE.has(mysqlErrno(err) ?? 0)) throw err;
      }
    },

    unscheduleExpiry,

    existingRole(existing): string {
      return role(existing.name);
    },

    definersOf(user, host, prefix): string[] {
      // information_schema prints a role definer as `role@` (views, triggers, events) or
      // `role` (routines).
      const d = mariadbDefaultRole(user, host, prefix);
      return [`${user}@${host}`, `${d}@`, d];
    },

    grantExistingRole(existing, name): Stmt {
      return { sql: `GRANT ${role(existing.name)} TO ${role(name)}` };
    },

    async listRoles(session, prefix) {
      const rows = await run(session, {
        sql: "SELECT User AS name FROM mysql.global_priv WHERE Host = '' AND User NOT LIKE ? ORDER BY User",
        values: [likePrefix(prefix)],
      });
      return rows
        .map((r) => str(r, 'name'))
        .filter((n) => n !== '' && n !== 'PUBLIC')
        .map((name) => ({ name, host: '' }));
    },
  };
}
