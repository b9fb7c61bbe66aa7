/**
 * The Redshift inventory from its system views. Redshift is not reachable here: a fake
 * session answers the svv_* queries with rows shaped as Redshift documents them, and the
 * test asserts the exact inventory, chains included, and the queries it sent.
 */
import { describe, expect, it } from 'vitest';
import {
  inventoryRedshift,
  removeStandingRedshift,
} from '../../../../src/drivers/redshift/inventory.js';
import type { Row, SqlScope } from '../../../../src/drivers/sql/dialect.js';
import { databaseId, roleId, schemaId, tableId } from '../../../../src/drivers/sql/resources.js';
import type { InventoryEntry, StandingTarget } from '../../../../src/protocol/messages.js';

const VIEWS: Record<string, Row[]> = {
  '"lk_meta".users': [{ username: 'lk_carol_1234' }],
  svv_user_info: [
    { user_id: 100, user_name: 'alice', superuser: false, createdb: false },
    { user_id: 101, user_name: 'svc', superuser: false, createdb: true },
    { user_id: 1, user_name: 'rdsdb', superuser: true, createdb: true },
    { user_id: 102, user_name: 'lk_carol_1234', superuser: false, createdb: false },
  ],
  svv_roles: [
    { role_id: 500, role_name: 'r1' },
    { role_id: 501, role_name: 'r2' },
    { role_id: 502, role_name: 'r3' },
    { role_id: 510, role_name: 'lk_g_g-1' },
  ],
  svv_user_grants: [
    { user_id: 100, role_id: 500, admin_option: false },
    { user_id: 102, role_id: 510, admin_option: false },
  ],
  svv_role_grants: [
    { role_id: 500, granted_role_id: 501 },
    { role_id: 501, granted_role_id: 502 },
  ],
  svv_database_privileges: [
    { database_name: 'dev', privilege_type: 'TEMP', identity_id: 0, identity_type: 'public' },
    { database_name: 'other', privilege_type: 'CREATE', identity_id: 100, identity_type: 'user' },
  ],
  svv_redshift_databases: [{ database_name: 'dev' }, { database_name: 'other' }],
  svv_schema_privileges: [
    { namespace_name: 'sales', privilege_type: 'USAGE', identity_id: 502, identity_type: 'role' },
    { namespace_name: 'sales', privilege_type: 'USAGE', identity_id: 7, identity_type: 'group' },
  ],
  svv_relation_privileges: [
    {
      namespace_name: 'sales',
      relation_name: 'orders',
      privilege_type: 'SELECT',
      identity_id: 502,
      identity_type: 'role',
    },
    {
      namespace_name: 'sales',
      relation_name: 'orders',
      privilege_type: 'INSERT',
      identity_id: 100,
      identity_type: 'user',
    },
    {
      namespace_name: 'sales',
      relation_name: 'orders',
      privilege_type: 'SELECT',
      identity_id: 510,
      identity_type: 'role',
    },
    {
      namespace_name: 'sales',
      relation_name: 'orders',
      privilege_type: 'SELECT',
      identity_id: 0,
      identity_type: 'public',
    },
  ],
  svv_default_privileges: [
    {
      schema_name: 'sales',
      object_type: 'RELATION',
      owner_name: 'svc',
      privilege_type: 'SELECT',
      grantee_id: 100,
      grantee_type: 'user',
    },
  ],
};

function fakeScope(views: Record<string, Row[]> = VIEWS): {
  scope: SqlScope;
  sql: string[];
  dbs: string[];
} {
  const sql: string[] = [];
  const dbs: string[] = [];
  const session = {
    query(text: string): Promise<Row[]> {
      sql.push(text);
      const view = Object.keys(views).find((v) => {
        const at = text.indexOf(`FROM ${v}`);
        const after = text.charAt(at + 5 + v.length);
        return at >= 0 && (after === '' || /\s/.test(after));
      });
      return Promise.resolve(view === undefined ? [] : (views[view] ?? []));
    },
  };
  const scope: SqlScope = {
    session,
    onDatabase: (db, fn) => {
      dbs.push(db);
      return fn(session);
    },
    withLockSession: (fn) => fn(session),
    signal: new AbortController().signal,
    serviceAccount: 'svc',
    prefix: 'lk_',
  };
  return { scope, sql, dbs };
}

const e = (
  principalId: string,
  resourceId: string,
  permission: string,
  privileges: string[],
  via: InventoryEntry['via'],
  extra: Partial<InventoryEntry> = {},
): InventoryEntry => ({
  principalId,
  resourceId,
  permission,
  privileges,
  via,
  managedByAgent: false,
  ...extra,
});

