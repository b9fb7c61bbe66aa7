/**
 * Access inventory of a MySQL 8 / MariaDB server (issue 13): which accounts and roles hold
 * which privileges on which databases and tables, and by which path; and the removal of
 * one listed standing privilege (`cleanup` with `standing`), dry run first.
 *
 * Glossary
 * - **stored grant**: a privilege as the server stores it for one grantee (an account, a
 *   role or PUBLIC): global (`*.*`), on a database name or pattern (`mysql.db`), on a table
 *   (`mysql.tables_priv`). Only stored grants are read, never the "effective" views:
 *   MariaDB's information_schema merges the grants of nested roles into a role's rows,
 *   which would hide the path a privilege comes through.
 * - **snapshot**: everything read from the server in one pass (`readSnapshot`); the
 *   inventory and the removal plan are pure functions of it (`buildInventory`,
 *   `planStanding`), unit-tested without a server.
 * - **chain**: for a privilege held through roles, the role names from the one granted to
 *   the principal outwards, ending at the role that holds the privilege.
 * - **protected**: accounts and roles no standing cleanup touches: the service account,
 *   the engine's own accounts (`root`, `mariadb.sys`, `mysql.sys`, `mysql.session`,
 *   `mysql.infoschema`, `rdsadmin`, `rdsrepladmin`), and the integration's
 *   `protectedAccounts` (config). Latchkey's own users and roles are never touched either.
 *
 * Flavor differences, read here and nowhere else:
 * | | MariaDB 10.6+ | MySQL 8 |
 * |---|---|---|
 * | accounts, roles | `mysql.global_priv` (`is_role`, `account_locked`, `default_role` in JSON) | `mysql.user`; a role is an account that is granted (`mysql.role_edges`) or locked + expired + no password |
 * | global privileges | `global_priv` `access` bit mask (decoded below) | `mysql.user` `*_priv` columns + `mysql.global_grants` |
 * | role grants | `mysql.roles_mapping` | `mysql.role_edges` |
 * | default roles | `default_role` (one) | `mysql.default_roles` |
 * | PUBLIC (10.11+) | the `PUBLIC` role: applies to every account | none |
 * | db / table privileges | `mysql.db`, `mysql.tables_priv` | same |
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
import type { Row, SqlSession } from '../sql/dialect.js';
import { databaseId, tableId } from '../sql/resources.js';
import { mariadbDefaultRole } from './dialect-mariadb.js';
import { quoteIdent, run, str, type FlavorOps } from './dialect.js';

// ---------------------------------------------------------------------------------------
// The snapshot

/** An account or role as the server stores it (MariaDB roles have host ''). */
export interface RawAccount {
  user: string;
  host: string;
  isRole: boolean;
  locked: boolean;
  /** Default roles (`user@host` keys); MariaDB has at most one. */
  defaultRoles: string[];
}

export type PrivilegeLevel =
  | { kind: 'global' }
  /** `pattern` exactly as stored (`_`/`%` are wildcards unless escaped with `\`). */
  | { kind: 'database'; pattern: string }
  | { kind: 'table'; database: string; table: string };

export interface RawPrivilege {
  /** `user@host` key of the grantee. */
  grantee: string;
  level: PrivilegeLevel;
  /** Upper-case privilege names (`SELECT`, `SHOW VIEW`, `CREATE USER`); no `GRANT OPTION`. */
  privileges: string[];
  grantOption: boolean;
}

export interface RawEdge {
  /** The role granted (`user@host` key). */
  role: string;
  /** The account or role it is granted to. */
  to: string;
  admin: boolean;
}

/** What Latchkey itself made, from its markers and records. */
export interface AgentObjects {
  /** Keys of users carrying the marker. */
  users: Set<string>;
  /** Keys of grant roles with their grant id. */
  grantRoles: Map<string, string>;
  /** Keys of other roles Latchkey made (MariaDB per-user default roles). */
  otherRoles: Set<string>;
}

export interface InventorySnapshot {
  flavor: 'mysql' | 'mariadb';
  accounts: RawAccount[];
  privileges: RawPrivilege[];
  edges: RawEdge[];
  /** `user@host` key of the service account (CURRENT_USER()). */
  serviceAccount: string;
  agent: AgentObjects;
  prefix: string;
  metaDatabase: string;
  /** `protectedAccounts` of the integration config (`name` or `name@host`). */
  protectedAccounts: readonly string[];
}

