/**
 * The one place where MySQL/MariaDB errors become Latchkey error codes.
 *
 * Messages are written for an operator and never carry the server's own message text:
 * a syntax error (1064) quotes the statement, which may hold a password literal. The
 * errno, SQLSTATE and client code go to `details` (local log only).
 */
import { LatchkeyError, type ErrorCode } from '../../errors.js';

/** What mysql2 puts on its errors (server errors have errno/sqlState; client errors only code). */
export interface MysqlErrorLike {
  errno?: number;
  code?: string;
  sqlState?: string;
  fatal?: boolean;
}

function asMysqlError(err: unknown): MysqlErrorLike | null {
  if (typeof err !== 'object' || err === null) return null;
  const e = err as Record<string, unknown>;
  const out: MysqlErrorLike = {};
  if (typeof e.errno === 'number') out.errno = e.errno;
  if (typeof e.code === 'string') out.code = e.code;
  if (typeof e.sqlState === 'string') out.sqlState = e.sqlState;
  if (typeof e.fatal === 'boolean') out.fatal = e.fatal;
  return out;
}

/** Server errnos (MySQL and MariaDB share these numbers) → code and operator text. */
const ERRNO: Record<number, [ErrorCode, string]> = {
  1044: ['E_PRIVILEGE', 'the service account has no access to that database'],
  1045: [
    'E_CONNECT',
    'access denied: wrong user name or password (or IAM token) for the service account',
  ],
  1698: ['E_CONNECT', 'access denied for the service account'],
  3159: ['E_CONNECT', 'the server requires TLS (set sslMode to require or verify-full)'],
  1040: ['E_THROTTLED', 'the server has too many connections'],
  1203: ['E_THROTTLED', 'the service account has too many open connections'],
  1226: ['E_THROTTLED', 'the service account exceeded a resource limit'],
  1129: ['E_CONNECT', 'the agent host is blocked by the server (too many connection errors)'],
  1130: ['E_CONNECT', 'the agent host is not allowed to connect to this server'],
  1142: [
    'E_PRIVILEGE',
    'the service account lacks a table privilege it must hold (with GRANT OPTION) to grant it',
  ],
  1143: ['E_PRIVILEGE', 'the service account lacks a column privilege'],
  1227: [
    'E_PRIVILEGE',
    'the service account lacks a needed global privilege (see the check command)',
  ],
  1410: [
    'E_PRIVILEGE',
    'the service account may not grant this (missing GRANT OPTION on the privilege)',
  ],
  1370: ['E_PRIVILEGE', 'the service account lacks a routine privilege'],
  1290: ['E_PRIVILEGE', 'the server runs with an option that forbids this statement (read-only?)'],
  1095: [
    'E_PRIVILEGE',
    'the service account may not kill that connection (needs CONNECTION ADMIN)',
  ],
  3530: ['E_PRIVILEGE', 'the service account may not grant that role'],
  4006: [
    'E_GUARDRAIL',
    'the user is the DEFINER of stored objects and cannot be dropped (change their DEFINER first)',
  ],
  1049: ['E_NOT_FOUND', 'the database does not exist'],
  1146: ['E_NOT_FOUND', 'the table does not exist'],
  3523: ['E_NOT_FOUND', 'the role does not exist'],
  1959: ['E_NOT_FOUND', 'the role does not exist'],
  1102: ['E_INVALID', 'invalid database name'],
  1103: ['E_INVALID', 'invalid table name'],
  1059: ['E_INVALID', 'identifier too long'],
  1470: ['E_INVALID', 'user or host name too long for this server'],
  1205: ['E_CONFLICT', 'lock wait timeout; another operation holds the lock'],
  1213: ['E_CONFLICT', 'deadlock with a concurrent operation'],
  1396: ['E_CONFLICT', 'the user or role was changed concurrently'],
  3024: ['E_TIMEOUT', 'the statement exceeded its execution time'],
  1969: ['E_TIMEOUT', 'the statement exceeded its execution time'],
  1317: ['E_CANCELLED', 'the statement was interrupted'],
  2013: ['E_CONNECT', 'lost connection to the server'],
  2006: ['E_CONNECT', 'the server has gone away'],
  1927: ['E_CONNECT', 'the server ended the connection (KILL)'],
  1053: ['E_CONNECT', 'the server is shutting down'],
  4031: ['E_CONNECT', 'the server closed the connection after its inactivity timeout'],
};

