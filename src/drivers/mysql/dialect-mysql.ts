/**
 * MySQL 8.0/8.4 flavor.
 *
 * - Roles are accounts (`` `name`@`%` ``) and a session may have several active, so grant
 *   roles are granted to the user directly and `SET DEFAULT ROLE ALL` makes a new login
 *   have them.
 * - **Marker.** Every user Latchkey creates carries `ATTRIBUTE '{"managedBy":"latchkey",
 *   "kind":"user","v":1,"issuedFor":"<grant id>"}'` (MySQL 8.0.21+), read back from
 *   `INFORMATION_SCHEMA.USER_ATTRIBUTES`, written in the same statement as the user and
 *   as each password change (`issuedFor` names the grant whose result carries the
 *   password; absent after a rotate).
 * - **Passwords** go as `caching_sha2_password` hashes computed here, never in clear.
 * - **Grant records.** A grant role is created in one statement with its record as
 *   attribute (`CREATE USER … PASSWORD EXPIRE ACCOUNT LOCK ATTRIBUTE …`, which is exactly
 *   what `CREATE ROLE` makes, plus the attribute), so no crash can leave an unmarked role.
 * - **Server-side expiry.** A grant with `expiresAt` gets an EVENT in the metadata database
 *   (`mysqlExpiryEventStatements`) that ends it at expiry with no agent running, as on
 *   MariaDB; MySQL has no `KILL CONNECTION USER`, so the event walks the process list.
 */
import { LatchkeyError } from '../../errors.js';
import type { GrantRecord, GrantRoleState, SqlSession, SqlUserInfo } from '../sql/dialect.js';
import { grantMarker, grantRecordOf, parseUserMarker, userMarker } from '../sql/marker.js';
import { cachingSha2PasswordHash } from './password-hash.js';
import { mysqlErrno } from './errors.js';
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

export const MYSQL_NAME_LIMIT = 32;

/** The attribute patch that replaces a grant role's record (`null` removes a key). */
export function grantAttributePatch(record: GrantRecord): string {
  const marker = JSON.parse(grantMarker(record)) as Record<string, unknown>;
  if (record.expiresAt === undefined) marker.expiresAt = null;
  return JSON.stringify(marker);
}

/** errno of ALTER EVENT on an event that does not exist (any more). */
const ER_EVENT_DOES_NOT_EXIST = 1539;

/** errnos of a missing EVENT privilege, or a metadata database that does not exist. */
const NO_EVENT = new Set([1044, 1142, 1227, 1049]);

/**
 * The expiry EVENT of a grant on MySQL 8, as two idempotent statements: create it if
 * missing, then (re)set its time, so that moving an expiry never leaves a moment without
 * one (MySQL has no `CREATE OR REPLACE EVENT`). At `expiresAt`, on the server, whether or
 * not an agent runs, under the agent's own per-user `GET_LOCK`, it does what revoke does:
 * drops the grant role (its record, the role's attribute, goes with it, and its privileges
 * leave every session at once); when the user holds no other grant role, locks the
 * account and ends each of its connections (`KILL CONNECTION` over
 * `information_schema.PROCESSLIST`; one already gone is skipped). It runs as the service
 * account (`DEFINER = CURRENT_USER`) and is dropped once it has run. Only names Latchkey
 * generated reach the body, as quote-doubled literals.
 */
export function mysqlExpiryEventStatements(
  meta: string,
  record: GrantRecord,
  ctx: ExpiryContext,
): Stmt[] {
  if (record.expiresAt === undefined) throw new LatchkeyError('E_INTERNAL', 'no expiry');
  const event = `${quoteIdent(meta)}.${quoteIdent(expiryEventName(record.role, ctx.prefix))}`;
  const grantPrefix = `${ctx.prefix}g_`;
  const at = bodyLiteral(eventTime(record.expiresAt));
  const body = [
    'BEGIN',
    'DECLARE done INT DEFAULT 0;',
    'DECLARE cid BIGINT UNSIGNED;',
    `DECLARE grantee_sessions CURSOR FOR SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ${bodyLiteral(record.username)};`,
    'DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1;',
    'DECLARE CONTINUE HANDLER FOR 1094 BEGIN END;',
    `DO GET_LOCK(${bodyLiteral(ctx.lockName)}, 60);`,
    `DROP USER IF EXISTS ${quoteIdent(record.role)}@${quoteIdent('%')};`,
    `IF NOT EXISTS (SELECT 1 FROM mysql.role_edges WHERE TO_USER = ${bodyLiteral(record.username)} ` +
      `AND TO_HOST = ${bodyLiteral(ctx.host)} AND LEFT(FROM_USER, ${[...grantPrefix].length}) = ${bodyLiteral(grantPrefix)}) THEN`,
    `ALTER USER IF EXISTS ${quoteIdent(record.username)}@${quoteIdent(ctx.host)} ACCOUNT LOCK;`,
    'OPEN grantee_sessions;',
    'kill_each: LOOP',
    'FETCH grantee_sessions INTO cid;',
    'IF done = 1 THEN LEAVE kill_each; END IF;',
    'KILL CONNECTION cid;',
    'END LOOP;',
    'CLOSE grantee_sessions;',
    'END IF;',
    `DO RELEASE_LOCK(${bodyLiteral(ctx.lockName)});`,
    'END',
  ].join('\n');
  return [
    {
      sql:
        `CREATE DEFINER = CURRENT_USER EVENT IF NOT EXISTS ${event} ON SCHEDULE AT ${at} ` +
        `ON COMPLETION NOT PRESERVE COMMENT ${bodyLiteral(`latchkey: expiry of ${record.role}`)} DO ${body}`,
    },
    { sql: `ALTER EVENT ${event} ON SCHEDULE AT ${at}` },
  ];
}