export function accountKey(user: string, host: string): string {
  return `${user}@${host}`;
}

function splitKey(key: string): { user: string; host: string } {
  const at = key.lastIndexOf('@');
  return { user: key.slice(0, at), host: key.slice(at + 1) };
}

/** Accounts of the engine or the cloud provider, never touched by a standing cleanup. */
export const BUILTIN_PROTECTED = [
  'root',
  'mariadb.sys',
  'mysql.sys',
  'mysql.session',
  'mysql.infoschema',
  'rdsadmin',
  'rdsrepladmin',
] as const;

/** `*_priv` column of `mysql.user` / `mysql.db` → privilege name (`Grant_priv`: grant option). */
const PRIV_COLUMNS: Readonly<Record<string, string>> = {
  Select_priv: 'SELECT',
  Insert_priv: 'INSERT',
  Update_priv: 'UPDATE',
  Delete_priv: 'DELETE',
  Create_priv: 'CREATE',
  Drop_priv: 'DROP',
  Reload_priv: 'RELOAD',
  Shutdown_priv: 'SHUTDOWN',
  Process_priv: 'PROCESS',
  File_priv: 'FILE',
  References_priv: 'REFERENCES',
  Index_priv: 'INDEX',
  Alter_priv: 'ALTER',
  Show_db_priv: 'SHOW DATABASES',
  Super_priv: 'SUPER',
  Create_tmp_table_priv: 'CREATE TEMPORARY TABLES',
  Lock_tables_priv: 'LOCK TABLES',
  Execute_priv: 'EXECUTE',
  Repl_slave_priv: 'REPLICATION SLAVE',
  Repl_client_priv: 'REPLICATION CLIENT',
  Create_view_priv: 'CREATE VIEW',
  Show_view_priv: 'SHOW VIEW',
  Create_routine_priv: 'CREATE ROUTINE',
  Alter_routine_priv: 'ALTER ROUTINE',
  Create_user_priv: 'CREATE USER',
  Event_priv: 'EVENT',
  Trigger_priv: 'TRIGGER',
  Create_tablespace_priv: 'CREATE TABLESPACE',
  Create_role_priv: 'CREATE ROLE',
  Drop_role_priv: 'DROP ROLE',
  Delete_history_priv: 'DELETE HISTORY',
};

/** Bits of MariaDB's `global_priv.access` (sql/privilege.h, 10.5+), lowest first. */
export const MARIADB_ACCESS_BITS: readonly string[] = [
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
  'CREATE',
  'DROP',
  'RELOAD',
  'SHUTDOWN',
  'PROCESS',
  'FILE',
  'GRANT OPTION',
  'REFERENCES',
  'INDEX',
  'ALTER',
  'SHOW DATABASES',
  'SUPER',
  'CREATE TEMPORARY TABLES',
  'LOCK TABLES',
  'EXECUTE',
  'REPLICATION SLAVE',
  'BINLOG MONITOR',
  'CREATE VIEW',
  'SHOW VIEW',
  'CREATE ROUTINE',
  'ALTER ROUTINE',
  'CREATE USER',
  'EVENT',
  'TRIGGER',
  'CREATE TABLESPACE',
  'DELETE HISTORY',
  'SET USER',
  'FEDERATED ADMIN',
  'CONNECTION ADMIN',
  'READ_ONLY ADMIN',
  'REPLICATION SLAVE ADMIN',
  'REPLICATION MASTER ADMIN',
  'BINLOG ADMIN',
  'BINLOG REPLAY',
  'SLAVE MONITOR',
];

/** Decodes a MariaDB access mask (decimal text, up to 64 bits) into privilege names. */
export function decodeMariadbAccess(text: string): { privileges: string[]; grantOption: boolean } {
  let mask: bigint;
  try {
    mask = BigInt(text === '' ? '0' : text);
  } catch {
    throw new LatchkeyError('E_INTERNAL', 'unreadable access mask in mysql.global_priv');
  }
  const privileges: string[] = [];
  let grantOption = false;
  MARIADB_ACCESS_BITS.forEach((name, bit) => {
    if ((mask >> BigInt(bit)) & 1n) {
      if (name === 'GRANT OPTION') grantOption = true;
      else privileges.push(name);
    }
  });
  return { privileges, grantOption };
}