/** Client-side (mysql2 / Node) codes. */
const CLIENT_CODE: Record<string, [ErrorCode, string]> = {
  ECONNREFUSED: ['E_CONNECT', 'connection refused'],
  ECONNRESET: ['E_CONNECT', 'connection reset by the server'],
  ENOTFOUND: ['E_CONNECT', 'host name does not resolve'],
  EAI_AGAIN: ['E_CONNECT', 'host name does not resolve (temporary DNS failure)'],
  EHOSTUNREACH: ['E_CONNECT', 'host unreachable'],
  ENETUNREACH: ['E_CONNECT', 'network unreachable'],
  ETIMEDOUT: ['E_CONNECT', 'connection timed out'],
  EPIPE: ['E_CONNECT', 'connection closed by the server'],
  PROTOCOL_CONNECTION_LOST: ['E_CONNECT', 'lost connection to the server'],
  PROTOCOL_SEQUENCE_TIMEOUT: ['E_CONNECT', 'the server stopped answering'],
  HANDSHAKE_NO_SSL_SUPPORT: [
    'E_CONNECT',
    'the server does not support TLS but sslMode requires it',
  ],
  HANDSHAKE_SSL_ERROR: ['E_CONNECT', 'TLS handshake failed'],
  DEPTH_ZERO_SELF_SIGNED_CERT: [
    'E_CONNECT',
    'TLS: the server certificate is self-signed and not trusted (set caBundle)',
  ],
  SELF_SIGNED_CERT_IN_CHAIN: ['E_CONNECT', 'TLS: untrusted certificate chain (set caBundle)'],
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: [
    'E_CONNECT',
    'TLS: cannot verify the server certificate (set caBundle)',
  ],
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: [
    'E_CONNECT',
    'TLS: the server certificate issuer is not trusted (set caBundle)',
  ],
  CERT_HAS_EXPIRED: ['E_CONNECT', 'TLS: the server certificate has expired'],
  ERR_TLS_CERT_ALTNAME_INVALID: [
    'E_CONNECT',
    'TLS: the server certificate does not match the host name (verify-full)',
  ],
  POOL_CLOSED: ['E_CANCELLED', 'the connection pool was closed (shutdown)'],
};

/** The errno of a mysql2 error, if any. */
export function mysqlErrno(err: unknown): number | undefined {
  return asMysqlError(err)?.errno;
}

/**
 * Maps any error of a MySQL/MariaDB operation to a `LatchkeyError`.
 * @param operation what we were doing, in words (`"granting SELECT"`), for the message.
 * @param signal when aborted, the abort reason decides between E_TIMEOUT and E_CANCELLED.
 */
export function mapMysqlError(
  err: unknown,
  operation: string,
  signal?: AbortSignal,
): LatchkeyError {
  if (err instanceof LatchkeyError) return err;
  if (signal?.aborted) return abortError(signal, operation);
  const e = asMysqlError(err);
  const details: Record<string, unknown> = {};
  if (e?.errno !== undefined) details.errno = e.errno;
  if (e?.code !== undefined) details.mysqlCode = e.code;
  if (e?.sqlState !== undefined) details.sqlState = e.sqlState;
  const byErrno = e?.errno !== undefined ? ERRNO[e.errno] : undefined;
  if (byErrno) {
    return new LatchkeyError(byErrno[0], `${operation}: ${byErrno[1]} (MySQL error ${e?.errno})`, {
      cause: err,
      details,
    });
  }
  const byCode = e?.code !== undefined ? CLIENT_CODE[e.code] : undefined;
  if (byCode) {
    return new LatchkeyError(byCode[0], `${operation}: ${byCode[1]}`, { cause: err, details });
  }
  if (err instanceof Error && /closed state/i.test(err.message)) {
    // mysql2: a statement on a connection it already knows is closed (no code).
    return new LatchkeyError('E_CONNECT', `${operation}: lost the connection to the server`, {
      cause: err,
      details,
    });
  }
  if (e?.code?.startsWith('ERR_TLS') || e?.code?.startsWith('ERR_SSL')) {
    return new LatchkeyError('E_CONNECT', `${operation}: TLS error (${e.code})`, {
      cause: err,
      details,
    });
  }
  const suffix = e?.errno !== undefined ? ` (MySQL error ${e.errno})` : '';
  return new LatchkeyError('E_INTERNAL', `${operation}: unexpected database error${suffix}`, {
    cause: err,
    details,
  });
}

/** The error for an aborted call: E_TIMEOUT when the reason is a timeout, else E_CANCELLED. */
export function abortError(signal: AbortSignal, operation: string): LatchkeyError {
  const reason: unknown = signal.reason;
  if (reason instanceof LatchkeyError) return reason;
  const isTimeout = reason instanceof Error && reason.name === 'TimeoutError';
  return isTimeout
    ? new LatchkeyError('E_TIMEOUT', `${operation}: deadline exceeded`)
    : new LatchkeyError('E_CANCELLED', `${operation}: cancelled`);
}
