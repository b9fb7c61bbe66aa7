/**
 * The markers Latchkey writes on what it creates, as JSON text (PostgreSQL role comment,
 * MySQL user attribute/comment). Parsed with zod: an unreadable marker means "not ours".
 */
import { z } from 'zod';
import type { ResourceRef } from '../../protocol/messages.js';
import { parseJsonBounded } from '../../protocol/json-depth.js';
import { BoundedCache } from '../../bounded-cache.js';
import type { GrantRecord } from './dialect.js';
import { parsePermission, parseResource, permissionString, resourceIdOf } from './resources.js';

export const MANAGED_BY = 'latchkey';

const UserMarkerSchema = z.object({
  managedBy: z.literal(MANAGED_BY),
  kind: z.literal('user'),
  v: z.literal(1),
  /** The grant whose result carries the current password (absent: a rotate, or unknown). */
  issuedFor: z.string().min(1).max(256).nullish(),
});

const GrantMarkerSchema = z.object({
  managedBy: z.literal(MANAGED_BY),
  kind: z.literal('grant'),
  v: z.literal(1),
  grantId: z.string().min(1),
  username: z.string().min(1),
  permission: z.string().min(1),
  resources: z.array(z.string().min(1)),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
});

/**
 * Marker text for a user; `issuedFor` names the grant whose result carries the current
 * password (a grant id: nothing personal), omitted after a rotate and under IAM auth.
 */
export function userMarker(issuedFor: string | null = null): string {
  return JSON.stringify({
    managedBy: MANAGED_BY,
    kind: 'user',
    v: 1,
    ...(issuedFor === null ? {} : { issuedFor }),
  });
}

/** The user marker's content, or null when the text is not our user marker. */
export function parseUserMarker(
  text: string | null | undefined,
): { issuedFor: string | null } | null {
  if (!text) return null;
  try {
    const parsed = UserMarkerSchema.safeParse(parseJsonBounded(text));
    return parsed.success ? { issuedFor: parsed.data.issuedFor ?? null } : null;
  } catch {
    return null;
  }
}

export function isUserMarker(text: string | null | undefined): boolean {
  return parseUserMarker(text) !== null;
}

/** Marker text for a grant role: the whole grant record. */
export function grantMarker(record: GrantRecord): string {
  return JSON.stringify({
    managedBy: MANAGED_BY,
    kind: 'grant',
    v: 1,
    grantId: record.grantId,
    username: record.username,
    permission: permissionString(record.permission),
    resources: record.resources.map(resourceIdOf),
    ...(record.expiresAt === undefined ? {} : { expiresAt: record.expiresAt }),
  });
}

/** The grant record of a role's marker, or null when the text is not our grant marker. */
export function parseGrantMarker(
  role: string,
  text: string | null | undefined,
  hasSchemas: boolean,
): GrantRecord | null {
  if (!text) return null;
  let json: unknown;
  try {
    json = parseJsonBounded(text);
  } catch {
    return null;
  }
  const parsed = GrantMarkerSchema.safeParse(json);
  if (!parsed.success) return null;
  try {
    const m = parsed.data;
    const resources = m.resources.map((id) => {
      const ref: ResourceRef = { type: id.slice(0, Math.max(0, id.indexOf(':'))), id };
      return parseResource(ref, hasSchemas);
    });
    return {
      grantId: m.grantId,
      role,
      username: m.username,
      permission: parsePermission(m.permission),
      resources,
      ...(m.expiresAt === undefined ? {} : { expiresAt: m.expiresAt }),
    };
  } catch {
    return null;
  }
}

/** Grant records read lately, by dialect, role and record text (frozen: shared between calls). */
const grantRecords = new BoundedCache<string, GrantRecord | null>(512);

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * `parseGrantMarker`, kept by the exact role and text: a revoke reads the same record up to
 * three times and every read validated it again (JSON, zod). The record is frozen.
 */
export function grantRecordOf(
  role: string,
  text: string | null | undefined,
  hasSchemas: boolean,
): GrantRecord | null {
  if (!text) return null;
  return grantRecords.get(`${hasSchemas ? 's' : '-'}\0${role}\0${text}`, () =>
    deepFreeze(parseGrantMarker(role, text, hasSchemas)),
  );
}

// ---------------------------------------------------------------------------------------
// Grant-role marker v2 (PostgreSQL): the role comment says only "ours"; the grant record
// itself (username, permission, resources, expiry) lives where only the service account
// can read it (the journal table). v1 comments (the whole record) are still read.

const MinimalGrantMarkerSchema = z.object({
  managedBy: z.literal(MANAGED_BY),
  kind: z.literal('grant'),
  v: z.literal(2),
});

/** Marker text of a grant role whose record is kept in the journal: nothing personal. */
export function minimalGrantMarker(): string {
  return JSON.stringify({ managedBy: MANAGED_BY, kind: 'grant', v: 2 });
}

export function parseMinimalGrantMarker(text: string | null | undefined): boolean {
  if (!text) return false;
  try {
    return MinimalGrantMarkerSchema.safeParse(JSON.parse(text)).success;
  } catch {
    return false;
  }
}

/** Marker of the holding role (owner of objects left by users that cleanup dropped). */
export const HOLDING_MARKER = JSON.stringify({ managedBy: MANAGED_BY, kind: 'holding', v: 1 });

export function isHoldingMarker(text: string | null | undefined): boolean {
  if (!text) return false;
  try {
    const j = JSON.parse(text) as unknown;
    return (
      typeof j === 'object' &&
      j !== null &&
      (j as Record<string, unknown>).managedBy === MANAGED_BY &&
      (j as Record<string, unknown>).kind === 'holding'
    );
  } catch {
    return false;
  }
}
