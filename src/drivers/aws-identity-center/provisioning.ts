/**
 * Identity Center's asynchronous operations, run to their end within the command's deadline.
 *
 * Glossary
 * - **request**: `CreateAccountAssignment`, `DeleteAccountAssignment` and
 *   `ProvisionPermissionSet` return a status `{Status, RequestId, FailureReason}` at once;
 *   the work goes on in AWS. `IN_PROGRESS` is polled (`Describe…Status`) with backoff until
 *   `SUCCEEDED` or `FAILED`; a `FAILED` one is `E_INVALID` with AWS's reason
 *   (a customer-managed policy missing in the account, a role name taken, …).
 * - **conflict**: while another provisioning of the same permission set runs, AWS answers
 *   `ConflictException`; that call is retried with backoff (as are throttles), then fails
 *   `E_CONFLICT`, which is retryable.
 * - **deadline**: the command's AbortSignal. A request still `IN_PROGRESS` when it fires
 *   ends the command with `E_TIMEOUT`; re-running the command is safe, every step checks
 *   what exists first.
 */
import {
  CreateAccountAssignmentCommand,
  DeleteAccountAssignmentCommand,
  DescribeAccountAssignmentCreationStatusCommand,
  DescribeAccountAssignmentDeletionStatusCommand,
  DescribePermissionSetProvisioningStatusCommand,
  ProvisionPermissionSetCommand,
  type SSOAdminClient,
} from '@aws-sdk/client-sso-admin';
import { awsSend } from '../../aws/call.js';
import { LatchkeyError } from '../../errors.js';

/** First poll / retry wait, and the cap of the exponential backoff. */
export const POLL_INITIAL_MS = 1000;
export const POLL_MAX_MS = 10_000;
/** Attempts of a call that meets a conflict or a throttle (first one included). */
export const CONFLICT_ATTEMPTS = 6;

/** Wait `ms` with the global timer (fake timers drive it in tests); abort ends the wait. */
export function sleep(ms: number, signal: AbortSignal, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (): void =>
      reject(
        new LatchkeyError(
          'E_TIMEOUT',
          `the command's deadline passed while ${what}; running it again is safe`,
        ),
      );
    if (signal.aborted) {
      fail();
      return;
    }
    const onAbort = (): void => {
      clearTimeout(t);
      fail();
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export function backoff(attempt: number): number {
  return Math.min(POLL_MAX_MS, POLL_INITIAL_MS * 2 ** attempt);
}

/**
 * Run `call`, retrying `E_CONFLICT` (another provisioning runs) and `E_THROTTLED` with
 * backoff, at most `CONFLICT_ATTEMPTS` times; then the last error is thrown.
 */
export async function withConflictRetry<T>(
  signal: AbortSignal,
  what: string,
  call: () => Promise<T>,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const retry =
        err instanceof LatchkeyError && (err.code === 'E_CONFLICT' || err.code === 'E_THROTTLED');
      if (!retry || attempt + 1 >= CONFLICT_ATTEMPTS) throw err;
      await sleep(backoff(attempt), signal, `waiting to retry ${what}`);
    }
  }
}

interface OperationStatus {
  Status?: string | undefined;
  RequestId?: string | undefined;
  FailureReason?: string | undefined;
}

/** Poll until the status is final; `FAILED` becomes an error naming AWS's reason. */
async function untilDone(
  first: OperationStatus | undefined,
  describe: (requestId: string) => Promise<OperationStatus | undefined>,
  signal: AbortSignal,
  what: string,
): Promise<void> {
  let status = first;
  for (let attempt = 0; ; attempt++) {
    if (status?.Status === 'SUCCEEDED') return;
    if (status?.Status === 'FAILED') {
      throw new LatchkeyError(
        'E_INVALID',
        `Identity Center failed to ${what} (request ${status.RequestId ?? 'unknown'}): ${status.FailureReason ?? 'no reason given'}`,
        { details: { requestId: status.RequestId } },
      );
    }
    const requestId = status?.RequestId;
    if (requestId === undefined) {
      throw new LatchkeyError('E_INTERNAL', `Identity Center returned no request id to ${what}`);
    }
    await sleep(backoff(attempt), signal, `request ${requestId} to ${what} was still in progress`);
    status = await withConflictRetry(signal, what, () => describe(requestId));
  }
}

