/**
 * aws-iam access inventory and standing cleanup (issue 13) at the SDK command level:
 * one paginated GetAccountAuthorizationDetails, AWS-managed policies read at their default
 * version, groups, the agent's own grant policies, the connector's role and protected
 * principals; throttling and AccessDenied as warnings; the exact IAM calls of a cleanup.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DeleteRolePolicyCommand,
  DeleteUserPolicyCommand,
  DetachRolePolicyCommand,
  DetachUserPolicyCommand,
  GetAccountAuthorizationDetailsCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  IAMClient,
  IAMServiceException,
  RemoveUserFromGroupCommand,
} from '@aws-sdk/client-iam';
import { GetBucketTaggingCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { driverFactory } from '../../../../src/drivers/aws-iam/index.js';
import type { StandingTarget } from '../../../../src/protocol/messages.js';
import { makeCtx, makeServices } from '../../aws/helpers.js';

const ACCOUNT = '123456789012';
const BUCKET = 'arn:aws:s3:::acme-reports';
const OTHER = 'arn:aws:s3:::acme-logs';
const S3_FULL = 'arn:aws:iam::aws:policy/AmazonS3FullAccess';
const ADMIN = 'arn:aws:iam::aws:policy/AdministratorAccess';
const LOCAL = `arn:aws:iam::${ACCOUNT}:policy/reports-list`;
const JANE = `arn:aws:iam::${ACCOUNT}:user/jane`;
const BOB = `arn:aws:iam::${ACCOUNT}:user/bob`;
const ANALYST = `arn:aws:iam::${ACCOUNT}:role/data-analyst`;
const CONNECTOR = `arn:aws:iam::${ACCOUNT}:role/latchkey-connector`;
const BREAKGLASS = `arn:aws:iam::${ACCOUNT}:role/breakglass`;
const config = {
  accountId: ACCOUNT,
  regions: ['eu-west-1'],
  resourceTypes: ['s3-bucket'],
  assumeRoleArn: CONNECTOR,
};

const iam = mockClient(IAMClient);
const s3 = mockClient(S3Client);

const doc = (...Statement: Record<string, unknown>[]): string =>
  encodeURIComponent(JSON.stringify({ Version: '2012-10-17', Statement }));

const READ = ['s3:GetBucketLocation', 's3:GetObject', 's3:GetObjectVersion', 's3:ListBucket'];

function iamError(name: string, status: number): IAMServiceException {
  return new IAMServiceException({
    name,
    message: `${name} on GetAccountAuthorizationDetails`,
    $fault: 'client',
    $metadata: { httpStatusCode: status },
  });
}

/** A realistic account: two pages, users with inline, AWS-managed and group policies, roles. */
function account(): void {
  iam
    .on(GetAccountAuthorizationDetailsCommand)
    .resolvesOnce({
      UserDetailList: [
        {
          UserName: 'jane',
          Arn: JANE,
          Path: '/',
          GroupList: ['analysts'],
          UserPolicyList: [
            {
              PolicyName: 'reports-read',
              PolicyDocument: doc({
                Effect: 'Allow',
                Action: ['s3:Get*', 's3:ListBucket'],
                Resource: [BUCKET, `${BUCKET}/*`],
              }),
            },
          ],
        },
        {
          UserName: 'bob',
          Arn: BOB,
          Path: '/',
          AttachedManagedPolicies: [{ PolicyName: 'AmazonS3FullAccess', PolicyArn: S3_FULL }],
          UserPolicyList: [
            {
              PolicyName: 'no-logs',
              PolicyDocument: doc({
                Effect: 'Deny',
                Action: 's3:*',
                Resource: [OTHER, `${OTHER}/*`],
              }),
            },
          ],
        },
      ],
      GroupDetailList: [
        {
          GroupName: 'analysts',
          Arn: `arn:aws:iam::${ACCOUNT}:group/analysts`,
          GroupPolicyList: [
            {
              PolicyName: 'office-writes',
              PolicyDocument: doc({
                Effect: 'Allow',
                Action: 's3:PutObject',
                Resource: `${BUCKET}/*`,
                Condition: { IpAddress: { 'aws:SourceIp': '10.0.0.0/8' } },
              }),
            },
          ],
        },
      ],
      IsTruncated: true,
      Marker: 'page-2',
    })
    .resolvesOnce({
      RoleDetailList: [
        {
          RoleName: 'data-analyst',
          Arn: ANALYST,
          Path: '/',
          RolePolicyList: [
            {
              PolicyName: 'latchkey-grant-g-1001',
              PolicyDocument: doc({
                Effect: 'Allow',
                Action: READ,
                Resource: [BUCKET, `${BUCKET}/*`],
                Condition: { DateLessThan: { 'aws:CurrentTime': '2026-12-01T00:00:00.000Z' } },
              }),
            },
          ],
          AttachedManagedPolicies: [{ PolicyName: 'reports-list', PolicyArn: LOCAL }],
        },
        {
          RoleName: 'latchkey-connector',
          Arn: CONNECTOR,
          Path: '/',
          AttachedManagedPolicies: [{ PolicyName: 'AdministratorAccess', PolicyArn: ADMIN }],
        },
        {
          RoleName: 'breakglass',
          Arn: BREAKGLASS,
          Path: '/',
          Tags: [{ Key: 'latchkey-protected', Value: 'true' }],
          AttachedManagedPolicies: [{ PolicyName: 'AdministratorAccess', PolicyArn: ADMIN }],
        },
        {
          RoleName: 'AWSServiceRoleForSupport',
          Arn: `arn:aws:iam::${ACCOUNT}:role/aws-service-role/support.amazonaws.com/AWSServiceRoleForSupport`,
          Path: '/aws-service-role/support.amazonaws.com/',
          AttachedManagedPolicies: [{ PolicyName: 'AdministratorAccess', PolicyArn: ADMIN }],
        },
      ],
      Policies: [
        {
          PolicyName: 'reports-list',
          Arn: LOCAL,
          DefaultVersionId: 'v2',
          PolicyVersionList: [
            {
              VersionId: 'v1',
              IsDefaultVersion: false,
              Document: doc({ Effect: 'Allow', Action: 's3:*', Resource: '*' }),
            },
            {
              VersionId: 'v2',
              IsDefaultVersion: true,
              Document: doc({ Effect: 'Allow', Action: 's3:ListBucket', Resource: BUCKET }),
            },
          ],
        },
      ],
      IsTruncated: false,
    });
  iam.on(GetPolicyCommand, { PolicyArn: S3_FULL }).resolves({
    Policy: { PolicyName: 'AmazonS3FullAccess', Arn: S3_FULL, DefaultVersionId: 'v3' },
  });
  iam.on(GetPolicyVersionCommand, { PolicyArn: S3_FULL, VersionId: 'v3' }).resolves({
    PolicyVersion: {
      VersionId: 'v3',
      IsDefaultVersion: true,
      Document: doc({ Effect: 'Allow', Action: ['s3:*', 's3-object-lambda:*'], Resource: '*' }),
    },
  });
  iam.on(GetPolicyCommand, { PolicyArn: ADMIN }).resolves({
    Policy: { PolicyName: 'AdministratorAccess', Arn: ADMIN, DefaultVersionId: 'v1' },
  });
  iam.on(GetPolicyVersionCommand, { PolicyArn: ADMIN, VersionId: 'v1' }).resolves({
    PolicyVersion: {
      VersionId: 'v1',
      Document: doc({ Effect: 'Allow', Action: '*', Resource: '*' }),
    },
  });
}

