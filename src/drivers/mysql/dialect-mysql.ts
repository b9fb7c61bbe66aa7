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
 */
import type { GrantRecord, GrantRoleState, SqlUserInfo } from '../sql/dialect.js';
import { grantMarker, parseGrantMarker, parseUserMarker, userMarker } from '../sql/marker.js';
import { cachingSha2PasswordHash } from './password-hash.js';
import {
  likePrefix,
  quoteIdent,
  run,
  str,
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

export function createMysqlOps(): FlavorOps {
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
  ];

  return {
    engine: 'mysql',
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
      const record = parseGrantMarker(name, str(first, 'attribute'), false);
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
        .map((r) => parseGrantMarker(str(r, 'role'), str(r, 'attribute'), false))
        .filter(
          (g): g is GrantRecord =>
            g !== null && (username === undefined || g.username === username),
        );
    },

    attachStatements(name, user, host): Stmt[] {
      const a = account(user, host);
      return [{ sql: `GRANT ${role(name)} TO ${a}` }, { sql: `SET DEFAULT ROLE ALL TO ${a}` }];
    },

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
