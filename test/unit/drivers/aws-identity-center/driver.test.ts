import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AccessDeniedException,
  ConflictException,
  CreateAccountAssignmentCommand,
  CreatePermissionSetCommand,
  DeleteAccountAssignmentCommand,
  DeletePermissionSetCommand,
  DescribeAccountAssignmentCreationStatusCommand,
  ListAccountAssignmentsCommand,
  ListPermissionSetsCommand,
  ProvisionPermissionSetCommand,
  PutInlinePolicyToPermissionSetCommand,
  AttachManagedPolicyToPermissionSetCommand,
  AttachCustomerManagedPolicyReferenceToPermissionSetCommand,
  ThrottlingException,
} from '@aws-sdk/client-sso-admin';
import {
  AccessDeniedException as IdsAccessDenied,
  CreateGroupCommand,
  CreateGroupMembershipCommand,
  DeleteGroupCommand,
  GetUserIdCommand,
  ListUsersCommand,
} from '@aws-sdk/client-identitystore';
import { ListAccountsForParentCommand } from '@aws-sdk/client-organizations';
import { driverFactory } from '../../../../src/drivers/aws-identity-center/index.js';
import { builtPermissionSetName } from '../../../../src/drivers/aws-identity-center/permission-sets.js';
import { NOW, makeCtx, makeServices, rejection, settle } from '../../aws/helpers.js';
import { DEV, INSTANCE, MGMT, PROD, SANDBOX, STORE, World } from './world.js';

const world = new World();
const config = {
  accountId: MGMT,
  region: 'eu-west-1',
  instanceArn: INSTANCE,
  identityStoreId: STORE,
  portalUrl: 'https://d-1234567890.awsapps.com/start',
};
const EXPIRES = '2026-11-26T08:00:00.000Z';
const meta = { $metadata: { httpStatusCode: 400 } };

function grant(over: Record<string, unknown> = {}) {
  return {
    grantId: 'g-1',
    grantee: { email: 'jane@example.com' },
    resources: [
      { type: 'account', id: PROD },
      { type: 'account', id: `account:${DEV}` },
    ],
    permission: 'permission-set:ReadOnly',
    expiresAt: EXPIRES,
    ...over,
  };
}

const go = <T>(p: Promise<T>): Promise<T> => settle(p, (ms) => vi.advanceTimersByTimeAsync(ms));