/** Reads the `*_priv` columns of one `mysql.user` / `mysql.db` row. */
export function privilegesOfRow(row: Row): { privileges: string[]; grantOption: boolean } {
  const privileges: string[] = [];
  let grantOption = false;
  for (const [column, value] of Object.entries(row)) {
    if (!column.endsWith('_priv') || str(row, column) !== 'Y') continue;
    if (column === 'Grant_priv') {
      grantOption = true;
      continue;
    }
    const name = PRIV_COLUMNS[column];
    if (name !== undefined) privileges.push(name);
    else if (value !== undefined)
      privileges.push(column.slice(0, -5).replace(/_/g, ' ').toUpperCase());
  }
  return { privileges, grantOption };
}

/** Reads a `mysql.tables_priv.Table_priv` set (`Select,Insert,Grant,Delete versioning rows`). */
export function privilegesOfTableSet(text: string): { privileges: string[]; grantOption: boolean } {
  const privileges: string[] = [];
  let grantOption = false;
  for (const part of text.split(',').map((p) => p.trim())) {
    if (part === '') continue;
    const up = part.toUpperCase();
    if (up === 'GRANT') grantOption = true;
    else if (up === 'DELETE VERSIONING ROWS') privileges.push('DELETE HISTORY');
    else privileges.push(up);
  }
  return { privileges, grantOption };
}

export interface SnapshotOptions {
  flavor: 'mysql' | 'mariadb';
  prefix: string;
  metaDatabase: string;
  protectedAccounts: readonly string[];
  /** Grant roles Latchkey made (from its records): role name → grant id. */
  grantRoles: ReadonlyMap<string, string>;
  /** Whether `user@host` carries Latchkey's user marker (called for prefixed names only). */
  isAgentUser(user: string, host: string): Promise<boolean>;
  /** The MariaDB per-user default role of `user@host` (absent on MySQL). */
  defaultRoleOf?(user: string, host: string): string;
}

