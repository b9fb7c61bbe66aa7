/**
 * Turning the raw fields of a secret (JSON object, Kubernetes data, files, environment)
 * into a `ServiceSecret`, with precise reasons that never include a value.
 */
import { LatchkeyError } from '../errors.js';
import type { ServiceSecret } from './types.js';

const KNOWN = new Set(['username', 'password', 'host', 'port', 'dbname']);

/**
 * @param fields the secret's fields; only string (and, for `port`, number) values are used.
 * @param where  how to name the secret in an error (`secret "arn:…"`, `directory /run/…`).
 * @throws LatchkeyError E_SECRET naming the missing or malformed field.
 */
export function toServiceSecret(
  fields: Record<string, unknown>,
  where: string,
  opts: { allowEmptyPassword?: boolean } = {},
): ServiceSecret {
  const username = requiredString(fields, 'username', where);
  const password = requiredString(fields, 'password', where, opts.allowEmptyPassword ?? false);
  const secret: ServiceSecret = { username, password, extra: {} };

  const host = optionalString(fields, 'host', where);
  if (host !== undefined) secret.host = host;
  const dbname = optionalString(fields, 'dbname', where);
  if (dbname !== undefined) secret.dbname = dbname;
  const port = parsePort(fields['port'], where);
  if (port !== undefined) secret.port = port;

  for (const [key, value] of Object.entries(fields)) {
    if (!KNOWN.has(key) && typeof value === 'string') secret.extra[key] = value;
  }
  return secret;
}

function requiredString(
  fields: Record<string, unknown>,
  key: string,
  where: string,
  allowEmpty = false,
): string {
  const value = fields[key];
  if (value === undefined || value === null) {
    throw new LatchkeyError('E_SECRET', `${where}: field "${key}" is missing`);
  }
  if (typeof value !== 'string') {
    throw new LatchkeyError('E_SECRET', `${where}: field "${key}" is not a string`);
  }
  if (value.length === 0 && !allowEmpty) {
    throw new LatchkeyError('E_SECRET', `${where}: field "${key}" is empty`);
  }
  return value;
}

function optionalString(
  fields: Record<string, unknown>,
  key: string,
  where: string,
): string | undefined {
  const value = fields[key];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') {
    throw new LatchkeyError('E_SECRET', `${where}: field "${key}" is not a string`);
  }
  return value;
}

function parsePort(value: unknown, where: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const port =
    typeof value === 'number' ? value : typeof value === 'string' ? Number(value.trim()) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new LatchkeyError('E_SECRET', `${where}: field "port" is not a TCP port (1-65535)`);
  }
  return port;
}

/** The JSON object stored for a `ServiceSecret` (extra fields first, so known fields win). */
export function fromServiceSecret(secret: ServiceSecret): Record<string, string | number> {
  const out: Record<string, string | number> = { ...secret.extra };
  out['username'] = secret.username;
  out['password'] = secret.password;
  if (secret.host !== undefined) out['host'] = secret.host;
  if (secret.port !== undefined) out['port'] = secret.port;
  if (secret.dbname !== undefined) out['dbname'] = secret.dbname;
  return out;
}

/** A deep copy, so callers can never change what a cache holds. */
export function copySecret(secret: ServiceSecret): ServiceSecret {
  return { ...secret, extra: { ...secret.extra } };
}
