/**
 * Reading `SHOW GRANTS` output (MySQL 8 and MariaDB) for the `check` command: which
 * privileges the service account holds, where, and whether it may pass them on.
 */
import type { Row } from '../sql/dialect.js';
import { quoteIdent, str, type RequiredPrivilege } from './dialect.js';

export type GrantObject =
  | { kind: 'global' }
  | { kind: 'database'; database: string }
  | { kind: 'table'; database: string; table: string }
  | { kind: 'other' };

export interface ParsedGrant {
  /** Upper-case privilege names (`SELECT`, `CREATE USER`, `ROLE_ADMIN`, `ALL PRIVILEGES`). */
  privileges: string[];
  on: GrantObject;
  grantOption: boolean;
}

/** Splits at top level (outside backticks, quotes and parentheses). */
function scan(text: string, onTopLevel: (i: number) => boolean): void {
  let quote: string | null = null;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote !== null) {
      if (c === '\\' && quote !== '`') i++;
      else if (c === quote) {
        if (text[i + 1] === quote) i++;
        else quote = null;
      }
      continue;
    }
    if (c === '`' || c === "'" || c === '"') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (depth === 0 && onTopLevel(i)) return;
  }
}

function indexOfTopLevel(text: string, word: string, from = 0): number {
  let found = -1;
  scan(text, (i) => {
    if (i >= from && text.startsWith(word, i)) {
      found = i;
      return true;
    }
    return false;
  });
  return found;
}

