/**
 * Resource ids and permissions of the SQL drivers.
 *
 * Ids are stable strings, each name component percent-encoded (`encodeURIComponent`) so
 * that names with `/`, `:` or anything else stay unambiguous:
 *
 * | type | id | engines |
 * |---|---|---|
 * | database | `database:<db>` | all |
 * | schema | `schema:<db>/<schema>` | PostgreSQL, Redshift |
 * | table (and view) | `table:<db>/<schema>/<table>` | PostgreSQL, Redshift |
 * | table (and view) | `table:<db>/<table>` | MySQL, MariaDB |
 * | role | `role:<name>` | all |
 *
 * Permissions: `connect`, `read`, `write`, `admin`, `role:<name>`.
 */
import { LatchkeyError } from '../../errors.js';
import type { ResourceRef } from '../../protocol/messages.js';
import type { SqlPermission, SqlResource } from './dialect.js';

const enc = encodeURIComponent;

export function databaseId(database: string): string {
  return `database:${enc(database)}`;
}
export function schemaId(database: string, schema: string): string {
  return `schema:${enc(database)}/${enc(schema)}`;
}
export function tableId(database: string, schema: string | null, table: string): string {
  return schema === null
    ? `table:${enc(database)}/${enc(table)}`
    : `table:${enc(database)}/${enc(schema)}/${enc(table)}`;
}
export function roleId(role: string): string {
  return `role:${enc(role)}`;
}
export function resourceIdOf(r: SqlResource): string {
  switch (r.kind) {
    case 'database':
      return databaseId(r.database);
    case 'schema':
      return schemaId(r.database, r.schema);
    case 'table':
      return tableId(r.database, r.schema, r.table);
    case 'role':
      return roleId(r.role);
  }
}

function decodePart(part: string, id: string): string {
  let out: string;
  try {
    out = decodeURIComponent(part);
  } catch {
    throw new LatchkeyError('E_INVALID', `resource id ${JSON.stringify(id)} is not well encoded`);
  }
  if (out.length === 0)
    throw new LatchkeyError('E_INVALID', `resource id ${JSON.stringify(id)} has an empty name`);
  if (out.includes('\u0000'))
    throw new LatchkeyError('E_INVALID', 'resource names cannot contain NUL');
  return out;
}

/** Parses a protocol resource reference. @throws LatchkeyError E_INVALID */
export function parseResource(ref: ResourceRef, hasSchemas: boolean): SqlResource {
  const colon = ref.id.indexOf(':');
  const kind = colon < 0 ? '' : ref.id.slice(0, colon);
  const rest = colon < 0 ? '' : ref.id.slice(colon + 1);
  if (kind !== ref.type) {
    throw new LatchkeyError(
      'E_INVALID',
      `resource type ${JSON.stringify(ref.type)} does not match its id`,
    );
  }
  const parts = rest.split('/').map((p) => decodePart(p, ref.id));
  const bad = (): never => {
    throw new LatchkeyError('E_INVALID', `malformed ${kind} resource id ${JSON.stringify(ref.id)}`);
  };
  switch (kind) {
    case 'database':
      return parts.length === 1 ? { kind, database: parts[0] ?? bad() } : bad();
    case 'schema':
      if (!hasSchemas)
        throw new LatchkeyError('E_INVALID', 'this engine has no schemas; use database resources');
      return parts.length === 2
        ? { kind, database: parts[0] ?? bad(), schema: parts[1] ?? bad() }
        : bad();
    case 'table':
      if (hasSchemas) {
        return parts.length === 3
          ? {
              kind,
              database: parts[0] ?? bad(),
              schema: parts[1] ?? bad(),
              table: parts[2] ?? bad(),
            }
          : bad();
      }
      return parts.length === 2
        ? { kind, database: parts[0] ?? bad(), schema: null, table: parts[1] ?? bad() }
        : bad();
    case 'role':
      return parts.length === 1 ? { kind, role: parts[0] ?? bad() } : bad();
    default:
      throw new LatchkeyError('E_INVALID', `unknown resource type ${JSON.stringify(ref.type)}`);
  }
}

export const BASE_PERMISSIONS = [
  { id: 'connect', name: 'Connect to the database' },
  { id: 'read', name: 'Read (SELECT)' },
  { id: 'write', name: 'Read and write (SELECT, INSERT, UPDATE, DELETE)' },
  { id: 'admin', name: 'All privileges' },
] as const;

/** Parses a permission string. @throws LatchkeyError E_INVALID */
export function parsePermission(permission: string): SqlPermission {
  switch (permission) {
    case 'connect':
    case 'read':
    case 'write':
    case 'admin':
      return { kind: permission };
  }
  if (permission.startsWith('role:')) {
    const role = permission.slice('role:'.length);
    if (role.length === 0 || role.length > 128 || role.includes('\u0000')) {
      throw new LatchkeyError('E_INVALID', 'role permission needs a role name');
    }
    return { kind: 'role', role };
  }
  throw new LatchkeyError('E_INVALID', `unknown permission ${JSON.stringify(permission)}`);
}

export function permissionString(p: SqlPermission): string {
  return p.kind === 'role' ? `role:${p.role}` : p.kind;
}

/**
 * Checks that the permission fits the resources, before anything changes.
 * - `role:<name>`: no resources, or exactly `role:<name>`; a role resource alone with
 *   another permission is refused.
 * - `connect`: database resources only.
 * - `read`/`write`/`admin`: at least one database, schema or table; no role resources.
 */
export function validateGrantShape(
  permission: SqlPermission,
  resources: SqlResource[],
): SqlResource[] {
  if (permission.kind === 'role') {
    for (const r of resources) {
      if (r.kind !== 'role' || r.role !== permission.role) {
        throw new LatchkeyError(
          'E_INVALID',
          'a role:<name> permission takes no resource other than that role',
        );
      }
    }
    return [{ kind: 'role', role: permission.role }];
  }
  if (resources.length === 0) throw new LatchkeyError('E_INVALID', 'the grant names no resource');
  for (const r of resources) {
    if (r.kind === 'role') {
      throw new LatchkeyError(
        'E_INVALID',
        'a role resource is granted with the permission role:<name>',
      );
    }
    if (permission.kind === 'connect' && r.kind !== 'database') {
      throw new LatchkeyError('E_INVALID', 'connect applies to database resources only');
    }
  }
  const seen = new Set<string>();
  return resources.filter((r) => {
    const id = resourceIdOf(r);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/** Databases a grant touches, in order of first appearance. */
export function databasesOf(resources: SqlResource[]): string[] {
  const out: string[] = [];
  for (const r of resources) {
    if (r.kind !== 'role' && !out.includes(r.database)) out.push(r.database);
  }
  return out;
}
