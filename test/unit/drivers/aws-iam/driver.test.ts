import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DeleteRolePolicyCommand,
  DeleteUserPolicyCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  GetUserPolicyCommand,
  IAMClient,
  IAMServiceException,
  ListRolePoliciesCommand,
  ListRolesCommand,
  ListRoleTagsCommand,
  ListUserPoliciesCommand,
  ListUsersCommand,
  NoSuchEntityException,
  PutRolePolicyCommand,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';
import {
  GetBucketEncryptionCommand,
  GetBucketLocationCommand,
  GetBucketTaggingCommand,
  ListBucketsCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import {
  DynamoDBClient,
  ListTablesCommand,
  ListTagsOfResourceCommand,
} from '@aws-sdk/client-dynamodb';
import { ListTopicsCommand, SNSClient, SNSServiceException } from '@aws-sdk/client-sns';
import { ListQueuesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { ListSecretsCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { driverFactory } from '../../../../src/drivers/aws-iam/index.js';
import { makeCtx, makeServices, rejection } from '../../aws/helpers.js';

const ACCOUNT = '123456789012';
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/data-analyst`;
const USER_ARN = `arn:aws:iam::${ACCOUNT}:user/jane`;
const KEY_ARN = `arn:aws:kms:eu-west-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
const TABLE_ARN = `arn:aws:dynamodb:eu-west-1:${ACCOUNT}:table/orders`;
const config = { accountId: ACCOUNT, regions: ['eu-west-1'] };

const iam = mockClient(IAMClient);
const s3 = mockClient(S3Client);
const kms = mockClient(KMSClient);
const ddb = mockClient(DynamoDBClient);
const sns = mockClient(SNSClient);
const sqs = mockClient(SQSClient);
const sm = mockClient(SecretsManagerClient);
const sts = mockClient(STSClient);
const all = [iam, s3, kms, ddb, sns, sqs, sm, sts];

function noSuchEntity(message: string): NoSuchEntityException {
  return new NoSuchEntityException({ message, $metadata: { httpStatusCode: 404 } });
}

function iamError(name: string, message: string, status = 400): IAMServiceException {
  return new IAMServiceException({
    name,
    message,
    $fault: 'client',
    $metadata: { httpStatusCode: status },
  });
}

function grantParams(over: Record<string, unknown> = {}) {
  return {
    grantId: 'g-1001',
    grantee: { email: 'jane@example.com', awsPrincipalArn: ROLE_ARN },
    resources: [
      { type: 's3-bucket', id: 'arn:aws:s3:::acme-reports' },
      { type: 'dynamodb-table', id: TABLE_ARN },
    ],
    permission: 'read',
    expiresAt: '2026-11-26T08:00:00.000Z',
    ...over,
  };
}

/** A role with no inline policies yet, a bucket in eu-west-1 using a customer KMS key. */
function happyPath(): void {
  iam
    .on(GetRolePolicyCommand)
    .rejects(noSuchEntity('The role policy with name latchkey-grant-g-1001 cannot be found.'));
  iam.on(ListRolePoliciesCommand).resolves({ PolicyNames: [], IsTruncated: false });
  iam.on(PutRolePolicyCommand).resolves({});
  s3.on(GetBucketLocationCommand).resolves({ LocationConstraint: 'eu-west-1' });
  s3.on(GetBucketEncryptionCommand).resolves({
    ServerSideEncryptionConfiguration: {
      Rules: [
        {
          ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: KEY_ARN },
          BucketKeyEnabled: true,
        },
      ],
    },
  });
}

describe('aws-iam driver', () => {
  const services = makeServices();
  const driver = driverFactory(services);
  const ctx = makeCtx({ type: 'aws-iam', config });

  beforeEach(() => {
    for (const m of all) m.reset();
  });
  afterAll(() => {
    for (const m of all) m.restore();
  });

  describe('grant', () => {
    it('puts one compact inline policy with the bucket, its KMS key, the table and the expiry', async () => {
      happyPath();
      const out = await driver.grant(ctx, grantParams());
      const cond = { DateLessThan: { 'aws:CurrentTime': '2026-11-26T08:00:00.000Z' } };
      const expected = JSON.stringify({
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
            Resource: ['arn:aws:s3:::acme-reports', 'arn:aws:s3:::acme-reports/*'],
            Condition: cond,
          },
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
            Resource: [TABLE_ARN, `${TABLE_ARN}/index/*`],
            Condition: cond,
          },
          { Effect: 'Allow', Action: 'kms:Decrypt', Resource: KEY_ARN, Condition: cond },
        ],
      });
      expect(iam).toHaveReceivedCommandExactlyOnceWith(PutRolePolicyCommand, {
        RoleName: 'data-analyst',
        PolicyName: 'latchkey-grant-g-1001',
        PolicyDocument: expected,
      });
      expect(expected).not.toMatch(/\s/);
      expect(s3).toHaveReceivedCommandWith(GetBucketEncryptionCommand, { Bucket: 'acme-reports' });
      expect(out.alreadyGranted).toBe(false);
      expect(out.username).toBe(ROLE_ARN);
      expect(out.expiresAt).toBe('2026-11-26T08:00:00.000Z');
      expect(out.access).toMatchObject({
        policyName: 'latchkey-grant-g-1001',
        kmsKeys: [KEY_ARN],
        policySize: expected.length,
        policyLimit: 10240,
      });
    });

    it('puts a user policy and adds no KMS statement for SSE-S3 or the AWS-managed key', async () => {
      iam.on(GetUserPolicyCommand).rejects(noSuchEntity('not found'));
      iam.on(ListUserPoliciesCommand).resolves({ PolicyNames: [], IsTruncated: false });
      iam.on(PutUserPolicyCommand).resolves({});
      s3.on(GetBucketLocationCommand).resolves({});
      s3.on(GetBucketEncryptionCommand, { Bucket: 'plain' }).resolves({
        ServerSideEncryptionConfiguration: {
          Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
      });
      s3.on(GetBucketEncryptionCommand, { Bucket: 'aws-managed' }).resolves({
        ServerSideEncryptionConfiguration: {
          Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }],
        },
      });
      const out = await driver.grant(
        ctx,
        grantParams({
          grantee: { email: 'jane@example.com', awsPrincipalArn: USER_ARN },
          resources: [
            { type: 's3-bucket', id: 'arn:aws:s3:::plain' },
            { type: 's3-bucket', id: 'arn:aws:s3:::aws-managed' },
            { type: 's3-bucket', id: 'arn:aws:s3:::plain' },
          ],
          permission: 'write',
          expiresAt: undefined,
        }),
      );
      expect(iam).toHaveReceivedCommandExactlyOnceWith(PutUserPolicyCommand, {
        UserName: 'jane',
        PolicyName: 'latchkey-grant-g-1001',
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Action: [
                's3:AbortMultipartUpload',
                's3:DeleteObject',
                's3:GetBucketLocation',
                's3:GetObject',
                's3:GetObjectVersion',
                's3:ListBucket',
                's3:ListBucketMultipartUploads',
                's3:ListMultipartUploadParts',
                's3:PutObject',
              ],
              Resource: [
                'arn:aws:s3:::aws-managed',
                'arn:aws:s3:::aws-managed/*',
                'arn:aws:s3:::plain',
                'arn:aws:s3:::plain/*',
              ],
            },
          ],
        }),
      });
      expect(kms).not.toHaveReceivedAnyCommand();
      expect(out.access).toMatchObject({ kmsKeys: [], policyLimit: 2048 });
    });

    it('resolves a KMS alias of the bucket to the key ARN and allows Decrypt and GenerateDataKey for write', async () => {
      happyPath();
      s3.on(GetBucketEncryptionCommand).resolves({
        ServerSideEncryptionConfiguration: {
          Rules: [
            {
              ApplyServerSideEncryptionByDefault: {
                SSEAlgorithm: 'aws:kms',
                KMSMasterKeyID: 'alias/reports',
              },
            },
          ],
        },
      });
      kms.on(DescribeKeyCommand, { KeyId: 'alias/reports' }).resolves({
        KeyMetadata: { KeyId: '1234abcd-12ab-34cd-56ef-1234567890ab', Arn: KEY_ARN },
      });
      await driver.grant(
        ctx,
        grantParams({
          resources: [{ type: 's3-bucket', id: 'arn:aws:s3:::acme-reports' }],
          permission: 'write',
        }),
      );
      const doc = String(iam.commandCalls(PutRolePolicyCommand)[0]?.args[0].input.PolicyDocument);
      expect((JSON.parse(doc) as { Statement: unknown[] }).Statement[1]).toEqual({
        Effect: 'Allow',
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
        Resource: KEY_ARN,
        Condition: { DateLessThan: { 'aws:CurrentTime': '2026-11-26T08:00:00.000Z' } },
      });
    });

    it('is idempotent: the same document already in place is alreadyGranted and nothing is written', async () => {
      happyPath();
      await driver.grant(ctx, grantParams());
      const doc = String(iam.commandCalls(PutRolePolicyCommand)[0]?.args[0].input.PolicyDocument);
      iam.reset();
      iam
        .on(GetRolePolicyCommand, { RoleName: 'data-analyst', PolicyName: 'latchkey-grant-g-1001' })
        .resolves({
          RoleName: 'data-analyst',
          PolicyName: 'latchkey-grant-g-1001',
          PolicyDocument: encodeURIComponent(JSON.stringify(JSON.parse(doc), null, 2)),
        });
      const again = await driver.grant(ctx, grantParams());
      expect(again.alreadyGranted).toBe(true);
      expect(iam).not.toHaveReceivedCommand(PutRolePolicyCommand);
    });

    it('counts the principal’s other inline policies (paginated, URL-decoded) and refuses over 2,048 for a user', async () => {
      const big = JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: 'sqs:SendMessage',
            Resource: `arn:aws:sqs:eu-west-1:${ACCOUNT}:${'q'.repeat(800)}`,
          },
        ],
      });
      iam
        .on(GetUserPolicyCommand, { PolicyName: 'latchkey-grant-g-1001' })
        .rejects(noSuchEntity('no'));
      iam
        .on(ListUserPoliciesCommand)
        .resolvesOnce({ PolicyNames: ['team-a'], IsTruncated: true, Marker: 'page-2' })
        .resolvesOnce({ PolicyNames: ['team-b'], IsTruncated: false });
      iam
        .on(GetUserPolicyCommand, { PolicyName: 'team-a' })
        .resolves({ PolicyDocument: encodeURIComponent(big) });
      iam.on(GetUserPolicyCommand, { PolicyName: 'team-b' }).resolves({
        PolicyDocument: encodeURIComponent(JSON.stringify(JSON.parse(big), null, 4)),
      });
      const err = await rejection(
        driver.grant(
          ctx,
          grantParams({
            grantee: { email: 'jane@example.com', awsPrincipalArn: USER_ARN },
            resources: [{ type: 'dynamodb-table', id: TABLE_ARN }],
          }),
        ),
      );
      expect(err.code).toBe('E_POLICY_TOO_LARGE');
      expect(err.message).toMatch(/2048-character limit for a user by \d+/);
      expect(err.message).toContain('tagScope');
      expect(iam).toHaveReceivedCommandWith(ListUserPoliciesCommand, {
        UserName: 'jane',
        Marker: 'page-2',
      });
      expect(iam).not.toHaveReceivedCommand(PutUserPolicyCommand);
    });

    it('refuses a document that alone exceeds the limit before ANY AWS call', async () => {
      const tables = Array.from({ length: 60 }, (_, i) => ({
        type: 'dynamodb-table',
        id: `arn:aws:dynamodb:eu-west-1:${ACCOUNT}:table/table-number-${i}`,
      }));
      const err = await rejection(
        driver.grant(
          ctx,
          grantParams({
            grantee: { email: 'jane@example.com', awsPrincipalArn: USER_ARN },
            resources: tables,
          }),
        ),
      );
      expect(err.code).toBe('E_POLICY_TOO_LARGE');
      for (const m of all) expect(m).not.toHaveReceivedAnyCommand();
    });

    it('refuses more than 100 named resources with E_GUARDRAIL before ANY AWS call', async () => {
      const tables = Array.from({ length: 101 }, (_, i) => ({
        type: 'dynamodb-table',
        id: `arn:aws:dynamodb:eu-west-1:${ACCOUNT}:table/t${i}`,
      }));
      const err = await rejection(driver.grant(ctx, grantParams({ resources: tables })));
      expect(err.code).toBe('E_GUARDRAIL');
      expect(err.message).toContain('tag scope');
      for (const m of all) expect(m).not.toHaveReceivedAnyCommand();
    });

    it('covers many resources with one tag-scoped statement', async () => {
      happyPath();
      await driver.grant(
        ctx,
        grantParams({
          resources: [],
          tagScope: { resourceType: 'sqs-queue', key: 'team', value: 'payments' },
          permission: 'write',
        }),
      );
      expect(iam).toHaveReceivedCommandWith(PutRolePolicyCommand, {
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Action: [
                'sqs:ChangeMessageVisibility',
                'sqs:DeleteMessage',
                'sqs:GetQueueAttributes',
                'sqs:GetQueueUrl',
                'sqs:ListQueueTags',
                'sqs:ReceiveMessage',
                'sqs:SendMessage',
              ],
              Resource: `arn:aws:sqs:eu-west-1:${ACCOUNT}:*`,
              Condition: {
                StringEquals: { 'aws:ResourceTag/team': 'payments' },
                DateLessThan: { 'aws:CurrentTime': '2026-11-26T08:00:00.000Z' },
              },
            },
          ],
        }),
      });
    });

    it('grants sts:AssumeRole on a role and reports how long a session may outlive the revoke', async () => {
      happyPath();
      iam.on(GetUserPolicyCommand).rejects(noSuchEntity('no'));
      iam.on(ListUserPoliciesCommand).resolves({ PolicyNames: [], IsTruncated: false });
      iam.on(PutUserPolicyCommand).resolves({});
      iam.on(GetRoleCommand, { RoleName: 'prod-readonly' }).resolves({
        Role: {
          RoleName: 'prod-readonly',
          Arn: `arn:aws:iam::${ACCOUNT}:role/prod-readonly`,
          Path: '/',
          RoleId: 'AROAEXAMPLE',
          CreateDate: new Date('2024-01-01T00:00:00Z'),
          MaxSessionDuration: 14400,
        },
      });
      const out = await driver.grant(
        ctx,
        grantParams({
          grantee: { email: 'jane@example.com', awsPrincipalArn: USER_ARN },
          resources: [{ type: 'iam-role', id: `arn:aws:iam::${ACCOUNT}:role/prod-readonly` }],
          permission: 'assume',
        }),
      );
      expect(out.access.roleSessions).toEqual([
        {
          roleArn: `arn:aws:iam::${ACCOUNT}:role/prod-readonly`,
          maxSessionDurationSeconds: 14400,
          sessionMayOutliveRevokeSeconds: 14400,
        },
      ]);
      const strict = driverFactory(services);
      const err = await rejection(
        strict.grant(
          makeCtx({ type: 'aws-iam', config: { ...config, maxRoleSessionSeconds: 3600 } }),
          grantParams({
            resources: [{ type: 'iam-role', id: `arn:aws:iam::${ACCOUNT}:role/prod-readonly` }],
            permission: 'assume',
          }),
        ),
      );
      expect(err.code).toBe('E_GUARDRAIL');
      expect(iam).not.toHaveReceivedCommand(PutRolePolicyCommand);
    });

    it('reports AccessDenied with the missing action', async () => {
      happyPath();
      iam
        .on(PutRolePolicyCommand)
        .rejects(
          iamError(
            'AccessDenied',
            `User: arn:aws:sts::${ACCOUNT}:assumed-role/latchkey-connector/latchkey-connector is not authorized to perform: iam:PutRolePolicy on resource: role data-analyst`,
            403,
          ),
        );
      const err = await rejection(driver.grant(ctx, grantParams()));
      expect(err.code).toBe('E_PRIVILEGE');
      expect(err.retryable).toBe(false);
      expect(err.message).toContain('iam:PutRolePolicy');
    });

    it('surfaces throttling as retryable E_THROTTLED', async () => {
      happyPath();
      iam.on(PutRolePolicyCommand).rejects(iamError('Throttling', 'Rate exceeded'));
      const err = await rejection(driver.grant(ctx, grantParams()));
      expect(err.code).toBe('E_THROTTLED');
      expect(err.retryable).toBe(true);
    });

    it('rejects bad input before any call: wrong account, unknown permission, past expiry, missing principal', async () => {
      const cases = [
        grantParams({
          resources: [{ type: 'dynamodb-table', id: TABLE_ARN.replace(ACCOUNT, '999999999999') }],
        }),
        grantParams({ permission: 'superuser' }),
        grantParams({ expiresAt: '2026-11-25T19:00:00.000Z' }),
        grantParams({ grantee: { email: 'jane@example.com' } }),
        grantParams({
          resources: [{ type: 'dynamodb-table', id: TABLE_ARN.replace('eu-west-1', 'us-east-1') }],
        }),
      ];
      for (const p of cases) expect((await rejection(driver.grant(ctx, p))).code).toBe('E_INVALID');
      for (const m of all) expect(m).not.toHaveReceivedAnyCommand();
    });

    it('never grants to, or lets anyone assume, the connector’s own role', async () => {
      const own = `arn:aws:iam::${ACCOUNT}:role/latchkey-access`;
      const ctx2 = makeCtx({ type: 'aws-iam', config: { ...config, assumeRoleArn: own } });
      const asGrantee = grantParams({
        grantee: { email: 'jane@example.com', awsPrincipalArn: own },
      });
      const asResource = grantParams({
        resources: [{ type: 'iam-role', id: own }],
        permission: 'assume',
      });
      expect((await rejection(driver.grant(ctx2, asGrantee))).code).toBe('E_GUARDRAIL');
      expect((await rejection(driver.grant(ctx2, asResource))).code).toBe('E_GUARDRAIL');
      for (const m of all) expect(m).not.toHaveReceivedAnyCommand();
    });

    it('refuses an assume-role outside the allowed pattern before any call', async () => {
      const ctx2 = makeCtx({
        type: 'aws-iam',
        config: {
          ...config,
          assumeRoleArn: `arn:aws:iam::${ACCOUNT}:role/OrganizationAccountAccessRole`,
        },
      });
      const err = await rejection(driver.grant(ctx2, grantParams()));
      expect(err.code).toBe('E_GUARDRAIL');
      for (const m of all) expect(m).not.toHaveReceivedAnyCommand();
    });
  });

  describe('revoke', () => {
    const revokeParams = {
      grantId: 'g-1001',
      grantee: { email: 'jane@example.com', awsPrincipalArn: ROLE_ARN },
      resources: [],
      permission: 'read',
    };

    it('deletes the grant policy', async () => {
      iam.on(DeleteRolePolicyCommand).resolves({});
      const out = await driver.revoke(ctx, revokeParams);
      expect(iam).toHaveReceivedCommandExactlyOnceWith(DeleteRolePolicyCommand, {
        RoleName: 'data-analyst',
        PolicyName: 'latchkey-grant-g-1001',
      });
      expect(out).toMatchObject({ revoked: ['latchkey-grant-g-1001'], alreadyRevoked: false });
    });

    it('succeeds when the policy is already gone (NoSuchEntity)', async () => {
      iam
        .on(DeleteUserPolicyCommand)
        .rejects(noSuchEntity('The user policy with name latchkey-grant-g-1001 cannot be found.'));
      const out = await driver.revoke(ctx, {
        ...revokeParams,
        grantee: { email: 'jane@example.com', awsPrincipalArn: USER_ARN },
      });
      expect(out).toMatchObject({ revoked: [], alreadyRevoked: true, sessionsTerminated: 0 });
      expect(out.phases[0]).toMatchObject({ phase: 'delete-policy', status: 'skipped' });
    });

    it('maps an assumed-role session ARN to its role', async () => {
      iam.on(DeleteRolePolicyCommand).resolves({});
      await driver.revoke(ctx, {
        ...revokeParams,
        grantee: {
          email: 'jane@example.com',
          awsPrincipalArn: `arn:aws:sts::${ACCOUNT}:assumed-role/data-analyst/jane`,
        },
      });
      expect(iam).toHaveReceivedCommandWith(DeleteRolePolicyCommand, { RoleName: 'data-analyst' });
    });
  });

  describe('sweep', () => {
    it('walks roles and users across pages and deletes only our expired policies', async () => {
      const expired = JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: 'sqs:SendMessage',
            Resource: '*',
            Condition: { DateLessThan: { 'aws:CurrentTime': '2026-11-25T19:00:00.000Z' } },
          },
        ],
      });
      const live = expired.replace('2026-11-25T19:00:00.000Z', '2026-11-25T21:00:00.000Z');
      iam
        .on(ListRolesCommand)
        .resolvesOnce({
          Roles: [
            {
              RoleName: 'a',
              Arn: `arn:aws:iam::${ACCOUNT}:role/a`,
              Path: '/',
              RoleId: 'x',
              CreateDate: new Date(),
            },
          ],
          IsTruncated: true,
          Marker: 'm2',
        })
        .resolvesOnce({
          Roles: [
            {
              RoleName: 'b',
              Arn: `arn:aws:iam::${ACCOUNT}:role/b`,
              Path: '/',
              RoleId: 'y',
              CreateDate: new Date(),
            },
          ],
          IsTruncated: false,
        });
      iam.on(ListUsersCommand).resolves({
        Users: [{ UserName: 'u', Arn: USER_ARN, Path: '/', UserId: 'z', CreateDate: new Date() }],
        IsTruncated: false,
      });
      iam
        .on(ListRolePoliciesCommand, { RoleName: 'a' })
        .resolves({ PolicyNames: ['latchkey-grant-old', 'team-policy'], IsTruncated: false });
      iam.on(ListRolePoliciesCommand, { RoleName: 'b' }).resolves({
        PolicyNames: ['latchkey-grant-live', 'latchkey-ssm-grant-x'],
        IsTruncated: false,
      });
      iam
        .on(ListUserPoliciesCommand)
        .resolves({ PolicyNames: ['latchkey-grant-u1'], IsTruncated: false });
      iam
        .on(GetRolePolicyCommand, { RoleName: 'a', PolicyName: 'latchkey-grant-old' })
        .resolves({ PolicyDocument: encodeURIComponent(expired) });
      iam
        .on(GetRolePolicyCommand, { RoleName: 'b', PolicyName: 'latchkey-grant-live' })
        .resolves({ PolicyDocument: encodeURIComponent(live) });
      iam.on(GetUserPolicyCommand).resolves({ PolicyDocument: encodeURIComponent(expired) });
      iam.on(DeleteRolePolicyCommand).resolves({});
      iam.on(DeleteUserPolicyCommand).rejects(noSuchEntity('gone'));

      const report = await driver.sweep!(ctx);
      expect(iam).toHaveReceivedCommandWith(ListRolesCommand, { Marker: 'm2' });
      expect(iam).toHaveReceivedCommandExactlyOnceWith(DeleteRolePolicyCommand, {
        RoleName: 'a',
        PolicyName: 'latchkey-grant-old',
      });
      expect(iam).toHaveReceivedCommandTimes(DeleteRolePolicyCommand, 1);
      expect(iam).not.toHaveReceivedCommandWith(GetRolePolicyCommand, {
        PolicyName: 'team-policy',
      });
      expect(iam).not.toHaveReceivedCommandWith(GetRolePolicyCommand, {
        PolicyName: 'latchkey-ssm-grant-x',
      });
      expect(report.revoked).toEqual([
        `arn:aws:iam::${ACCOUNT}:role/a#latchkey-grant-old`,
        `${USER_ARN}#latchkey-grant-u1`,
      ]);
      expect(report.errors).toEqual([]);
    });
  });

  describe('check', () => {
    it('reports the identity and the IAM privilege', async () => {
      sts.on(GetCallerIdentityCommand).resolves({
        Account: ACCOUNT,
        Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/latchkey-connector/x`,
        UserId: 'AROA:x',
      });
      iam
        .on(ListRolesCommand)
        .rejects(iamError('AccessDenied', 'not authorized to perform: iam:ListRoles', 403));
      const out = await driver.check(ctx);
      expect(iam).toHaveReceivedCommandWith(ListRolesCommand, { MaxItems: 1 });
      expect(out.ok).toBe(false);
      expect(out.checks).toEqual([
        {
          name: 'identity',
          ok: true,
          detail: `connected as arn:aws:sts::${ACCOUNT}:assumed-role/latchkey-connector/x`,
        },
        {
          name: 'iam:ListRoles',
          ok: false,
          detail: expect.stringContaining('iam:ListRoles') as unknown,
        },
      ]);
    });
  });

  describe('discover', () => {
    it('lists every supported type with tags, across pages, and warns per failing service', async () => {
      s3.on(ListBucketsCommand)
        .resolvesOnce({
          Buckets: [{ Name: 'acme-reports', BucketRegion: 'eu-west-1' }],
          ContinuationToken: 'c2',
        })
        .resolvesOnce({
          Buckets: [{ Name: 'far-away', BucketRegion: 'ap-southeast-2' }, { Name: 'acme-logs' }],
        });
      s3.on(GetBucketLocationCommand, { Bucket: 'acme-logs' }).resolves({
        LocationConstraint: 'EU',
      });
      s3.on(GetBucketTaggingCommand, { Bucket: 'acme-reports' }).resolves({
        TagSet: [{ Key: 'team', Value: 'finance' }],
      });
      s3.on(GetBucketTaggingCommand, { Bucket: 'acme-logs' }).rejects(
        new S3ServiceException({
          name: 'NoSuchTagSet',
          message: 'The TagSet does not exist',
          $fault: 'client',
          $metadata: { httpStatusCode: 404 },
        }),
      );
      ddb
        .on(ListTablesCommand)
        .resolvesOnce({ TableNames: ['orders'], LastEvaluatedTableName: 'orders' })
        .resolvesOnce({ TableNames: ['users'] });
      ddb.on(ListTagsOfResourceCommand).resolves({ Tags: [{ Key: 'env', Value: 'prod' }] });
      sns.on(ListTopicsCommand).rejects(
        new SNSServiceException({
          name: 'AuthorizationError',
          message: 'not authorized to perform: SNS:ListTopics',
          $fault: 'client',
          $metadata: { httpStatusCode: 403 },
        }),
      );
      sqs.on(ListQueuesCommand).resolves({ QueueUrls: [] });
      sm.on(ListSecretsCommand).resolves({
        SecretList: [
          {
            ARN: `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:db-AbCdEf`,
            Name: 'db',
            Tags: [{ Key: 'owner', Value: 'dba' }],
          },
        ],
      });
      iam
        .on(ListRolesCommand)
        .resolvesOnce({
          Roles: [
            {
              RoleName: 'app',
              Arn: `arn:aws:iam::${ACCOUNT}:role/app`,
              Path: '/',
              RoleId: 'r1',
              CreateDate: new Date(),
              MaxSessionDuration: 3600,
            },
          ],
          IsTruncated: true,
          Marker: 'p2',
        })
        .resolvesOnce({
          Roles: [
            {
              RoleName: 'AWSServiceRoleForSupport',
              Arn: `arn:aws:iam::${ACCOUNT}:role/aws-service-role/support.amazonaws.com/AWSServiceRoleForSupport`,
              Path: '/aws-service-role/support.amazonaws.com/',
              RoleId: 'r2',
              CreateDate: new Date(),
            },
          ],
          IsTruncated: false,
        });
      iam.on(ListRoleTagsCommand).resolves({ Tags: [], IsTruncated: false });

      const out = await driver.discover(ctx);
      expect(out.resources.map((r) => `${r.type} ${r.name}`)).toEqual([
        's3-bucket acme-reports',
        's3-bucket acme-logs',
        'dynamodb-table orders',
        'dynamodb-table users',
        'secretsmanager-secret db',
        'iam-role app',
      ]);
      expect(out.resources[0]).toEqual({
        id: 'arn:aws:s3:::acme-reports',
        name: 'acme-reports',
        type: 's3-bucket',
        metadata: {
          arn: 'arn:aws:s3:::acme-reports',
          region: 'eu-west-1',
          accountId: ACCOUNT,
          tags: { team: 'finance' },
        },
      });
      expect(out.resources[2]?.metadata.tags).toEqual({ env: 'prod' });
      expect(s3).toHaveReceivedCommandWith(ListBucketsCommand, { ContinuationToken: 'c2' });
      expect(ddb).toHaveReceivedCommandWith(ListTablesCommand, {
        ExclusiveStartTableName: 'orders',
      });
      expect(iam).toHaveReceivedCommandWith(ListRolesCommand, { Marker: 'p2' });
      expect(out.warnings).toEqual([
        expect.objectContaining({
          code: 'E_PRIVILEGE',
          message: expect.stringContaining('sns:ListTopics') as unknown,
        }) as unknown,
      ]);
      expect(out.permissions.map((p) => p.id)).toEqual(['read', 'write', 'admin', 'assume']);
    });
  });
});
