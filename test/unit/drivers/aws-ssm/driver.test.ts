import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DeleteRolePolicyCommand,
  DeleteUserPolicyCommand,
  GetRolePolicyCommand,
  GetUserPolicyCommand,
  IAMClient,
  IAMServiceException,
  ListRolePoliciesCommand,
  ListRolesCommand,
  ListUsersCommand,
  ListUserPoliciesCommand,
  NoSuchEntityException,
  PutRolePolicyCommand,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';
import {
  DescribeInstanceInformationCommand,
  DescribeSessionsCommand,
  SSMClient,
  SSMServiceException,
  TerminateSessionCommand,
} from '@aws-sdk/client-ssm';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { STSClient } from '@aws-sdk/client-sts';
import { driverFactory } from '../../../../src/drivers/aws-ssm/index.js';
import { FakeHttpHandler, iamError, jsonError } from '../../aws/fake-http.js';
import { makeCtx, makeServices, rejection, settle } from '../../aws/helpers.js';

const ACCOUNT = '123456789012';
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/data-analyst`;
const USER_ARN = `arn:aws:iam::${ACCOUNT}:user/jane`;
const I1 = `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-0a1b2c3d4e5f60718`;
const I2 = `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-0fedcba9876543210`;
const config = { accountId: ACCOUNT, regions: ['eu-west-1', 'us-east-1'] };

const iam = mockClient(IAMClient);
const ssm = mockClient(SSMClient);
const ec2 = mockClient(EC2Client);
const sts = mockClient(STSClient);
const all = [iam, ssm, ec2, sts];

const noSuch = () =>
  new NoSuchEntityException({ message: 'cannot be found', $metadata: { httpStatusCode: 404 } });
const cond = { DateLessThan: { 'aws:CurrentTime': '2026-11-26T08:00:00.000Z' } };

function grantParams(over: Record<string, unknown> = {}) {
  return {
    grantId: 'g-42',
    grantee: { email: 'jane@example.com', awsPrincipalArn: ROLE_ARN },
    resources: [
      { type: 'ec2-instance', id: I2 },
      { type: 'ec2-instance', id: I1 },
    ],
    permission: 'shell',
    expiresAt: '2026-11-26T08:00:00.000Z',
    ...over,
  };
}

describe('aws-ssm driver', () => {
  const services = makeServices();
  const driver = driverFactory(services);
  const ctx = makeCtx({ type: 'aws-ssm', config });

  beforeEach(() => {
    for (const m of all) m.reset();
  });
  afterAll(() => {
    for (const m of all) m.restore();
  });

  it('grant puts a StartSession policy on the instances and shell document, own sessions only, with expiry', async () => {
    iam.on(GetRolePolicyCommand).rejects(noSuch());
    iam.on(ListRolePoliciesCommand).resolves({ PolicyNames: ['other'], IsTruncated: false });
    iam.on(GetRolePolicyCommand, { PolicyName: 'other' }).resolves({
      PolicyDocument: encodeURIComponent('{"Version":"2012-10-17","Statement":[]}'),
    });
    iam.on(PutRolePolicyCommand).resolves({});
    const out = await driver.grant(ctx, grantParams());
    expect(iam).toHaveReceivedCommandExactlyOnceWith(PutRolePolicyCommand, {
      RoleName: 'data-analyst',
      PolicyName: 'latchkey-ssm-grant-g-42',
      PolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: 'ssm:StartSession',
            Resource: [
              I1,
              I2,
              `arn:aws:ssm:eu-west-1:${ACCOUNT}:document/SSM-SessionManagerRunShell`,
            ],
            Condition: { BoolIfExists: { 'ssm:SessionDocumentAccessCheck': 'true' }, ...cond },
          },
          {
            Effect: 'Allow',
            Action: ['ssm:ResumeSession', 'ssm:TerminateSession'],
            Resource: 'arn:aws:ssm:*:*:session/${aws:userid}-*',
            Condition: cond,
          },
        ],
      }),
    });
    expect(out).toMatchObject({
      alreadyGranted: false,
      username: ROLE_ARN,
      expiresAt: '2026-11-26T08:00:00.000Z',
    });
  });

  it('grant for a user uses ${aws:username} and AWS-owned port-forwarding documents', async () => {
    iam.on(GetUserPolicyCommand).rejects(noSuch());
    iam.on(ListUserPoliciesCommand).resolves({ PolicyNames: [], IsTruncated: false });
    iam.on(PutUserPolicyCommand).resolves({});
    await driver.grant(
      ctx,
      grantParams({
        grantee: { email: 'jane@example.com', awsPrincipalArn: USER_ARN },
        resources: [{ type: 'ec2-instance', id: I1 }],
        permission: 'port-forwarding',
        expiresAt: undefined,
      }),
    );
    expect(iam).toHaveReceivedCommandWith(PutUserPolicyCommand, {
      UserName: 'jane',
      PolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: 'ssm:StartSession',
            Resource: [
              I1,
              'arn:aws:ssm:eu-west-1::document/AWS-StartPortForwardingSession',
              'arn:aws:ssm:eu-west-1::document/AWS-StartPortForwardingSessionToRemoteHost',
            ],
            Condition: { BoolIfExists: { 'ssm:SessionDocumentAccessCheck': 'true' } },
          },
          {
            Effect: 'Allow',
            Action: ['ssm:ResumeSession', 'ssm:TerminateSession'],
            Resource: 'arn:aws:ssm:*:*:session/${aws:username}-*',
          },
        ],
      }),
    });
  });

  it('refuses over 100 instances (E_GUARDRAIL) and an oversized user policy (E_POLICY_TOO_LARGE) before any call', async () => {
    const many = (n: number) =>
      Array.from({ length: n }, (_, i) => ({
        type: 'ec2-instance',
        id: `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-${i.toString(16).padStart(17, '0')}`,
      }));
    expect((await rejection(driver.grant(ctx, grantParams({ resources: many(101) })))).code).toBe(
      'E_GUARDRAIL',
    );
    const err = await rejection(
      driver.grant(
        ctx,
        grantParams({
          grantee: { email: 'j@example.com', awsPrincipalArn: USER_ARN },
          resources: many(40),
        }),
      ),
    );
    expect(err.code).toBe('E_POLICY_TOO_LARGE');
    expect(err.message).toMatch(/by \d+/);
    for (const m of all) expect(m).not.toHaveReceivedAnyCommand();
  });

  it('refuses a grantee of another account or the connector’s own role before any call', async () => {
    const other = await rejection(
      driver.grant(
        ctx,
        grantParams({
          grantee: { email: 'j@example.com', awsPrincipalArn: 'arn:aws:iam::999999999999:role/x' },
        }),
      ),
    );
    expect(other.code).toBe('E_INVALID');
    expect(other.message).toContain('is not in account 123456789012');
    const ownCtx = makeCtx({
      type: 'aws-ssm',
      config: { ...config, assumeRoleArn: `arn:aws:iam::${ACCOUNT}:role/latchkey-connector` },
    });
    const own = await rejection(
      driver.grant(
        ownCtx,
        grantParams({
          grantee: {
            email: 'j@example.com',
            awsPrincipalArn: `arn:aws:iam::${ACCOUNT}:role/latchkey-connector`,
          },
        }),
      ),
    );
    expect(own.code).toBe('E_GUARDRAIL');
    for (const m of all) expect(m).not.toHaveReceivedAnyCommand();
  });

  it('grant reports AccessDenied with the action', async () => {
    iam.on(GetRolePolicyCommand).rejects(noSuch());
    iam.on(ListRolePoliciesCommand).resolves({ PolicyNames: [], IsTruncated: false });
    iam.on(PutRolePolicyCommand).rejects(
      new IAMServiceException({
        name: 'AccessDenied',
        message: 'not authorized',
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
      }),
    );
    const err = await rejection(driver.grant(ctx, grantParams()));
    expect(err.code).toBe('E_PRIVILEGE');
    expect(err.message).toContain('iam:PutRolePolicy');
  });

  it('revoke deletes the policy and terminates only the grantee’s active sessions on those instances (paginated)', async () => {
    const stored = JSON.stringify({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 'ssm:StartSession', Resource: [I1, I2] }],
    });
    iam
      .on(GetRolePolicyCommand, { RoleName: 'data-analyst', PolicyName: 'latchkey-ssm-grant-g-42' })
      .resolves({
        PolicyDocument: encodeURIComponent(stored),
      });
    iam.on(DeleteRolePolicyCommand).resolves({});
    const mine = `arn:aws:sts::${ACCOUNT}:assumed-role/data-analyst/jane@example.com`;
    ssm
      .on(DescribeSessionsCommand, { Filters: [{ key: 'Target', value: 'i-0a1b2c3d4e5f60718' }] })
      .resolvesOnce({
        Sessions: [
          {
            SessionId: 'jane@example.com-0a1',
            Target: 'i-0a1b2c3d4e5f60718',
            Owner: mine,
            Status: 'Connected',
          },
          {
            SessionId: 'bob-0b2',
            Target: 'i-0a1b2c3d4e5f60718',
            Owner: `arn:aws:iam::${ACCOUNT}:user/bob`,
            Status: 'Connected',
          },
        ],
        NextToken: 'page-2',
      })
      .resolvesOnce({
        Sessions: [
          {
            SessionId: 'jane@example.com-0a3',
            Target: 'i-0a1b2c3d4e5f60718',
            Owner: mine,
            Status: 'Connected',
          },
        ],
      });
    ssm
      .on(DescribeSessionsCommand, { Filters: [{ key: 'Target', value: 'i-0fedcba9876543210' }] })
      .resolves({
        Sessions: [
          {
            SessionId: 'x-1',
            Target: 'i-0fedcba9876543210',
            Owner: `arn:aws:sts::${ACCOUNT}:assumed-role/data-analyst-admins/x`,
            Status: 'Connected',
          },
        ],
      });
    ssm.on(TerminateSessionCommand).resolves({ SessionId: 'ok' });

    const out = await driver.revoke(ctx, { ...grantParams(), resources: [] });
    expect(iam).toHaveReceivedCommandExactlyOnceWith(DeleteRolePolicyCommand, {
      RoleName: 'data-analyst',
      PolicyName: 'latchkey-ssm-grant-g-42',
    });
    expect(ssm).toHaveReceivedCommandWith(DescribeSessionsCommand, {
      State: 'Active',
      Filters: [{ key: 'Target', value: 'i-0a1b2c3d4e5f60718' }],
      NextToken: 'page-2',
    });
    expect(ssm).toHaveReceivedCommandTimes(TerminateSessionCommand, 2);
    expect(ssm).toHaveReceivedCommandWith(TerminateSessionCommand, {
      SessionId: 'jane@example.com-0a1',
    });
    expect(ssm).toHaveReceivedCommandWith(TerminateSessionCommand, {
      SessionId: 'jane@example.com-0a3',
    });
    expect(out).toMatchObject({
      sessionsTerminated: 2,
      alreadyRevoked: false,
      revoked: ['latchkey-ssm-grant-g-42'],
    });
  });

  it('revoke of a missing policy succeeds, filtering a user’s sessions by owner', async () => {
    iam.on(GetUserPolicyCommand).rejects(noSuch());
    ssm.on(DescribeSessionsCommand).resolves({ Sessions: [] });
    const out = await driver.revoke(ctx, {
      ...grantParams({ grantee: { email: 'jane@example.com', awsPrincipalArn: USER_ARN } }),
      resources: [{ type: 'ec2-instance', id: I1 }],
    });
    expect(iam).not.toHaveReceivedCommand(DeleteUserPolicyCommand);
    expect(ssm).toHaveReceivedCommandWith(DescribeSessionsCommand, {
      State: 'Active',
      Filters: [
        { key: 'Target', value: 'i-0a1b2c3d4e5f60718' },
        { key: 'Owner', value: USER_ARN },
      ],
    });
    expect(out).toMatchObject({ alreadyRevoked: true, sessionsTerminated: 0, revoked: [] });
  });

  it('revoke surfaces a TerminateSession refusal with the action', async () => {
    iam.on(GetRolePolicyCommand).rejects(noSuch());
    ssm.on(DescribeSessionsCommand).resolves({
      Sessions: [
        {
          SessionId: 's-1',
          Target: 'i-0a1b2c3d4e5f60718',
          Owner: `arn:aws:sts::${ACCOUNT}:assumed-role/data-analyst/j`,
        },
      ],
    });
    ssm.on(TerminateSessionCommand).rejects(
      new SSMServiceException({
        name: 'AccessDeniedException',
        message: 'denied',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const err = await rejection(
      driver.revoke(ctx, { ...grantParams(), resources: [{ type: 'ec2-instance', id: I1 }] }),
    );
    expect(err.code).toBe('E_PRIVILEGE');
    expect(err.message).toContain('ssm:TerminateSession');
  });

  it('sweep deletes expired session policies and ends the principal’s sessions on their instances', async () => {
    const expired = JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: 'ssm:StartSession',
          Resource: [I1],
          Condition: { DateLessThan: { 'aws:CurrentTime': '2026-11-25T19:59:00.000Z' } },
        },
      ],
    });
    iam.on(ListRolesCommand).resolves({
      Roles: [
        { RoleName: 'data-analyst', Arn: ROLE_ARN, Path: '/', RoleId: 'r', CreateDate: new Date() },
      ],
      IsTruncated: false,
    });
    iam.on(ListUsersCommand).resolves({ Users: [], IsTruncated: false });
    iam.on(ListRolePoliciesCommand).resolves({
      PolicyNames: ['latchkey-ssm-grant-g-1', 'latchkey-grant-g-2'],
      IsTruncated: false,
    });
    iam.on(GetRolePolicyCommand).resolves({ PolicyDocument: encodeURIComponent(expired) });
    iam.on(DeleteRolePolicyCommand).resolves({});
    ssm.on(DescribeSessionsCommand).resolves({
      Sessions: [
        {
          SessionId: 's-9',
          Target: 'i-0a1b2c3d4e5f60718',
          Owner: `arn:aws:sts::${ACCOUNT}:assumed-role/data-analyst/jane`,
        },
      ],
    });
    ssm.on(TerminateSessionCommand).resolves({ SessionId: 's-9' });
    const report = await driver.sweep!(ctx);
    expect(iam).toHaveReceivedCommandExactlyOnceWith(DeleteRolePolicyCommand, {
      RoleName: 'data-analyst',
      PolicyName: 'latchkey-ssm-grant-g-1',
    });
    expect(ssm).toHaveReceivedCommandExactlyOnceWith(TerminateSessionCommand, { SessionId: 's-9' });
    expect(report).toEqual({ revoked: [`${ROLE_ARN}#latchkey-ssm-grant-g-1`], errors: [] });
  });

  it('an aborted command makes no AWS call', async () => {
    const ac = new AbortController();
    ac.abort();
    const err = await rejection(
      driver.grant(makeCtx({ type: 'aws-ssm', config }, ac.signal), grantParams()),
    );
    expect(err.code).toBe('E_CANCELLED');
    for (const m of all) expect(m).not.toHaveReceivedAnyCommand();
  });

  it('discover lists managed instances per region with EC2 Name and tags, across pages', async () => {
    ssm
      .on(DescribeInstanceInformationCommand)
      .resolvesOnce({
        InstanceInformationList: [
          {
            InstanceId: 'i-0a1b2c3d4e5f60718',
            PingStatus: 'Online',
            PlatformType: 'Linux',
            ComputerName: 'ip-10-0-0-1',
          },
        ],
        NextToken: 'n2',
      })
      .resolvesOnce({
        InstanceInformationList: [
          {
            InstanceId: 'mi-0123456789abcdef0',
            PingStatus: 'Online',
            PlatformType: 'Linux',
            ComputerName: 'onprem-1',
          },
        ],
      })
      .resolves({ InstanceInformationList: [] });
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            {
              InstanceId: 'i-0a1b2c3d4e5f60718',
              Tags: [
                { Key: 'Name', Value: 'bastion' },
                { Key: 'env', Value: 'prod' },
              ],
            },
          ],
        },
      ],
    });
    const out = await driver.discover(ctx);
    expect(ssm).toHaveReceivedCommandWith(DescribeInstanceInformationCommand, { NextToken: 'n2' });
    expect(ec2).toHaveReceivedCommandExactlyOnceWith(DescribeInstancesCommand, {
      InstanceIds: ['i-0a1b2c3d4e5f60718'],
    });
    expect(out.resources).toEqual([
      {
        id: I1,
        name: 'bastion',
        type: 'ec2-instance',
        metadata: expect.objectContaining({
          instanceId: 'i-0a1b2c3d4e5f60718',
          region: 'eu-west-1',
          tags: { Name: 'bastion', env: 'prod' },
          pingStatus: 'Online',
        }) as unknown,
      },
      {
        id: `arn:aws:ssm:eu-west-1:${ACCOUNT}:managed-instance/mi-0123456789abcdef0`,
        name: 'onprem-1',
        type: 'managed-instance',
        metadata: expect.objectContaining({ region: 'eu-west-1', tags: {} }) as unknown,
      },
    ]);
    expect(out.warnings).toEqual([]);
    expect(out.permissions.map((p) => p.id)).toEqual(['shell', 'port-forwarding', 'ssh']);
  });
});

