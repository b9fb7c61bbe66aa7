/**
 * aws-ssm tag scopes (issue 14, item 4): Session Manager access to every EC2 instance of the
 * integration that carries a tag, through an `ssm:resourceTag/<key>` condition; revoke ends
 * the grantee's sessions on the instances that carry the tag.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DeleteRolePolicyCommand,
  GetRolePolicyCommand,
  IAMClient,
  ListRolePoliciesCommand,
  NoSuchEntityException,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { DescribeSessionsCommand, SSMClient, TerminateSessionCommand } from '@aws-sdk/client-ssm';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { driverFactory } from '../../../../src/drivers/aws-ssm/index.js';
import { makeCtx, makeServices, rejection } from '../../aws/helpers.js';

const ACCOUNT = '123456789012';
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/data-analyst`;
const EXPIRES = '2026-11-26T08:00:00.000Z';
const expiry = { DateLessThan: { 'aws:CurrentTime': EXPIRES } };
const config = { accountId: ACCOUNT, regions: ['eu-west-1', 'us-east-1'] };

const iam = mockClient(IAMClient);
const ssm = mockClient(SSMClient);
const ec2 = mockClient(EC2Client);
const all = [iam, ssm, ec2];

const POLICY = {
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Action: 'ssm:StartSession',
      Resource: [
        `arn:aws:ssm:eu-west-1:${ACCOUNT}:document/SSM-SessionManagerRunShell`,
        `arn:aws:ssm:us-east-1:${ACCOUNT}:document/SSM-SessionManagerRunShell`,
      ],
      Condition: { BoolIfExists: { 'ssm:SessionDocumentAccessCheck': 'true' }, ...expiry },
    },
    {
      Effect: 'Allow',
      Action: 'ssm:StartSession',
      Resource: [
        `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/*`,
        `arn:aws:ec2:us-east-1:${ACCOUNT}:instance/*`,
      ],
      Condition: {
        StringEquals: { 'ssm:resourceTag/env': 'staging' },
        BoolIfExists: { 'ssm:SessionDocumentAccessCheck': 'true' },
        ...expiry,
      },
    },
    {
      Effect: 'Allow',
      Action: ['ssm:ResumeSession', 'ssm:TerminateSession'],
      Resource: 'arn:aws:ssm:*:*:session/${aws:userid}-*',
      Condition: expiry,
    },
  ],
};

describe('aws-ssm tag scope', () => {
  const driver = driverFactory(makeServices());
  const ctx = makeCtx({ type: 'aws-ssm', config });

  beforeEach(() => {
    for (const m of all) m.reset();
  });
  afterAll(() => {
    for (const m of all) m.restore();
  });

  it('grants StartSession on the tagged instances of every region, the tag only on the instances', async () => {
    iam
      .on(GetRolePolicyCommand)
      .rejects(new NoSuchEntityException({ message: 'no', $metadata: { httpStatusCode: 404 } }));
    iam.on(ListRolePoliciesCommand).resolves({ PolicyNames: [], IsTruncated: false });
    iam.on(PutRolePolicyCommand).resolves({});
    const out = await driver.grant(ctx, {
      grantId: 'g-7',
      grantee: { email: 'jane@example.com', awsPrincipalArn: ROLE_ARN },
      resources: [],
      tagScope: { resourceType: 'ec2-instance', key: 'env', value: 'staging' },
      permission: 'shell',
      expiresAt: EXPIRES,
    });
    expect(iam).toHaveReceivedCommandWith(PutRolePolicyCommand, {
      RoleName: 'data-analyst',
      PolicyName: 'latchkey-ssm-grant-g-7',
      PolicyDocument: JSON.stringify(POLICY),
    });
    expect(out.access).toMatchObject({ tagScope: { key: 'env', value: 'staging' } });
    expect(ec2).not.toHaveReceivedAnyCommand();
  });

  it('refuses a tag scope on anything but ec2-instance, before any call', async () => {
    const err = await rejection(
      driver.grant(ctx, {
        grantId: 'g-7',
        grantee: { email: 'jane@example.com', awsPrincipalArn: ROLE_ARN },
        resources: [],
        tagScope: { resourceType: 'managed-instance', key: 'env', value: 'staging' },
        permission: 'shell',
      }),
    );
    expect(err.code).toBe('E_INVALID');
    for (const m of all) expect(m).not.toHaveReceivedAnyCommand();
  });

  it('revoke reads the tag from the stored policy and ends the grantee’s sessions on the tagged instances', async () => {
    iam.on(GetRolePolicyCommand).resolves({
      PolicyDocument: encodeURIComponent(JSON.stringify(POLICY)),
    });
    iam.on(DeleteRolePolicyCommand).resolves({});
    const pages: string[] = [];
    ec2
      .on(DescribeInstancesCommand)
      .callsFake((input: { NextToken?: string; Filters?: unknown }) => {
        expect(input.Filters).toEqual([{ Name: 'tag:env', Values: ['staging'] }]);
        pages.push(input.NextToken ?? 'first');
        // eu-west-1: two pages; us-east-1 (the third call): none.
        if (pages.length === 1)
          return {
            Reservations: [{ Instances: [{ InstanceId: 'i-0a1b2c3d4e5f60718' }] }],
            NextToken: 'p2',
          };
        if (pages.length === 2)
          return { Reservations: [{ Instances: [{ InstanceId: 'i-0fedcba9876543210' }] }] };
        return { Reservations: [] };
      });
    ssm.on(DescribeSessionsCommand).resolves({ Sessions: [] });
    ssm
      .on(DescribeSessionsCommand, { Filters: [{ key: 'Target', value: 'i-0fedcba9876543210' }] })
      .resolves({
        Sessions: [
          {
            SessionId: 'AROA1:jane-0abc',
            Target: 'i-0fedcba9876543210',
            Owner: `arn:aws:sts::${ACCOUNT}:assumed-role/data-analyst/jane`,
          },
          {
            SessionId: 'someone-else',
            Target: 'i-0fedcba9876543210',
            Owner: `arn:aws:sts::${ACCOUNT}:assumed-role/ops/bob`,
          },
        ],
      });
    ssm.on(TerminateSessionCommand).resolves({});
    const out = await driver.revoke(ctx, {
      grantId: 'g-7',
      grantee: { email: 'jane@example.com', awsPrincipalArn: ROLE_ARN },
      resources: [],
      permission: 'shell',
    });
    expect(pages).toEqual(['first', 'p2', 'first']);
    expect(ssm).toHaveReceivedCommandExactlyOnceWith(TerminateSessionCommand, {
      SessionId: 'AROA1:jane-0abc',
    });
    expect(ssm).toHaveReceivedCommandTimes(TerminateSessionCommand, 1);
    expect(out.sessionsTerminated).toBe(1);
    expect(out.revoked).toEqual(['latchkey-ssm-grant-g-7']);
  });
});
