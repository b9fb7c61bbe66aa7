/**
 * The access inventory of a Redshift cluster, from its system views, normalised exactly
 * like PostgreSQL's (`src/drivers/postgres/inventory.ts`, whose expansion it shares):
 *
 * - principals: `svv_user_info` (users; `superuser`, `createdb` as `createrole`-like flag
 *   `createdb`), `svv_roles` (roles, not `sys:*`), and PUBLIC;
 * - memberships: `svv_user_grants` (user → role, admin option), `svv_role_grants`
 *   (role → role);
 * - privileges: `svv_database_privileges`, and per database `svv_schema_privileges`,
 *   `svv_relation_privileges` (identity types `user`, `role`, `public`; `group` holders are
 *   skipped and reported in one warning-free way: they are not listed), and
 *   `svv_default_privileges`;
 * - the agent's users (`<prefix>meta.users`) and grant roles (the grant journal) are
 *   `managedByAgent`, the grant roles with their grant id.
 *
 * Object owners are not listed (the views list granted privileges only), nor datashares.
 */
import type { CleanupOutput, Inventory, StandingCleanupParams } from '../../protocol/messages.js';
import { throwIfAborted } from '../sql/core.js';
import type { SqlScope, SqlSession } from '../sql/dialect.js';
import { databaseId, schemaId, tableId } from '../sql/resources.js';
import { quoteIdent, str } from '../postgres/dialect.js';
import { journalSchemaName } from '../postgres/guardrails.js';
import {
  PUBLIC_ID,
  databaseOfStanding,
  expandInventory,
  planStanding,
  principalIdOf,
  runStanding,
  type Direct,
  type RichEntry,
  type RoleRow,
} from '../postgres/inventory.js';

const SYSTEM_SCHEMA = (col: string): string =>
  `${col} NOT IN ('pg_catalog','information_schema','catalog_history') AND ${col} NOT LIKE 'pg\\_%'`;

const OBJTYPE: Record<string, 'TABLES' | 'FUNCTIONS' | 'PROCEDURES'> = {
  RELATION: 'TABLES',
  TABLE: 'TABLES',
  FUNCTION: 'FUNCTIONS',
  PROCEDURE: 'PROCEDURES',
};

/** Redshift's own users (`rdsdb`): flagged `system`, never changed by a standing cleanup. */
const SYSTEM_USERS = new Set(['rdsdb']);

export interface RedshiftInventoryOptions {
  databases?: readonly string[] | undefined;
  /** Grant roles of the agent: role name → grant id. */
  grantRoles: ReadonlyMap<string, string>;
  /** Users and roles (names) flagged `protected` (config `protectedPrincipals`). */
  protectedPrincipals?: readonly string[] | undefined;
  /** Also return what removing each entry needs (`rich`). */
  withTargets?: boolean;
}

function holderKey(type: unknown, id: unknown): string | null {
  const t = str(type)?.toLowerCase();
  if (t === 'public') return 'public';
  if (t === 'user' || t === 'role') return `${t}:${String(id)}`;
  return null; // groups are not inventoried
}

export async function inventoryRedshift(
  scope: SqlScope,
  opts: RedshiftInventoryOptions,
): Promise<Inventory> {
  return (await inventoryRedshiftRich(scope, opts)).inventory;
}

