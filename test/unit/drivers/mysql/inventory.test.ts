/**
 * The pure half of the MySQL/MariaDB access inventory: decoding stored grants, the
 * MySQL 8 snapshot (which the shared MariaDB cannot produce), chains through nested and
 * cyclic roles, and the removal plan with MySQL's role naming.
 */
import { describe, expect, it } from 'vitest';
import {
  buildInventory,
  decodeMariadbAccess,
  hasWildcard,
  permissionOf,
  planStanding,
  privilegesOfRow,
  privilegesOfTableSet,
  readSnapshot,
  type InventorySnapshot,
} from '../../../../src/drivers/mysql/inventory.js';
import type { Row, SqlSession } from '../../../../src/drivers/sql/dialect.js';

describe('stored grants', () => {
  it('decodes a MariaDB access mask, 64-bit values included', () => {
    // RELOAD (6), SUPER (15), CONNECTION ADMIN (32), as MariaDB 10.11 stores them.
    expect(decodeMariadbAccess('4295000128')).toEqual({
      privileges: ['RELOAD', 'SUPER', 'CONNECTION ADMIN'],
      grantOption: false,
    });
    expect(decodeMariadbAccess('1025')).toEqual({ privileges: ['SELECT'], grantOption: true });
    const all = decodeMariadbAccess('18446744073709551615');
    expect(all.grantOption).toBe(true);
    expect(all.privileges).toHaveLength(38);
    expect(decodeMariadbAccess('0')).toEqual({ privileges: [], grantOption: false });
  });

  it('reads *_priv columns and table privilege sets', () => {
    expect(
      privilegesOfRow({
        Host: '%',
        User: 'a',
        Select_priv: 'Y',
        Insert_priv: 'N',
        Grant_priv: 'Y',
        Show_db_priv: 'Y',
        Create_role_priv: 'Y',
      }),
    ).toEqual({ privileges: ['SELECT', 'SHOW DATABASES', 'CREATE ROLE'], grantOption: true });
    expect(privilegesOfTableSet('Select,Insert,Grant,Delete versioning rows')).toEqual({
      privileges: ['SELECT', 'INSERT', 'DELETE HISTORY'],
      grantOption: true,
    });
    expect(privilegesOfTableSet('')).toEqual({ privileges: [], grantOption: false });
  });

  it('maps privileges to the highest level they reach', () => {
    expect(permissionOf(['SHOW VIEW'], false)).toBe('connect');
    expect(permissionOf(['SELECT', 'SHOW VIEW'], false)).toBe('read');
    expect(permissionOf(['SELECT', 'UPDATE'], false)).toBe('write');
    expect(permissionOf(['SELECT', 'DROP'], false)).toBe('admin');
    expect(permissionOf(['SELECT'], true)).toBe('admin');
  });

  it('tells database patterns from names', () => {
    expect(hasWildcard('app_db')).toBe(true);
    expect(hasWildcard('app\\_db')).toBe(false);
    expect(hasWildcard('app%')).toBe(true);
    expect(hasWildcard('appdb')).toBe(false);
  });
});

/** Answers the MySQL 8 reads of `readSnapshot` from canned rows. */
function fakeMysql8(tables: Record<string, Row[]>): SqlSession & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    query(sql: string): Promise<Row[]> {
      log.push(sql);
      if (sql.startsWith('SELECT CURRENT_USER()')) return Promise.resolve([{ cu: 'svc@%' }]);
      for (const [name, rows] of Object.entries(tables)) {
        if (sql.includes(`FROM ${name}`)) return Promise.resolve(rows);
      }
      return Promise.resolve([]);
    },
  };
}

const userRow = (User: string, Host: string, extra: Row = {}): Row => ({
  User,
  Host,
  account_locked: 'N',
  password_expired: 'N',
  authentication_string: 'x',
  Select_priv: 'N',
  ...extra,
});