/** Reads everything the inventory needs, in one pass (needs SELECT on `mysql.*`). */
export async function readSnapshot(
  session: SqlSession,
  opts: SnapshotOptions,
): Promise<InventorySnapshot> {
  const who = await run(session, { sql: 'SELECT CURRENT_USER() AS cu' });
  const cu = who[0] === undefined ? '' : str(who[0], 'cu');
  const accounts: RawAccount[] = [];
  const privileges: RawPrivilege[] = [];
  const edges: RawEdge[] = [];
  if (opts.flavor === 'mariadb') {
    const rows = await run(session, {
      sql:
        "SELECT User AS user, Host AS host, JSON_VALUE(Priv, '$.access') AS access, " +
        "JSON_VALUE(Priv, '$.is_role') AS is_role, JSON_VALUE(Priv, '$.account_locked') AS locked, " +
        "JSON_VALUE(Priv, '$.default_role') AS default_role FROM mysql.global_priv ORDER BY User, Host",
    });
    for (const r of rows) {
      const user = str(r, 'user');
      const host = str(r, 'host');
      const isRole = ['true', '1'].includes(str(r, 'is_role'));
      const dr = str(r, 'default_role');
      accounts.push({
        user,
        host,
        isRole,
        locked: ['true', '1'].includes(str(r, 'locked')),
        defaultRoles: dr === '' ? [] : [accountKey(dr, '')],
      });
      const global = decodeMariadbAccess(str(r, 'access'));
      if (global.privileges.length > 0 || global.grantOption) {
        privileges.push({ grantee: accountKey(user, host), level: { kind: 'global' }, ...global });
      }
    }
    for (const r of await run(session, {
      sql: 'SELECT User AS user, Host AS host, Role AS role, Admin_option AS admin FROM mysql.roles_mapping',
    })) {
      edges.push({
        role: accountKey(str(r, 'role'), ''),
        to: accountKey(str(r, 'user'), str(r, 'host')),
        admin: str(r, 'admin') === 'Y',
      });
    }
  } else {
    const rows = await run(session, { sql: 'SELECT * FROM mysql.user ORDER BY User, Host' });
    for (const r of await run(session, {
      sql: 'SELECT FROM_USER AS fu, FROM_HOST AS fh, TO_USER AS tu, TO_HOST AS th, WITH_ADMIN_OPTION AS admin FROM mysql.role_edges',
    })) {
      edges.push({
        role: accountKey(str(r, 'fu'), str(r, 'fh')),
        to: accountKey(str(r, 'tu'), str(r, 'th')),
        admin: str(r, 'admin') === 'Y',
      });
    }
    const defaults = new Map<string, string[]>();
    for (const r of await run(session, {
      sql: 'SELECT USER AS u, HOST AS h, DEFAULT_ROLE_USER AS ru, DEFAULT_ROLE_HOST AS rh FROM mysql.default_roles',
    })) {
      const k = accountKey(str(r, 'u'), str(r, 'h'));
      pushTo(defaults, k, accountKey(str(r, 'ru'), str(r, 'rh')));
    }
    const granted = new Set(edges.map((e) => e.role));
    for (const r of rows) {
      const user = str(r, 'User');
      const host = str(r, 'Host');
      const key = accountKey(user, host);
      const locked = str(r, 'account_locked') === 'Y';
      const roleShape =
        locked && str(r, 'password_expired') === 'Y' && str(r, 'authentication_string') === '';
      accounts.push({
        user,
        host,
        isRole: granted.has(key) || roleShape,
        locked,
        defaultRoles: defaults.get(key) ?? [],
      });
      const global = privilegesOfRow(r);
      if (global.privileges.length > 0 || global.grantOption) {
        privileges.push({ grantee: key, level: { kind: 'global' }, ...global });
      }
    }
    const dynamic = new Map<string, RawPrivilege>();
    for (const r of await run(session, {
      sql: 'SELECT USER AS u, HOST AS h, PRIV AS priv, WITH_GRANT_OPTION AS wgo FROM mysql.global_grants ORDER BY USER, HOST, PRIV',
    })) {
      const key = accountKey(str(r, 'u'), str(r, 'h'));
      let p = dynamic.get(key);
      if (!p) {
        p = { grantee: key, level: { kind: 'global' }, privileges: [], grantOption: false };
        dynamic.set(key, p);
        privileges.push(p);
      }
      p.privileges.push(str(r, 'priv').toUpperCase());
    }
  }
  for (const r of await run(session, { sql: 'SELECT * FROM mysql.db ORDER BY User, Host, Db' })) {
    const p = privilegesOfRow(r);
    if (p.privileges.length === 0 && !p.grantOption) continue;
    privileges.push({
      grantee: accountKey(str(r, 'User'), str(r, 'Host')),
      level: { kind: 'database', pattern: str(r, 'Db') },
      ...p,
    });
  }
  for (const r of await run(session, {
    sql: 'SELECT User AS user, Host AS host, Db AS db, Table_name AS tbl, Table_priv AS priv FROM mysql.tables_priv ORDER BY User, Host, Db, Table_name',
  })) {
    const p = privilegesOfTableSet(str(r, 'priv'));
    if (p.privileges.length === 0 && !p.grantOption) continue;
    privileges.push({
      grantee: accountKey(str(r, 'user'), str(r, 'host')),
      level: { kind: 'table', database: str(r, 'db'), table: str(r, 'tbl') },
      ...p,
    });
  }

  const agent: AgentObjects = { users: new Set(), grantRoles: new Map(), otherRoles: new Set() };
  const roleHost = opts.flavor === 'mariadb' ? '' : '%';
  const present = new Set(accounts.map((a) => accountKey(a.user, a.host)));
  for (const [role, grantId] of opts.grantRoles) {
    const key = accountKey(role, roleHost);
    if (present.has(key)) agent.grantRoles.set(key, grantId);
  }
  for (const a of accounts) {
    if (a.isRole || !a.user.startsWith(opts.prefix)) continue;
    if (!(await opts.isAgentUser(a.user, a.host))) continue;
    agent.users.add(accountKey(a.user, a.host));
    const d = opts.defaultRoleOf?.(a.user, a.host);
    if (d !== undefined) agent.otherRoles.add(accountKey(d, ''));
  }
  return {
    flavor: opts.flavor,
    accounts,
    privileges,
    edges,
    serviceAccount: cu.includes('@') ? cu : accountKey(cu, ''),
    agent,
    prefix: opts.prefix,
    metaDatabase: opts.metaDatabase,
    protectedAccounts: opts.protectedAccounts,
  };
}

// ---------------------------------------------------------------------------------------
// The inventory

/** Upper bound on roles followed from one principal (cycles are cut too). */
const MAX_CLOSURE = 200;

/** Privileges that read nothing (`connect`). */
const CONNECT_ONLY = new Set(['USAGE', 'SHOW VIEW']);
const READ = new Set(['SELECT']);
const WRITE = new Set([
  'INSERT',
  'UPDATE',
  'DELETE',
  'DELETE HISTORY',
  'LOCK TABLES',
  'CREATE TEMPORARY TABLES',
]);

