/**
 * One way to make an AWS call from a driver: honour the AbortSignal, map every error
 * through `mapAwsError`.
 *
 * ```ts
 * await awsSend({ service: 'iam', operation: 'PutRolePolicy', signal }, (o) =>
 *   iam.send(new PutRolePolicyCommand(input), o),
 * );
 * ```
 */
import { LatchkeyError } from '../errors.js';
import { mapAwsError, type AwsErrorContext } from './errors.js';

export interface AwsCallContext extends AwsErrorContext {
  signal?: AbortSignal | undefined;
}

/** Options handed to `client.send(command, options)`. */
export interface AwsSendOptions {
  abortSignal?: AbortSignal;
}

export async function awsSend<T>(
  ctx: AwsCallContext,
  call: (options: AwsSendOptions) => Promise<T>,
): Promise<T> {
  if (ctx.signal?.aborted) {
    throw new LatchkeyError('E_CANCELLED', `aborted before AWS ${ctx.service}:${ctx.operation}`);
  }
  try {
    return await call(ctx.signal ? { abortSignal: ctx.signal } : {});
  } catch (err) {
    throw mapAwsError(err, ctx);
  }
}
