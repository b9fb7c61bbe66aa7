/**
 * The one mapping from AWS SDK errors to Latchkey error codes.
 *
 * Every AWS call of every driver goes through `mapAwsError` (usually via `awsSend`), so the
 * same AWS error name always becomes the same code. Messages name the service, the
 * operation and, for missing privileges, the IAM action; they never contain credentials.
 */
import { LatchkeyError, type ErrorCode } from '../errors.js';

export interface AwsErrorContext {
  /** Lower-case service prefix as in IAM actions: `iam`, `s3`, `ssm`, `lambda`, `sts`, … */
  service: string;
  /** API operation name: `PutRolePolicy`, `ListBuckets`, … */
  operation: string;
  /** IAM action the call needs, when it differs from `<service>:<operation>`. */
  action?: string;
  /** The resource the call was about (ARN or name), for the message. */
  resource?: string;
}

/** Error names AWS services use for throttling (all retryable). */
export const THROTTLE_NAMES: ReadonlySet<string> = new Set([
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'TooManyRequestsException',
  'TooManyRequests',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ProvisionedThroughputExceededException',
  'ProvisionedThroughputExceeded',
  'TransactionInProgressException',
  'BandwidthLimitExceeded',
  'EC2ThrottledException',
  'PriorRequestNotComplete',
  'RateExceeded',
]);

const PRIVILEGE_NAMES: ReadonlySet<string> = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'UnauthorizedOperation',
  'UnauthorizedAccess',
  'UnauthorizedException',
  'AuthorizationError',
  'AuthorizationErrorException',
  'AuthFailure',
  'Forbidden',
  'ForbiddenException',
  'AllAccessDisabled',
  'KMSAccessDeniedException',
  'KMS.AccessDeniedException',
]);

/** The service account's own credentials do not work: treated as "cannot reach the target". */
const AUTH_NAMES: ReadonlySet<string> = new Set([
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'InvalidSignatureException',
  'InvalidAccessKeyId',
  'IncompleteSignature',
  'MissingAuthenticationToken',
  'CredentialsProviderError',
  'TokenProviderError',
]);

const NOT_FOUND_NAMES: ReadonlySet<string> = new Set([
  'NoSuchEntity',
  'NoSuchEntityException',
  'ResourceNotFoundException',
  'ResourceNotFound',
  'NotFound',
  'NotFoundException',
  'NoSuchBucket',
  'NoSuchKey',
  'QueueDoesNotExist',
  'AWS.SimpleQueueService.NonExistentQueue',
  'DoesNotExistException',
  'InvalidInstanceId',
  'InvalidInstanceID.NotFound',
  'InvalidDocument',
  'DBInstanceNotFound',
  'DBInstanceNotFoundFault',
  'DBClusterNotFound',
  'DBClusterNotFoundFault',
]);

const INVALID_NAMES: ReadonlySet<string> = new Set([
  'ValidationError',
  'ValidationException',
  'InvalidParameterValue',
  'InvalidParameterValueException',
  'InvalidParameterException',
  'InvalidParameterCombination',
  'InvalidParameter',
  'InvalidInput',
  'InvalidInputException',
  'InvalidArn',
  'InvalidArnException',
  'InvalidRequestException',
  'InvalidRequestContentException',
  'RequestTooLargeException',
  'InvalidFilterKey',
  'InvalidFilterValue',
  'InvalidNextToken',
]);

const UNAVAILABLE_NAMES: ReadonlySet<string> = new Set([
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalFailure',
  'InternalError',
  'InternalServerError',
  'InternalServiceError',
  'InternalServiceErrorException',
  'ServiceFailure',
  'ServiceException',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'NetworkingError',
  'EC2UnexpectedException',
]);

const CONFLICT_NAMES: ReadonlySet<string> = new Set([
  'ConflictException',
  'ConcurrentModification',
  'ConcurrentModificationException',
  'ResourceConflictException',
  'OperationAborted',
]);

const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'CERT_HAS_EXPIRED',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
]);

/** IAM policy operations, for which `LimitExceeded` means "policy too large". */
const POLICY_WRITE_OPERATIONS: ReadonlySet<string> = new Set([
  'PutRolePolicy',
  'PutUserPolicy',
  'PutGroupPolicy',
  'CreatePolicy',
  'CreatePolicyVersion',
]);

interface ErrorShape {
  name: string;
  code: string | undefined;
  message: string;
  status: number | undefined;
}

function shapeOf(err: unknown): ErrorShape {
  if (typeof err !== 'object' || err === null) {
    return { name: 'Unknown', code: undefined, message: String(err), status: undefined };
  }
  const rec = err as Record<string, unknown>;
  const name = typeof rec.name === 'string' ? rec.name : 'Error';
  const rawCode = rec.code ?? rec.Code;
  const code = typeof rawCode === 'string' ? rawCode : undefined;
  const message = typeof rec.message === 'string' ? rec.message : '';
  const meta = rec.$metadata;
  let status: number | undefined;
  if (typeof meta === 'object' && meta !== null) {
    const s = (meta as Record<string, unknown>).httpStatusCode;
    if (typeof s === 'number') status = s;
  }
  return { name, code, message, status };
}

/** AWS messages can be long; keep them short. They hold ARNs, never secrets. */
function shortMessage(message: string): string {
  const oneLine = message.replace(/\s+/g, ' ').trim();
  return oneLine.length > 300 ? `${oneLine.slice(0, 297)}...` : oneLine;
}