/** `connect` < `read` < `write` < `admin`: the highest level the privileges reach. */
export function permissionOf(privileges: readonly string[], grantOption: boolean): string {
  if (grantOption) return 'admin';
  let level = 0;
  for (const p of privileges) {
    if (CONNECT_ONLY.has(p)) continue;
    if (READ.has(p)) level = Math.max(level, 1);
    else if (WRITE.has(p)) level = Math.max(level, 2);
    else level = 3;
  }
  return ['connect', 'read', 'write', 'admin'][level] ?? 'admin';
}

/** Global privileges flagged on whoever holds them (directly or through roles). */
const DANGEROUS_GLOBAL: Readonly<Record<string, string>> = {
  SUPER: 'superuser',
  'CREATE USER': 'create-user',
  FILE: 'file',
  PROCESS: 'process',
  SHUTDOWN: 'shutdown',
  RELOAD: 'reload',
  'SET USER': 'set-user',
  'CONNECTION ADMIN': 'connection-admin',
  CONNECTION_ADMIN: 'connection-admin',
  SYSTEM_USER: 'system-user',
  ROLE_ADMIN: 'role-admin',
  SYSTEM_VARIABLES_ADMIN: 'system-variables-admin',
  'REPLICATION SLAVE': 'replication',
};

/** Whether a database pattern has an unescaped wildcard (`_` or `%`). */
export function hasWildcard(pattern: string): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') i++;
    else if (c === '_' || c === '%') return true;
  }
  return false;
}

function unescapePattern(pattern: string): string {
  return pattern.replace(/\\(.)/g, '$1');
}

export function resourceIdOfLevel(level: PrivilegeLevel): string {
  switch (level.kind) {
    case 'global':
      return '*';
    case 'database':
      return databaseId(unescapePattern(level.pattern));
    case 'table':
      return tableId(level.database, null, level.table);
  }
}

/** What an entry was built from: enough to remove exactly it. */
export interface EntryOrigin {
  entry: InventoryEntry;
  /** The principal's account key. */
  principal: string;
  /** The stored grant behind it (for `direct`/`public`). */
  privilege: RawPrivilege;
  /** Role keys from the principal outwards (for `role`). */
  chainKeys: string[];
}

export interface BuiltInventory {
  inventory: Inventory;
  origins: EntryOrigin[];
  /** Principal id → account key. */
  keyOf: Map<string, string>;
}

function principalIdOf(snapshot: InventorySnapshot, a: RawAccount): string {
  return `${principalKind(snapshot, a)}:${displayName(snapshot, a)}`;
}

function principalKind(snapshot: InventorySnapshot, a: RawAccount): InventoryPrincipal['kind'] {
  if (isPublicRole(snapshot, a) || (!a.isRole && a.user === '')) return 'public';
  return a.isRole ? 'role' : 'user';
}

function isPublicRole(snapshot: InventorySnapshot, a: RawAccount): boolean {
  return snapshot.flavor === 'mariadb' && a.isRole && a.user === 'PUBLIC' && a.host === '';
}

/** `alice@%` for accounts; a role's bare name (`app_reader`) unless its host is not `%`/''. */
function displayName(snapshot: InventorySnapshot, a: RawAccount): string {
  if (a.isRole && (a.host === '' || a.host === '%')) return a.user;
  return accountKey(a.user, a.host);
}

function roleName(snapshot: InventorySnapshot, key: string): string {
  const { user, host } = splitKey(key);
  return host === '' || host === '%' ? user : key;
}

export function isProtected(snapshot: InventorySnapshot, a: RawAccount): boolean {
  if ((BUILTIN_PROTECTED as readonly string[]).includes(a.user)) return true;
  const key = accountKey(a.user, a.host);
  return snapshot.protectedAccounts.some((p) => p === a.user || p === key);
}

function isAgentRole(snapshot: InventorySnapshot, key: string): boolean {
  return snapshot.agent.grantRoles.has(key) || snapshot.agent.otherRoles.has(key);
}

