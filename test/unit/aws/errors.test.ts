import { describe, expect, it } from 'vitest';
import { IAMServiceException, NoSuchEntityException } from '@aws-sdk/client-iam';
import { mapAwsError } from '../../../src/aws/errors.js';
import { LatchkeyError } from '../../../src/errors.js';

function awsErr(name: string, status = 400, message = 'message from AWS'): IAMServiceException {
  return new IAMServiceException({
    name,
    message,
    $fault: 'client',
    $metadata: { httpStatusCode: status },
  });
}

const ctx = { service: 'iam', operation: 'PutRolePolicy' };

describe('mapAwsError', () => {
  it.each([
    ['ThrottlingException', 'E_THROTTLED'],
    ['Throttling', 'E_THROTTLED'],
    ['TooManyRequestsException', 'E_THROTTLED'],
    ['RequestLimitExceeded', 'E_THROTTLED'],
    ['SlowDown', 'E_THROTTLED'],
    ['ProvisionedThroughputExceededException', 'E_THROTTLED'],
    ['AccessDenied', 'E_PRIVILEGE'],
    ['AccessDeniedException', 'E_PRIVILEGE'],
    ['UnauthorizedOperation', 'E_PRIVILEGE'],
    ['AuthorizationError', 'E_PRIVILEGE'],
    ['NoSuchEntity', 'E_NOT_FOUND'],
    ['ResourceNotFoundException', 'E_NOT_FOUND'],
    ['NoSuchBucket', 'E_NOT_FOUND'],
    ['LimitExceeded', 'E_POLICY_TOO_LARGE'],
    ['MalformedPolicyDocument', 'E_INVALID'],
    ['ValidationException', 'E_INVALID'],
    ['ExpiredToken', 'E_CONNECT'],
    ['InvalidClientTokenId', 'E_CONNECT'],
    ['ServiceUnavailable', 'E_CONNECT'],
    ['ConcurrentModification', 'E_CONFLICT'],
    ['SomethingNew', 'E_INTERNAL'],
  ])('%s → %s', (name, code) => {
    const err = mapAwsError(awsErr(name), ctx);
    expect(err).toBeInstanceOf(LatchkeyError);
    expect(err.code).toBe(code);
    expect(err.details).toMatchObject({
      service: 'iam',
      operation: 'PutRolePolicy',
      awsError: name,
    });
  });

  it('names the missing action, explicit or derived', () => {
    expect(mapAwsError(awsErr('AccessDenied', 403), ctx).message).toContain('iam:PutRolePolicy');
    const s3 = mapAwsError(awsErr('AccessDenied', 403), {
      service: 's3',
      operation: 'GetBucketEncryption',
      action: 's3:GetEncryptionConfiguration',
    });
    expect(s3.message).toContain('s3:GetEncryptionConfiguration');
    expect(s3.retryable).toBe(false);
  });

  it('treats LimitExceeded outside policy writes as a quota, and HTTP 429 as throttling', () => {
    expect(
      mapAwsError(awsErr('LimitExceeded'), { service: 'iam', operation: 'CreateRole' }).code,
    ).toBe('E_INVALID');
    expect(mapAwsError(awsErr('Whatever', 429), ctx).code).toBe('E_THROTTLED');
  });

  it('maps network failures to E_CONNECT and aborts to E_CANCELLED', () => {
    const net = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), {
      code: 'ECONNREFUSED',
    });
    expect(mapAwsError(net, ctx).code).toBe('E_CONNECT');
    const dns = Object.assign(new Error('getaddrinfo ENOTFOUND iam.amazonaws.com'), {
      code: 'ENOTFOUND',
    });
    expect(mapAwsError(dns, ctx).code).toBe('E_CONNECT');
    const abort = Object.assign(new Error('Request aborted'), { name: 'AbortError' });
    expect(mapAwsError(abort, ctx).code).toBe('E_CANCELLED');
  });

  it('passes a LatchkeyError through and keeps the SDK error as cause', () => {
    const le = new LatchkeyError('E_GUARDRAIL', 'no');
    expect(mapAwsError(le, ctx)).toBe(le);
    const src = new NoSuchEntityException({ message: 'gone', $metadata: {} });
    expect(mapAwsError(src, ctx).cause).toBe(src);
  });
});
