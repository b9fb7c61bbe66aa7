/**
 * aws-iam scopes (issue 14, items 4, 6, 7): "any resource of this type", region scopes, tag
 * scopes for every type (S3 objects included), `ec2-instance` and `rds-db-user`. The exact
 * policy documents sent to IAM are asserted.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  GetRolePolicyCommand,
  IAMClient,
  ListRolePoliciesCommand,
  NoSuchEntityException,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import {
  GetBucketEncryptionCommand,
  GetBucketLocationCommand,
  GetBucketTaggingCommand,
  ListBucketsCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { buildGrantPolicy, driverFactory } from '../../../../src/drivers/aws-iam/index.js';
import { parseIamConfig } from '../../../../src/drivers/aws-iam/config.js';
import { policyExpiry } from '../../../../src/aws/policy.js';
import { makeCtx, makeServices, rejection, settle } from '../../aws/helpers.js';

const ACCOUNT = '123456789012';
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/data-analyst`;
const EXPIRES = '2026-11-26T08:00:00.000Z';
const expiry = { DateLessThan: { 'aws:CurrentTime': EXPIRES } };
const config = {
  accountId: ACCOUNT,
  regions: ['eu-west-1', 'eu-central-1'],
  resourceTypes: [
    's3-bucket',
    'dynamodb-table',
    'sqs-queue',
    'secretsmanager-secret',
    'iam-role',
    'ec2-instance',
    'rds-db-user',
  ],
};
const INSTANCE = `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-0a1b2c3d4e5f60718`;
const DB_USER = `arn:aws:rds-db:eu-west-1:${ACCOUNT}:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXY1/lk_jane_example_com_3f2a`;

const iam = mockClient(IAMClient);
const s3 = mockClient(S3Client);
const ec2 = mockClient(EC2Client);
const all = [iam, s3, ec2];

function params(over: Record<string, unknown> = {}) {
  return {
    grantId: 'g-2001',
    grantee: { email: 'jane@example.com', awsPrincipalArn: ROLE_ARN },
    resources: [],
    permission: 'read',
    expiresAt: EXPIRES,
    ...over,
  };
}

function emptyRole(): void {
  iam
    .on(GetRolePolicyCommand)
    .rejects(new NoSuchEntityException({ message: 'none', $metadata: { httpStatusCode: 404 } }));
  iam.on(ListRolePoliciesCommand).resolves({ PolicyNames: [], IsTruncated: false });
  iam.on(PutRolePolicyCommand).resolves({});
}

/** The document of the one PutRolePolicy, parsed. */
function putDocument(): unknown {
  const calls = iam.commandCalls(PutRolePolicyCommand);
  expect(calls).toHaveLength(1);
  return JSON.parse(calls[0]?.args[0].input.PolicyDocument ?? 'null');
}