/** Builds the inventory of a snapshot (pure). Principals and entries in a stable order. */
export function buildInventory(snapshot: InventorySnapshot): BuiltInventory {
  const byKey = new Map(snapshot.accounts.map((a) => [accountKey(a.user, a.host), a]));
  const privsOf = new Map<string, RawPrivilege[]>();
  for (const p of snapshot.privileges) {
    pushTo(privsOf, p.grantee, p);
  }
  const rolesOf = new Map<string, string[]>();
  for (const e of snapshot.edges) {
    if (!byKey.has(e.role)) continue;
    pushTo(rolesOf, e.to, e.role);
  }
  for (const list of rolesOf.values()) list.sort();

  const principals: InventoryPrincipal[] = [];
  const origins: EntryOrigin[] = [];
  const keyOf = new Map<string, string>();

  for (const a of snapshot.accounts) {
    const key = accountKey(a.user, a.host);
    const id = principalIdOf(snapshot, a);
    keyOf.set(id, key);
    const kind = principalKind(snapshot, a);
    const agentUser = snapshot.agent.users.has(key);
    const agentRole = isAgentRole(snapshot, key);
    const grantId = snapshot.agent.grantRoles.get(key);

    // Every role reachable from the principal, with each path (outermost first).
    const paths: string[][] = [];
    const walk = (from: string, path: string[]): void => {
      for (const role of rolesOf.get(from) ?? []) {
        if (path.includes(role) || role === key || paths.length >= MAX_CLOSURE) continue;
        const next = [...path, role];
        paths.push(next);
        walk(role, next);
      }
    };
    walk(key, []);

    const flags = new Set<string>();
    if (kind === 'public' && a.user === '') flags.add('anonymous');
    if (key === snapshot.serviceAccount) flags.add('service-account');
    if (isProtected(snapshot, a)) flags.add('protected');
    const heldGlobally = [key, ...paths.map((p) => p[p.length - 1] ?? '')].flatMap((k) =>
      (privsOf.get(k) ?? []).filter((p) => p.level.kind === 'global'),
    );
    for (const p of heldGlobally) {
      for (const name of p.privileges) {
        const flag = DANGEROUS_GLOBAL[name];
        if (flag !== undefined) flags.add(flag);
      }
      if (p.grantOption) flags.add('grant-option');
      if (p.privileges.length > 0) flags.add('global-privileges');
    }
    for (const e of snapshot.edges) {
      if (e.to === key && e.admin && byKey.has(e.role)) flags.add('role-admin-option');
    }

    const principal: InventoryPrincipal = {
      id,
      kind,
      name: displayName(snapshot, a),
      managedByAgent: agentUser || agentRole,
      flags: [...flags].sort(),
    };
    if (!a.isRole) principal.canLogin = !a.locked;
    if (grantId !== undefined) principal.grantId = grantId;
    principals.push(principal);

    const own = privsOf.get(key) ?? [];
    for (const p of own) {
      const entry: InventoryEntry = {
        principalId: id,
        resourceId: resourceIdOfLevel(p.level),
        permission: permissionOf(p.privileges, p.grantOption),
        privileges: withGrantOption(p),
        via: kind === 'public' ? 'public' : 'direct',
        managedByAgent: agentUser || agentRole,
      };
      addPattern(entry, p);
      if (grantId !== undefined) entry.grantId = grantId;
      origins.push({ entry, principal: key, privilege: p, chainKeys: [] });
    }
    for (const path of paths) {
      const holder = path[path.length - 1] ?? '';
      const managedGrant = path.map((k) => snapshot.agent.grantRoles.get(k)).find((g) => g);
      const managed = agentUser || agentRole || path.some((k) => isAgentRole(snapshot, k));
      for (const p of privsOf.get(holder) ?? []) {
        const entry: InventoryEntry = {
          principalId: id,
          resourceId: resourceIdOfLevel(p.level),
          permission: permissionOf(p.privileges, p.grantOption),
          privileges: withGrantOption(p),
          via: 'role',
          chain: path.map((k) => roleName(snapshot, k)),
          managedByAgent: managed,
        };
        addPattern(entry, p);
        const g = managedGrant ?? grantId;
        if (g !== undefined) entry.grantId = g;
        origins.push({ entry, principal: key, privilege: p, chainKeys: path });
      }
    }
  }
  principals.sort((x, y) => cmp(x.id, y.id));
  // One sort key per entry, not two per comparison (millions of entries on a large server).
  const keyed = origins.map((o) => ({ o, k: entrySortKey(o.entry) }));
  keyed.sort((x, y) => cmp(x.k, y.k));
  const sorted = keyed.map((x) => x.o);
  return { inventory: { principals, entries: sorted.map((o) => o.entry) }, origins: sorted, keyOf };
}

