/**
 * The one error class of Latchkey and the closed set of error codes.
 *
 * Only `{ code, message, retryable }` of an error ever crosses the wire to the control
 * plane (see `toWireError`): never a stack, SQL text with values, or a credential. The
 * message of a `LatchkeyError` must therefore be written for an operator and must not
 * contain secrets; the `cause` stays local (logged, redacted).
 *
 * `retryable` is fixed by the code, so that a control plane can decide on retries from
 * the code alone.
 */

export const ERROR_CODES = {
  /** The frame or envelope does not match the protocol schema, or is not JSON. */
  E_SCHEMA: { retryable: false, summary: 'message or command does not match the protocol schema' },
  /** Frame larger than the configured limit. */
  E_TOO_LARGE: { retryable: false, summary: 'frame larger than the configured limit' },
  /** Unknown key id, or the Ed25519 signature does not verify. */
  E_SIGNATURE: { retryable: false, summary: 'unknown signing key or invalid signature' },
  /** The envelope names another connector id. */
  E_CONNECTOR: { retryable: false, summary: 'command addressed to another connector' },
  /** Outside the issuedAt/expiresAt window (with skew), or lifetime too long. */
  E_EXPIRED: { retryable: false, summary: 'command expired, not yet valid, or lifetime too long' },
  /** A command id seen before with a different content. */
  E_REPLAY: { retryable: false, summary: 'command id reused with different content' },
  /** The kind or integration type is not served by this agent or driver. */
  E_UNSUPPORTED: { retryable: false, summary: 'kind or integration type not supported' },
  /** Parameters well-formed but not acceptable to the driver (unknown permission, bad resource). */
  E_INVALID: { retryable: false, summary: 'parameters not acceptable to the driver' },
  /** The queue is full or the agent is draining; try again later. */
  E_BUSY: { retryable: true, summary: 'agent busy or draining; retry later' },
  /** The secret is missing, unreadable or malformed. */
  E_SECRET: { retryable: false, summary: 'service-account secret missing or malformed' },
  /** The target could not be reached (network, DNS, TLS, authentication of the service account). */
  E_CONNECT: { retryable: true, summary: 'target unreachable' },
  /** The service account lacks a privilege the operation needs. */
  E_PRIVILEGE: { retryable: false, summary: 'service account lacks a needed privilege' },
  /** The user or object is not managed by Latchkey (no marker), or is the service account. */
  E_NOT_MANAGED: { retryable: false, summary: 'object not managed by Latchkey' },
  /** A named resource does not exist in the target. */
  E_NOT_FOUND: { retryable: false, summary: 'resource does not exist' },
  /** An AWS policy would exceed AWS's size limit. */
  E_POLICY_TOO_LARGE: { retryable: false, summary: 'policy larger than AWS allows' },
  /** A safety guardrail refused the operation (too many resources, forbidden target). */
  E_GUARDRAIL: { retryable: false, summary: 'refused by a safety guardrail' },
  /** The command's deadline passed, or the driver call timed out. */
  E_TIMEOUT: { retryable: true, summary: 'deadline exceeded' },
  /** The target throttled us. */
  E_THROTTLED: { retryable: true, summary: 'throttled by the target' },
  /** Another operation holds the lock on the same user; retry. */
  E_CONFLICT: { retryable: true, summary: 'concurrent operation on the same object' },
  /** Cancelled by the control plane or by shutdown. */
  E_CANCELLED: { retryable: true, summary: 'cancelled' },
  /** A customer function (custom integration) answered with an error or malformed response. */
  E_REMOTE: { retryable: false, summary: 'custom integration returned an error' },
  /** Anything else; a bug or an unexpected answer. */
  E_INTERNAL: { retryable: true, summary: 'internal error' },
} as const satisfies Record<string, { retryable: boolean; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;
export const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]];

export function isRetryable(code: ErrorCode): boolean {
  return ERROR_CODES[code].retryable;
}

export interface WireError {
  code: ErrorCode;
  message: string;
  retryable: boolean;
}

export class LatchkeyError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  /** Structured, non-secret details for logs (never sent on the wire). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LatchkeyError';
    this.code = code;
    this.retryable = isRetryable(code);
    this.details = options?.details;
  }

  toWire(): WireError {
    return { code: this.code, message: this.message, retryable: this.retryable };
  }
}

export function isLatchkeyError(err: unknown): err is LatchkeyError {
  return err instanceof LatchkeyError;
}

/**
 * What crosses the wire for any thrown value. Unknown errors become `E_INTERNAL` with a
 * fixed message: their text may contain SQL or secrets and stays in the (redacted) log.
 */
export function toWireError(err: unknown): WireError {
  if (err instanceof LatchkeyError) return err.toWire();
  return { code: 'E_INTERNAL', message: 'internal error (see agent log)', retryable: true };
}
