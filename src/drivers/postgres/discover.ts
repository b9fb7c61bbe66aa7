/**
 * Discovery of a PostgreSQL server: databases, schemas, tables and views, existing roles.
 *
 * Tables are read in pages (keyset pagination on schema, name; `DISCOVER_PAGE_SIZE` rows
 * a query) so that a database with tens of thousands of tables never becomes one huge
 * result or string in memory at once, and a deadline can stop it between pages.
 */
import type { DiscoverOutput } from '../../protocol/messages.js';
import type { DiscoverSink } from '../driver.js';
import { throwIfAborted } from '../sql/core.js';
import type { SqlScope } from '../sql/dialect.js';
import { BASE_PERMISSIONS, databaseId, roleId, schemaId, tableId } from '../sql/resources.js';
import { str } from './dialect.js';
import { FORBIDDEN_ROLES, RoleGraph, journalSchemaName } from './guardrails.js';
import { mapPgError } from './errors.js';

export const DISCOVER_PAGE_SIZE = 5000;

const RELKIND: Record<string, string> = {
  r: 'table',
  p: 'partitioned table',
  v: 'view',
  m: 'materialized view',
  f: 'foreign table',
};

export interface DiscoverOptions {
  /** Only these databases; default every database the service account can connect to. */
  databases?: readonly string[] | undefined;
  pageSize?: number;
  /**
   * Write the resources here page by page (bounded memory) instead of returning them:
   * the output's `resources` is then empty.
   */
  sink?: DiscoverSink | undefined;
}

export async function discoverPostgres(
  scope: SqlScope,
  opts: DiscoverOptions = {},
): Promise<DiscoverOutput> {
  const out: DiscoverOutput = { resources: [], permissions: [...BASE_PERMISSIONS], warnings: [] };
  const pageSize = opts.pageSize ?? DISCOVER_PAGE_SIZE;
  const sink = opts.sink;
  /** Hands what was found so far to the sink (with one): at most a page is held. */
  const emit = async (): Promise<void> => {
    if (sink === undefined || out.resources.length === 0) return;
    await sink.resources(out.resources.splice(0));
  };
  const dbRows = await scope.session.query(
    `SELECT datname, pg_get_userbyid(datdba) AS owner,
            has_database_privilege(datname, 'CONNECT') AS can_connect
       FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname`,
  );
  const wanted = opts.databases ? new Set(opts.databases) : null;
  for (const row of dbRows) {
    const db = str(row.datname);
    if (db === undefined || (wanted && !wanted.has(db))) continue;
    const dbId = databaseId(db);
    out.resources.push({
      id: dbId,
      name: db,
      type: 'database',
      metadata: { owner: str(row.owner) ?? null },
    });
    if (row.can_connect !== true) {
      out.warnings.push({
        resourceId: dbId,
        code: 'E_PRIVILEGE',
        message: 'the service account may not connect to this database',
      });
      continue;
    }
    throwIfAborted(scope.signal);
    try {
      await scope.onDatabase(db, async (s) => {
        const schemas = await s.query(
          `SELECT n.nspname, pg_get_userbyid(n.nspowner) AS owner FROM pg_namespace n
            WHERE n.nspname <> 'information_schema' AND lower(n.nspname) NOT LIKE 'pg\\_%'
              AND n.nspname <> $1
            ORDER BY n.nspname`,
          [journalSchemaName(scope.prefix)],
        );
        for (const sr of schemas) {
          const schema = str(sr.nspname) ?? '';
          out.resources.push({
            id: schemaId(db, schema),
            name: schema,
            type: 'schema',
            parentId: dbId,
            metadata: { owner: str(sr.owner) ?? null },
          });
        }
        let after: [string, string] = ['', ''];
        for (;;) {
          throwIfAborted(scope.signal);
          const page = await s.query(
            `SELECT n.nspname, c.relname, c.relkind
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r','p','v','m','f') AND NOT c.relispartition
                AND n.nspname <> 'information_schema' AND lower(n.nspname) NOT LIKE 'pg\\_%'
                AND n.nspname <> $4
                AND (n.nspname, c.relname) > ($1::name, $2::name)
              ORDER BY n.nspname, c.relname LIMIT $3`,
            [after[0], after[1], pageSize, journalSchemaName(scope.prefix)],
          );
          for (const tr of page) {
            const schema = str(tr.nspname) ?? '';
            const table = str(tr.relname) ?? '';
            out.resources.push({
              id: tableId(db, schema, table),
              name: table,
              type: 'table',
              parentId: schemaId(db, schema),
              metadata: { kind: RELKIND[str(tr.relkind) ?? ''] ?? 'table', schema },
            });
            after = [schema, table];
          }
          await emit();
          if (page.length < pageSize) break;
        }
      });
    } catch (err) {
      const e = mapPgError(err);
      if (e.code === 'E_CANCELLED' || e.code === 'E_TIMEOUT') throw e;
      out.warnings.push({ resourceId: dbId, code: e.code, message: e.message });
    }
  }
  const roles = await scope.session.query(
    `SELECT rolname, rolcanlogin FROM pg_roles
      WHERE NOT rolsuper AND NOT rolcreaterole AND NOT rolreplication AND NOT rolbypassrls
        AND rolname !~ '^(pg_|rds)' AND NOT starts_with(rolname, $1) AND rolname <> $2
      ORDER BY rolname`,
    [scope.prefix, scope.serviceAccount],
  );
  // A role whose membership closure leads upward is listed, marked not grantable, and
  // gets no role:<name> permission (grant would refuse it with E_GUARDRAIL).
  const graph = roles.length > 0 ? await RoleGraph.load(scope.session) : null;
  for (const rr of roles) {
    const role = str(rr.rolname);
    if (role === undefined || FORBIDDEN_ROLES.has(role)) continue;
    const danger =
      graph?.dangerPath(role, { serviceAccount: scope.serviceAccount, prefix: scope.prefix }) ??
      null;
    out.resources.push({
      id: roleId(role),
      name: role,
      type: 'role',
      metadata:
        danger === null
          ? { canLogin: rr.rolcanlogin === true, grantable: true }
          : { canLogin: rr.rolcanlogin === true, grantable: false, notGrantableBecause: danger },
    });
    if (danger === null)
      out.permissions.push({ id: `role:${role}`, name: `Member of role ${role}` });
  }
  await emit();
  return out;
}