function withGrantOption(p: RawPrivilege): string[] {
  const list = [...p.privileges].sort();
  return p.grantOption ? [...list, 'GRANT OPTION'] : list;
}

function addPattern(entry: InventoryEntry, p: RawPrivilege): void {
  if (p.level.kind === 'database' && hasWildcard(p.level.pattern)) {
    entry.source = `database pattern ${p.level.pattern}`;
  }
}

/** Appends to the list under `key` in place (a copy per append is quadratic in the list). */
function pushTo<V>(map: Map<string, V[]>, key: string, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function entrySortKey(e: InventoryEntry): string {
  return [e.principalId, e.resourceId, e.via, (e.chain ?? []).join('\u0001'), e.permission].join(
    '\u0000',
  );
}

// ---------------------------------------------------------------------------------------
// Standing cleanup

/** Privilege names as the server stores them: only words, so nothing else reaches SQL text. */
const PRIVILEGE_NAME = /^[A-Z][A-Z_]*( [A-Z][A-Z_]*)*$/;

export interface StandingPlan {
  outcome: StandingOutcome;
  /** The statements, in order (also `outcome.actions`). */
  statements: string[];
}

/** How the flavor names grantees in GRANT/REVOKE. */
function granteeText(snapshot: InventorySnapshot, key: string): string {
  const { user, host } = splitKey(key);
  if (snapshot.flavor === 'mariadb' && host === '') {
    return user === 'PUBLIC' ? 'PUBLIC' : quoteIdent(user);
  }
  return `${quoteIdent(user)}@${quoteIdent(host)}`;
}

function levelText(level: PrivilegeLevel): string {
  switch (level.kind) {
    case 'global':
      return '*.*';
    case 'database':
      return `${quoteIdent(level.pattern)}.*`;
    case 'table':
      return `${quoteIdent(level.database)}.${quoteIdent(level.table)}`;
  }
}

function touchesMeta(snapshot: InventorySnapshot, level: PrivilegeLevel): boolean {
  const meta = snapshot.metaDatabase.toLowerCase();
  if (level.kind === 'table') return level.database.toLowerCase() === meta;
  if (level.kind === 'database') return unescapePattern(level.pattern).toLowerCase() === meta;
  return false;
}

function refused(
  target: StandingTarget,
  code: 'E_GUARDRAIL' | 'E_NOT_MANAGED' | 'E_INVALID',
  reason: string,
): StandingPlan {
  return { outcome: { target, status: 'refused', actions: [], code, reason }, statements: [] };
}

/**
 * The statements that remove one listed standing privilege, or why not (pure).
 * - `direct` / `public`: `REVOKE <its privileges> ON <its level> FROM <grantee>`: exactly
 *   the stored grant behind the entry, nothing else.
 * - `role`: `REVOKE <first role of the chain> FROM <grantee>` (the smallest change local to
 *   the principal: revoking the privilege from the holding role would take it from every
 *   other member); on MariaDB also `SET DEFAULT ROLE NONE` when it was the default role.
 *   Everything else that role brought goes too; `reason` says so.
 */
export function planStanding(
  snapshot: InventorySnapshot,
  built: BuiltInventory,
  target: StandingTarget,
): StandingPlan {
  const key = built.keyOf.get(target.principalId);
  const account = snapshot.accounts.find((a) => accountKey(a.user, a.host) === key);
  if (key === undefined || account === undefined) {
    return {
      outcome: { target, status: 'absent', actions: [], reason: 'no such principal' },
      statements: [],
    };
  }
  if (key === snapshot.serviceAccount) {
    return refused(target, 'E_GUARDRAIL', 'the service account is never changed');
  }
  if (isProtected(snapshot, account)) {
    return refused(target, 'E_GUARDRAIL', `${target.principalId} is protected`);
  }
  if (snapshot.agent.users.has(key) || isAgentRole(snapshot, key)) {
    return refused(
      target,
      'E_NOT_MANAGED',
      `${target.principalId} was made by Latchkey: revoke its grants instead`,
    );
  }
  const matches = built.origins.filter(
    (o) =>
      o.entry.principalId === target.principalId &&
      o.entry.resourceId === target.resourceId &&
      o.entry.permission === target.permission &&
      o.entry.via === target.via &&
      (target.source === undefined || target.source === (o.entry.source ?? '')),
  );
  if (matches.length === 0) {
    return {
      outcome: { target, status: 'absent', actions: [], reason: 'not in the inventory' },
      statements: [],
    };
  }
  const statements: string[] = [];
  const notes: string[] = [];
  for (const m of matches) {
    if (m.entry.managedByAgent) {
      return refused(
        target,
        'E_NOT_MANAGED',
        'held through a role Latchkey made: revoke that grant instead',
      );
    }
    if (touchesMeta(snapshot, m.privilege.level)) {
      return refused(
        target,
        'E_GUARDRAIL',
        `${snapshot.metaDatabase} holds Latchkey's own records`,
      );
    }
    if (m.chainKeys.length === 0) {
      const names = [...m.privilege.privileges];
      if (m.privilege.grantOption) names.push('GRANT OPTION');
      const bad = names.find((n) => !PRIVILEGE_NAME.test(n));
      if (bad !== undefined) {
        return refused(
          target,
          'E_INVALID',
          `privilege name ${JSON.stringify(bad)} is not understood`,
        );
      }
      statements.push(
        `REVOKE ${names.join(', ')} ON ${levelText(m.privilege.level)} FROM ${granteeText(snapshot, key)}`,
      );
      if (account.isRole) notes.push(`every member of ${account.user} loses it`);
      continue;
    }
    const first = m.chainKeys[0] ?? '';
    const firstAccount = snapshot.accounts.find((a) => accountKey(a.user, a.host) === first);
    if (firstAccount !== undefined && isProtected(snapshot, firstAccount)) {
      return refused(target, 'E_GUARDRAIL', `role ${roleName(snapshot, first)} is protected`);
    }
    const roleText = granteeText(snapshot, first);
    statements.push(`REVOKE ${roleText} FROM ${granteeText(snapshot, key)}`);
    if (snapshot.flavor === 'mariadb' && account.defaultRoles.includes(first)) {
      statements.push(`SET DEFAULT ROLE NONE FOR ${granteeText(snapshot, key)}`);
    }
    notes.push(
      `everything role ${roleName(snapshot, first)} brings is removed from ${account.user}`,
    );
  }
  const unique = [...new Set(statements)];
  const outcome: StandingOutcome = { target, status: 'planned', actions: unique };
  const uniqueNotes = [...new Set(notes)];
  if (uniqueNotes.length > 0) outcome.reason = uniqueNotes.join('; ');
  return { outcome, statements: unique };
}

// ---------------------------------------------------------------------------------------
// Driver glue

export interface InventorySettings {
  prefix: string;
  metaDatabase: string;
  protectedAccounts: readonly string[];
}

/** Reads the snapshot with the flavor's own markers and grant records. */
export async function snapshotOf(
  session: SqlSession,
  ops: FlavorOps,
  settings: InventorySettings,
): Promise<InventorySnapshot> {
  const records = await ops.listGrantRoles(session, settings.prefix);
  const prefix = settings.prefix;
  return readSnapshot(session, {
    flavor: ops.engine,
    prefix,
    metaDatabase: settings.metaDatabase,
    protectedAccounts: settings.protectedAccounts,
    grantRoles: new Map(records.map((r) => [r.role, r.grantId])),
    isAgentUser: async (user, host) =>
      (await ops.getUser(session, user, host, prefix))?.managed === true,
    ...(ops.engine === 'mariadb'
      ? { defaultRoleOf: (user: string, host: string) => mariadbDefaultRole(user, host, prefix) }
      : {}),
  });
}

/**
 * A standing cleanup: plans every target first (nothing runs when one is refused), then,
 * with `apply`, runs the statements in order. Re-running is harmless: what is gone is
 * `absent`.
 */
export async function removeStandingOn(
  session: SqlSession,
  ops: FlavorOps,
  settings: InventorySettings,
  params: StandingCleanupParams,
): Promise<CleanupOutput> {
  const snapshot = await snapshotOf(session, ops, settings);
  const built = buildInventory(snapshot);
  const plans = params.standing.map((t) => planStanding(snapshot, built, t));
  const apply = params.apply === true && plans.every((p) => p.outcome.status !== 'refused');
  if (apply) {
    const done = new Set<string>();
    for (const plan of plans) {
      for (const statement of plan.statements) {
        if (done.has(statement)) continue;
        done.add(statement);
        await run(session, { sql: statement });
      }
      if (plan.outcome.status === 'planned') plan.outcome.status = 'removed';
    }
  }
  return { dropped: [], kept: [], standing: plans.map((p) => p.outcome), dryRun: !apply };
}