function splitTopLevel(text: string, sep: string): string[] {
  const parts: string[] = [];
  let start = 0;
  scan(text, (i) => {
    if (text[i] === sep) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
    return false;
  });
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

/** Reads one identifier (`` `a``b` ``, `'x'`, bare or `*`) at the start; returns it and the rest. */
function readIdent(text: string): [string, string] | null {
  const c = text[0];
  if (c === '`' || c === "'" || c === '"') {
    let out = '';
    for (let i = 1; i < text.length; i++) {
      if (text[i] === c) {
        if (text[i + 1] === c) {
          out += c;
          i++;
          continue;
        }
        return [out, text.slice(i + 1)];
      }
      out += text[i];
    }
    return null;
  }
  const m = /^([^.\s]+)/.exec(text);
  return m?.[1] !== undefined ? [m[1], text.slice(m[1].length)] : null;
}

/** Database patterns in grants escape `_` and `%`; compare on the unescaped name. */
function unescapeDb(name: string): string {
  return name.replace(/\\([_%\\])/g, '$1');
}

export function parseObject(text: string): GrantObject {
  const t = text.trim();
  if (/^(PROCEDURE|FUNCTION|PACKAGE|PACKAGE BODY)\s/i.test(t)) return { kind: 'other' };
  if (t === '*.*' || t === '*') return { kind: 'global' };
  const first = readIdent(t);
  if (!first) return { kind: 'other' };
  const [db, rest] = first;
  if (!rest.startsWith('.')) return { kind: 'other' };
  const tail = rest.slice(1);
  if (tail === '*') return { kind: 'database', database: unescapeDb(db) };
  const second = readIdent(tail);
  if (!second || second[1].trim() !== '') return { kind: 'other' };
  return { kind: 'table', database: db, table: second[0] };
}

/** Parses one line of SHOW GRANTS; null for role grants and lines we do not read. */
export function parseGrantLine(line: string): ParsedGrant | null {
  const m = /^GRANT\s+/i.exec(line);
  if (!m) return null;
  const body = line.slice(m[0].length);
  const on = indexOfTopLevel(body, ' ON ');
  if (on < 0) return null; // GRANT `role` TO ...
  const to = indexOfTopLevel(body, ' TO ', on + 4);
  if (to < 0) return null;
  const privileges = splitTopLevel(body.slice(0, on), ',')
    .filter((p) => !p.includes('(')) // column-level grants are not what the driver needs
    .map((p) => p.replace(/\s+/g, ' ').toUpperCase());
  const rest = body.slice(to + 4);
  return {
    privileges,
    on: parseObject(body.slice(on + 4, to)),
    grantOption: indexOfTopLevel(rest, 'WITH GRANT OPTION') >= 0,
  };
}

export function parseShowGrants(lines: readonly string[]): ParsedGrant[] {
  return lines.map(parseGrantLine).filter((g): g is ParsedGrant => g !== null);
}

function covers(grant: ParsedGrant, on: RequiredPrivilege['on']): boolean {
  if (grant.on.kind === 'global') return true;
  return (
    typeof on === 'object' && grant.on.kind === 'database' && grant.on.database === on.database
  );
}

/** True when the grants hold `privilege` (or ALL PRIVILEGES, or an alternative) at `on`. */
export function holds(
  grants: readonly ParsedGrant[],
  privilege: string,
  on: RequiredPrivilege['on'],
  alternatives: readonly string[] = [],
): boolean {
  const names = new Set([privilege, ...alternatives, 'ALL PRIVILEGES']);
  return grants.some((g) => covers(g, on) && g.privileges.some((p) => names.has(p)));
}

/** True when the grants include WITH GRANT OPTION at `on` (MariaDB also lists `GRANT OPTION`). */
export function holdsGrantOption(
  grants: readonly ParsedGrant[],
  on: RequiredPrivilege['on'],
): boolean {
  return grants.some(
    (g) => covers(g, on) && (g.grantOption || g.privileges.includes('GRANT OPTION')),
  );
}

/** True when `privilege` is held at `on` together with the right to grant it. */
export function holdsGrantable(
  grants: readonly ParsedGrant[],
  privilege: string,
  on: RequiredPrivilege['on'],
): boolean {
  return grants.some(
    (g) =>
      covers(g, on) &&
      (g.grantOption || g.privileges.includes('GRANT OPTION')) &&
      g.privileges.some((p) => p === privilege || p === 'ALL PRIVILEGES'),
  );
}

/** The GRANT an operator runs to fix a missing privilege. */
export function fixStatement(
  privilege: string,
  on: RequiredPrivilege['on'],
  account: string,
): string {
  const target = on === '*.*' ? '*.*' : `${quoteIdent(on.database)}.*`;
  return `GRANT ${privilege} ON ${target} TO ${account}`;
}

// ---------------------------------------------------------------------------------------
// Roles a grantee would inherit (`role:<name>` guardrail)

/** A role as SHOW GRANTS names it (`` `r` `` on MariaDB: host ''; `` `r`@`%` `` on MySQL). */
export interface RoleName {
  name: string;
  host: string;
}

/** A `GRANT <role>[, <role>…] TO <account> [WITH ADMIN OPTION]` line; null for other lines. */
export function parseRoleGrantLine(line: string): { roles: RoleName[]; admin: boolean } | null {
  const m = /^GRANT\s+/i.exec(line);
  if (!m) return null;
  const body = line.slice(m[0].length);
  if (indexOfTopLevel(body, ' ON ') >= 0) return null;
  const to = indexOfTopLevel(body, ' TO ');
  if (to < 0) return null;
  const roles: RoleName[] = [];
  for (const part of splitTopLevel(body.slice(0, to), ',')) {
    const first = readIdent(part);
    if (!first) return null;
    const [name, rest] = first;
    let host = '';
    if (rest.startsWith('@')) {
      const second = readIdent(rest.slice(1));
      if (!second) return null;
      host = second[0];
    }
    roles.push({ name, host });
  }
  return { roles, admin: indexOfTopLevel(body.slice(to), 'WITH ADMIN OPTION') >= 0 };
}

/**
 * True when a database name or pattern of a grant line (as SHOW GRANTS prints it: `_` and
 * `%` are wildcards unless escaped with `\`) covers one of the guarded databases, compared
 * without regard to case.
 */
export function coversGuardedDatabase(pattern: string, guarded: readonly string[]): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    if (c === '\\' && i + 1 < pattern.length) {
      re += (pattern[++i] ?? '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    } else if (c === '%') re += '.*';
    else if (c === '_') re += '.';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  const rx = new RegExp(`^${re}$`, 'is');
  return guarded.some((g) => rx.test(g));
}

/**
 * Why one SHOW GRANTS line of a role makes it dangerous to hand out, or null. Dangerous:
 * any global privilege (`ON *.*`: ALL, SUPER, CREATE USER, FILE, PROCESS, SHUTDOWN,
 * RELOAD, MySQL 8 dynamic admin privileges, and also global SELECT/INSERT/…, which cover
 * `mysql.*`); any privilege on a guarded database (`mysql`, the agent's records) or a
 * routine in one; `WITH GRANT OPTION` anywhere (the grantee could pass privileges on to
 * accounts no revoke reaches); `PROXY`; `WITH ADMIN OPTION` on a role.
 */
export function dangerousGrantLine(line: string, guarded: readonly string[]): string | null {
  const roleGrant = parseRoleGrantLine(line);
  if (roleGrant !== null) {
    return roleGrant.admin
      ? `holds ${roleGrant.roles.map((r) => r.name).join(', ')} WITH ADMIN OPTION`
      : null;
  }
  const m = /^GRANT\s+/i.exec(line);
  if (!m) return null;
  const body = line.slice(m[0].length);
  const on = indexOfTopLevel(body, ' ON ');
  const to = on < 0 ? -1 : indexOfTopLevel(body, ' TO ', on + 4);
  if (on < 0 || to < 0) return `unreadable grant line`;
  const privileges = splitTopLevel(body.slice(0, on), ',').map((p) =>
    p.replace(/\s+/g, ' ').toUpperCase(),
  );
  const objectText = body.slice(on + 4, to).trim();
  const routine = /^(PROCEDURE|FUNCTION|PACKAGE BODY|PACKAGE)\s+/i.exec(objectText);
  const object = parseObject(routine ? objectText.slice(routine[0].length) : objectText);
  const where = objectText;
  if (
    indexOfTopLevel(body.slice(to), 'WITH GRANT OPTION') >= 0 ||
    privileges.includes('GRANT OPTION')
  ) {
    return `holds GRANT OPTION ON ${where}`;
  }
  if (privileges.some((p) => p === 'PROXY' || p.startsWith('PROXY '))) return `holds PROXY`;
  const real = privileges.filter((p) => p !== 'USAGE');
  if (object.kind === 'global') {
    return real.length > 0 ? `holds ${real.join(', ')} ON *.*` : null;
  }
  const rawDb = readIdent(routine ? objectText.slice(routine[0].length) : objectText)?.[0];
  if (object.kind === 'database' && rawDb !== undefined && coversGuardedDatabase(rawDb, guarded)) {
    return `holds ${privileges.join(', ')} ON ${where}`;
  }
  if (
    object.kind === 'table' &&
    guarded.some((g) => g.toLowerCase() === object.database.toLowerCase())
  ) {
    return `holds ${privileges.join(', ')} ON ${where}`;
  }
  if (object.kind === 'other' && !routine) return `holds ${privileges.join(', ')} ON ${where}`;
  return null;
}

/** The text of each SHOW GRANTS row (its one column is named after the account). */
export function grantLinesOf(rows: readonly Row[]): string[] {
  return rows.map((r) => {
    const key = Object.keys(r)[0];
    return key === undefined ? '' : str(r, key);
  });
}