describe('aws-iam scopes', () => {
  const driver = driverFactory(makeServices());
  const ctx = makeCtx({ type: 'aws-iam', config });

  beforeEach(() => {
    for (const m of all) m.reset();
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(() => {
    for (const m of all) m.restore();
  });

  describe('"*" and region scopes', () => {
    it('grants every table of the integration and the queues of one region', async () => {
      emptyRole();
      await driver.grant(
        ctx,
        params({
          resources: [
            { type: 'dynamodb-table', id: '*' },
            { type: 'sqs-queue', id: 'region:eu-central-1' },
          ],
        }),
      );
      expect(putDocument()).toEqual({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: [
              'dynamodb:BatchGetItem',
              'dynamodb:ConditionCheckItem',
              'dynamodb:DescribeTable',
              'dynamodb:GetItem',
              'dynamodb:Query',
              'dynamodb:Scan',
            ],
            Resource: [
              `arn:aws:dynamodb:eu-central-1:${ACCOUNT}:table/*`,
              `arn:aws:dynamodb:eu-west-1:${ACCOUNT}:table/*`,
            ],
            Condition: expiry,
          },
          {
            Effect: 'Allow',
            Action: [
              'sqs:GetQueueAttributes',
              'sqs:GetQueueUrl',
              'sqs:ListQueueTags',
              'sqs:ReceiveMessage',
            ],
            Resource: `arn:aws:sqs:eu-central-1:${ACCOUNT}:*`,
            Condition: expiry,
          },
        ],
      });
      // No per-resource lookups: a scope is expressed, not enumerated.
      expect(s3).not.toHaveReceivedAnyCommand();
    });

    it('holds "every bucket" to the account and allows customer keys only through S3', async () => {
      emptyRole();
      await driver.grant(ctx, params({ resources: [{ type: 's3-bucket', id: '*' }] }));
      expect(putDocument()).toEqual({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: [
              's3:GetBucketLocation',
              's3:GetObject',
              's3:GetObjectVersion',
              's3:ListBucket',
            ],
            Resource: ['arn:aws:s3:::*', 'arn:aws:s3:::*/*'],
            Condition: {
              StringEquals: { 'aws:ResourceAccount': ACCOUNT },
              ...expiry,
            },
          },
          {
            Effect: 'Allow',
            Action: 'kms:Decrypt',
            Resource: [
              `arn:aws:kms:eu-central-1:${ACCOUNT}:key/*`,
              `arn:aws:kms:eu-west-1:${ACCOUNT}:key/*`,
            ],
            Condition: {
              StringEquals: {
                'kms:ViaService': ['s3.eu-west-1.amazonaws.com', 's3.eu-central-1.amazonaws.com'],
              },
              ...expiry,
            },
          },
        ],
      });
      expect(s3).not.toHaveReceivedAnyCommand();
    });

    it('refuses scopes that mean nothing or too much, before any call', async () => {
      const cases: [Record<string, string>, string, string][] = [
        [{ type: 'iam-role', id: '*' }, 'E_GUARDRAIL', 'any role'],
        [{ type: 'rds-db-user', id: '*' }, 'E_GUARDRAIL', 'any database user'],
        [{ type: 's3-bucket', id: 'region:eu-west-1' }, 'E_INVALID', 'no region'],
        [{ type: 'sqs-queue', id: 'region:us-east-1' }, 'E_INVALID', 'not one of'],
        [{ type: 'sns-topic', id: '*' }, 'E_INVALID', 'not served'],
      ];
      for (const [resource, code, text] of cases) {
        const err = await rejection(driver.grant(ctx, params({ resources: [resource] })));
        expect(err.code, JSON.stringify(resource)).toBe(code);
        expect(err.message).toContain(text);
      }
      for (const m of all) expect(m).not.toHaveReceivedAnyCommand();
    });
  });

  describe('tag scopes', () => {
    it('S3: bucket-level actions through the bucket tag, objects of the tagged buckets by name, their keys', async () => {
      emptyRole();
      s3.on(ListBucketsCommand).resolvesOnce({
        Buckets: [
          { Name: 'pay-a', BucketRegion: 'eu-west-1' },
          { Name: 'other', BucketRegion: 'eu-west-1' },
        ],
        ContinuationToken: 'p2',
      });
      s3.on(ListBucketsCommand, { ContinuationToken: 'p2' }).resolves({
        Buckets: [
          { Name: 'pay-b', BucketRegion: 'eu-central-1' },
          { Name: 'pay-far', BucketRegion: 'us-east-1' },
        ],
      });
      s3.on(GetBucketTaggingCommand).resolves({ TagSet: [{ Key: 'team', Value: 'payments' }] });
      s3.on(GetBucketTaggingCommand, { Bucket: 'other' }).resolves({
        TagSet: [{ Key: 'team', Value: 'risk' }],
      });
      s3.on(GetBucketLocationCommand, { Bucket: 'pay-a' }).resolves({
        LocationConstraint: 'eu-west-1',
      });
      s3.on(GetBucketLocationCommand, { Bucket: 'pay-b' }).resolves({
        LocationConstraint: 'eu-central-1',
      });
      s3.on(GetBucketEncryptionCommand).resolves({
        ServerSideEncryptionConfiguration: {
          Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
      });
      s3.on(GetBucketEncryptionCommand, { Bucket: 'pay-b' }).resolves({
        ServerSideEncryptionConfiguration: {
          Rules: [
            {
              ApplyServerSideEncryptionByDefault: {
                SSEAlgorithm: 'aws:kms',
                KMSMasterKeyID: '1234abcd-12ab-34cd-56ef-1234567890ab',
              },
            },
          ],
        },
      });
      const out = await driver.grant(
        ctx,
        params({
          tagScope: { resourceType: 's3-bucket', key: 'team', value: 'payments' },
          permission: 'write',
        }),
      );
      expect(putDocument()).toEqual({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
            Resource: `arn:aws:kms:eu-central-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`,
            Condition: expiry,
          },
          {
            Effect: 'Allow',
            Action: ['s3:GetBucketLocation', 's3:ListBucket', 's3:ListBucketMultipartUploads'],
            Resource: 'arn:aws:s3:::*',
            Condition: {
              StringEquals: { 'aws:ResourceTag/team': 'payments', 'aws:ResourceAccount': ACCOUNT },
              ...expiry,
            },
          },
          {
            Effect: 'Allow',
            Action: [
              's3:AbortMultipartUpload',
              's3:DeleteObject',
              's3:GetObject',
              's3:GetObjectVersion',
              's3:ListMultipartUploadParts',
              's3:PutObject',
            ],
            Resource: ['arn:aws:s3:::pay-a/*', 'arn:aws:s3:::pay-b/*'],
            Condition: expiry,
          },
        ],
      });
      expect(out.access).toMatchObject({
        kmsKeys: [`arn:aws:kms:eu-central-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`],
      });
      // The bucket outside the integration's regions is not looked at.
      expect(s3).not.toHaveReceivedCommandWith(GetBucketTaggingCommand, { Bucket: 'pay-far' });
    });

    it('S3: a bucket whose tags cannot be read fails the grant, nothing is written', async () => {
      emptyRole();
      s3.on(ListBucketsCommand).resolves({
        Buckets: [{ Name: 'pay-a', BucketRegion: 'eu-west-1' }],
      });
      s3.on(GetBucketTaggingCommand).rejects(
        new S3ServiceException({
          name: 'AccessDenied',
          message: 'not authorized to perform: s3:GetBucketTagging',
          $fault: 'client',
          $metadata: { httpStatusCode: 403 },
        }),
      );
      const err = await rejection(
        driver.grant(
          ctx,
          params({ tagScope: { resourceType: 's3-bucket', key: 'team', value: 'payments' } }),
        ),
      );
      expect(err.code).toBe('E_PRIVILEGE');
      expect(iam).not.toHaveReceivedCommand(PutRolePolicyCommand);
    });

    it('S3: more than 100 tagged buckets is E_GUARDRAIL', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'setInterval', 'Date'] });
      emptyRole();
      s3.on(ListBucketsCommand).resolves({
        Buckets: Array.from({ length: 101 }, (_, i) => ({
          Name: `pay-${i}`,
          BucketRegion: 'eu-west-1',
        })),
      });
      s3.on(GetBucketTaggingCommand).resolves({ TagSet: [{ Key: 'team', Value: 'payments' }] });
      const err = await rejection(
        settle(
          driver.grant(
            ctx,
            params({ tagScope: { resourceType: 's3-bucket', key: 'team', value: 'payments' } }),
          ),
          (ms) => vi.advanceTimersByTimeAsync(ms),
        ),
      );
      vi.useRealTimers();
      expect(err.code).toBe('E_GUARDRAIL');
      expect(iam).not.toHaveReceivedCommand(PutRolePolicyCommand);
    });

    it('secrets and EC2 instances by tag; rds-db-user has no tags', async () => {
      emptyRole();
      await driver.grant(
        ctx,
        params({
          tagScope: { resourceType: 'ec2-instance', key: 'env', value: 'staging' },
          permission: 'operate',
        }),
      );
      expect(putDocument()).toEqual({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['ec2:DescribeInstanceStatus', 'ec2:DescribeInstances', 'ec2:DescribeTags'],
            Resource: '*',
            Condition: {
              StringEquals: { 'aws:RequestedRegion': ['eu-central-1', 'eu-west-1'] },
              ...expiry,
            },
          },
          {
            Effect: 'Allow',
            Action: [
              'ec2:DescribeInstanceAttribute',
              'ec2:GetConsoleOutput',
              'ec2:RebootInstances',
              'ec2:StartInstances',
              'ec2:StopInstances',
            ],
            Resource: [
              `arn:aws:ec2:eu-central-1:${ACCOUNT}:instance/*`,
              `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/*`,
            ],
            Condition: { StringEquals: { 'aws:ResourceTag/env': 'staging' }, ...expiry },
          },
        ],
      });
      iam.reset();
      emptyRole();
      await driver.grant(
        ctx,
        params({ tagScope: { resourceType: 'secretsmanager-secret', key: 'app', value: 'web' } }),
      );
      expect(putDocument()).toMatchObject({
        Statement: [
          {
            Resource: [
              `arn:aws:secretsmanager:eu-central-1:${ACCOUNT}:secret:*`,
              `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:*`,
            ],
            Condition: { StringEquals: { 'aws:ResourceTag/app': 'web' } },
          },
        ],
      });
      const err = await rejection(
        driver.grant(
          ctx,
          params({ tagScope: { resourceType: 'rds-db-user', key: 'a', value: 'b' } }),
        ),
      );
      expect(err.code).toBe('E_INVALID');
    });
  });

  describe('ec2-instance', () => {
    it('read, operate and admin on named instances, describe limited to their regions', async () => {
      const levels: [string, string | string[]][] = [
        ['read', ['ec2:DescribeInstanceAttribute', 'ec2:GetConsoleOutput']],
        [
          'operate',
          [
            'ec2:DescribeInstanceAttribute',
            'ec2:GetConsoleOutput',
            'ec2:RebootInstances',
            'ec2:StartInstances',
            'ec2:StopInstances',
          ],
        ],
        ['admin', 'ec2:*'],
      ];
      for (const [permission, actions] of levels) {
        iam.reset();
        emptyRole();
        await driver.grant(
          ctx,
          params({ resources: [{ type: 'ec2-instance', id: INSTANCE }], permission }),
        );
        expect(putDocument()).toEqual({
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Action: actions, Resource: INSTANCE, Condition: expiry },
            {
              Effect: 'Allow',
              Action: ['ec2:DescribeInstanceStatus', 'ec2:DescribeInstances', 'ec2:DescribeTags'],
              Resource: '*',
              Condition: { StringEquals: { 'aws:RequestedRegion': 'eu-west-1' }, ...expiry },
            },
          ],
        });
      }
      const err = await rejection(
        driver.grant(
          ctx,
          params({ resources: [{ type: 'ec2-instance', id: INSTANCE }], permission: 'write' }),
        ),
      );
      expect(err.code).toBe('E_INVALID');
      expect(err.message).toContain('read, operate, admin');
    });

    it('is opt-in: an integration without resourceTypes does not serve it', async () => {
      const plain = makeCtx({
        type: 'aws-iam',
        config: { accountId: ACCOUNT, regions: ['eu-west-1'] },
      });
      const err = await rejection(
        driver.grant(plain, params({ resources: [{ type: 'ec2-instance', id: INSTANCE }] })),
      );
      expect(err.code).toBe('E_INVALID');
      expect(iam).not.toHaveReceivedAnyCommand();
    });

    it('discovers instances with tags across pages, skipping terminated ones', async () => {
      ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
      ec2.on(DescribeInstancesCommand, { MaxResults: 1000 }).resolvesOnce({
        Reservations: [
          {
            Instances: [
              {
                InstanceId: 'i-0a1b2c3d4e5f60718',
                State: { Name: 'running' },
                InstanceType: 't3.micro',
                Tags: [{ Key: 'Name', Value: 'web-1' }],
              },
              { InstanceId: 'i-0000000000000dead', State: { Name: 'terminated' } },
            ],
          },
        ],
        NextToken: 'n2',
      });
      ec2.on(DescribeInstancesCommand, { NextToken: 'n2' }).resolves({
        Reservations: [
          { Instances: [{ InstanceId: 'i-0b1b2c3d4e5f60719', State: { Name: 'stopped' } }] },
        ],
      });
      const ec2Only = makeCtx({
        type: 'aws-iam',
        config: { accountId: ACCOUNT, regions: ['eu-west-1'], resourceTypes: ['ec2-instance'] },
      });
      const out = await driver.discover(ec2Only, {});
      expect(out.warnings).toEqual([]);
      expect(out.resources).toEqual([
        {
          id: INSTANCE,
          name: 'web-1',
          type: 'ec2-instance',
          metadata: {
            arn: INSTANCE,
            region: 'eu-west-1',
            accountId: ACCOUNT,
            tags: { Name: 'web-1' },
            instanceId: 'i-0a1b2c3d4e5f60718',
            state: 'running',
            instanceType: 't3.micro',
          },
        },
        {
          id: `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-0b1b2c3d4e5f60719`,
          name: 'i-0b1b2c3d4e5f60719',
          type: 'ec2-instance',
          metadata: {
            arn: `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-0b1b2c3d4e5f60719`,
            region: 'eu-west-1',
            accountId: ACCOUNT,
            tags: {},
            instanceId: 'i-0b1b2c3d4e5f60719',
            state: 'stopped',
          },
        },
      ]);
      expect(out.permissions.map((p) => p.id)).toContain('operate');
    });
  });

  describe('rds-db-user (IAM database authentication of the grantee)', () => {
    it('grants rds-db:connect on exactly that database user until expiry', async () => {
      emptyRole();
      await driver.grant(
        ctx,
        params({ resources: [{ type: 'rds-db-user', id: DB_USER }], permission: 'connect' }),
      );
      expect(putDocument()).toEqual({
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Action: 'rds-db:connect', Resource: DB_USER, Condition: expiry },
        ],
      });
    });

    it('refuses users the connector does not manage, and wildcards', async () => {
      for (const id of [
        `arn:aws:rds-db:eu-west-1:${ACCOUNT}:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXY1/postgres`,
        `arn:aws:rds-db:eu-west-1:${ACCOUNT}:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXY1/*`,
        `arn:aws:rds-db:eu-west-1:${ACCOUNT}:dbuser:*/lk_jane`,
      ]) {
        const err = await rejection(
          driver.grant(
            ctx,
            params({ resources: [{ type: 'rds-db-user', id }], permission: 'connect' }),
          ),
        );
        expect(['E_GUARDRAIL', 'E_INVALID'], id).toContain(err.code);
      }
      expect(iam).not.toHaveReceivedAnyCommand();
    });
  });
});

