/**
 * The access inventory of a PostgreSQL server (`discover` with `include: ["privileges"]`)
 * and the removal of standing access it lists (`cleanup` with `standing`).
 *
 * Glossary
 * - **holder**: the role an ACL item names (`aclexplode(...).grantee`), or PUBLIC (oid 0).
 * - **direct entry**: a privilege of a holder on a database, schema or table, read from the
 *   catalogs' ACLs (`datacl`, `nspacl`, `relacl`, NULL read as `acldefault(...)`, so the
 *   owner's implicit rights and PUBLIC's default `CONNECT`/`TEMPORARY` on databases show),
 *   or a default privilege (`pg_default_acl`) that will apply to future objects.
 * - **closure**: every role a principal is a member of, directly or through other roles
 *   (`pg_auth_members`), each with its **chain**: the roles from the one the principal is
 *   directly a member of, outwards, to that role (the shortest such path).
 * - **principal**: every role of the cluster except the predefined `pg_*` roles, plus
 *   `public:PUBLIC`. Id `user:<name>` (LOGIN) or `role:<name>` (NOLOGIN).
 *
 * What each principal gets: its direct entries (`via: direct`, or `public` for PUBLIC,
 * `default-privileges`), the direct entries of every role of its closure (`via: role` with
 * the chain), one entry per role of its closure (`resourceId`/`permission` `role:<name>`,
 * `via: direct` for a direct membership), and for a superuser `admin` on every database
 * (`via: attribute`, source `SUPERUSER`). Levels: database CONNECT/TEMPORARY → `connect`,
 * CREATE → `admin`; schema USAGE → `read`, CREATE → `admin`; table SELECT → `read`,
 * INSERT/UPDATE/DELETE → `write`, TRUNCATE/REFERENCES/TRIGGER/MAINTAIN → `admin`; the
 * highest wins and `privileges` lists them all. System schemas and the agent's journal
 * schema are left out, as in discovery.
 */
import { LatchkeyError } from '../../errors.js';
import type {
  CleanupOutput,
  Inventory,
  InventoryEntry,
  InventoryPrincipal,
  StandingCleanupParams,
  StandingOutcome,
  StandingTarget,
} from '../../protocol/messages.js';
import { throwIfAborted } from '../sql/core.js';
import type { SqlScope, SqlSession } from '../sql/dialect.js';
import type { DiscoverSink } from '../driver.js';
import { isHoldingMarker, isUserMarker, parseMinimalGrantMarker } from '../sql/marker.js';
import { databaseId, roleId, schemaId, tableId } from '../sql/resources.js';
import { quoteIdent, str } from './dialect.js';
import { grantableSchemaCondition, journalSchemaName } from './guardrails.js';

/** Tables whose ACLs one query reads (keyset pages). */
export const INVENTORY_TABLE_PAGE = 1000;

export interface InventoryOptions {
  /** Only these databases; default every database the service account can connect to. */
  databases?: readonly string[] | undefined;
  /** Role comments containing this text mark the role protected (`<tagPrefix>:protected`). */
  protectedMarker: string;
  /** Grant roles of the agent: role name → grant id. */
  grantRoles: ReadonlyMap<string, string>;
  pageSize?: number;
  /** Also return what removing each entry needs (`rich`). */
  withTargets?: boolean;
}

/** What a direct entry is on, to build the statement that removes it. */
export type EntryTarget =
  | { kind: 'database'; database: string }
  | { kind: 'schema'; database: string; schema: string }
  | { kind: 'table'; database: string; schema: string; table: string }
  | {
      kind: 'default';
      database: string;
      schema: string | null;
      owner: string;
      objtype: 'TABLES' | 'SEQUENCES' | 'FUNCTIONS' | 'TYPES' | 'SCHEMAS' | 'PROCEDURES';
    }
  | { kind: 'membership'; role: string }
  | { kind: 'attribute' };