describe('aws-identity-center driver', () => {
  const services = makeServices();
  // A fresh driver per test: its limiters' interval timers belong to that test's fake clock.
  let driver = driverFactory(services);
  const ctx = makeCtx({ type: 'aws-identity-center', config });
  let jane: string;
  let readOnly: string;

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    vi.setSystemTime(NOW);
    world.fresh();
    driver = driverFactory(services);
    jane = world.addUser('jane', 'jane@example.com');
    world.addUser('bob', 'bob@example.com');
    // Several permission sets, so that finding one by name pages through ListPermissionSets.
    world.addPermissionSet('Billing');
    world.addPermissionSet('Network');
    readOnly = world.addPermissionSet('ReadOnly', {
      managed: ['arn:aws:iam::aws:policy/ReadOnlyAccess'],
      sessionDuration: 'PT4H',
    }).arn;
    world.addPermissionSet('Admin', { managed: ['arn:aws:iam::aws:policy/AdministratorAccess'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(() => {
    world.restore();
  });

  describe('grantee', () => {
    it('finds the user by email with GetUserId', async () => {
      const out = await go(driver.grant(ctx, grant()));
      expect(world.ids).toHaveReceivedCommandWith(GetUserIdCommand, {
        IdentityStoreId: STORE,
        AlternateIdentifier: {
          UniqueAttribute: { AttributePath: 'emails.value', AttributeValue: 'jane@example.com' },
        },
      });
      expect(out.access.userId).toBe(jane);
    });

    it('falls back to ListUsers filtered by user name, through every page', async () => {
      world.users.clear();
      world.addUser('a', 'a@x.io');
      world.addUser('b', 'b@x.io');
      const id = world.addUser('jane@example.com', 'jane.doe@corp.example');
      world.ids.on(GetUserIdCommand).rejects(
        new (await import('@aws-sdk/client-identitystore')).ResourceNotFoundException({
          message: 'no user',
          ...meta,
        }),
      );
      const out = await go(driver.grant(ctx, grant()));
      expect(world.ids).toHaveReceivedCommandWith(ListUsersCommand, {
        IdentityStoreId: STORE,
        Filters: [{ AttributePath: 'UserName', AttributeValue: 'jane@example.com' }],
      });
      expect(out.access.userId).toBe(id);
    });

    it('a requester who is not in the store gets E_NOT_FOUND and nothing is created', async () => {
      const err = await go(
        rejection(driver.grant(ctx, grant({ grantee: { email: 'eve@example.com' } }))),
      );
      expect(err.code).toBe('E_NOT_FOUND');
      expect(err.message).toContain(
        `no user with email or user name eve@example.com in identity store ${STORE}`,
      );
      expect(world.ids).toHaveReceivedCommandTimes(CreateGroupCommand, 0);
      expect(world.sso).toHaveReceivedCommandTimes(CreateAccountAssignmentCommand, 0);
      expect(world.groups.size).toBe(0);
    });

    it('AccessDenied on the identity store is E_PRIVILEGE naming the action', async () => {
      world.ids
        .on(GetUserIdCommand)
        .rejects(new IdsAccessDenied({ message: 'not authorized', ...meta }));
      const err = await go(rejection(driver.grant(ctx, grant())));
      expect(err.code).toBe('E_PRIVILEGE');
      expect(err.message).toContain('identitystore:GetUserId');
    });
  });

  describe('grant of an existing permission set', () => {
    it('puts the user in a per-grant group and assigns the permission set to the group in each account', async () => {
      const out = await go(driver.grant(ctx, grant()));
      expect(world.sso).toHaveReceivedCommandWith(ListPermissionSetsCommand, {
        InstanceArn: INSTANCE,
        MaxResults: 100,
        NextToken: '2',
      });
      expect(world.ids).toHaveReceivedCommandWith(CreateGroupCommand, {
        IdentityStoreId: STORE,
        DisplayName: 'latchkey-grant-g-1',
        Description: `managed-by=latchkey; grant=g-1; expires=${EXPIRES}`,
      });
      const [groupId] = [...world.groups.keys()];
      expect(world.ids).toHaveReceivedCommandWith(CreateGroupMembershipCommand, {
        IdentityStoreId: STORE,
        GroupId: groupId,
        MemberId: { UserId: jane },
      });
      for (const account of [DEV, PROD]) {
        expect(world.sso).toHaveReceivedCommandWith(CreateAccountAssignmentCommand, {
          InstanceArn: INSTANCE,
          PermissionSetArn: readOnly,
          TargetType: 'AWS_ACCOUNT',
          TargetId: account,
          PrincipalType: 'GROUP',
          PrincipalId: groupId,
        });
      }
      // Each request was IN_PROGRESS once and polled to SUCCEEDED.
      expect(world.sso).toHaveReceivedCommandTimes(
        DescribeAccountAssignmentCreationStatusCommand,
        4,
      );
      expect(world.sso).toHaveReceivedCommandTimes(ProvisionPermissionSetCommand, 0);
      expect(world.sso).toHaveReceivedCommandTimes(CreatePermissionSetCommand, 0);
      expect(world.hasAccess(jane, readOnly, PROD)).toBe(true);
      expect(world.hasAccess(jane, readOnly, DEV)).toBe(true);
      expect(out).toMatchObject({
        username: 'jane@example.com',
        alreadyGranted: false,
        expiresAt: EXPIRES,
        access: {
          portalUrl: config.portalUrl,
          groupName: 'latchkey-grant-g-1',
          accounts: [PROD, DEV].sort(),
          permissionSet: {
            name: 'ReadOnly',
            arn: readOnly,
            built: false,
            sessionDurationSeconds: 14400,
            sessionMayOutliveRevokeSeconds: 14400,
          },
        },
      });
    });

    it('grant twice = granted once', async () => {
      await go(driver.grant(ctx, grant()));
      world.sso.resetHistory();
      world.ids.resetHistory();
      const again = await go(driver.grant(ctx, grant()));
      expect(again.alreadyGranted).toBe(true);
      expect(world.ids).toHaveReceivedCommandTimes(CreateGroupCommand, 0);
      expect(world.ids).toHaveReceivedCommandTimes(CreateGroupMembershipCommand, 0);
      expect(world.sso).toHaveReceivedCommandTimes(CreateAccountAssignmentCommand, 0);
      expect(world.groups.size).toBe(1);
    });

    it('two overlapping grants of the same permission set in the same account are revoked independently', async () => {
      await go(
        driver.grant(ctx, grant({ grantId: 'g-1', resources: [{ type: 'account', id: PROD }] })),
      );
      await go(
        driver.grant(ctx, grant({ grantId: 'g-2', resources: [{ type: 'account', id: PROD }] })),
      );
      expect(world.groups.size).toBe(2);
      expect(world.assignments).toHaveLength(2);

      const r1 = await go(driver.revoke(ctx, grant({ grantId: 'g-1' })));
      expect(r1.alreadyRevoked).toBe(false);
      expect(r1.revoked).toEqual([`${readOnly}@${PROD}`, 'latchkey-grant-g-1']);
      expect(world.hasAccess(jane, readOnly, PROD)).toBe(true);
      expect([...world.groups.values()].map((g) => g.displayName)).toEqual(['latchkey-grant-g-2']);

      const r2 = await go(driver.revoke(ctx, grant({ grantId: 'g-2' })));
      expect(r2.alreadyRevoked).toBe(false);
      expect(world.hasAccess(jane, readOnly, PROD)).toBe(false);
      expect(world.groups.size).toBe(0);
      expect(world.memberships.size).toBe(0);
      // The existing permission set itself is never touched.
      expect(world.permissionSets.has(readOnly)).toBe(true);
      expect(world.sso).toHaveReceivedCommandTimes(DeletePermissionSetCommand, 0);

      const r3 = await go(driver.revoke(ctx, grant({ grantId: 'g-2' })));
      expect(r3).toMatchObject({ alreadyRevoked: true, revoked: [] });
    });

    it('revoke removes only its own group assignments, not a direct user assignment made by someone else', async () => {
      world.assignments.push({
        permissionSetArn: readOnly,
        accountId: PROD,
        principalType: 'USER',
        principalId: jane,
      });
      await go(driver.grant(ctx, grant({ resources: [{ type: 'account', id: PROD }] })));
      await go(driver.revoke(ctx, grant()));
      expect(world.assignments).toEqual([
        { permissionSetArn: readOnly, accountId: PROD, principalType: 'USER', principalId: jane },
      ]);
      expect(world.sso).toHaveReceivedCommandTimes(DeleteAccountAssignmentCommand, 1);
    });

    it('resolves an OU to its accounts at grant time, minus excluded OUs and denied accounts', async () => {
      const c = makeCtx({
        type: 'aws-identity-center',
        config: { ...config, deniedAccountIds: [DEV], excludedOuIds: ['ou-ab12-sandbox1'] },
      });
      const out = await go(driver.grant(c, grant({ resources: [{ type: 'ou', id: 'r-ab12' }] })));
      expect(out.access.accounts).toEqual([PROD]);
      expect(world.orgs).not.toHaveReceivedCommandWith(ListAccountsForParentCommand, {
        ParentId: 'ou-ab12-sandbox1',
      });
      // The management account under the root is left out, not assigned.
      expect(world.hasAccess(jane, readOnly, MGMT)).toBe(false);
    });
  });

  describe('guardrails', () => {
    it('refuses the management account unless allowed', async () => {
      const err = await go(
        rejection(driver.grant(ctx, grant({ resources: [{ type: 'account', id: MGMT }] }))),
      );
      expect(err.code).toBe('E_GUARDRAIL');
      expect(err.message).toContain('management account');
      expect(world.groups.size).toBe(0);
      const allowed = makeCtx({
        type: 'aws-identity-center',
        config: { ...config, allowManagementAccount: true },
      });
      await go(driver.grant(allowed, grant({ resources: [{ type: 'account', id: MGMT }] })));
      expect(world.hasAccess(jane, readOnly, MGMT)).toBe(true);
    });

    it('refuses an AdministratorAccess permission set unless allowed, before any write', async () => {
      const err = await go(
        rejection(driver.grant(ctx, grant({ permission: 'permission-set:Admin' }))),
      );
      expect(err.code).toBe('E_GUARDRAIL');
      expect(err.message).toContain('AdministratorAccess');
      expect(world.groups.size).toBe(0);
    });

    it('refuses an inline policy allowing * on *, accounts under an excluded OU, and accounts off the allow list', async () => {
      const admin = JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }],
      });
      const e1 = await go(
        rejection(
          driver.grant(
            ctx,
            grant({
              permission: 'policies',
              resources: [
                { type: 'account', id: PROD },
                { type: 'inline-policy', id: admin },
              ],
            }),
          ),
        ),
      );
      expect(e1.code).toBe('E_GUARDRAIL');
      const excl = makeCtx({
        type: 'aws-identity-center',
        config: { ...config, excludedOuIds: ['ou-ab12-sandbox1'] },
      });
      const e2 = await go(
        rejection(driver.grant(excl, grant({ resources: [{ type: 'account', id: SANDBOX }] }))),
      );
      expect(e2).toMatchObject({ code: 'E_GUARDRAIL' });
      expect(e2.message).toContain('excluded OU');
      const allow = makeCtx({
        type: 'aws-identity-center',
        config: { ...config, allowedAccountIds: [PROD] },
      });
      const e3 = await go(rejection(driver.grant(allow, grant())));
      expect(e3.message).toContain(`account ${DEV} is not on the integration's allow list`);
      expect(world.groups.size).toBe(0);
    });

    it('never uses a group with its name that lacks its marker', async () => {
      world.groups.set('grp-x', { displayName: 'latchkey-grant-g-1', description: 'team group' });
      const err = await go(rejection(driver.grant(ctx, grant())));
      expect(err.code).toBe('E_NOT_MANAGED');
      const rv = await go(rejection(driver.revoke(ctx, grant())));
      expect(rv.code).toBe('E_NOT_MANAGED');
      expect(world.groups.has('grp-x')).toBe(true);
    });
  });

  describe('built permission sets', () => {
    const POLICY = JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: ['s3:GetObject'], Resource: 'arn:aws:s3:::reports/*' },
      ],
    });
    const policyGrant = (over: Record<string, unknown> = {}) =>
      grant({
        permission: 'policies',
        resources: [
          { type: 'account', id: PROD },
          { type: 'aws-managed-policy', id: 'arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess' },
          { type: 'inline-policy', id: POLICY },
        ],
        ...over,
      });

    it('builds a per-grant permission set whose inline policy ends at expiresAt, provisions it and assigns it', async () => {
      const out = await go(driver.grant(ctx, policyGrant()));
      const name = builtPermissionSetName('latchkey', 'g-1');
      expect(name.length).toBeLessThanOrEqual(32);
      expect(world.sso).toHaveReceivedCommandWith(CreatePermissionSetCommand, {
        InstanceArn: INSTANCE,
        Name: name,
        Description: `managed-by=latchkey; grant=g-1; expires=${EXPIRES}`,
        SessionDuration: 'PT1H',
        Tags: [
          { Key: 'latchkey-managed', Value: 'true' },
          { Key: 'latchkey-grant-id', Value: 'g-1' },
        ],
      });
      const ps = [...world.permissionSets.values()].find((p) => p.name === name);
      expect(ps).toBeDefined();
      expect(world.sso).toHaveReceivedCommandWith(PutInlinePolicyToPermissionSetCommand, {
        InstanceArn: INSTANCE,
        PermissionSetArn: ps?.arn,
        InlinePolicy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Action: ['s3:GetObject'],
              Resource: 'arn:aws:s3:::reports/*',
              Condition: { DateLessThan: { 'aws:CurrentTime': EXPIRES } },
            },
            {
              Sid: 'LatchkeyGrantExpired',
              Effect: 'Deny',
              Action: '*',
              Resource: '*',
              Condition: { DateGreaterThan: { 'aws:CurrentTime': EXPIRES } },
            },
          ],
        }),
      });
      expect(world.sso).toHaveReceivedCommandWith(AttachManagedPolicyToPermissionSetCommand, {
        InstanceArn: INSTANCE,
        PermissionSetArn: ps?.arn,
        ManagedPolicyArn: 'arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess',
      });
      expect(world.sso).toHaveReceivedCommandWith(ProvisionPermissionSetCommand, {
        InstanceArn: INSTANCE,
        PermissionSetArn: ps?.arn,
        TargetType: 'AWS_ACCOUNT',
        TargetId: PROD,
      });
      expect(world.hasAccess(jane, ps?.arn ?? '', PROD)).toBe(true);
      expect(out.access.permissionSet).toMatchObject({
        name,
        built: true,
        sessionDurationSeconds: 3600,
      });

      const rv = await go(driver.revoke(ctx, policyGrant()));
      expect(rv.revoked).toContain(name);
      expect(world.permissionSets.has(ps?.arn ?? '')).toBe(false);
      expect(world.groups.size).toBe(0);
    });

    it('a crash between building the permission set and assigning it is finished by the next run, nothing duplicated', async () => {
      world.crashOnce.set(
        'CreateAccountAssignment',
        Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      );
      const err = await go(rejection(driver.grant(ctx, policyGrant())));
      expect(err.code).toBe('E_CONNECT');
      expect(world.permissionSets.size).toBe(5);
      expect(world.groups.size).toBe(1);
      expect(world.assignments).toHaveLength(0);

      const out = await go(driver.grant(ctx, policyGrant()));
      expect(out.alreadyGranted).toBe(false);
      expect(world.sso).toHaveReceivedCommandTimes(CreatePermissionSetCommand, 1);
      expect(world.ids).toHaveReceivedCommandTimes(CreateGroupCommand, 1);
      expect(world.ids).toHaveReceivedCommandTimes(CreateGroupMembershipCommand, 1);
      expect(world.permissionSets.size).toBe(5);
      expect(world.groups.size).toBe(1);
      expect(world.assignments).toHaveLength(1);
      const again = await go(driver.grant(ctx, policyGrant()));
      expect(again.alreadyGranted).toBe(true);
    });

    it('revoke removes a built permission set even when its grant group is already gone', async () => {
      await go(driver.grant(ctx, policyGrant()));
      world.groups.clear();
      world.memberships.clear();
      const built = [...world.permissionSets.values()].find((p) => p.description !== undefined);
      const rv = await go(driver.revoke(ctx, policyGrant()));
      expect(rv.alreadyRevoked).toBe(false);
      expect(rv.revoked).toEqual([
        `${built?.arn}@${PROD}`,
        builtPermissionSetName('latchkey', 'g-1'),
      ]);
      expect(world.assignments).toHaveLength(0);
      expect(world.permissionSets.size).toBe(4);
    });

    it('sweep removes a built permission set whose grant group is gone (orphan), with its assignments', async () => {
      await go(driver.grant(ctx, policyGrant()));
      world.groups.clear(); // the group vanished (crash in a revoke, or removed by hand)
      world.memberships.clear();
      const built = [...world.permissionSets.values()].find((p) => p.description !== undefined);
      const report = await go(driver.sweep!(ctx));
      expect(report).toEqual({ revoked: ['g-1'], errors: [] });
      expect(world.assignments).toHaveLength(0);
      expect(world.permissionSets.size).toBe(4);
      expect(world.sso).toHaveReceivedCommandWith(ListAccountAssignmentsCommand, {
        InstanceArn: INSTANCE,
        AccountId: PROD,
        PermissionSetArn: built?.arn,
      });
    });

    it('attaches a customer-managed policy reference by path and name', async () => {
      await go(
        driver.grant(
          ctx,
          policyGrant({
            resources: [
              { type: 'account', id: PROD },
              { type: 'customer-managed-policy', id: '/team/reports-reader' },
            ],
          }),
        ),
      );
      const ps = [...world.permissionSets.values()].find(
        (p) => p.name === builtPermissionSetName('latchkey', 'g-1'),
      );
      expect(world.sso).toHaveReceivedCommandWith(
        AttachCustomerManagedPolicyReferenceToPermissionSetCommand,
        {
          InstanceArn: INSTANCE,
          PermissionSetArn: ps?.arn,
          CustomerManagedPolicyReference: { Name: 'reports-reader', Path: '/team/' },
        },
      );
    });

    it('refuses more than 100 named resources (the aws-iam guardrail) before any AWS call', async () => {
      const resources = Array.from({ length: 101 }, (_, i) => ({
        type: 'account',
        id: String(100000000000 + i),
      }));
      const err = await go(rejection(driver.grant(ctx, grant({ resources }))));
      expect(err.code).toBe('E_GUARDRAIL');
      expect(err.message).toContain('at most 100 resources');
      expect(world.ids).toHaveReceivedCommandTimes(GetUserIdCommand, 0);
    });

    it('refuses an OU that resolves to more than 100 accounts, before any write', async () => {
      world.ous['ou-ab12-bigbig12'] = {
        accounts: Array.from({ length: 101 }, (_, i) => String(500000000000 + i)),
        children: [],
      };
      const err = await go(
        rejection(
          driver.grant(ctx, grant({ resources: [{ type: 'ou', id: 'ou-ab12-bigbig12' }] })),
        ),
      );
      expect(err.code).toBe('E_GUARDRAIL');
      expect(err.message).toContain('resolves to 101 accounts');
      expect(world.groups.size).toBe(0);
    });

    it('refuses an inline policy over the size budget before any AWS call', async () => {
      const big = JSON.stringify({
        Version: '2012-10-17',
        Statement: Array.from({ length: 60 }, (_, i) => ({
          Effect: 'Allow',
          Action: 's3:GetObject',
          Resource: `arn:aws:s3:::bucket-with-a-long-name-${i}/some/long/prefix/*`,
        })),
      });
      const err = await go(
        rejection(
          driver.grant(
            ctx,
            grant({
              permission: 'policies',
              resources: [
                { type: 'account', id: PROD },
                { type: 'inline-policy', id: big.slice(0, 2048) },
              ],
            }),
          ),
        ),
      );
      expect(['E_INVALID', 'E_POLICY_TOO_LARGE']).toContain(err.code);
      expect(world.ids).toHaveReceivedCommandTimes(GetUserIdCommand, 0);
    });
  });

  describe('asynchronous provisioning', () => {
    it('retries ConflictException (another provisioning runs) with backoff, then succeeds', async () => {
      let conflicts = 2;
      world.sso.on(CreateAccountAssignmentCommand).callsFake(() => {
        if (conflicts-- > 0)
          throw new ConflictException({ message: 'provisioning in progress', ...meta });
        world.assignments.push({
          permissionSetArn: readOnly,
          accountId: PROD,
          principalType: 'GROUP',
          principalId: [...world.groups.keys()][0] ?? '',
        });
        return { AccountAssignmentCreationStatus: { RequestId: 'req-ok', Status: 'SUCCEEDED' } };
      });
      await go(driver.grant(ctx, grant({ resources: [{ type: 'account', id: PROD }] })));
      expect(world.sso).toHaveReceivedCommandTimes(CreateAccountAssignmentCommand, 3);
      expect(world.hasAccess(jane, readOnly, PROD)).toBe(true);
    });

    it('gives up with retryable E_CONFLICT when the conflict persists', async () => {
      world.sso
        .on(CreateAccountAssignmentCommand)
        .rejects(new ConflictException({ message: 'provisioning in progress', ...meta }));
      const err = await go(
        rejection(driver.grant(ctx, grant({ resources: [{ type: 'account', id: PROD }] }))),
      );
      expect(err).toMatchObject({ code: 'E_CONFLICT', retryable: true });
      expect(world.sso).toHaveReceivedCommandTimes(CreateAccountAssignmentCommand, 6);
    });

    it('retries a throttled call', async () => {
      world.sso
        .on(CreateAccountAssignmentCommand)
        .rejectsOnce(new ThrottlingException({ message: 'Rate exceeded', ...meta }))
        .resolves({ AccountAssignmentCreationStatus: { RequestId: 'req-t', Status: 'SUCCEEDED' } });
      await go(driver.grant(ctx, grant({ resources: [{ type: 'account', id: PROD }] })));
      expect(world.sso).toHaveReceivedCommandTimes(CreateAccountAssignmentCommand, 2);
    });

    it('reports a provisioning that ends FAILED with its reason and request id', async () => {
      world.nextOutcome = {
        status: 'FAILED',
        reason: 'Received a 404 status error: policy not found in account',
      };
      const err = await go(
        rejection(driver.grant(ctx, grant({ resources: [{ type: 'account', id: PROD }] }))),
      );
      expect(err.code).toBe('E_INVALID');
      expect(err.message).toMatch(
        /Identity Center failed to assign .* in account 222222222222 \(request req-\d+\): Received a 404 status error: policy not found in account/,
      );
    });

    it('a request still in progress at the deadline ends E_TIMEOUT', async () => {
      world.sso.on(DescribeAccountAssignmentCreationStatusCommand).resolves({
        AccountAssignmentCreationStatus: { RequestId: 'req-slow', Status: 'IN_PROGRESS' },
      });
      const ac = new AbortController();
      const c = makeCtx({ type: 'aws-identity-center', config }, ac.signal);
      const p = rejection(driver.grant(c, grant({ resources: [{ type: 'account', id: PROD }] })));
      setTimeout(() => ac.abort(), 30_000);
      const err = await go(p);
      expect(err.code).toBe('E_TIMEOUT');
      expect(err.message).toContain('req-slow');
    });

    it('AccessDenied on CreateAccountAssignment is E_PRIVILEGE naming sso:CreateAccountAssignment', async () => {
      world.sso
        .on(CreateAccountAssignmentCommand)
        .rejects(new AccessDeniedException({ message: 'no', ...meta }));
      const err = await go(
        rejection(driver.grant(ctx, grant({ resources: [{ type: 'account', id: PROD }] }))),
      );
      expect(err.code).toBe('E_PRIVILEGE');
      expect(err.message).toContain('sso:CreateAccountAssignment');
    });
  });

  describe('sweep, discover, check', () => {
    it('sweep revokes grants whose expiresAt has passed, and only those', async () => {
      await go(
        driver.grant(ctx, grant({ grantId: 'g-old', expiresAt: '2026-11-25T21:00:00.000Z' })),
      );
      await go(
        driver.grant(ctx, grant({ grantId: 'g-new', expiresAt: '2026-11-27T21:00:00.000Z' })),
      );
      const later = driverFactory({ ...services, now: () => new Date('2026-11-26T00:00:00.000Z') });
      const report = await go(later.sweep!(ctx));
      expect(report).toEqual({ revoked: ['g-old'], errors: [] });
      expect([...world.groups.values()].map((g) => g.displayName)).toEqual([
        'latchkey-grant-g-new',
      ]);
      expect(world.hasAccess(jane, readOnly, PROD)).toBe(true);
      expect(world.ids).toHaveReceivedCommandTimes(DeleteGroupCommand, 1);
    });

    it('discover lists accounts minus exclusions and permission sets with policies, session and assignments; AccessDenied is a warning', async () => {
      await go(driver.grant(ctx, grant({ resources: [{ type: 'account', id: PROD }] })));
      world.sso
        .on(ListAccountAssignmentsCommand, { PermissionSetArn: readOnly })
        .rejects(new AccessDeniedException({ message: 'no', ...meta }));
      const c = makeCtx({
        type: 'aws-identity-center',
        config: { ...config, excludedOuIds: ['ou-ab12-sandbox1'] },
      });
      const out = await go(driver.discover(c));
      expect(
        out.resources
          .filter((r) => r.type === 'account')
          .map((r) => r.id)
          .sort(),
      ).toEqual([MGMT, PROD, DEV].sort());
      const ps = out.resources.filter((r) => r.type === 'permission-set').map((r) => r.name);
      expect(ps).toEqual(['Billing', 'Network', 'Admin']);
      const admin = out.resources.find((r) => r.name === 'Admin');
      expect(admin?.metadata).toMatchObject({
        administratorLike: true,
        sessionDurationSeconds: 3600,
        managedPolicies: ['arn:aws:iam::aws:policy/AdministratorAccess'],
      });
      expect(out.warnings).toEqual([
        expect.objectContaining({ resourceId: readOnly, code: 'E_PRIVILEGE' }),
      ]);
      expect(out.permissions.map((p) => p.id)).toEqual([
        'permission-set:Billing',
        'permission-set:Network',
        'permission-set:Admin',
        'policies',
      ]);
    });

    it('discover reports who holds which permission set where', async () => {
      await go(driver.grant(ctx, grant({ resources: [{ type: 'account', id: PROD }] })));
      const out = await go(driver.discover(ctx));
      const ro = out.resources.find((r) => r.name === 'ReadOnly');
      expect(ro?.metadata.assignments).toEqual([
        { accountId: PROD, principalType: 'GROUP', principalId: [...world.groups.keys()][0] },
      ]);
    });

    it('check names each sub-check', async () => {
      const c = makeCtx({
        type: 'aws-identity-center',
        config: { accountId: MGMT, region: 'eu-west-1' },
      });
      const out = await go(driver.check(c));
      expect(out.checks.map((x) => [x.name, x.ok])).toEqual([
        ['identity', true],
        ['sso:ListInstances', true],
        ['sso:ListPermissionSets', true],
        ['identitystore:ListUsers', true],
        ['simulate:assignments', true],
        ['simulate:grant-groups', true],
        ['simulate:built-permission-sets', true],
      ]);
      expect(out.ok).toBe(true);
    });
  });
});
