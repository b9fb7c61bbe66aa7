/**
 * PostgreSQL (and Redshift) native errors → LatchkeyError, in one function.
 *
 * Messages name the SQLSTATE and a fixed explanation plus the server's own message
 * (which names objects, never values or passwords: we never bind secrets). Never the
 * SQL text.
 */
import { LatchkeyError, isLatchkeyError } from '../../errors.js';
import type { ErrorCode } from '../../errors.js';

interface PgLikeError {
  code?: unknown;
  message?: unknown;
  severity?: unknown;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** SQLSTATE (exact) → code. */
const EXACT: Record<string, ErrorCode> = {
  '28P01': 'E_CONNECT', // invalid_password (of the service account)
  '28000': 'E_CONNECT', // invalid_authorization_specification (pg_hba)
  '42501': 'E_PRIVILEGE', // insufficient_privilege
  '3D000': 'E_NOT_FOUND', // invalid_catalog_name: database does not exist
  '3F000': 'E_NOT_FOUND', // invalid_schema_name
  '42P01': 'E_NOT_FOUND', // undefined_table
  '42704': 'E_NOT_FOUND', // undefined_object (role)
  '42710': 'E_CONFLICT', // duplicate_object: a concurrent create
  '23505': 'E_CONFLICT', // unique_violation (concurrent CREATE ROLE)
  '40P01': 'E_CONFLICT', // deadlock_detected
  '40001': 'E_CONFLICT', // serialization_failure
  '55P03': 'E_CONFLICT', // lock_not_available
  '55006': 'E_CONFLICT', // object_in_use
  '57014': 'E_TIMEOUT', // query_canceled (statement_timeout, cancel)
  '2BP01': 'E_GUARDRAIL', // dependent_objects_still_exist
  '0LP01': 'E_PRIVILEGE', // invalid_grant_operation
  '42939': 'E_GUARDRAIL', // reserved_name
  '53300': 'E_CONNECT', // too_many_connections
  '25P03': 'E_CONNECT', // idle_in_transaction_session_timeout: the server ended the session
  '22023': 'E_INVALID', // invalid_parameter_value
  '42602': 'E_INVALID', // invalid_name
  '42622': 'E_INVALID', // name_too_long
  '22021': 'E_INVALID', // character_not_in_repertoire
};

/** SQLSTATE class (first two characters) → code. */
const CLASS: Record<string, ErrorCode> = {
  '08': 'E_CONNECT', // connection exception
  '28': 'E_CONNECT', // invalid authorization
  '57': 'E_CONNECT', // operator intervention (shutdown)
  '53': 'E_THROTTLED', // insufficient resources
  '40': 'E_CONFLICT', // transaction rollback
  '22': 'E_INVALID', // data exception
};

const EXPLAIN: Partial<Record<ErrorCode, string>> = {
  E_CONNECT: 'cannot connect to the server, or the service account could not log in',
  E_PRIVILEGE: 'the service account lacks a needed privilege',
  E_NOT_FOUND: 'an object does not exist',
  E_CONFLICT: 'a concurrent operation got in the way; retry',
  E_TIMEOUT: 'the statement was cancelled or timed out',
  E_GUARDRAIL: 'objects still depend on it',
  E_INVALID: 'a value was refused by the server',
  E_THROTTLED: 'the server is out of resources',
  E_INTERNAL: 'unexpected database error',
};

function serverMessage(err: PgLikeError): string {
  const m = typeof err.message === 'string' ? err.message : '';
  // Never echo anything that looks like it carries a password or a connection string.
  if (/password|postgres(ql)?:\/\/|token/i.test(m) && !/password authentication failed/i.test(m))
    return '';
  return m.length > 300 ? `${m.slice(0, 300)}…` : m;
}

/** The one mapping of PostgreSQL/Redshift errors (SQLSTATE, socket and TLS errors). */
export function mapPgError(err: unknown): LatchkeyError {
  if (isLatchkeyError(err)) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as PgLikeError;
  const code = typeof e.code === 'string' ? e.code : undefined;
  if (code !== undefined && NETWORK_CODES.has(code)) {
    return new LatchkeyError('E_CONNECT', `cannot reach the server (${code})`, { cause: err });
  }
  if (code === 'XX000' && typeof e.message === 'string' && /concurrently updated/.test(e.message)) {
    return new LatchkeyError(
      'E_CONFLICT',
      `${EXPLAIN.E_CONFLICT ?? ''} (SQLSTATE XX000: tuple concurrently updated)`,
      {
        cause: err,
        details: { sqlstate: code },
      },
    );
  }
  if (code !== undefined && /^[0-9A-Z]{5}$/.test(code)) {
    const mapped = EXACT[code] ?? CLASS[code.slice(0, 2)] ?? 'E_INTERNAL';
    const msg = serverMessage(e);
    return new LatchkeyError(
      mapped,
      `${EXPLAIN[mapped] ?? 'database error'} (SQLSTATE ${code}${msg ? `: ${msg}` : ''})`,
      {
        cause: err,
        details: { sqlstate: code },
      },
    );
  }
  const message = err instanceof Error ? err.message : '';
  if (/timeout|timed out/i.test(message)) {
    return new LatchkeyError('E_CONNECT', 'connection to the server timed out', { cause: err });
  }
  if (
    /Connection terminated|not queryable|ssl|tls|certificate|does not support SSL/i.test(message)
  ) {
    return new LatchkeyError(
      'E_CONNECT',
      `connection to the server failed (${message.slice(0, 200)})`,
      { cause: err },
    );
  }
  return new LatchkeyError('E_INTERNAL', 'unexpected database error (see agent log)', {
    cause: err,
  });
}