describe('inventoryRedshift', () => {
  it('normalises svv_* rows like PostgreSQL: direct, nested roles with chains, PUBLIC, defaults, agent grants', async () => {
    const { scope, dbs } = fakeScope();
    const inv = await inventoryRedshift(scope, {
      databases: ['dev'],
      grantRoles: new Map([['lk_g_g-1', 'g-1']]),
    });
    expect(dbs).toEqual(['dev']);
    const orders = tableId('dev', 'sales', 'orders');
    const sales = schemaId('dev', 'sales');
    const g = { managedByAgent: true, grantId: 'g-1' };
    expect(inv.entries).toEqual([
      e('public:PUBLIC', databaseId('dev'), 'connect', ['TEMP'], 'public'),
      e('public:PUBLIC', orders, 'read', ['SELECT'], 'public'),
      e('user:alice', orders, 'write', ['INSERT'], 'direct'),
      e('user:alice', sales, 'read', ['SELECT'], 'default-privileges', {
        source: 'default privileges of svc on tables',
      }),
      e('user:alice', roleId('r1'), 'role:r1', ['MEMBER'], 'direct'),
      e('user:alice', roleId('r2'), 'role:r2', ['MEMBER'], 'role', { chain: ['r1', 'r2'] }),
      e('user:alice', roleId('r3'), 'role:r3', ['MEMBER'], 'role', { chain: ['r1', 'r2', 'r3'] }),
      e('user:alice', sales, 'read', ['USAGE'], 'role', { chain: ['r1', 'r2', 'r3'] }),
      e('user:alice', orders, 'read', ['SELECT'], 'role', { chain: ['r1', 'r2', 'r3'] }),
      e('user:rdsdb', databaseId('dev'), 'admin', ['SUPERUSER'], 'attribute', {
        source: 'SUPERUSER',
      }),
      e('user:lk_carol_1234', roleId('lk_g_g-1'), 'role:lk_g_g-1', ['MEMBER'], 'direct', g),
      e('user:lk_carol_1234', orders, 'read', ['SELECT'], 'role', { chain: ['lk_g_g-1'], ...g }),
      e('role:r1', roleId('r2'), 'role:r2', ['MEMBER'], 'direct'),
      e('role:r1', roleId('r3'), 'role:r3', ['MEMBER'], 'role', { chain: ['r2', 'r3'] }),
      e('role:r1', sales, 'read', ['USAGE'], 'role', { chain: ['r2', 'r3'] }),
      e('role:r1', orders, 'read', ['SELECT'], 'role', { chain: ['r2', 'r3'] }),
      e('role:r2', roleId('r3'), 'role:r3', ['MEMBER'], 'direct'),
      e('role:r2', sales, 'read', ['USAGE'], 'role', { chain: ['r3'] }),
      e('role:r2', orders, 'read', ['SELECT'], 'role', { chain: ['r3'] }),
      e('role:r3', sales, 'read', ['USAGE'], 'direct'),
      e('role:r3', orders, 'read', ['SELECT'], 'direct'),
      e('role:lk_g_g-1', orders, 'read', ['SELECT'], 'direct', g),
    ]);
    expect(inv.principals.map((p) => [p.id, p.managedByAgent, p.flags])).toEqual([
      ['user:alice', false, []],
      ['user:svc', false, ['createdb', 'service-account']],
      ['user:rdsdb', false, ['superuser', 'createdb', 'system']],
      ['user:lk_carol_1234', true, []],
      ['role:r1', false, []],
      ['role:r2', false, []],
      ['role:r3', false, []],
      ['role:lk_g_g-1', true, []],
      ['public:PUBLIC', false, []],
    ]);
  });

  it('leaves out the journal schema and system schemas in its queries', async () => {
    const { scope, sql } = fakeScope();
    await inventoryRedshift(scope, { grantRoles: new Map() });
    const perDb = sql.filter((s) => s.includes('svv_relation_privileges'));
    expect(perDb).toHaveLength(2);
    for (const s of perDb) {
      expect(s).toContain("NOT IN ('pg_catalog','information_schema','catalog_history')");
      expect(s).toContain('namespace_name <> $1');
    }
  });
});

