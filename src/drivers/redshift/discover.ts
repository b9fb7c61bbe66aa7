/**
 * Discovery of a Redshift cluster from its system views, all from one connection:
 * `svv_redshift_databases`, `svv_redshift_schemas`, `svv_redshift_tables` (keyset
 * pagination, like PostgreSQL) and `svv_roles`.
 */
import type { DiscoverOutput } from '../../protocol/messages.js';
import { throwIfAborted } from '../sql/core.js';
import type { SqlScope } from '../sql/dialect.js';
import { journalSchemaName } from '../postgres/guardrails.js';
import { BASE_PERMISSIONS, databaseId, roleId, schemaId, tableId } from '../sql/resources.js';
import { str } from '../postgres/dialect.js';
import { RedshiftRoleGraph } from './dialect.js';

export const REDSHIFT_PAGE_SIZE = 5000;

const SYSTEM_SCHEMAS = `schema_name NOT IN ('pg_catalog','information_schema','catalog_history') AND schema_name NOT LIKE 'pg\\_%'`;

export async function discoverRedshift(
  scope: SqlScope,
  opts: { databases?: readonly string[] | undefined; pageSize?: number } = {},
): Promise<DiscoverOutput> {
  const out: DiscoverOutput = { resources: [], permissions: [...BASE_PERMISSIONS], warnings: [] };
  const pageSize = opts.pageSize ?? REDSHIFT_PAGE_SIZE;
  const wanted = opts.databases ? new Set(opts.databases) : null;
  const dbs = await scope.session.query(
    `SELECT database_name, database_owner, database_type FROM svv_redshift_databases ORDER BY database_name`,
  );
  const names: string[] = [];
  for (const row of dbs) {
    const db = str(row.database_name);
    if (db === undefined || (wanted && !wanted.has(db))) continue;
    names.push(db);
    out.resources.push({
      id: databaseId(db),
      name: db,
      type: 'database',
      metadata: { type: str(row.database_type) ?? null },
    });
  }
  for (const db of names) {
    const schemas = await scope.session.query(
      `SELECT schema_name, schema_type FROM svv_redshift_schemas WHERE database_name = $1 AND ${SYSTEM_SCHEMAS} ORDER BY schema_name`,
      [db],
    );
    const journal = journalSchemaName(scope.prefix);
    for (const row of schemas) {
      const schema = str(row.schema_name) ?? '';
      if (schema === journal) continue; // the agent's own records: never offered
      out.resources.push({
        id: schemaId(db, schema),
        name: schema,
        type: 'schema',
        parentId: databaseId(db),
        metadata: { type: str(row.schema_type) ?? null },
      });
    }
    let after: [string, string] = ['', ''];
    for (;;) {
      throwIfAborted(scope.signal);
      const page = await scope.session.query(
        `SELECT schema_name, table_name, table_type FROM svv_redshift_tables
          WHERE database_name = $1 AND ${SYSTEM_SCHEMAS}
            AND (schema_name > $2 OR (schema_name = $2 AND table_name > $3))
          ORDER BY schema_name, table_name LIMIT ${pageSize}`,
        [db, after[0], after[1]],
      );
      for (const row of page) {
        const schema = str(row.schema_name) ?? '';
        const table = str(row.table_name) ?? '';
        after = [schema, table];
        if (schema === journal) continue;
        out.resources.push({
          id: tableId(db, schema, table),
          name: table,
          type: 'table',
          parentId: schemaId(db, schema),
          metadata: { kind: (str(row.table_type) ?? 'TABLE').toLowerCase(), schema },
        });
      }
      if (page.length < pageSize) break;
    }
  }
  const roles = await scope.session.query(
    `SELECT role_name FROM svv_roles WHERE role_name NOT LIKE 'sys:%' AND role_name NOT LIKE $1 ORDER BY role_name`,
    [`${scope.prefix.replace(/_/g, '\\_')}%`],
  );
  // A role whose closure leads to a system role, a system privilege, the agent's journal
  // or the agent's own roles is listed, marked not grantable, and gets no role:<name>
  // permission (grant would refuse it with E_GUARDRAIL, naming the same path).
  const graph = roles.length > 0 ? await RedshiftRoleGraph.load(scope.session, scope.prefix) : null;
  for (const row of roles) {
    const role = str(row.role_name);
    if (role === undefined || role === scope.serviceAccount) continue;
    const danger = graph?.dangerPath(role, scope) ?? null;
    out.resources.push({
      id: roleId(role),
      name: role,
      type: 'role',
      metadata:
        danger === null ? { grantable: true } : { grantable: false, notGrantableBecause: danger },
    });
    if (danger === null)
      out.permissions.push({ id: `role:${role}`, name: `Member of role ${role}` });
  }
  return out;
}
