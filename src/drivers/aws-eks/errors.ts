/**
 * EKS error names that the shared AWS mapping (`src/aws/errors.ts`) does not know, mapped
 * in one place; everything else goes through `mapAwsError` as for every AWS driver.
 *
 * - `ResourceInUseException`: the cluster is being updated, or (CreateAccessEntry) the entry
 *   already exists → `E_CONFLICT` (retryable); the driver handles the second case itself.
 * - `ResourceLimitExceededException`: a quota (access entries per cluster) → `E_INVALID`.
 * - `ResourcePropagationDelayException` (a principal or cluster change not yet visible) and
 *   `InvalidStateException` → `E_CONFLICT` (retryable).
 * - `ServerException` → `E_CONNECT`; `ClientException`, `BadRequestException` → `E_INVALID`.
 * - `UnsupportedAvailabilityZoneException` never concerns access entries.
 */
import { awsSend, type AwsCallContext, type AwsSendOptions } from '../../aws/call.js';
import { awsErrorName } from '../../aws/errors.js';
import { LatchkeyError } from '../../errors.js';

export function mapEksError(err: unknown, ctx: AwsCallContext): unknown {
  if (err instanceof LatchkeyError) return err;
  const name = awsErrorName(err);
  const on = ctx.resource ? ` on ${ctx.resource}` : '';
  const details = { service: ctx.service, operation: ctx.operation, awsError: name };
  switch (name) {
    case 'ResourceInUseException':
      return new LatchkeyError(
        'E_CONFLICT',
        `AWS eks:${ctx.operation}${on}: the resource is in use or already exists (${name}); retry`,
        { cause: err, details },
      );
    case 'ResourcePropagationDelayException':
    case 'InvalidStateException':
      return new LatchkeyError(
        'E_CONFLICT',
        `AWS eks:${ctx.operation}${on}: a change is still propagating (${name}); retry`,
        { cause: err, details },
      );
    case 'ResourceLimitExceededException':
      return new LatchkeyError(
        'E_INVALID',
        `AWS refused eks:${ctx.operation}${on}: an EKS quota is exceeded (${name})`,
        { cause: err, details },
      );
    case 'ServerException':
      return new LatchkeyError('E_CONNECT', `AWS eks:${ctx.operation} unavailable (${name})`, {
        cause: err,
        details,
      });
    case 'ClientException':
    case 'BadRequestException':
      return new LatchkeyError('E_INVALID', `AWS refused eks:${ctx.operation}${on} (${name})`, {
        cause: err,
        details,
      });
    default:
      return err;
  }
}

/** `awsSend` for EKS calls: the EKS names above first, then the shared mapping. */
export function eksSend<T>(
  ctx: Omit<AwsCallContext, 'service'>,
  call: (options: AwsSendOptions) => Promise<T>,
): Promise<T> {
  const full: AwsCallContext = { ...ctx, service: 'eks' };
  return awsSend(full, async (o) => {
    try {
      return await call(o);
    } catch (err) {
      throw mapEksError(err, full);
    }
  });
}