describe('MySQL 8 snapshot and inventory', () => {
  async function snapshot(): Promise<{ snap: InventorySnapshot; log: string[] }> {
    const session = fakeMysql8({
      'mysql.user': [
        userRow('svc', '%', { Create_user_priv: 'Y', Grant_priv: 'Y' }),
        userRow('dev', '%'),
        userRow('ops', '10.%', { account_locked: 'Y' }),
        // A role never granted: recognised by its shape.
        userRow('orphan', '%', {
          account_locked: 'Y',
          password_expired: 'Y',
          authentication_string: '',
        }),
        userRow('reader', '%', {
          account_locked: 'Y',
          password_expired: 'Y',
          authentication_string: '',
        }),
        userRow('writer', '%', {
          account_locked: 'Y',
          password_expired: 'Y',
          authentication_string: '',
        }),
        userRow('lk_g_abc', '%', {
          account_locked: 'Y',
          password_expired: 'Y',
          authentication_string: '',
        }),
        userRow('lk_alice', '%'),
      ],
      'mysql.role_edges': [
        { fu: 'reader', fh: '%', tu: 'dev', th: '%', admin: 'N' },
        { fu: 'writer', fh: '%', tu: 'reader', th: '%', admin: 'N' },
        // A cycle: reader → writer → reader.
        { fu: 'reader', fh: '%', tu: 'writer', th: '%', admin: 'N' },
        { fu: 'writer', fh: '%', tu: 'ops', th: '10.%', admin: 'Y' },
        { fu: 'lk_g_abc', fh: '%', tu: 'lk_alice', th: '%', admin: 'N' },
      ],
      'mysql.default_roles': [{ u: 'dev', h: '%', ru: 'reader', rh: '%' }],
      'mysql.global_grants': [
        { u: 'ops', h: '10.%', priv: 'SYSTEM_USER', wgo: 'N' },
        { u: 'ops', h: '10.%', priv: 'ROLE_ADMIN', wgo: 'N' },
      ],
      'mysql.db': [
        { Host: '%', Db: 'shop', User: 'reader', Select_priv: 'Y', Insert_priv: 'N' },
        { Host: '%', Db: 'latchkey', User: 'dev', Select_priv: 'Y' },
      ],
      'mysql.tables_priv': [
        { user: 'writer', host: '%', db: 'shop', tbl: 'orders', priv: 'Insert,Update' },
        { user: 'lk_g_abc', host: '%', db: 'shop', tbl: 'orders', priv: 'Select' },
      ],
    });
    const snap = await readSnapshot(session, {
      flavor: 'mysql',
      prefix: 'lk_',
      metaDatabase: 'latchkey',
      protectedAccounts: ['ops@10.%'],
      grantRoles: new Map([['lk_g_abc', 'grant-1']]),
      isAgentUser: (user) => Promise.resolve(user === 'lk_alice'),
    });
    return { snap, log: session.log };
  }

  it('reads accounts, roles, edges, default roles, global, dynamic, db and table grants', async () => {
    const { snap, log } = await snapshot();
    expect(log).toEqual([
      'SELECT CURRENT_USER() AS cu',
      'SELECT * FROM mysql.user ORDER BY User, Host',
      'SELECT FROM_USER AS fu, FROM_HOST AS fh, TO_USER AS tu, TO_HOST AS th, WITH_ADMIN_OPTION AS admin FROM mysql.role_edges',
      'SELECT USER AS u, HOST AS h, DEFAULT_ROLE_USER AS ru, DEFAULT_ROLE_HOST AS rh FROM mysql.default_roles',
      'SELECT USER AS u, HOST AS h, PRIV AS priv, WITH_GRANT_OPTION AS wgo FROM mysql.global_grants ORDER BY USER, HOST, PRIV',
      'SELECT * FROM mysql.db ORDER BY User, Host, Db',
      'SELECT User AS user, Host AS host, Db AS db, Table_name AS tbl, Table_priv AS priv FROM mysql.tables_priv ORDER BY User, Host, Db, Table_name',
    ]);
    expect(snap.serviceAccount).toBe('svc@%');
    expect(snap.accounts.filter((a) => a.isRole).map((a) => a.user)).toEqual([
      'orphan',
      'reader',
      'writer',
      'lk_g_abc',
    ]);
    expect(snap.accounts.find((a) => a.user === 'dev')?.defaultRoles).toEqual(['reader@%']);
    expect(snap.agent.users).toEqual(new Set(['lk_alice@%']));
    expect(snap.agent.grantRoles).toEqual(new Map([['lk_g_abc@%', 'grant-1']]));
  });

  it('follows nested and cyclic roles with their chains; flags dangerous global privileges', async () => {
    const { snap } = await snapshot();
    const { inventory } = buildInventory(snap);
    const principal = (id: string) => inventory.principals.find((p) => p.id === id);
    expect(principal('user:ops@10.%')).toEqual({
      id: 'user:ops@10.%',
      kind: 'user',
      name: 'ops@10.%',
      canLogin: false,
      managedByAgent: false,
      flags: ['global-privileges', 'protected', 'role-admin', 'role-admin-option', 'system-user'],
    });
    expect(principal('user:svc@%')?.flags).toEqual([
      'create-user',
      'global-privileges',
      'grant-option',
      'service-account',
    ]);
    expect(principal('role:lk_g_abc')).toMatchObject({ managedByAgent: true, grantId: 'grant-1' });
    const of = (id: string) =>
      inventory.entries
        .filter((e) => e.principalId === id)
        .map((e) => [e.resourceId, e.permission, e.via, e.chain, e.managedByAgent, e.grantId]);
    expect(of('user:dev@%')).toEqual([
      ['database:latchkey', 'read', 'direct', undefined, false, undefined],
      ['database:shop', 'read', 'role', ['reader'], false, undefined],
      ['table:shop/orders', 'write', 'role', ['reader', 'writer'], false, undefined],
    ]);
    expect(of('role:writer')).toEqual([
      ['database:shop', 'read', 'role', ['reader'], false, undefined],
      ['table:shop/orders', 'write', 'direct', undefined, false, undefined],
    ]);
    expect(of('user:lk_alice@%')).toEqual([
      ['table:shop/orders', 'read', 'role', ['lk_g_abc'], true, 'grant-1'],
    ]);
  });

  it('plans MySQL statements: roles as accounts, no default-role statement; refusals', async () => {
    const { snap } = await snapshot();
    const built = buildInventory(snap);
    const plan = (t: Parameters<typeof planStanding>[2]) => planStanding(snap, built, t).outcome;
    expect(
      plan({
        principalId: 'user:dev@%',
        resourceId: 'table:shop/orders',
        permission: 'write',
        via: 'role',
      }),
    ).toEqual({
      target: {
        principalId: 'user:dev@%',
        resourceId: 'table:shop/orders',
        permission: 'write',
        via: 'role',
      },
      status: 'planned',
      actions: ['REVOKE `reader`@`%` FROM `dev`@`%`'],
      reason: 'everything role reader brings is removed from dev',
    });
    expect(
      plan({
        principalId: 'role:writer',
        resourceId: 'table:shop/orders',
        permission: 'write',
        via: 'direct',
      }).actions,
    ).toEqual(['REVOKE INSERT, UPDATE ON `shop`.`orders` FROM `writer`@`%`']);
    const status = (t: Parameters<typeof planStanding>[2]) => {
      const o = plan(t);
      return [o.status, o.code];
    };
    expect(
      status({
        principalId: 'user:dev@%',
        resourceId: 'database:latchkey',
        permission: 'read',
        via: 'direct',
      }),
    ).toEqual(['refused', 'E_GUARDRAIL']);
    expect(
      status({ principalId: 'user:ops@10.%', resourceId: '*', permission: 'admin', via: 'direct' }),
    ).toEqual(['refused', 'E_GUARDRAIL']);
    expect(
      status({ principalId: 'user:svc@%', resourceId: '*', permission: 'admin', via: 'direct' }),
    ).toEqual(['refused', 'E_GUARDRAIL']);
    expect(
      status({
        principalId: 'user:lk_alice@%',
        resourceId: 'table:shop/orders',
        permission: 'read',
        via: 'role',
      }),
    ).toEqual(['refused', 'E_NOT_MANAGED']);
    expect(
      status({
        principalId: 'user:dev@%',
        resourceId: 'database:shop',
        permission: 'write',
        via: 'role',
      }),
    ).toEqual(['absent', undefined]);
    expect(
      status({
        principalId: 'user:nobody@%',
        resourceId: 'database:shop',
        permission: 'read',
        via: 'direct',
      }),
    ).toEqual(['absent', undefined]);
  });
});
