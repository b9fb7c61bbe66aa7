import { describe, expect, it } from 'vitest';
import { discoverRedshift } from '../../../../src/drivers/redshift/discover.js';
import type { Row, SqlScope } from '../../../../src/drivers/sql/dialect.js';
import { databaseId, roleId, schemaId, tableId } from '../../../../src/drivers/sql/resources.js';

describe('discoverRedshift', () => {
  it('reads svv_* views from one connection, pages tables by keyset, skips system and managed roles, marks roles leading upward not grantable', async () => {
    const tables = Array.from({ length: 7 }, (_, i) => ({
      schema_name: 'sales',
      table_name: `t${i}`,
      table_type: 'TABLE',
    }));
    const calls: { sql: string; values: readonly unknown[] }[] = [];
    const session = {
      query(sql: string, values: readonly unknown[] = []): Promise<Row[]> {
        calls.push({ sql, values });
        if (sql.includes('FROM svv_redshift_databases')) {
          return Promise.resolve([
            { database_name: 'dev', database_type: 'local' },
            { database_name: 'other', database_type: 'local' },
          ]);
        }
        if (sql.includes('FROM svv_redshift_schemas'))
          return Promise.resolve([{ schema_name: 'sales', schema_type: 'local' }]);
        if (sql.includes('FROM svv_redshift_tables')) {
          const [, s, t] = values as [string, string, string];
          const rest = tables.filter(
            (x) => x.schema_name > s || (x.schema_name === s && x.table_name > t),
          );
          const limit = Number(/LIMIT (\d+)/.exec(sql)?.[1]);
          return Promise.resolve(rest.slice(0, limit));
        }
        if (sql.includes('FROM svv_roles'))
          return Promise.resolve([
            { role_name: 'analyst' },
            { role_name: 'ops' },
            { role_name: 'svc' },
            { role_name: 'wrapper' },
          ]);
        // wrapper → ops_inner → sys:superuser; ops holds a system privilege.
        if (sql.includes('FROM svv_role_grants'))
          return Promise.resolve([
            { role_name: 'wrapper', granted_role_name: 'ops_inner' },
            { role_name: 'ops_inner', granted_role_name: 'sys:superuser' },
            { role_name: 'analyst', granted_role_name: 'readers' },
          ]);
        if (sql.includes('FROM svv_system_privileges'))
          return Promise.resolve([{ identity_name: 'ops', system_privilege: 'ALTER USER' }]);
        return Promise.resolve([]);
      },
    };
    const scope: SqlScope = {
      session,
      onDatabase: (_d, fn) => fn(session),
      withLockSession: (fn) => fn(session),
      signal: new AbortController().signal,
      serviceAccount: 'svc',
      prefix: 'lk_',
    };
    const out = await discoverRedshift(scope, { databases: ['dev'], pageSize: 3 });
    expect(out.resources.map((r) => r.id)).toEqual([
      databaseId('dev'),
      schemaId('dev', 'sales'),
      ...tables.map((t) => tableId('dev', 'sales', t.table_name)),
      roleId('analyst'),
      roleId('ops'),
      roleId('wrapper'),
    ]);
    // Roles whose closure leads upward are listed, not grantable, with the path; no permission.
    const meta = (id: string): Record<string, unknown> | undefined =>
      out.resources.find((r) => r.id === id)?.metadata;
    expect(meta(roleId('analyst'))).toEqual({ grantable: true });
    expect(meta(roleId('ops'))).toEqual({
      grantable: false,
      notGrantableBecause: '"ops": holds the system privilege ALTER USER',
    });
    expect(meta(roleId('wrapper'))).toEqual({
      grantable: false,
      notGrantableBecause: '"wrapper" \u2192 "ops_inner" \u2192 "sys:superuser": a system role',
    });
    expect(out.permissions.map((p) => p.id).filter((id) => id.startsWith('role:'))).toEqual([
      'role:analyst',
    ]);
    expect(out.resources.find((r) => r.id === tableId('dev', 'sales', 't0'))?.parentId).toBe(
      schemaId('dev', 'sales'),
    );
    expect(out.permissions.map((p) => p.id)).toContain('role:analyst');
    // 7 tables in pages of 3: three queries, each resuming after the last row seen.
    const pages = calls.filter((c) => c.sql.includes('svv_redshift_tables'));
    expect(pages.map((c) => c.values)).toEqual([
      ['dev', '', ''],
      ['dev', 'sales', 't2'],
      ['dev', 'sales', 't5'],
    ]);
    expect(calls.find((c) => c.sql.includes('svv_roles'))?.values).toEqual(['lk\\_%']);
  });
});