export interface Assignment {
  instanceArn: string;
  permissionSetArn: string;
  accountId: string;
  principalType: 'GROUP' | 'USER';
  principalId: string;
}

function assignmentInput(a: Assignment) {
  return {
    InstanceArn: a.instanceArn,
    PermissionSetArn: a.permissionSetArn,
    TargetType: 'AWS_ACCOUNT' as const,
    TargetId: a.accountId,
    PrincipalType: a.principalType,
    PrincipalId: a.principalId,
  };
}

/** Create an account assignment and wait for it (creating an existing one succeeds). */
export async function createAssignment(
  sso: SSOAdminClient,
  a: Assignment,
  signal: AbortSignal,
): Promise<void> {
  const what = `assign ${a.permissionSetArn} in account ${a.accountId}`;
  const out = await withConflictRetry(signal, what, () =>
    awsSend(
      {
        service: 'sso',
        operation: 'CreateAccountAssignment',
        resource: a.permissionSetArn,
        signal,
      },
      (o) => sso.send(new CreateAccountAssignmentCommand(assignmentInput(a)), o),
    ),
  );
  await untilDone(
    out.AccountAssignmentCreationStatus,
    async (id) =>
      (
        await awsSend(
          {
            service: 'sso',
            operation: 'DescribeAccountAssignmentCreationStatus',
            resource: id,
            signal,
          },
          (o) =>
            sso.send(
              new DescribeAccountAssignmentCreationStatusCommand({
                InstanceArn: a.instanceArn,
                AccountAssignmentCreationRequestId: id,
              }),
              o,
            ),
        )
      ).AccountAssignmentCreationStatus,
    signal,
    what,
  );
}

/** Delete an account assignment and wait for it; `false` when it was already absent. */
export async function deleteAssignment(
  sso: SSOAdminClient,
  a: Assignment,
  signal: AbortSignal,
): Promise<boolean> {
  const what = `remove ${a.permissionSetArn} from account ${a.accountId}`;
  let out;
  try {
    out = await withConflictRetry(signal, what, () =>
      awsSend(
        {
          service: 'sso',
          operation: 'DeleteAccountAssignment',
          resource: a.permissionSetArn,
          signal,
        },
        (o) => sso.send(new DeleteAccountAssignmentCommand(assignmentInput(a)), o),
      ),
    );
  } catch (err) {
    if (err instanceof LatchkeyError && err.code === 'E_NOT_FOUND') return false;
    throw err;
  }
  await untilDone(
    out.AccountAssignmentDeletionStatus,
    async (id) =>
      (
        await awsSend(
          {
            service: 'sso',
            operation: 'DescribeAccountAssignmentDeletionStatus',
            resource: id,
            signal,
          },
          (o) =>
            sso.send(
              new DescribeAccountAssignmentDeletionStatusCommand({
                InstanceArn: a.instanceArn,
                AccountAssignmentDeletionRequestId: id,
              }),
              o,
            ),
        )
      ).AccountAssignmentDeletionStatus,
    signal,
    what,
  );
  return true;
}

/** Provision (or re-provision) a permission set to one account and wait for it. */
export async function provisionPermissionSet(
  sso: SSOAdminClient,
  instanceArn: string,
  permissionSetArn: string,
  accountId: string,
  signal: AbortSignal,
): Promise<void> {
  const what = `provision ${permissionSetArn} to account ${accountId}`;
  const out = await withConflictRetry(signal, what, () =>
    awsSend(
      { service: 'sso', operation: 'ProvisionPermissionSet', resource: permissionSetArn, signal },
      (o) =>
        sso.send(
          new ProvisionPermissionSetCommand({
            InstanceArn: instanceArn,
            PermissionSetArn: permissionSetArn,
            TargetType: 'AWS_ACCOUNT',
            TargetId: accountId,
          }),
          o,
        ),
    ),
  );
  await untilDone(
    out.PermissionSetProvisioningStatus,
    async (id) =>
      (
        await awsSend(
          {
            service: 'sso',
            operation: 'DescribePermissionSetProvisioningStatus',
            resource: id,
            signal,
          },
          (o) =>
            sso.send(
              new DescribePermissionSetProvisioningStatusCommand({
                InstanceArn: instanceArn,
                ProvisionPermissionSetRequestId: id,
              }),
              o,
            ),
        )
      ).PermissionSetProvisioningStatus,
    signal,
    what,
  );
}
