/**
 * Reading `SHOW GRANTS` output (MySQL 8 and MariaDB) for the `check` command: which
 * privileges the service account holds, where, and whether it may pass them on.
 */
import { quoteIdent, type RequiredPrivilege } from './dialect.js';

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