/** An inventory entry with what the removal needs (not sent). */
export interface RichEntry {
  entry: InventoryEntry;
  target: EntryTarget;
  /** The role whose membership is revoked for `via: role` (the first of the chain). */
  firstRole?: string;
  /** `owner` entries are ownership, not a grant. */
  ownership: boolean;
}

export interface RoleRow {
  oid: number;
  name: string;
  canLogin: boolean;
  flags: string[];
  superuser: boolean;
}

export interface Direct {
  resourceId: string;
  privileges: string[];
  target: EntryTarget;
  source?: string;
  ownership: boolean;
  defaults: boolean;
}

export const PUBLIC_ID = 'public:PUBLIC';

const LEVEL_ORDER = ['connect', 'read', 'write', 'admin'] as const;
type Level = (typeof LEVEL_ORDER)[number];

const LEVEL_OF: Record<string, Level> = {
  CONNECT: 'connect',
  TEMPORARY: 'connect',
  TEMP: 'connect', // Redshift's name
  ALTER: 'admin', // Redshift
  DROP: 'admin', // Redshift
  USAGE: 'read',
  SELECT: 'read',
  EXECUTE: 'read',
  INSERT: 'write',
  UPDATE: 'write',
  DELETE: 'write',
  CREATE: 'admin',
  TRUNCATE: 'admin',
  REFERENCES: 'admin',
  TRIGGER: 'admin',
  MAINTAIN: 'admin',
  SUPERUSER: 'admin',
};

function levelOf(privileges: readonly string[]): Level {
  let best = 0;
  for (const p of privileges) {
    const i = LEVEL_ORDER.indexOf(LEVEL_OF[p] ?? 'read');
    if (i > best) best = i;
  }
  return LEVEL_ORDER[best] ?? 'read';
}

export function principalIdOf(r: RoleRow): string {
  return `${r.canLogin ? 'user' : 'role'}:${r.name}`;
}

const DEFACL_OBJTYPE: Record<string, 'TABLES' | 'SEQUENCES' | 'FUNCTIONS' | 'TYPES' | 'SCHEMAS'> = {
  r: 'TABLES',
  S: 'SEQUENCES',
  f: 'FUNCTIONS',
  T: 'TYPES',
  n: 'SCHEMAS',
};

export function splitPrivs(v: unknown): string[] {
  const s = str(v);
  return s ? s.split(',').sort() : [];
}

/**
 * Reads the inventory (and, for `removeStanding`, the statement data behind each entry).
 */
export async function inventoryPostgres(
  scope: SqlScope,
  opts: InventoryOptions,
): Promise<{ inventory: Inventory; rich: RichEntry[] }> {
  const { principals, roles, memberOf, managedRoles, databases, add, direct } = await readHead(
    scope,
    opts,
  );
  const pageSize = opts.pageSize ?? INVENTORY_TABLE_PAGE;
  for (const db of databases) {
    throwIfAborted(scope.signal);
    await scope.onDatabase(db, (s) =>
      readDatabase(s, db, journalSchemaName(scope.prefix), pageSize, scope.signal, add),
    );
  }

  return expandInventory({
    principals,
    roles,
    memberOf,
    direct,
    managed: managedRoles,
    databases,
    publicKey: 0,
    skip: (r) => r.name.startsWith('pg_'),
    withTargets: opts.withTargets === true,
  });
}