describe('aws-ssm throttling (real SDK stack, fake transport)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('retries DescribeSessions on ThrottlingException, then surfaces E_THROTTLED', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    const http = new FakeHttpHandler(
      [iamError('NoSuchEntity', 'The role policy cannot be found.', 404)],
      jsonError('ThrottlingException', 'Rate exceeded'),
    );
    const services = makeServices({ maxAttempts: 2, requestHandler: http });
    const ctx = makeCtx({ type: 'aws-ssm', config });
    const err = await settle(
      rejection(
        driverFactory(services).revoke(ctx, {
          ...grantParams(),
          resources: [{ type: 'ec2-instance', id: I1 }],
        }),
      ),
      (ms) => vi.advanceTimersByTimeAsync(ms),
    );
    expect(err.code).toBe('E_THROTTLED');
    expect(err.message).toContain('ssm:DescribeSessions');
    const ssmCalls = http.requests.filter(
      (r) => r.headers['x-amz-target'] === 'AmazonSSM.DescribeSessions',
    );
    expect(ssmCalls).toHaveLength(2);
    expect(JSON.parse(ssmCalls[0]?.body ?? '{}')).toEqual({
      State: 'Active',
      Filters: [{ key: 'Target', value: 'i-0a1b2c3d4e5f60718' }],
      MaxResults: 200,
    });
  });
});