/** The inventory and, with `withTargets`, what removing each entry needs. */
export async function inventoryRedshiftRich(
  scope: SqlScope,
  opts: RedshiftInventoryOptions,
): Promise<{ inventory: Inventory; rich: RichEntry[] }> {
  const protectedNames = new Set(opts.protectedPrincipals ?? []);
  const s = scope.session;
  const journal = journalSchemaName(scope.prefix);
  const managedUsers = new Set<string>();
  try {
    for (const r of await s.query(`SELECT username FROM ${quoteIdent(journal)}.users`)) {
      const u = str(r.username);
      if (u !== undefined) managedUsers.add(u);
    }
  } catch {
    // No journal yet: the agent made no user.
  }

  const roles = new Map<string, RoleRow>();
  const managed = new Map<string, { grantId?: string }>();
  const principals: Inventory['principals'] = [];
  for (const u of await s.query(
    `SELECT user_id, user_name, superuser, createdb FROM svv_user_info ORDER BY user_name`,
  )) {
    const name = str(u.user_name) ?? '';
    const flags: string[] = [];
    if (u.superuser === true) flags.push('superuser');
    if (u.createdb === true) flags.push('createdb');
    if (name === scope.serviceAccount) flags.push('service-account');
    if (SYSTEM_USERS.has(name)) flags.push('system');
    if (protectedNames.has(name)) flags.push('protected');
    const row: RoleRow = {
      oid: Number(u.user_id),
      name,
      canLogin: true,
      flags,
      superuser: u.superuser === true,
    };
    const key = `user:${String(u.user_id)}`;
    roles.set(key, row);
    const isManaged = managedUsers.has(name);
    if (isManaged) managed.set(key, {});
    principals.push({
      id: principalIdOf(row),
      kind: 'user',
      name,
      canLogin: true,
      managedByAgent: isManaged,
      flags,
    });
  }
  for (const r of await s.query(
    `SELECT role_id, role_name FROM svv_roles WHERE role_name NOT LIKE 'sys:%' ORDER BY role_name`,
  )) {
    const name = str(r.role_name) ?? '';
    const row: RoleRow = {
      oid: Number(r.role_id),
      name,
      canLogin: false,
      flags: protectedNames.has(name) ? ['protected'] : [],
      superuser: false,
    };
    const key = `role:${String(r.role_id)}`;
    roles.set(key, row);
    const grantId = opts.grantRoles.get(name);
    if (grantId !== undefined) managed.set(key, { grantId });
    principals.push({
      id: principalIdOf(row),
      kind: 'role',
      name,
      canLogin: false,
      managedByAgent: grantId !== undefined,
      ...(grantId === undefined ? {} : { grantId }),
      flags: [...row.flags],
    });
  }
  principals.push({
    id: PUBLIC_ID,
    kind: 'public',
    name: 'PUBLIC',
    canLogin: false,
    managedByAgent: false,
    flags: [],
  });

  const memberOf = new Map<string, { role: string; admin: boolean }[]>();
  const member = (from: string, to: string, admin: boolean): void => {
    const list = memberOf.get(from) ?? [];
    list.push({ role: to, admin });
    memberOf.set(from, list);
  };
  for (const g of await s.query(
    `SELECT user_id, role_id, admin_option FROM svv_user_grants ORDER BY user_id, role_id`,
  )) {
    member(`user:${String(g.user_id)}`, `role:${String(g.role_id)}`, g.admin_option === true);
  }
  for (const g of await s.query(
    `SELECT role_id, granted_role_id FROM svv_role_grants ORDER BY role_id, granted_role_id`,
  )) {
    member(`role:${String(g.role_id)}`, `role:${String(g.granted_role_id)}`, false);
  }

  const direct = new Map<string, Direct[]>();
  /** Rows of (holder, object) → privileges, merged in arrival order. */
  const collect = (
    rows: readonly Record<string, unknown>[],
    object: (row: Record<string, unknown>) => Omit<Direct, 'privileges'> | null,
  ): void => {
    const merged = new Map<string, { holder: string; d: Direct }>();
    for (const row of rows) {
      const holder = holderKey(
        row.identity_type ?? row.grantee_type,
        row.identity_id ?? row.grantee_id,
      );
      if (holder === null) continue;
      const base = object(row);
      if (base === null) continue;
      const key = `${holder}\u0000${base.resourceId}\u0000${base.source ?? ''}`;
      const priv = str(row.privilege_type) ?? '';
      const hit = merged.get(key);
      if (hit === undefined) merged.set(key, { holder, d: { ...base, privileges: [priv] } });
      else if (!hit.d.privileges.includes(priv)) hit.d.privileges.push(priv);
    }
    for (const { holder, d } of merged.values()) {
      d.privileges.sort();
      const list = direct.get(holder);
      if (list === undefined) direct.set(holder, [d]);
      else list.push(d);
    }
  };

  const wanted = opts.databases ? new Set(opts.databases) : null;
  const dbRows = await s.query(
    `SELECT database_name, privilege_type, identity_id, identity_type FROM svv_database_privileges
      ORDER BY database_name, identity_type, identity_id, privilege_type`,
  );
  const databases = [
    ...new Set(
      (await s.query(`SELECT database_name FROM svv_redshift_databases ORDER BY database_name`))
        .map((r) => str(r.database_name) ?? '')
        .filter((d) => d !== '' && (wanted === null || wanted.has(d))),
    ),
  ];
  collect(dbRows, (row) => {
    const db = str(row.database_name) ?? '';
    if (!databases.includes(db)) return null;
    return {
      resourceId: databaseId(db),
      target: { kind: 'database', database: db },
      ownership: false,
      defaults: false,
    };
  });

  for (const db of databases) {
    throwIfAborted(scope.signal);
    await scope.onDatabase(db, (ds: SqlSession) => readDatabase(ds, db, journal, collect));
  }

  return expandInventory({
    principals,
    roles,
    memberOf,
    direct,
    managed,
    databases,
    publicKey: 'public',
    skip: () => false,
    withTargets: opts.withTargets === true,
  });
}