/** Roles, memberships and database ACLs: what every inventory starts from (small). */
async function readHead(
  scope: SqlScope,
  opts: InventoryOptions,
): Promise<{
  principals: InventoryPrincipal[];
  roles: Map<number, RoleRow>;
  memberOf: Map<number, { role: number; admin: boolean }[]>;
  managedRoles: Map<number, { grantId?: string }>;
  databases: string[];
  direct: Map<number, Direct[]>;
  add: (holder: number, d: Direct) => void;
}> {
  const session = scope.session;
  const roleRows = await session.query(
    `SELECT oid::int8::text AS oid, rolname, rolcanlogin, rolsuper, rolcreaterole,
            rolbypassrls, rolreplication, shobj_description(oid, 'pg_authid') AS comment
       FROM pg_roles ORDER BY rolname`,
  );
  const roles = new Map<number, RoleRow>();
  const principals: InventoryPrincipal[] = [];
  const managedRoles = new Map<number, { grantId?: string }>();
  for (const r of roleRows) {
    const name = str(r.rolname) ?? '';
    const oid = Number(r.oid);
    const flags: string[] = [];
    if (r.rolsuper === true) flags.push('superuser');
    if (r.rolcreaterole === true) flags.push('createrole');
    if (r.rolbypassrls === true) flags.push('bypassrls');
    if (r.rolreplication === true) flags.push('replication');
    if (name === scope.serviceAccount) flags.push('service-account');
    const comment = str(r.comment);
    if (comment?.includes(opts.protectedMarker) === true) flags.push('protected');
    const row: RoleRow = {
      oid,
      name,
      canLogin: r.rolcanlogin === true,
      flags,
      superuser: r.rolsuper === true,
    };
    roles.set(oid, row);
    if (name.startsWith('pg_')) continue;
    const grantId = opts.grantRoles.get(name);
    const managed =
      grantId !== undefined ||
      isUserMarker(comment) ||
      isHoldingMarker(comment) ||
      parseMinimalGrantMarker(comment);
    if (managed) managedRoles.set(oid, grantId === undefined ? {} : { grantId });
    principals.push({
      id: principalIdOf(row),
      kind: row.canLogin ? 'user' : 'role',
      name,
      canLogin: row.canLogin,
      managedByAgent: managed,
      ...(grantId === undefined ? {} : { grantId }),
      flags,
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

  // Memberships: member → [role, admin option].
  const memberOf = new Map<number, { role: number; admin: boolean }[]>();
  for (const m of await session.query(
    `SELECT member::int8::text AS member, roleid::int8::text AS roleid, admin_option
       FROM pg_auth_members ORDER BY 1, 2`,
  )) {
    const list = memberOf.get(Number(m.member)) ?? [];
    list.push({ role: Number(m.roleid), admin: m.admin_option === true });
    memberOf.set(Number(m.member), list);
  }

  // Direct entries by holder oid (0 = PUBLIC).
  const direct = new Map<number, Direct[]>();
  const add = (holder: number, d: Direct): void => {
    const list = direct.get(holder);
    if (list === undefined) direct.set(holder, [d]);
    else list.push(d);
  };

  const dbRows = await session.query(
    `SELECT d.datname, d.datdba::int8::text AS owner, a.grantee::int8::text AS grantee,
            string_agg(a.privilege_type, ',') AS privs,
            has_database_privilege(d.datname, 'CONNECT') AS can_connect
       FROM pg_database d, LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
      WHERE d.datallowconn AND NOT d.datistemplate
      GROUP BY d.datname, d.datdba, a.grantee ORDER BY d.datname, a.grantee`,
  );
  const wanted = opts.databases ? new Set(opts.databases) : null;
  const databases: string[] = [];
  for (const row of dbRows) {
    const db = str(row.datname) ?? '';
    if (wanted && !wanted.has(db)) continue;
    if (databases.at(-1) !== db && row.can_connect === true) databases.push(db);
    const grantee = Number(row.grantee);
    add(grantee, {
      resourceId: databaseId(db),
      privileges: splitPrivs(row.privs),
      target: { kind: 'database', database: db },
      ownership: grantee === Number(row.owner),
      defaults: false,
      ...(grantee === Number(row.owner) ? { source: 'owner' } : {}),
    });
  }

  return { principals, roles, memberOf, managedRoles, databases, direct, add };
}

/** Entries per page handed to the sink by `streamInventoryPostgres`. */
export const INVENTORY_STREAM_PAGE = 2000;
/** Tables whose ACLs one query reads when streaming (each row is a table × holder). */
export const INVENTORY_STREAM_TABLE_PAGE = 100;

/** Who gets the direct entries of a holder, and how. */
interface Reach {
  principalId: string;
  /** The holder is the principal itself (not reached through a role). */
  own: boolean;
  chain?: string[];
  managed: { grantId?: string } | undefined;
}

/**
 * The inventory written to `sink` in pages (`discover` with a sink: the agent's bounded
 * memory path, docs/drivers/postgres.md): the same principals and entries as
 * `inventoryPostgres`, in another order (memberships and attributes first, then each
 * ACL item as it is read, for the holder and every principal reaching it through roles).
 * Only the roles and memberships are held; ACLs are read in keyset pages of
 * `tablePageSize` tables and never all held at once.
 */
export async function streamInventoryPostgres(
  scope: SqlScope,
  opts: InventoryOptions,
  sink: DiscoverSink,
  sizes: { entries?: number; tables?: number } = {},
): Promise<void> {
  const pageEntries = sizes.entries ?? INVENTORY_STREAM_PAGE;
  const tablePage = sizes.tables ?? INVENTORY_STREAM_TABLE_PAGE;
  let page: InventoryEntry[] = [];
  const held: [number, Direct][] = [];
  const head = await readHead(scope, opts);
  const { principals, roles, memberOf, managedRoles, databases } = head;
  await sink.inventory(principals);

  // Who reaches each holder: itself, and every principal with it in its closure.
  const reach = new Map<number, Reach[]>();
  const reached = (holder: number, r: Reach): void => {
    const list = reach.get(holder);
    if (list === undefined) reach.set(holder, [r]);
    else list.push(r);
  };
  reached(0, { principalId: PUBLIC_ID, own: true, managed: undefined });
  const flush = async (force: boolean): Promise<void> => {
    if (page.length === 0 || (!force && page.length < pageEntries)) return;
    const out = page;
    page = [];
    await sink.entries(out);
  };
  // Memberships and attributes (the closure walk of `expandInventory`), per principal.
  // The graph is in memory: a fresh graph with no direct entries yields exactly these.
  const noDirect = new Map<number, Direct[]>();
  const { inventory: base } = expandInventory({
    principals,
    roles,
    memberOf,
    direct: noDirect,
    managed: managedRoles,
    databases,
    publicKey: 0,
    skip: (r) => r.name.startsWith('pg_'),
  });
  for (const e of base.entries) {
    page.push(e);
    await flush(false);
  }
  for (const [key, role] of roles) {
    if (role.name.startsWith('pg_')) continue;
    const pid = principalIdOf(role);
    reached(key, { principalId: pid, own: true, managed: managedRoles.get(key) });
    const seen = new Set<number>([key]);
    let frontier: { key: number; chain: string[] }[] = [{ key, chain: [] }];
    while (frontier.length > 0) {
      const next: { key: number; chain: string[] }[] = [];
      for (const f of frontier) {
        for (const m of memberOf.get(f.key) ?? []) {
          if (seen.has(m.role)) continue;
          seen.add(m.role);
          const target = roles.get(m.role);
          if (target === undefined) continue;
          const chain = [...f.chain, target.name];
          reached(m.role, {
            principalId: pid,
            own: false,
            chain,
            managed: managedRoles.get(m.role),
          });
          next.push({ key: m.role, chain });
        }
      }
      frontier = next;
    }
  }

  const entriesOf = (holder: number, d: Direct): void => {
    for (const r of reach.get(holder) ?? []) {
      const via: InventoryEntry['via'] = d.defaults
        ? 'default-privileges'
        : holder === 0
          ? 'public'
          : r.own
            ? 'direct'
            : 'role';
      page.push({
        principalId: r.principalId,
        resourceId: d.resourceId,
        permission: levelOf(d.privileges),
        privileges: d.privileges,
        via,
        ...(r.chain === undefined ? {} : { chain: r.chain }),
        ...(d.source === undefined ? {} : { source: d.source }),
        managedByAgent: r.managed !== undefined,
        ...(r.managed?.grantId === undefined ? {} : { grantId: r.managed.grantId }),
      });
    }
  };
  const drain = async (): Promise<void> => {
    for (const [holder, d] of held.splice(0)) {
      entriesOf(holder, d);
      await flush(false);
    }
  };
  for (const [holder, list] of head.direct) for (const d of list) held.push([holder, d]);
  await drain();
  const add = (holder: number, d: Direct): void => {
    held.push([holder, d]);
  };
  for (const db of databases) {
    throwIfAborted(scope.signal);
    await scope.onDatabase(db, (s) =>
      readDatabase(s, db, journalSchemaName(scope.prefix), tablePage, scope.signal, add, drain),
    );
  }
  await drain();
  await flush(true);
}

/** What a driver read, keyed by its own role keys (PostgreSQL oids, Redshift `u:`/`r:` ids). */
export interface InventoryGraph<K> {
  principals: InventoryPrincipal[];
  roles: ReadonlyMap<K, RoleRow>;
  /** member → the roles it is directly a member of. */
  memberOf: ReadonlyMap<K, { role: K; admin: boolean }[]>;
  /** holder (or `publicKey`) → its direct entries. */
  direct: ReadonlyMap<K, Direct[]>;
  managed: ReadonlyMap<K, { grantId?: string }>;
  /** Databases a superuser gets `admin` on. */
  databases: readonly string[];
  publicKey: K;
  /** Roles that are not principals (their entries reach members only). */
  skip: (r: RoleRow) => boolean;
  /** Keep what the removal needs beside each entry (`rich`); off for a plain discover. */
  withTargets?: boolean;
}

/**
 * The entries of every principal: its own, then through each role of its closure
 * (breadth first, so each role comes with its shortest chain), superusers' attribute.
 */
export function expandInventory<K>(g: InventoryGraph<K>): {
  inventory: Inventory;
  rich: RichEntry[];
} {
  const rich: RichEntry[] = [];
  const entries: InventoryEntry[] = [];
  const keep = g.withTargets === true;
  const emit = (
    principalId: string,
    d: Direct,
    via: InventoryEntry['via'],
    managed: { grantId?: string } | undefined,
    chain?: string[],
  ): void => {
    const entry: InventoryEntry = {
      principalId,
      resourceId: d.resourceId,
      permission: levelOf(d.privileges),
      privileges: d.privileges,
      via,
      ...(chain === undefined ? {} : { chain }),
      ...(d.source === undefined ? {} : { source: d.source }),
      managedByAgent: managed !== undefined,
      ...(managed?.grantId === undefined ? {} : { grantId: managed.grantId }),
    };
    entries.push(entry);
    if (keep) {
      rich.push({
        entry,
        target: d.target,
        ownership: d.ownership,
        ...(chain?.[0] === undefined ? {} : { firstRole: chain[0] }),
      });
    }
  };
  for (const d of g.direct.get(g.publicKey) ?? []) {
    emit(PUBLIC_ID, d, d.defaults ? 'default-privileges' : 'public', undefined);
  }
  for (const [key, role] of g.roles) {
    if (g.skip(role)) continue;
    const pid = principalIdOf(role);
    const own = g.managed.get(key);
    for (const d of g.direct.get(key) ?? []) {
      emit(pid, d, d.defaults ? 'default-privileges' : 'direct', own);
    }
    if (role.superuser) {
      for (const db of g.databases) {
        emit(
          pid,
          {
            resourceId: databaseId(db),
            privileges: ['SUPERUSER'],
            target: { kind: 'attribute' },
            source: 'SUPERUSER',
            ownership: false,
            defaults: false,
          },
          'attribute',
          own,
        );
      }
    }
    const seen = new Set<K>([key]);
    let frontier: { key: K; chain: string[] }[] = [{ key, chain: [] }];
    while (frontier.length > 0) {
      const next: { key: K; chain: string[] }[] = [];
      for (const f of frontier) {
        for (const m of g.memberOf.get(f.key) ?? []) {
          if (seen.has(m.role)) continue;
          seen.add(m.role);
          const target = g.roles.get(m.role);
          if (target === undefined) continue;
          const chain = [...f.chain, target.name];
          const managed = g.managed.get(m.role);
          const first = f.chain.length === 0;
          const entry: InventoryEntry = {
            principalId: pid,
            resourceId: roleId(target.name),
            permission: `role:${target.name}`,
            privileges: first && m.admin ? ['MEMBER', 'ADMIN'] : ['MEMBER'],
            via: first ? 'direct' : 'role',
            ...(first ? {} : { chain }),
            managedByAgent: managed !== undefined,
            ...(managed?.grantId === undefined ? {} : { grantId: managed.grantId }),
          };
          entries.push(entry);
          if (keep) {
            rich.push({
              entry,
              target: { kind: 'membership', role: target.name },
              ownership: false,
              ...(first ? {} : { firstRole: chain[0] }),
            });
          }
          for (const d of g.direct.get(m.role) ?? []) {
            emit(pid, d, d.defaults ? 'default-privileges' : 'role', managed, chain);
          }
          next.push({ key: m.role, chain });
        }
      }
      frontier = next;
    }
  }
  return { inventory: { principals: g.principals, entries }, rich };
}

async function readDatabase(
  s: SqlSession,
  db: string,
  journal: string,
  pageSize: number,
  signal: AbortSignal,
  add: (holder: number, d: Direct) => void,
  afterPage: () => Promise<void> = () => Promise.resolve(),
): Promise<void> {
  for (const row of await s.query(
    `SELECT n.nspname, n.nspowner::int8::text AS owner, a.grantee::int8::text AS grantee,
            string_agg(a.privilege_type, ',') AS privs
       FROM pg_namespace n, LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
      WHERE ${grantableSchemaCondition('$1')}
      GROUP BY n.nspname, n.nspowner, a.grantee ORDER BY n.nspname, a.grantee`,
    [journal],
  )) {
    const schema = str(row.nspname) ?? '';
    const grantee = Number(row.grantee);
    const ownership = grantee === Number(row.owner);
    add(grantee, {
      resourceId: schemaId(db, schema),
      privileges: splitPrivs(row.privs),
      target: { kind: 'schema', database: db, schema },
      ownership,
      defaults: false,
      ...(ownership ? { source: 'owner' } : {}),
    });
  }
  let after: [string, string] = ['', ''];
  for (;;) {
    throwIfAborted(signal);
    const page = await s.query(
      `WITH t AS (
         SELECT c.oid, n.nspname, c.relname, c.relowner, c.relacl
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r','p','v','m','f') AND NOT c.relispartition
            AND ${grantableSchemaCondition('$3')}
            AND (n.nspname, c.relname) > ($1::name, $2::name)
          ORDER BY n.nspname, c.relname LIMIT $4)
       SELECT t.nspname, t.relname, t.relowner::int8::text AS owner,
              a.grantee::int8::text AS grantee, string_agg(a.privilege_type, ',') AS privs
         FROM t LEFT JOIN LATERAL aclexplode(coalesce(t.relacl, acldefault('r', t.relowner))) a ON true
        GROUP BY t.nspname, t.relname, t.relowner, a.grantee
        ORDER BY t.nspname, t.relname, a.grantee`,
      [after[0], after[1], journal, pageSize],
    );
    let tables = 0;
    let last: string | undefined;
    for (const row of page) {
      const schema = str(row.nspname) ?? '';
      const table = str(row.relname) ?? '';
      const key = `${schema}\u0000${table}`;
      if (key !== last) {
        tables++;
        last = key;
        after = [schema, table];
      }
      if (row.grantee === null) continue; // an ACL that grants nothing
      const grantee = Number(row.grantee);
      const ownership = grantee === Number(row.owner);
      add(grantee, {
        resourceId: tableId(db, schema, table),
        privileges: splitPrivs(row.privs),
        target: { kind: 'table', database: db, schema, table },
        ownership,
        defaults: false,
        ...(ownership ? { source: 'owner' } : {}),
      });
    }
    await afterPage();
    if (tables < pageSize) break;
  }
  for (const row of await s.query(
    `SELECT pg_get_userbyid(d.defaclrole) AS owner, n.nspname, d.defaclobjtype AS objtype,
            a.grantee::int8::text AS grantee, string_agg(a.privilege_type, ',') AS privs
       FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace,
            LATERAL aclexplode(d.defaclacl) a
      WHERE n.nspname IS NULL OR n.nspname <> $1
      GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`,
    [journal],
  )) {
    const owner = str(row.owner) ?? '';
    const schema = str(row.nspname) ?? null;
    const objtype = DEFACL_OBJTYPE[str(row.objtype) ?? ''];
    if (objtype === undefined) continue;
    add(Number(row.grantee), {
      resourceId: schema === null ? databaseId(db) : schemaId(db, schema),
      privileges: splitPrivs(row.privs),
      target: { kind: 'default', database: db, schema, owner, objtype },
      source: `default privileges of ${owner} on ${objtype.toLowerCase()}`,
      ownership: false,
      defaults: true,
    });
  }
}

// ---------------------------------------------------------------------------------------
// Standing cleanup

/** The database a resource id names, or null for a role. */
function databaseOfResource(resourceId: string): string | null {
  const m = /^(?:database|schema|table):([^/]+)/.exec(resourceId);
  if (m?.[1] === undefined) return null;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    throw new LatchkeyError(
      'E_INVALID',
      `resource id ${JSON.stringify(resourceId)} is not well encoded`,
    );
  }
}

function granteeSql(principalId: string): string {
  if (principalId === PUBLIC_ID) return 'PUBLIC';
  return quoteIdent(principalId.slice(principalId.indexOf(':') + 1));
}

/** The statement that removes `r` (its whole entry), or a refusal reason. */
function statementFor(r: RichEntry): string {
  const e = r.entry;
  const who = granteeSql(e.principalId);
  if (e.via === 'role') {
    return `REVOKE ${quoteIdent(r.firstRole ?? '')} FROM ${who}`;
  }
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
      return `ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(t.owner)}${
        t.schema === null ? '' : ` IN SCHEMA ${quoteIdent(t.schema)}`
      } REVOKE ${privs} ON ${t.objtype} FROM ${who}`;
    case 'membership':
      return `REVOKE ${quoteIdent(t.role)} FROM ${who}`;
    case 'attribute':
      return '';
  }
}

function matches(t: StandingTarget, e: InventoryEntry): boolean {
  return (
    t.principalId === e.principalId &&
    t.resourceId === e.resourceId &&
    t.permission === e.permission &&
    t.via === e.via &&
    (t.source === undefined || t.source === (e.source ?? ''))
  );
}

/** The one database the targets of a standing cleanup name (undefined: roles only). */
export function databaseOfStanding(params: StandingCleanupParams): string | undefined {
  const dbs = new Set<string>();
  for (const t of params.standing) {
    const db = databaseOfResource(t.resourceId);
    if (db !== null) dbs.add(db);
  }
  if (dbs.size > 1) {
    throw new LatchkeyError(
      'E_INVALID',
      'a standing cleanup names resources of one database at a time (it runs in one transaction)',
    );
  }
  return [...dbs][0];
}

/**
 * Decides each target of a standing cleanup against the inventory read with its targets
 * (`rich`): `absent`, `refused` (service account, protected, superuser or attribute,
 * system principal, the agent's own roles and grants, ownership, a membership of such a
 * role) or `planned`/`removed` with the exact statements (`statementFor`). Shared by
 * PostgreSQL and Redshift, which differ only in the statements.
 * @returns the outcomes, the statements to run in order, and whether to run them (never
 *   when one target is refused: the answer is then a dry run)
 */
export function planStanding(
  params: StandingCleanupParams,
  inventory: Inventory,
  rich: readonly RichEntry[],
  statementFor: (r: RichEntry) => string,
): { outcomes: StandingOutcome[]; statements: string[]; apply: boolean } {
  const principals = new Map(inventory.principals.map((p) => [p.id, p]));
  const outcomes: StandingOutcome[] = [];
  const statements: string[] = [];
  for (const target of params.standing) {
    const found = rich.filter((r) => matches(target, r.entry));
    const refuse = (reason: string): void => {
      outcomes.push({ target, status: 'refused', actions: [], code: 'E_GUARDRAIL', reason });
    };
    if (found.length === 0) {
      outcomes.push({
        target,
        status: 'absent',
        actions: [],
        reason: 'no such entry in the inventory (already removed, or never there)',
      });
      continue;
    }
    const p = principals.get(target.principalId);
    const flags = new Set(p?.flags ?? []);
    if (flags.has('service-account')) {
      refuse('the service account is never changed');
      continue;
    }
    if (flags.has('protected')) {
      refuse('the principal is marked protected');
      continue;
    }
    if (flags.has('superuser') || flags.has('system') || target.via === 'attribute') {
      refuse('a superuser, a system principal or an attribute is not a grant that cleanup removes');
      continue;
    }
    if (p?.managedByAgent === true || found.some((r) => r.entry.managedByAgent)) {
      refuse("the agent's own roles and grants are removed by revoke and cleanup, not here");
      continue;
    }
    if (found.some((r) => r.ownership)) {
      refuse('ownership is not a grant: reassign the object instead');
      continue;
    }
    if (target.via === 'role') {
      const first = found[0]?.firstRole;
      const firstRole = [...principals.values()].find(
        (x) => x.name === first && x.kind !== 'public',
      );
      if (
        firstRole === undefined ||
        firstRole.managedByAgent ||
        firstRole.flags.includes('protected') ||
        firstRole.flags.includes('service-account')
      ) {
        refuse('the membership to revoke is of a role the agent manages or that is protected');
        continue;
      }
    }
    const actions = [...new Set(found.map(statementFor))];
    outcomes.push({ target, status: params.apply === true ? 'removed' : 'planned', actions });
    for (const a of actions) if (!statements.includes(a)) statements.push(a);
  }
  // Never half-applied: one refused target and nothing runs (the answer is a dry run).
  const apply = params.apply === true && !outcomes.some((o) => o.status === 'refused');
  if (!apply) {
    for (const o of outcomes) if (o.status === 'removed') o.status = 'planned';
  }
  return { outcomes, statements, apply };
}

/** Runs `statements` in one transaction on `database` (or the scope's own session). */
export async function runStanding(
  scope: SqlScope,
  database: string | undefined,
  statements: readonly string[],
): Promise<void> {
  if (statements.length === 0) return;
  const run = async (s: SqlSession): Promise<void> => {
    await s.query('BEGIN');
    try {
      for (const sql of statements) await s.query(sql);
      await s.query('COMMIT');
    } catch (err) {
      await s.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  };
  if (database === undefined) await run(scope.session);
  else await scope.onDatabase(database, run);
}

/**
 * Plans (dry run) or applies the removal of standing access. Every target is checked
 * before anything runs; applied statements run in one transaction, in the one database
 * the targets name (role memberships are cluster-wide and run there too).
 */
export async function removeStandingPostgres(
  scope: SqlScope,
  params: StandingCleanupParams,
  opts: InventoryOptions,
): Promise<CleanupOutput> {
  const database = databaseOfStanding(params);
  const { inventory, rich } = await inventoryPostgres(scope, {
    ...opts,
    withTargets: true,
    databases: database === undefined ? [] : [database],
  });
  const { outcomes, statements, apply } = planStanding(params, inventory, rich, statementFor);
  if (apply) await runStanding(scope, database, statements);
  return { dropped: [], kept: [], standing: outcomes, dryRun: !apply };
}