/** True when the error is (or wraps) an abort of our own AbortSignal. */
export function isAbortError(err: unknown): boolean {
  const s = shapeOf(err);
  return s.name === 'AbortError' || s.code === 'ABORT_ERR';
}

/** The AWS error name (`Throttling`, `NoSuchEntity`, …) of an SDK error, if any. */
export function awsErrorName(err: unknown): string {
  return shapeOf(err).name;
}

/** True when an SDK error (before mapping) is a throttle. */
export function isAwsThrottle(err: unknown): boolean {
  const s = shapeOf(err);
  return (
    THROTTLE_NAMES.has(s.name) ||
    (s.code !== undefined && THROTTLE_NAMES.has(s.code)) ||
    s.status === 429
  );
}

/**
 * Map any error thrown by an AWS SDK call to a `LatchkeyError`.
 *
 * - throttling (`ThrottlingException`, `Throttling`, `TooManyRequestsException`,
 *   `RequestLimitExceeded`, `SlowDown`, `ProvisionedThroughputExceeded…`, HTTP 429) → `E_THROTTLED`
 * - `AccessDenied*`, `UnauthorizedOperation`, `AuthorizationError`, … → `E_PRIVILEGE`, naming the action
 * - `NoSuchEntity`, `ResourceNotFound*`, `NotFound`, … → `E_NOT_FOUND` (revoke treats it as success)
 * - `LimitExceeded` on an IAM policy write → `E_POLICY_TOO_LARGE`; elsewhere (a quota) → `E_INVALID`
 * - `MalformedPolicyDocument` → `E_INVALID`; validation errors → `E_INVALID`
 * - expired or invalid service-account credentials, network errors, 5xx → `E_CONNECT`
 * - our own abort → `E_CANCELLED`; anything else → `E_INTERNAL`
 *
 * A `LatchkeyError` passes through unchanged.
 */
export function mapAwsError(err: unknown, ctx: AwsErrorContext): LatchkeyError {
  if (err instanceof LatchkeyError) return err;
  const s = shapeOf(err);
  const action = ctx.action ?? `${ctx.service}:${ctx.operation}`;
  const on = ctx.resource ? ` on ${ctx.resource}` : '';
  const details = {
    service: ctx.service,
    operation: ctx.operation,
    awsError: s.name,
    status: s.status,
  };
  const make = (code: ErrorCode, message: string): LatchkeyError =>
    new LatchkeyError(code, message, { cause: err, details });
  const is = (set: ReadonlySet<string>): boolean =>
    set.has(s.name) || (s.code !== undefined && set.has(s.code));

  if (isAbortError(err)) {
    return make('E_CANCELLED', `AWS ${ctx.service}:${ctx.operation} aborted`);
  }
  if (is(THROTTLE_NAMES) || s.status === 429) {
    return make('E_THROTTLED', `AWS throttled ${action}${on} (${s.name}); retry later`);
  }
  if (is(PRIVILEGE_NAMES) || s.name.startsWith('AccessDenied') || s.status === 403) {
    if (is(AUTH_NAMES)) {
      return make('E_CONNECT', `AWS rejected the connector's credentials on ${action} (${s.name})`);
    }
    const aws = s.message ? `: ${shortMessage(s.message)}` : '';
    return make(
      'E_PRIVILEGE',
      `the connector's AWS identity is not allowed to perform ${action}${on} (${s.name})${aws}`,
    );
  }
  if (is(AUTH_NAMES)) {
    return make('E_CONNECT', `AWS rejected the connector's credentials on ${action} (${s.name})`);
  }
  if (is(NOT_FOUND_NAMES) || s.name.startsWith('NoSuch') || s.status === 404) {
    return make('E_NOT_FOUND', `AWS ${ctx.service}:${ctx.operation}: not found${on} (${s.name})`);
  }
  if (s.name === 'LimitExceeded' || s.name === 'LimitExceededException') {
    if (ctx.service === 'iam' && POLICY_WRITE_OPERATIONS.has(ctx.operation)) {
      return make(
        'E_POLICY_TOO_LARGE',
        `AWS refused ${action}${on}: inline policy size limit exceeded (${s.name}); grant fewer resources or use a tag scope`,
      );
    }
    return make('E_INVALID', `AWS refused ${action}${on}: a service quota is exceeded (${s.name})`);
  }
  if (s.name === 'MalformedPolicyDocument' || s.name === 'MalformedPolicyDocumentException') {
    const aws = s.message ? `: ${shortMessage(s.message)}` : '';
    return make('E_INVALID', `AWS refused the policy document of ${action}${on} (${s.name})${aws}`);
  }
  if (is(INVALID_NAMES)) {
    const aws = s.message ? `: ${shortMessage(s.message)}` : '';
    return make('E_INVALID', `AWS refused ${action}${on} as invalid (${s.name})${aws}`);
  }
  if (is(CONFLICT_NAMES)) {
    return make('E_CONFLICT', `AWS ${action}${on}: concurrent modification (${s.name}); retry`);
  }
  if (
    is(UNAVAILABLE_NAMES) ||
    (s.code !== undefined && NETWORK_CODES.has(s.code)) ||
    (s.status !== undefined && s.status >= 500)
  ) {
    return make(
      'E_CONNECT',
      `AWS ${ctx.service}:${ctx.operation} unavailable (${s.code ?? s.name})`,
    );
  }
  return make('E_INTERNAL', `AWS ${ctx.service}:${ctx.operation} failed (${s.name})`);
}