async function readDatabase(
  s: SqlSession,
  db: string,
  journal: string,
  collect: (
    rows: readonly Record<string, unknown>[],
    object: (row: Record<string, unknown>) => Omit<Direct, 'privileges'> | null,
  ) => void,
): Promise<void> {
  collect(
    await s.query(
      `SELECT namespace_name, privilege_type, identity_id, identity_type FROM svv_schema_privileges
        WHERE ${SYSTEM_SCHEMA('namespace_name')} AND namespace_name <> $1
        ORDER BY namespace_name, identity_type, identity_id, privilege_type`,
      [journal],
    ),
    (row) => {
      const schema = str(row.namespace_name) ?? '';
      return {
        resourceId: schemaId(db, schema),
        target: { kind: 'schema', database: db, schema },
        ownership: false,
        defaults: false,
      };
    },
  );
  collect(
    await s.query(
      `SELECT namespace_name, relation_name, privilege_type, identity_id, identity_type
         FROM svv_relation_privileges
        WHERE ${SYSTEM_SCHEMA('namespace_name')} AND namespace_name <> $1
        ORDER BY namespace_name, relation_name, identity_type, identity_id, privilege_type`,
      [journal],
    ),
    (row) => {
      const schema = str(row.namespace_name) ?? '';
      const table = str(row.relation_name) ?? '';
      return {
        resourceId: tableId(db, schema, table),
        target: { kind: 'table', database: db, schema, table },
        ownership: false,
        defaults: false,
      };
    },
  );
  collect(
    await s.query(
      `SELECT schema_name, object_type, owner_name, privilege_type, grantee_id, grantee_type
         FROM svv_default_privileges
        WHERE schema_name IS NULL OR schema_name <> $1
        ORDER BY owner_name, schema_name, object_type, grantee_type, grantee_id, privilege_type`,
      [journal],
    ),
    (row) => {
      const objtype = OBJTYPE[(str(row.object_type) ?? '').toUpperCase()];
      if (objtype === undefined) return null;
      const schema = str(row.schema_name) ?? null;
      const owner = str(row.owner_name) ?? '';
      return {
        resourceId: schema === null ? databaseId(db) : schemaId(db, schema),
        target: { kind: 'default', database: db, schema, owner, objtype },
        source: `default privileges of ${owner} on ${objtype.toLowerCase()}`,
        ownership: false,
        defaults: true,
      };
    },
  );
}

// ---------------------------------------------------------------------------------------
// Standing cleanup

/** The grantee as Redshift's REVOKE names it: a user, `ROLE <name>` or `PUBLIC`. */
function granteeSql(principalId: string): string {
  if (principalId === PUBLIC_ID) return 'PUBLIC';
  const colon = principalId.indexOf(':');
  const name = quoteIdent(principalId.slice(colon + 1));
  return principalId.slice(0, colon) === 'role' ? `ROLE ${name}` : name;
}

/** The Redshift statement that removes `r` (its whole entry). */
export function redshiftStatementFor(r: RichEntry): string {
  const e = r.entry;
  const who = granteeSql(e.principalId);
  if (e.via === 'role') return `REVOKE ROLE ${quoteIdent(r.firstRole ?? '')} FROM ${who}`;
  const privs = e.privileges.join(', ');
  const t = r.target;
  switch (t.kind) {
    case 'database':
      return `REVOKE ${privs} ON DATABASE ${quoteIdent(t.database)} FROM ${who}`;
    case 'schema':
      return `REVOKE ${privs} ON SCHEMA ${quoteIdent(t.schema)} FROM ${who}`;
    case 'table':
      return `REVOKE ${privs} ON TABLE ${quoteIdent(t.schema)}.${quoteIdent(t.table)} FROM ${who}`;
    case 'default':
      return `ALTER DEFAULT PRIVILEGES FOR USER ${quoteIdent(t.owner)}${
        t.schema === null ? '' : ` IN SCHEMA ${quoteIdent(t.schema)}`
      } REVOKE ${privs} ON ${t.objtype} FROM ${who}`;
    case 'membership':
      return `REVOKE ROLE ${quoteIdent(t.role)} FROM ${who}`;
    case 'attribute':
      return '';
  }
}

/**
 * Plans (dry run) or applies the removal of standing access on Redshift, with the same
 * refusals as PostgreSQL (`planStanding`): the statements run in one transaction in the
 * one database the targets name.
 */
export async function removeStandingRedshift(
  scope: SqlScope,
  params: StandingCleanupParams,
  opts: RedshiftInventoryOptions,
): Promise<CleanupOutput> {
  const database = databaseOfStanding(params);
  const { inventory, rich } = await inventoryRedshiftRich(scope, {
    ...opts,
    withTargets: true,
    databases: database === undefined ? [] : [database],
  });
  const { outcomes, statements, apply } = planStanding(
    params,
    inventory,
    rich,
    redshiftStatementFor,
  );
  if (apply) await runStanding(scope, database, statements);
  return { dropped: [], kept: [], standing: outcomes, dryRun: !apply };
}