function buckets(): void {
  s3.on(ListBucketsCommand).resolves({
    Buckets: [
      { Name: 'acme-reports', BucketRegion: 'eu-west-1' },
      { Name: 'acme-logs', BucketRegion: 'eu-west-1' },
    ],
  });
  s3.on(GetBucketTaggingCommand).resolves({ TagSet: [] });
}

const driver = driverFactory(makeServices());
const ctx = () => makeCtx({ type: 'aws-iam', config });

beforeEach(() => {
  iam.reset();
  s3.reset();
});
afterAll(() => {
  iam.restore();
  s3.restore();
});

describe('aws-iam access inventory', () => {
  it('evaluates inline, AWS-managed (default version), customer-managed (default version) and group policies per bucket', async () => {
    account();
    buckets();
    const out = await driver.discover(ctx(), { include: ['privileges'] });
    expect(out.warnings).toEqual([]);
    // One paginated read, AWS-managed policies once each at their default version.
    expect(iam).toHaveReceivedCommandTimes(GetAccountAuthorizationDetailsCommand, 2);
    expect(iam).toHaveReceivedNthCommandWith(GetAccountAuthorizationDetailsCommand, 1, {
      Filter: ['User', 'Role', 'Group', 'LocalManagedPolicy'],
    });
    expect(iam).toHaveReceivedNthCommandWith(GetAccountAuthorizationDetailsCommand, 2, {
      Filter: ['User', 'Role', 'Group', 'LocalManagedPolicy'],
      Marker: 'page-2',
    });
    expect(iam).toHaveReceivedCommandTimes(GetPolicyCommand, 2);
    expect(iam).toHaveReceivedCommandTimes(GetPolicyVersionCommand, 2);
    expect(iam).toHaveReceivedCommandWith(GetPolicyVersionCommand, {
      PolicyArn: S3_FULL,
      VersionId: 'v3',
    });

    const inv = out.inventory;
    expect(inv?.principals).toEqual([
      {
        id: `iam-role:${BREAKGLASS}`,
        kind: 'iam-role',
        name: 'breakglass',
        managedByAgent: false,
        flags: ['admin', 'protected'],
      },
      {
        id: `iam-role:${ANALYST}`,
        kind: 'iam-role',
        name: 'data-analyst',
        managedByAgent: false,
        flags: [],
      },
      {
        id: `iam-role:${CONNECTOR}`,
        kind: 'iam-role',
        name: 'latchkey-connector',
        managedByAgent: false,
        flags: ['admin', 'service-account'],
      },
      { id: `iam-user:${BOB}`, kind: 'iam-user', name: 'bob', managedByAgent: false, flags: [] },
      { id: `iam-user:${JANE}`, kind: 'iam-user', name: 'jane', managedByAgent: false, flags: [] },
    ]);
    const entries = (inv?.entries ?? []).filter(
      (e) => !e.principalId.includes('breakglass') && !e.principalId.includes('connector'),
    );
    expect(entries).toEqual([
      {
        principalId: `iam-user:${JANE}`,
        resourceId: BUCKET,
        permission: 'read',
        privileges: READ,
        via: 'policy',
        source: 'reports-read',
        managedByAgent: false,
      },
      {
        principalId: `iam-user:${JANE}`,
        resourceId: BUCKET,
        permission: 'partial',
        privileges: ['s3:PutObject'],
        via: 'group',
        chain: ['analysts'],
        source: 'office-writes',
        conditions: ['aws:SourceIp'],
        managedByAgent: false,
      },
      {
        principalId: `iam-user:${BOB}`,
        resourceId: BUCKET,
        permission: 'admin',
        privileges: expect.arrayContaining(['s3:*', 's3:PutObject']) as string[],
        via: 'policy',
        source: S3_FULL,
        managedByAgent: false,
      },
      {
        principalId: `iam-role:${ANALYST}`,
        resourceId: BUCKET,
        permission: 'read',
        privileges: READ,
        via: 'policy',
        source: 'latchkey-grant-g-1001',
        conditions: ['aws:CurrentTime'],
        managedByAgent: true,
        grantId: 'g-1001',
      },
      // The default version (v2: ListBucket), not v1 (s3:*).
      {
        principalId: `iam-role:${ANALYST}`,
        resourceId: BUCKET,
        permission: 'partial',
        privileges: ['s3:ListBucket'],
        via: 'policy',
        source: LOCAL,
        managedByAgent: false,
      },
    ]);
    // Bob's explicit Deny on acme-logs wins over AmazonS3FullAccess.
    expect(
      inv?.entries.filter((e) => e.resourceId === OTHER && e.principalId.includes('bob')),
    ).toEqual([]);
    expect(inv?.entries.some((e) => e.principalId.includes('AWSServiceRole'))).toBe(false);
  });

  it('no inventory unless asked for, and no IAM read then', async () => {
    buckets();
    const out = await driver.discover(ctx());
    expect(out.inventory).toBeUndefined();
    expect(iam).toHaveReceivedCommandTimes(GetAccountAuthorizationDetailsCommand, 0);
  });

  it('throttling and AccessDenied become warnings; resources are still returned', async () => {
    buckets();
    iam.on(GetAccountAuthorizationDetailsCommand).rejectsOnce(iamError('Throttling', 400));
    const throttled = await driver.discover(ctx(), { include: ['privileges'] });
    expect(throttled.resources).toHaveLength(2);
    expect(throttled.inventory).toBeUndefined();
    expect(throttled.warnings.map((w) => w.code)).toEqual(['E_THROTTLED']);

    iam.reset();
    iam.on(GetAccountAuthorizationDetailsCommand).rejectsOnce(iamError('AccessDenied', 403));
    const denied = await driver.discover(ctx(), { include: ['privileges'] });
    expect(denied.warnings.map((w) => w.code)).toEqual(['E_PRIVILEGE']);
    expect(denied.warnings[0]?.message).toContain('access inventory not read');
  });

  it('a managed policy that cannot be read is a warning naming it, and is left out', async () => {
    account();
    buckets();
    iam.on(GetPolicyCommand, { PolicyArn: S3_FULL }).rejects(iamError('AccessDenied', 403));
    const out = await driver.discover(ctx(), { include: ['privileges'] });
    expect(out.warnings).toEqual([
      expect.objectContaining({ resourceId: S3_FULL, code: 'E_PRIVILEGE' }),
    ]);
    expect(out.inventory?.entries.some((e) => e.source === S3_FULL)).toBe(false);
  });
});