describe('aws-iam tag scope on roles', () => {
  it('denies the connector’s own role whatever its tags, until the same expiry', () => {
    const cfg = parseIamConfig({
      accountId: ACCOUNT,
      regions: ['eu-west-1'],
      assumeRoleArn: `arn:aws:iam::${ACCOUNT}:role/latchkey-access`,
    });
    const doc = buildGrantPolicy({
      resources: [],
      permission: 'assume',
      kmsKeyArns: [],
      tagScope: { resourceType: 'iam-role', key: 'jit', value: 'yes' },
      expiresAt: EXPIRES,
      cfg,
    });
    expect(doc.Statement).toEqual([
      {
        Effect: 'Allow',
        Action: 'sts:AssumeRole',
        Resource: `arn:aws:iam::${ACCOUNT}:role/*`,
        Condition: { StringEquals: { 'aws:ResourceTag/jit': 'yes' }, ...expiry },
      },
      {
        Effect: 'Deny',
        Action: 'sts:AssumeRole',
        Resource: `arn:aws:iam::${ACCOUNT}:role/latchkey-access`,
        Condition: expiry,
      },
    ]);
    // The sweep still sees when the whole document has expired.
    expect(policyExpiry(JSON.stringify(doc))?.toISOString()).toBe(EXPIRES);
  });
});
