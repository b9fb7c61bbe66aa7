/**
 * The agent's records on an EKS access entry, kept in the entry's own tags (the target is
 * the journal: another replica, a restart or the sweep reads them there). Pure: no AWS calls.
 * Why tags: docs/decisions/0006-eks-access-entry-sharing.md.
 *
 * Tags (`<p>` = the tag prefix, default `latchkey`):
 * - `<p>-managed = true`: the agent created the entry; only then may it delete it.
 * - `<p>-g.<gid> = <level>/<expiry>/<scope>/.`: one live grant holding `<level>` on this
 *   entry, `<expiry>` epoch seconds or `never`, `<scope>` `cluster` or `ns:<a>+<b>+…`.
 * - `<p>-b.<level> = <scope>/.`: the association of that policy that existed before the agent
 *   first granted it on this entry (restored when the last grant holding it goes).
 * - A value longer than AWS's 256 characters continues in `<p>-gc<n>.<gid>` /
 *   `<p>-bc<n>.<level>` (n = 2, 3, …). The final `/.` marks the end, so a record missing a
 *   piece (middle or last) is unreadable, never misread.
 * - `<p>-protected = true` (set by people): the agent never touches the entry.
 *
 * `<gid>` is the grant id when it is tag-safe and short, else `h-` + 40 hex of its SHA-256.
 */
import { createHash } from 'node:crypto';
import { EKS_LEVELS, type AccessScopeSpec, type EksLevel } from './scope.js';

/** AWS's limits on tags of one EKS resource. */
export const MAX_TAGS = 50;
export const MAX_TAG_VALUE = 256;
const MAX_TAG_KEY = 128;

export interface GrantRecord {
  level: EksLevel;
  scope: AccessScopeSpec;
  /** Epoch milliseconds, or undefined when the grant never expires. */
  expiresAt: number | undefined;
}

export interface EntryRecords {
  managed: boolean;
  protected: boolean;
  grants: Map<string, GrantRecord>;
  bases: Map<EksLevel, AccessScopeSpec>;
  /** Tag keys per grant id / per base level (every chunk). */
  grantKeys: Map<string, string[]>;
  baseKeys: Map<EksLevel, string[]>;
  /** Our keys whose value could not be read: never removed, and the entry is never deleted while they exist. */
  unreadable: string[];
  /** Every tag on the entry (ours or not), for the 50-tag limit. */
  tagCount: number;
}

export function grantTagId(grantId: string, prefix: string): string {
  if (/^[A-Za-z0-9_.:=@+-]+$/.test(grantId) && `${prefix}-gc99.${grantId}`.length <= MAX_TAG_KEY) {
    return grantId;
  }
  return `h-${createHash('sha256').update(grantId).digest('hex').slice(0, 40)}`;
}

export const managedKey = (prefix: string): string => `${prefix}-managed`;
export const protectedKey = (prefix: string): string => `${prefix}-protected`;
const grantKey = (prefix: string, gid: string, n: number): string =>
  n === 1 ? `${prefix}-g.${gid}` : `${prefix}-gc${n}.${gid}`;
const baseKey = (prefix: string, level: EksLevel, n: number): string =>
  n === 1 ? `${prefix}-b.${level}` : `${prefix}-bc${n}.${level}`;

export function encodeScope(scope: AccessScopeSpec): string {
  return scope.type === 'cluster' ? 'cluster' : `ns:${scope.namespaces.join('+')}`;
}

export function decodeScope(text: string): AccessScopeSpec | undefined {
  if (text === 'cluster') return { type: 'cluster' };
  if (!text.startsWith('ns:')) return undefined;
  const namespaces = text.slice(3).split('+');
  if (namespaces.some((n) => !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(n))) return undefined;
  return { type: 'namespace', namespaces: [...new Set(namespaces)].sort() };
}

function chunks(value: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < value.length; i += MAX_TAG_VALUE) out.push(value.slice(i, i + MAX_TAG_VALUE));
  return out.length > 0 ? out : [''];
}

/** Ends every record; a record without it lost its last piece. */
const END = '/.';

/** The tags that record one grant. */
export function grantTags(prefix: string, gid: string, rec: GrantRecord): Record<string, string> {
  const expiry = rec.expiresAt === undefined ? 'never' : String(Math.floor(rec.expiresAt / 1000));
  const tags: Record<string, string> = {};
  chunks(`${rec.level}/${expiry}/${encodeScope(rec.scope)}${END}`).forEach((c, i) => {
    tags[grantKey(prefix, gid, i + 1)] = c;
  });
  return tags;
}

