/**
 * Throttling through the real SDK stack (adaptive retry, our metric middleware) with a fake
 * transport: aws-sdk-client-mock replaces `send` and would skip both.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { driverFactory } from '../../../../src/drivers/aws-iam/index.js';
import { FakeHttpHandler, iamError } from '../../aws/fake-http.js';
import { makeCtx, makeServices, recordAwsCalls, rejection, settle } from '../../aws/helpers.js';

const ACCOUNT = '123456789012';
const ctx = makeCtx({ type: 'aws-iam', config: { accountId: ACCOUNT, regions: ['eu-west-1'] } });
const params = {
  grantId: 'g-7',
  grantee: {
    email: 'jane@example.com',
    awsPrincipalArn: `arn:aws:iam::${ACCOUNT}:role/data-analyst`,
  },
  resources: [],
  permission: 'read',
};
const deleted = {
  statusCode: 200,
  headers: { 'content-type': 'text/xml' },
  body: '<DeleteRolePolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DeleteRolePolicyResponse>',
};

describe('aws-iam throttling', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('retries a throttled DeleteRolePolicy and succeeds', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    const http = new FakeHttpHandler([iamError('Throttling', 'Rate exceeded'), deleted]);
    const services = makeServices({ maxAttempts: 3, requestHandler: http });
    const seen = recordAwsCalls(services.events);
    const out = await settle(driverFactory(services).revoke(ctx, params), (ms) =>
      vi.advanceTimersByTimeAsync(ms),
    );
    expect(out.alreadyRevoked).toBe(false);
    expect(http.requests).toHaveLength(2);
    expect(http.requests[1]?.body).toBe(
      'Action=DeleteRolePolicy&Version=2010-05-08&RoleName=data-analyst&PolicyName=latchkey-grant-g-7',
    );
    expect(seen).toEqual([
      { service: 'iam', operation: 'DeleteRolePolicy', outcome: 'throttled' },
      { service: 'iam', operation: 'DeleteRolePolicy', outcome: 'ok' },
    ]);
  });

  it('surfaces E_THROTTLED once maxAttempts is used up', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    const http = new FakeHttpHandler([], iamError('Throttling', 'Rate exceeded'));
    const services = makeServices({ maxAttempts: 2, requestHandler: http });
    const err = await settle(rejection(driverFactory(services).revoke(ctx, params)), (ms) =>
      vi.advanceTimersByTimeAsync(ms),
    );
    expect(err.code).toBe('E_THROTTLED');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('iam:DeleteRolePolicy');
    expect(http.requests).toHaveLength(2);
  });
});
