/**
 * Error helpers shared by the secret stores. Every failure becomes a `LatchkeyError` whose
 * message names the secret (by id, name or path) and the reason, never a value. Causes
 * that could carry a value (a JSON parse error quotes its input) are never attached.
 */
import { LatchkeyError, isLatchkeyError } from '../errors.js';
import type { ErrorCode } from '../errors.js';

/** The error to throw when `signal` is aborted: its reason if that is ours, else `E_CANCELLED`. */
export function abortError(signal: AbortSignal): LatchkeyError {
  const reason: unknown = signal.reason;
  if (isLatchkeyError(reason)) return reason;
  return new LatchkeyError('E_CANCELLED', 'cancelled while reading a secret');
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** Resolves or rejects like `promise`, or rejects with `abortError` as soon as `signal` aborts. */
export async function raceAbort<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  if (!signal) return promise;
  throwIfAborted(signal);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/** The `name` of an AWS SDK v3 service exception (or any Error), if it has one. */
export function errorName(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'name' in err) {
    const name = err.name;
    return typeof name === 'string' ? name : undefined;
  }
  return undefined;
}

/** HTTP status of an AWS SDK v3 error (from `$metadata`), if any. */
export function httpStatus(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && '$metadata' in err) {
    const meta = err.$metadata;
    if (typeof meta === 'object' && meta !== null && 'httpStatusCode' in meta) {
      const status = meta.httpStatusCode;
      return typeof status === 'number' ? status : undefined;
    }
  }
  return undefined;
}

const THROTTLING_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
]);

export function isThrottling(err: unknown): boolean {
  const name = errorName(err);
  if (name !== undefined && THROTTLING_NAMES.has(name)) return true;
  if (typeof err === 'object' && err !== null && '$retryable' in err) {
    const retryable = err.$retryable;
    if (typeof retryable === 'object' && retryable !== null && 'throttling' in retryable) {
      return retryable.throttling === true;
    }
  }
  return httpStatus(err) === 429;
}

export function isAccessDenied(err: unknown): boolean {
  const name = errorName(err) ?? '';
  return /^AccessDenied/.test(name) || name === 'UnauthorizedOperation' || httpStatus(err) === 403;
}

/** Whether `err` is an abort (`AbortError`) of an SDK or fetch call. */
export function isAbort(err: unknown): boolean {
  return errorName(err) === 'AbortError';
}

/** Whether `err` looks like a transport failure (no HTTP answer at all). */
export function isNetworkError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (
    typeof code === 'string' &&
    /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE)$/.test(
      code,
    )
  ) {
    return true;
  }
  const name = errorName(err);
  return name === 'TimeoutError' || name === 'RequestTimeout';
}

/** Builds the one error of a secret store, optionally keeping a (value-free) cause. */
export function secretStoreError(
  code: ErrorCode,
  message: string,
  cause?: unknown,
  details?: Record<string, unknown>,
): LatchkeyError {
  return new LatchkeyError(code, message, {
    ...(cause === undefined ? {} : { cause }),
    ...(details === undefined ? {} : { details }),
  });
}
