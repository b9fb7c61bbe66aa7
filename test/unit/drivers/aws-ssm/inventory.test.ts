/**
 * aws-ssm access inventory (issue 13): who may ssm:StartSession on each discovered
 * instance, through which policy, with the agent's own session policies matched to grants.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DeleteRolePolicyCommand,
  GetAccountAuthorizationDetailsCommand,
  IAMClient,
} from '@aws-sdk/client-iam';
import { DescribeInstanceInformationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { driverFactory } from '../../../../src/drivers/aws-ssm/index.js';
import { makeCtx, makeServices } from '../../aws/helpers.js';

const ACCOUNT = '123456789012';
const I1 = `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-0a1b2c3d4e5f60718`;
const I2 = `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-0fedcba9876543210`;
const OPS = `arn:aws:iam::${ACCOUNT}:role/ops`;
const DEV = `arn:aws:iam::${ACCOUNT}:user/dev`;
const config = { accountId: ACCOUNT, regions: ['eu-west-1'] };

const iam = mockClient(IAMClient);
const ssm = mockClient(SSMClient);
const ec2 = mockClient(EC2Client);
const doc = (...Statement: Record<string, unknown>[]): string =>
  encodeURIComponent(JSON.stringify({ Version: '2012-10-17', Statement }));

beforeEach(() => {
  for (const m of [iam, ssm, ec2]) m.reset();
});
afterAll(() => {
  for (const m of [iam, ssm, ec2]) m.restore();
});

describe('aws-ssm access inventory', () => {
  it('lists who may start a session on each instance, by which policy', async () => {
    ssm.on(DescribeInstanceInformationCommand).resolves({
      InstanceInformationList: [
        { InstanceId: 'i-0a1b2c3d4e5f60718', PingStatus: 'Online' },
        { InstanceId: 'i-0fedcba9876543210', PingStatus: 'Online' },
      ],
    });
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    iam.on(GetAccountAuthorizationDetailsCommand).resolves({
      RoleDetailList: [
        {
          RoleName: 'ops',
          Arn: OPS,
          Path: '/',
          RolePolicyList: [
            {
              PolicyName: 'ssm-everywhere',
              PolicyDocument: doc(
                { Effect: 'Allow', Action: 'ssm:Start*', Resource: '*' },
                { Effect: 'Deny', Action: 'ssm:StartSession', Resource: I2 },
              ),
            },
          ],
        },
      ],
      UserDetailList: [
        {
          UserName: 'dev',
          Arn: DEV,
          Path: '/',
          UserPolicyList: [
            {
              PolicyName: 'latchkey-ssm-grant-g-42',
              PolicyDocument: doc({
                Effect: 'Allow',
                Action: 'ssm:StartSession',
                Resource: [
                  I2,
                  `arn:aws:ssm:eu-west-1:${ACCOUNT}:document/SSM-SessionManagerRunShell`,
                ],
                Condition: { DateLessThan: { 'aws:CurrentTime': '2026-11-26T08:00:00.000Z' } },
              }),
            },
          ],
        },
      ],
      IsTruncated: false,
    });
    const driver = driverFactory(makeServices());
    const out = await driver.discover(makeCtx({ type: 'aws-ssm', config }), {
      include: ['privileges'],
    });
    expect(out.inventory?.entries).toEqual([
      {
        principalId: `iam-user:${DEV}`,
        resourceId: I2,
        permission: 'session',
        privileges: ['ssm:StartSession'],
        via: 'policy',
        source: 'latchkey-ssm-grant-g-42',
        conditions: ['aws:CurrentTime'],
        managedByAgent: true,
        grantId: 'g-42',
      },
      {
        principalId: `iam-role:${OPS}`,
        resourceId: I1,
        permission: 'session',
        privileges: ['ssm:StartSession'],
        via: 'policy',
        source: 'ssm-everywhere',
        managedByAgent: false,
      },
    ]);
    expect(out.inventory?.principals.map((p) => p.id)).toEqual([
      `iam-role:${OPS}`,
      `iam-user:${DEV}`,
    ]);
  });
});

describe('aws-ssm standing cleanup', () => {
  it('plans the exact IAM call, refuses the agent policy, applies nothing then', async () => {
    iam.on(GetAccountAuthorizationDetailsCommand).resolves({
      RoleDetailList: [
        {
          RoleName: 'ops',
          Arn: OPS,
          Path: '/',
          RolePolicyList: [
            {
              PolicyName: 'ssm-everywhere',
              PolicyDocument: doc({ Effect: 'Allow', Action: 'ssm:StartSession', Resource: '*' }),
            },
            {
              PolicyName: 'latchkey-ssm-grant-g-42',
              PolicyDocument: doc({ Effect: 'Allow', Action: 'ssm:StartSession', Resource: I2 }),
            },
          ],
        },
      ],
      IsTruncated: false,
    });
    const driver = driverFactory(makeServices());
    if (!driver.removeStanding) throw new Error('no removeStanding');
    const ctx = makeCtx({ type: 'aws-ssm', config });
    const ops = (resourceId: string, source: string) => ({
      principalId: `iam-role:${OPS}`,
      resourceId,
      permission: 'session',
      via: 'policy' as const,
      source,
    });
    const dry = await driver.removeStanding(ctx, { standing: [ops(I1, 'ssm-everywhere')] });
    expect(dry.standing?.map((s) => [s.status, s.actions])).toEqual([
      ['planned', ['iam:DeleteRolePolicy RoleName=ops PolicyName=ssm-everywhere']],
    ]);
    const refused = await driver.removeStanding(ctx, {
      standing: [ops(I1, 'ssm-everywhere'), ops(I2, 'latchkey-ssm-grant-g-42')],
      apply: true,
    });
    expect(refused.dryRun).toBe(true);
    expect(refused.standing?.map((s) => [s.status, s.code])).toEqual([
      ['planned', undefined],
      ['refused', 'E_NOT_MANAGED'],
    ]);
    expect(iam).toHaveReceivedCommandTimes(DeleteRolePolicyCommand, 0);
  });
});