export function createMysqlOps(settings: AccountSettings): FlavorOps {
  const account = (user: string, host: string): string => `${quoteIdent(user)}@${quoteIdent(host)}`;
  const role = (name: string): string => `${quoteIdent(name)}@${quoteIdent('%')}`;
  const extraRequiredPrivileges: RequiredPrivilege[] = [
    {
      privilege: 'ROLE_ADMIN',
      on: '*.*',
      alternatives: ['SUPER'],
      why: 'to grant grant roles to users and set their default roles',
    },
    {
      privilege: 'CONNECTION_ADMIN',
      on: '*.*',
      alternatives: ['SUPER'],
      why: "to KILL a grantee's open sessions on revoke",
    },
    {
      privilege: 'CREATE',
      on: { database: settings.metaDatabase },
      why: `to create the metadata database ${settings.metaDatabase} that holds the expiry events`,
    },
    {
      privilege: 'EVENT',
      on: { database: settings.metaDatabase },
      why: `to schedule each grant's server-side expiry (an EVENT in ${settings.metaDatabase})`,
    },
  ];

  const metaDb = quoteIdent(settings.metaDatabase);
  let metaReady: Promise<void> | null = null;
  async function ensureMeta(session: SqlSession): Promise<void> {
    metaReady ??= run(session, { sql: `CREATE DATABASE IF NOT EXISTS ${metaDb}` }).then(
      () => undefined,
      (err: unknown) => {
        metaReady = null;
        throw err;
      },
    );
    return metaReady;
  }

  async function unscheduleExpiry(
    session: SqlSession,
    name: string,
    ctx: ExpiryContext,
  ): Promise<void> {
    try {
      await run(session, {
        sql: `DROP EVENT IF EXISTS ${metaDb}.${quoteIdent(expiryEventName(name, ctx.prefix))}`,
      });
    } catch (err) {
      if (!NO_EVENT.has(mysqlErrno(err) ?? 0)) throw err;
    }
  }

  return {
    engine: 'mysql',
    accountTable: 'mysql.user',
    maxNameLength: MYSQL_NAME_LIMIT,
    extraRequiredPrivileges,
    account,
    role,

    async createUser(session, user, host, auth): Promise<void> {
      const a = account(user, host);
      // One statement: the user and its marker (with the grant the password is issued for)
      // exist together or not at all (MySQL 8 account DDL is atomic).
      if (auth.password === null) {
        await run(session, {
          sql: `CREATE USER ${a} IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL ATTRIBUTE ?`,
          values: [userMarker()],
        });
        return;
      }
      await run(session, {
        sql: `CREATE USER ${a} IDENTIFIED WITH caching_sha2_password AS ? ATTRIBUTE ?`,
        values: [cachingSha2PasswordHash(auth.password), userMarker(auth.issuedFor)],
      });
    },

    async setPassword(session, user, host, password, issuedFor): Promise<void> {
      // One statement again: the new hash and the attribute patch naming its grant
      // (`null` removes the key: a rotate).
      await run(session, {
        sql: `ALTER USER ${account(user, host)} IDENTIFIED WITH caching_sha2_password AS ? ATTRIBUTE ?`,
        values: [cachingSha2PasswordHash(password), JSON.stringify({ issuedFor })],
      });
    },

    dropUserStatements(user, host): Stmt[] {
      return [{ sql: `DROP USER IF EXISTS ${account(user, host)}` }];
    },

    async getUser(session, user, host, prefix): Promise<SqlUserInfo | null> {
      const rows = await run(session, {
        sql: 'SELECT User AS name, account_locked AS locked FROM mysql.user WHERE User = ? AND Host = ?',
        values: [user, host],
      });
      const row = rows[0];
      if (row === undefined) return null;
      let marker: { issuedFor: string | null } | null = null;
      if (user.startsWith(prefix)) {
        const attrs = await run(session, {
          sql: 'SELECT ATTRIBUTE AS attribute FROM INFORMATION_SCHEMA.USER_ATTRIBUTES WHERE USER = ? AND HOST = ?',
          values: [user, host],
        });
        const first = attrs[0];
        marker = first === undefined ? null : parseUserMarker(str(first, 'attribute'));
      }
      return {
        username: user,
        managed: marker !== null,
        canLogin: str(row, 'locked') !== 'Y',
        passwordIssuedFor: marker?.issuedFor ?? null,
      };
    },

    async getGrantRole(session, name): Promise<GrantRoleState> {
      const rows = await run(session, {
        sql: "SELECT USER AS role, ATTRIBUTE AS attribute FROM INFORMATION_SCHEMA.USER_ATTRIBUTES WHERE USER = ? AND HOST = '%'",
        values: [name],
      });
      const first = rows[0];
      if (first === undefined) return { exists: false };
      const record = grantRecordOf(name, str(first, 'attribute'), false);
      return record === null
        ? { exists: true, managed: false }
        : { exists: true, managed: true, record };
    },

    async createGrantRole(session, record): Promise<void> {
      await run(session, {
        sql: `CREATE USER IF NOT EXISTS ${role(record.role)} PASSWORD EXPIRE ACCOUNT LOCK ATTRIBUTE ?`,
        values: [grantMarker(record)],
      });
    },

    async updateGrantRecord(session, record): Promise<void> {
      await run(session, {
        sql: `ALTER USER ${role(record.role)} ATTRIBUTE ?`,
        values: [grantAttributePatch(record)],
      });
    },

    async dropGrantRole(session, name): Promise<void> {
      await run(session, { sql: `DROP USER IF EXISTS ${role(name)}` });
    },

    async listGrantRoles(session, prefix, username): Promise<GrantRecord[]> {
      const rows = await run(session, {
        sql:
          "SELECT USER AS role, ATTRIBUTE AS attribute FROM INFORMATION_SCHEMA.USER_ATTRIBUTES WHERE HOST = '%' " +
          'AND USER LIKE ? ORDER BY USER',
        values: [likePrefix(`${prefix}g_`)],
      });
      return rows
        .map((r) => grantRecordOf(str(r, 'role'), str(r, 'attribute'), false))
        .filter(
          (g): g is GrantRecord =>
            g !== null && (username === undefined || g.username === username),
        );
    },

    attachStatements(name, user, host): Stmt[] {
      const a = account(user, host);
      return [{ sql: `GRANT ${role(name)} TO ${a}` }, { sql: `SET DEFAULT ROLE ALL TO ${a}` }];
    },

    async scheduleExpiry(session, record, ctx): Promise<void> {
      if (record.expiresAt === undefined) {
        await unscheduleExpiry(session, record.role, ctx);
        return;
      }
      try {
        await ensureMeta(session);
        const [create, move] = mysqlExpiryEventStatements(settings.metaDatabase, record, ctx);
        if (create) await run(session, create);
        // Gone by now (it fired, or its time had passed when created: NOT PRESERVE drops
        // it at once): nothing to move, the grant role it ends is gone or the sweep ends it.
        if (move)
          await run(session, move).catch((err: unknown) => {
            if (mysqlErrno(err) !== ER_EVENT_DOES_NOT_EXIST) throw err;
          });
      } catch (err) {
        // Without CREATE/EVENT on the metadata database the sweep alone ends the grant
        // (check says so).
        if (!NO_EVENT.has(mysqlErrno(err) ?? 0)) throw err;
      }
    },

    unscheduleExpiry,

    existingRole(existing): string {
      return `${quoteIdent(existing.name)}@${quoteIdent(existing.host === '' ? '%' : existing.host)}`;
    },

    definersOf(user, host): string[] {
      return [`${user}@${host}`];
    },

    grantExistingRole(existing, name): Stmt {
      return {
        sql: `GRANT ${quoteIdent(existing.name)}@${quoteIdent(existing.host === '' ? '%' : existing.host)} TO ${role(name)}`,
      };
    },

    async listRoles(session, prefix) {
      const rows = await run(session, {
        sql:
          "SELECT User AS name, Host AS host FROM mysql.user WHERE account_locked = 'Y' AND password_expired = 'Y' " +
          "AND authentication_string = '' AND User NOT LIKE ? ORDER BY User, Host",
        values: [likePrefix(prefix)],
      });
      return rows
        .map((r) => ({ name: str(r, 'name'), host: str(r, 'host') }))
        .filter((r) => r.name !== '');
    },
  };
}
