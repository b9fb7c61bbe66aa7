/**
 * PostgreSQL/Redshift guardrails: what a grant may never name or lead to.
 *
 * Glossary
 * - **system schema**: `pg_catalog`, `information_schema`, Redshift's `catalog_history`,
 *   and every schema whose name starts with `pg_` (`pg_toast`, `pg_temp_N`,
 *   `pg_toast_temp_N`, Redshift's `pg_internal`, …; PostgreSQL reserves the prefix). Never a grant target, in any
 *   resource form: a schema, a table in it, or a database-wide grant (which skips them).
 * - **journal schema**: `<prefix>meta` in the maintenance database, owned by the service
 *   account, no access for anyone else: the agent's own records (grant journal, Redshift
 *   markers and lock). Never a grant target either, whatever database names it.
 * - **holding role**: `<prefix>holding`, NOLOGIN, no privileges, no memberships: owner of
 *   the objects of users that cleanup dropped (instead of the service account).
 * - **dangerous role**: a role whose membership closure (every role it is a member of,
 *   directly or transitively) reaches a superuser, a role with CREATEROLE, REPLICATION or
 *   BYPASSRLS, a predefined role that amounts to control of the server, the service
 *   account, a role Latchkey manages, or any membership held WITH ADMIN OPTION (which
 *   lets the holder hand the role on, beyond revoke). `role:<name>` refuses it with
 *   `E_GUARDRAIL` naming the path; discovery marks it not grantable.
 */
import { LatchkeyError } from '../../errors.js';
import type { SqlResource, SqlSession } from '../sql/dialect.js';

/**
 * Predefined (or RDS) roles that amount to control of the server or of all its data:
 * never granted through `role:<name>`, nor any role that is a member of one.
 */
export const FORBIDDEN_ROLES: ReadonlySet<string> = new Set([
  'rds_superuser',
  'rds_replication',
  'rds_password',
  'rdsadmin',
  'pg_execute_server_program',
  'pg_read_server_files',
  'pg_write_server_files',
  'pg_signal_backend',
  'pg_checkpoint',
  'pg_create_subscription',
  'pg_database_owner',
  'pg_read_all_data',
  'pg_write_all_data',
]);

/** True for `pg_catalog`, `information_schema` and every `pg_*` schema (any case). */
export function isSystemSchema(schema: string): boolean {
  const s = schema.toLowerCase();
  return s === 'information_schema' || s === 'catalog_history' || s.startsWith('pg_');
}

/** The agent's journal schema for a prefix. */
export function journalSchemaName(prefix: string): string {
  return `${prefix}meta`;
}

/** The holding role for a prefix. */
export function holdingRoleName(prefix: string): string {
  return `${prefix}holding`;
}

/**
 * Refuses system schemas and catalogs, and the agent's own journal, in any resource.
 * @throws LatchkeyError E_GUARDRAIL
 */
export function checkResourceNotProtected(r: SqlResource, prefix: string): void {
  if (r.kind !== 'schema' && r.kind !== 'table') return;
  const schema = r.schema ?? 'public';
  if (isSystemSchema(schema)) {
    throw new LatchkeyError(
      'E_GUARDRAIL',
      `schema ${JSON.stringify(schema)} is a system schema and is never granted`,
    );
  }
  if (schema === journalSchemaName(prefix)) {
    throw new LatchkeyError(
      'E_GUARDRAIL',
      `schema ${JSON.stringify(schema)} holds Latchkey's own records and is never granted`,
    );
  }
}

/** SQL condition (on `pg_namespace n`) excluding system schemas and the journal schema `$n`. */
export function grantableSchemaCondition(journalParam: string): string {
  return `n.nspname <> 'information_schema' AND lower(n.nspname) NOT LIKE 'pg\\_%' AND n.nspname <> ${journalParam}`;
}

interface RoleNode {
  name: string;
  powerful: string | null;
}
interface Edge {
  to: number;
  admin: boolean;
}

/** The cluster's roles and memberships, read once (`pg_roles`, `pg_auth_members`). */
export class RoleGraph {
  private constructor(
    private readonly nodes: Map<number, RoleNode>,
    private readonly byName: Map<string, number>,
    private readonly edges: Map<number, Edge[]>,
  ) {}

  static async load(session: SqlSession): Promise<RoleGraph> {
    const roles = await session.query(
      `SELECT oid::int8::text AS oid, rolname, rolsuper, rolcreaterole, rolreplication, rolbypassrls
         FROM pg_roles`,
    );
    const members = await session.query(
      `SELECT member::int8::text AS member, roleid::int8::text AS roleid, admin_option FROM pg_auth_members`,
    );
    const nodes = new Map<number, RoleNode>();
    const byName = new Map<string, number>();
    for (const r of roles) {
      const oid = Number(r.oid);
      const name = typeof r.rolname === 'string' ? r.rolname : '';
      const powerful =
        r.rolsuper === true
          ? 'SUPERUSER'
          : r.rolcreaterole === true
            ? 'CREATEROLE'
            : r.rolreplication === true
              ? 'REPLICATION'
              : r.rolbypassrls === true
                ? 'BYPASSRLS'
                : null;
      nodes.set(oid, { name, powerful });
      byName.set(name, oid);
    }
    const edges = new Map<number, Edge[]>();
    for (const m of members) {
      const from = Number(m.member);
      const list = edges.get(from) ?? [];
      list.push({ to: Number(m.roleid), admin: m.admin_option === true });
      edges.set(from, list);
    }
    return new RoleGraph(nodes, byName, edges);
  }

  has(role: string): boolean {
    return this.byName.has(role);
  }

  /**
   * Why `role` may not be granted, as a path (`a → b (SUPERUSER)`), or null when it may.
   * Walks the whole membership closure breadth-first, so the shortest path is named.
   */
  dangerPath(role: string, ctx: { serviceAccount: string; prefix: string }): string | null {
    const start = this.byName.get(role);
    if (start === undefined) return null;
    const why = (oid: number): string | null => {
      const n = this.nodes.get(oid);
      if (!n) return null;
      if (n.name === ctx.serviceAccount) return 'the service account';
      if (n.name.startsWith(ctx.prefix)) return 'managed by Latchkey';
      if (n.powerful) return n.powerful;
      if (FORBIDDEN_ROLES.has(n.name)) return 'server-level predefined role';
      return null;
    };
    const parent = new Map<number, { from: number; admin: boolean } | null>([[start, null]]);
    const queue = [start];
    const path = (oid: number): string => {
      const names: string[] = [];
      let cur: number | undefined = oid;
      while (cur !== undefined) {
        const p = parent.get(cur);
        const name = JSON.stringify(this.nodes.get(cur)?.name ?? String(cur));
        names.unshift(p?.admin === true ? `${name} (WITH ADMIN OPTION)` : name);
        cur = p?.from;
      }
      return names.join(' \u2192 ');
    };
    for (let i = 0; i < queue.length; i++) {
      const oid = queue[i] as number;
      const reason = why(oid);
      if (reason !== null) return `${path(oid)}: ${reason}`;
      for (const e of this.edges.get(oid) ?? []) {
        if (parent.has(e.to)) continue;
        parent.set(e.to, { from: oid, admin: e.admin });
        if (e.admin) return `${path(e.to)}: a membership WITH ADMIN OPTION can be handed on`;
        queue.push(e.to);
      }
    }
    return null;
  }
}