describe('aws-iam standing cleanup', () => {
  const remove = (standing: StandingTarget[], apply?: boolean) => {
    if (!driver.removeStanding) throw new Error('no removeStanding');
    return driver.removeStanding(ctx(), { standing, ...(apply === undefined ? {} : { apply }) });
  };
  const bobFull: StandingTarget = {
    principalId: `iam-user:${BOB}`,
    resourceId: BUCKET,
    permission: 'admin',
    via: 'policy',
    source: S3_FULL,
  };
  const janeInline: StandingTarget = {
    principalId: `iam-user:${JANE}`,
    resourceId: BUCKET,
    permission: 'read',
    via: 'policy',
  };
  const janeGroup: StandingTarget = {
    principalId: `iam-user:${JANE}`,
    resourceId: BUCKET,
    permission: 'partial',
    via: 'group',
  };
  const analystList: StandingTarget = {
    principalId: `iam-role:${ANALYST}`,
    resourceId: BUCKET,
    permission: 'partial',
    via: 'policy',
    source: LOCAL,
  };

  it('a dry run lists the exact IAM calls and makes none', async () => {
    account();
    const out = await remove([bobFull, janeInline, janeGroup, analystList]);
    expect(out.dryRun).toBe(true);
    expect(out.standing?.map((s) => [s.status, s.actions])).toEqual([
      ['planned', [`iam:DetachUserPolicy UserName=bob PolicyArn=${S3_FULL}`]],
      ['planned', ['iam:DeleteUserPolicy UserName=jane PolicyName=reports-read']],
      ['planned', ['iam:RemoveUserFromGroup GroupName=analysts UserName=jane']],
      ['planned', [`iam:DetachRolePolicy RoleName=data-analyst PolicyArn=${LOCAL}`]],
    ]);
    // Only the read: no change.
    expect(iam.calls().map((c) => c.args[0].constructor.name)).toEqual([
      'GetAccountAuthorizationDetailsCommand',
      'GetAccountAuthorizationDetailsCommand',
      'GetPolicyCommand',
      'GetPolicyVersionCommand',
      'GetPolicyCommand',
      'GetPolicyVersionCommand',
    ]);
  });

  it('applies exactly those calls', async () => {
    account();
    iam.on(DetachUserPolicyCommand).resolves({});
    iam.on(DeleteUserPolicyCommand).resolves({});
    iam.on(RemoveUserFromGroupCommand).resolves({});
    iam.on(DetachRolePolicyCommand).resolves({});
    const out = await remove([bobFull, janeInline, janeGroup, analystList], true);
    expect(out.dryRun).toBe(false);
    expect(out.standing?.map((s) => s.status)).toEqual([
      'removed',
      'removed',
      'removed',
      'removed',
    ]);
    expect(iam).toHaveReceivedCommandWith(DetachUserPolicyCommand, {
      UserName: 'bob',
      PolicyArn: S3_FULL,
    });
    expect(iam).toHaveReceivedCommandWith(DeleteUserPolicyCommand, {
      UserName: 'jane',
      PolicyName: 'reports-read',
    });
    expect(iam).toHaveReceivedCommandWith(RemoveUserFromGroupCommand, {
      GroupName: 'analysts',
      UserName: 'jane',
    });
    expect(iam).toHaveReceivedCommandWith(DetachRolePolicyCommand, {
      RoleName: 'data-analyst',
      PolicyArn: LOCAL,
    });
    expect(iam).toHaveReceivedCommandTimes(DetachUserPolicyCommand, 1);
    expect(iam).toHaveReceivedCommandTimes(DeleteRolePolicyCommand, 0);
  });

  it("refuses the connector's role, protected principals and the agent's grant policies, and then applies nothing", async () => {
    account();
    const out = await remove(
      [
        {
          principalId: `iam-role:${CONNECTOR}`,
          resourceId: BUCKET,
          permission: 'admin',
          via: 'policy',
        },
        {
          principalId: `iam-role:${BREAKGLASS}`,
          resourceId: BUCKET,
          permission: 'admin',
          via: 'policy',
        },
        {
          principalId: `iam-role:${ANALYST}`,
          resourceId: BUCKET,
          permission: 'read',
          via: 'policy',
        },
        bobFull,
        { principalId: `iam-user:${BOB}`, resourceId: OTHER, permission: 'admin', via: 'policy' },
      ],
      true,
    );
    expect(out.dryRun).toBe(true);
    expect(out.standing?.map((s) => [s.status, s.code])).toEqual([
      ['refused', 'E_GUARDRAIL'],
      ['refused', 'E_GUARDRAIL'],
      ['refused', 'E_NOT_MANAGED'],
      ['planned', undefined],
      ['absent', undefined],
    ]);
    expect(iam).toHaveReceivedCommandTimes(DetachUserPolicyCommand, 0);
  });
});
