/**
 * Deterministic database usernames and per-grant role names.
 *
 * - The same email always maps to the same username (per prefix and engine).
 * - Only `[a-z0-9_]`, starting with the prefix, never longer than the engine's limit.
 * - A short hash of the normalised email is always appended, so two emails that read
 *   the same after sanitising (`a.b@x.io` and `a_b@x.io`) or after truncation never
 *   collide.
 */
import { createHash } from 'node:crypto';
import { LatchkeyError } from '../../errors.js';

/** Maximum identifier length for a login, per engine. */
export const USERNAME_LIMITS = {
  postgres: 63,
  redshift: 127,
  mysql: 32,
  mariadb: 80,
} as const;
export type SqlEngine = keyof typeof USERNAME_LIMITS;

/** Default prefix of everything Latchkey creates in a database. */
export const DEFAULT_USER_PREFIX = 'lk_';

/** A prefix: lower-case letter first, then `[a-z0-9_]`, at most 24 characters. */
export const USER_PREFIX_PATTERN = /^[a-z][a-z0-9_]{0,23}$/;

/** Length of the hash suffix (hex characters). */
export const HASH_LENGTH = 8;

/** Smallest room a body needs after prefix and suffix. */
const MIN_BODY = 4;

export function assertValidPrefix(prefix: string, maxLength: number): void {
  if (!USER_PREFIX_PATTERN.test(prefix)) {
    throw new LatchkeyError(
      'E_INVALID',
      'userPrefix must start with a lower-case letter and contain only a-z, 0-9 and _ (at most 24 characters)',
    );
  }
  // prefix + "g_" + body + "_" + hash must fit
  if (prefix.length + 2 + MIN_BODY + 1 + HASH_LENGTH > maxLength) {
    throw new LatchkeyError(
      'E_INVALID',
      `userPrefix is too long for this engine (limit ${maxLength})`,
    );
  }
}

/** Lower-case hex SHA-256 prefix of a string. */
export function shortHash(value: string, length = HASH_LENGTH): string {
  return createHash('sha256').update(value, 'utf8').digest('hex').slice(0, length);
}

/** Lower-case, every run of characters outside `[a-z0-9_]` becomes one `_`, trimmed of `_`. */
export function sanitize(value: string): string {
  return value
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/_+/g, '_')
    .replace(/^_+|_+$/g, '');
}

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

function withSuffix(prefix: string, body: string, hash: string, maxLength: number): string {
  const room = maxLength - prefix.length - 1 - hash.length;
  const trimmed = body.slice(0, Math.max(0, room)).replace(/_+$/g, '');
  return trimmed.length > 0 ? `${prefix}${trimmed}_${hash}` : `${prefix}${hash}`;
}

/**
 * The database username of a grantee.
 *
 * `deriveUsername('Ann.Lee@Example.com', { prefix: 'lk_', maxLength: 63 })`
 * → `lk_ann_lee_example_com_1a2b3c4d`.
 */
export function deriveUsername(email: string, opts: { prefix: string; maxLength: number }): string {
  assertValidPrefix(opts.prefix, opts.maxLength);
  const normal = normaliseEmail(email);
  if (normal.length === 0) throw new LatchkeyError('E_INVALID', 'grantee email is empty');
  return withSuffix(opts.prefix, sanitize(normal), shortHash(normal), opts.maxLength);
}

/**
 * The per-grant role name: `<prefix>g_<grantId>`. When the grant id is not already
 * `[a-z0-9_]` or does not fit, the sanitised id is truncated and a hash of the original
 * id is appended, so distinct grant ids give distinct roles.
 */
export function grantRoleName(
  grantId: string,
  opts: { prefix: string; maxLength: number },
): string {
  assertValidPrefix(opts.prefix, opts.maxLength);
  if (grantId.length === 0) throw new LatchkeyError('E_INVALID', 'grantId is empty');
  const head = `${opts.prefix}g_`;
  if (/^[a-z0-9_]+$/.test(grantId) && head.length + grantId.length <= opts.maxLength) {
    // A plain id never ends in "_<8 hex>" from hashing unless it literally does; keep it as is.
    return `${head}${grantId}`;
  }
  return withSuffix(head, sanitize(grantId), shortHash(grantId), opts.maxLength);
}

/** True when `name` looks like one of our grant roles for this prefix. */
export function isGrantRoleName(name: string, prefix: string): boolean {
  return name.startsWith(`${prefix}g_`);
}