describe('removeStandingRedshift', () => {
  const orders = tableId('dev', 'sales', 'orders');
  const sales = schemaId('dev', 'sales');
  /** The views above, plus a grant to the service account. */
  const views: Record<string, Row[]> = {
    ...VIEWS,
    svv_database_privileges: [
      ...(VIEWS.svv_database_privileges ?? []),
      { database_name: 'dev', privilege_type: 'CREATE', identity_id: 101, identity_type: 'user' },
    ],
  };
  const t = (
    principalId: string,
    resourceId: string,
    permission: string,
    via: StandingTarget['via'],
    source?: string,
  ): StandingTarget => ({
    principalId,
    resourceId,
    permission,
    via,
    ...(source === undefined ? {} : { source }),
  });
  const removable = [
    t('user:alice', orders, 'write', 'direct'),
    t('user:alice', orders, 'read', 'role'),
    t('role:r3', sales, 'read', 'direct'),
    t('public:PUBLIC', databaseId('dev'), 'connect', 'public'),
    t('user:alice', sales, 'read', 'default-privileges', 'default privileges of svc on tables'),
    t('role:r1', roleId('r2'), 'role:r2', 'direct'),
  ];
  const statements = [
    'REVOKE INSERT ON TABLE "sales"."orders" FROM "alice"',
    'REVOKE ROLE "r1" FROM "alice"',
    'REVOKE USAGE ON SCHEMA "sales" FROM ROLE "r3"',
    'REVOKE TEMP ON DATABASE "dev" FROM PUBLIC',
    'ALTER DEFAULT PRIVILEGES FOR USER "svc" IN SCHEMA "sales" REVOKE SELECT ON TABLES FROM "alice"',
    'REVOKE ROLE "r2" FROM ROLE "r1"',
  ];
  const opts = { grantRoles: new Map([['lk_g_g-1', 'g-1']]) };
  const changes = (sql: string[]): string[] => sql.filter((s) => !/^\s*SELECT\b/.test(s));

  it('a dry run lists the exact Redshift statements and runs none', async () => {
    const { scope, sql, dbs } = fakeScope(views);
    const out = await removeStandingRedshift(scope, { standing: removable }, opts);
    expect(out.dryRun).toBe(true);
    expect(out.standing?.map((o) => [o.status, o.actions])).toEqual(
      statements.map((s) => ['planned', [s]]),
    );
    expect(dbs).toEqual(['dev']);
    expect(changes(sql)).toEqual([]);
  });

  it('applied: the same statements in one transaction; a gone entry is absent', async () => {
    const { scope, sql } = fakeScope(views);
    const gone = t('user:alice', orders, 'admin', 'direct');
    const out = await removeStandingRedshift(
      scope,
      { standing: [...removable, gone], apply: true },
      opts,
    );
    expect(out.dryRun).toBe(false);
    expect(out.standing?.map((o) => o.status)).toEqual([
      ...removable.map(() => 'removed'),
      'absent',
    ]);
    expect(changes(sql)).toEqual(['BEGIN', ...statements, 'COMMIT']);
  });

  it('refuses the service account, protected and system principals, superusers and the agent objects; nothing runs', async () => {
    const { scope, sql } = fakeScope(views);
    const refused = [
      t('user:svc', databaseId('dev'), 'admin', 'direct'),
      t('role:r3', orders, 'read', 'direct'),
      t('user:rdsdb', databaseId('dev'), 'admin', 'attribute', 'SUPERUSER'),
      t('user:lk_carol_1234', orders, 'read', 'role'),
      t('role:lk_g_g-1', orders, 'read', 'direct'),
    ];
    const out = await removeStandingRedshift(
      scope,
      { standing: [removable[0] as StandingTarget, ...refused], apply: true },
      { ...opts, protectedPrincipals: ['r3'] },
    );
    expect(out.dryRun).toBe(true);
    expect(out.standing?.map((o) => [o.status, o.code])).toEqual([
      ['planned', undefined],
      ...refused.map(() => ['refused', 'E_GUARDRAIL']),
    ]);
    expect(out.standing?.[1]?.reason).toBe('the service account is never changed');
    expect(out.standing?.[2]?.reason).toBe('the principal is marked protected');
    expect(changes(sql)).toEqual([]);
  });

  it('a membership through a protected role is refused', async () => {
    const { scope } = fakeScope(views);
    const out = await removeStandingRedshift(
      scope,
      { standing: [t('user:alice', orders, 'read', 'role')] },
      { ...opts, protectedPrincipals: ['r1'] },
    );
    expect(out.standing?.[0]?.status).toBe('refused');
  });
});