/** The tags that record the association of `level` that existed before the agent. */
export function baseTags(
  prefix: string,
  level: EksLevel,
  scope: AccessScopeSpec,
): Record<string, string> {
  const tags: Record<string, string> = {};
  chunks(`${encodeScope(scope)}${END}`).forEach((c, i) => {
    tags[baseKey(prefix, level, i + 1)] = c;
  });
  return tags;
}

function decodeGrant(text: string): GrantRecord | undefined {
  const m = /^([a-z-]+)\/(never|\d{1,12})\/(.+)$/.exec(text);
  if (!m?.[1] || !m[2] || !m[3]) return undefined;
  const level = EKS_LEVELS.find((l) => l === m[1]);
  const scope = decodeScope(m[3]);
  if (level === undefined || scope === undefined) return undefined;
  return { level, scope, expiresAt: m[2] === 'never' ? undefined : Number(m[2]) * 1000 };
}

/** Read the agent's records from an entry's tags. */
export function readRecords(
  tags: Record<string, string> | undefined,
  prefix: string,
): EntryRecords {
  const all = tags ?? {};
  const rec: EntryRecords = {
    managed: all[managedKey(prefix)] === 'true',
    protected: all[protectedKey(prefix)] === 'true',
    grants: new Map(),
    bases: new Map(),
    grantKeys: new Map(),
    baseKeys: new Map(),
    unreadable: [],
    tagCount: Object.keys(all).length,
  };
  const esc = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const keyRe = new RegExp(`^${esc}-(g|b)(?:c(\\d{1,2}))?\\.(.+)$`);
  const parts = new Map<string, { kind: 'g' | 'b'; id: string; pieces: Map<number, string> }>();
  for (const [key, value] of Object.entries(all)) {
    const m = keyRe.exec(key);
    if (!m?.[1] || !m[3]) continue;
    const kind = m[1] as 'g' | 'b';
    const n = m[2] === undefined ? 1 : Number(m[2]);
    const id = `${kind}|${m[3]}`;
    const p = parts.get(id) ?? { kind, id: m[3], pieces: new Map<number, string>() };
    p.pieces.set(n, value);
    parts.set(id, p);
  }
  for (const { kind, id, pieces } of parts.values()) {
    const keys: string[] = [];
    let text = '';
    let complete = true;
    const last = Math.max(...pieces.keys());
    for (let n = 1; n <= last; n++) {
      const v = pieces.get(n);
      if (v === undefined) complete = false;
      else {
        text += v;
        keys.push(kind === 'g' ? grantKey(prefix, id, n) : baseKey(prefix, id as EksLevel, n));
      }
    }
    if (complete && text.endsWith(END)) text = text.slice(0, -END.length);
    else complete = false;
    if (kind === 'g') {
      const g = complete ? decodeGrant(text) : undefined;
      if (g) {
        rec.grants.set(id, g);
        rec.grantKeys.set(id, keys);
      } else rec.unreadable.push(...keys);
    } else {
      const level = EKS_LEVELS.find((l) => l === id);
      const scope = complete ? decodeScope(text) : undefined;
      if (level !== undefined && scope !== undefined) {
        rec.bases.set(level, scope);
        rec.baseKeys.set(level, keys);
      } else rec.unreadable.push(...keys);
    }
  }
  return rec;
}

export function sameScope(a: AccessScopeSpec | undefined, b: AccessScopeSpec | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.type !== b.type) return false;
  if (a.type === 'cluster' || b.type === 'cluster') return true;
  const x = [...new Set(a.namespaces)].sort();
  const y = [...new Set(b.namespaces)].sort();
  return x.length === y.length && x.every((n, i) => n === y[i]);
}

/**
 * The association `level` must have: the union of the scopes of the grants holding it and
 * of the association that existed before the agent; undefined when nothing holds it.
 */
export function desiredScope(
  rec: Pick<EntryRecords, 'grants' | 'bases'>,
  level: EksLevel,
  without?: string,
): AccessScopeSpec | undefined {
  const holders: AccessScopeSpec[] = [];
  for (const [gid, g] of rec.grants)
    if (g.level === level && gid !== without) holders.push(g.scope);
  const base = rec.bases.get(level);
  if (base) holders.push(base);
  if (holders.length === 0) return undefined;
  if (holders.some((s) => s.type === 'cluster')) return { type: 'cluster' };
  const ns = new Set<string>();
  for (const s of holders) if (s.type === 'namespace') for (const n of s.namespaces) ns.add(n);
  return { type: 'namespace', namespaces: [...ns].sort() };
}
