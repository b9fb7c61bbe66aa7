/**
 * `isolation: permission-set`, for identity sources whose groups an external IdP owns
 * through SCIM: each grant gets its own permission set (a copy of the named one, or the
 * one built from policies), assigned directly to the user. Overlap, revoke, crash
 * idempotency and the sweep, as for the group isolation.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AttachManagedPolicyToPermissionSetCommand,
  CreateAccountAssignmentCommand,
  CreatePermissionSetCommand,
  DeletePermissionSetCommand,
  PutInlinePolicyToPermissionSetCommand,
  PutPermissionsBoundaryToPermissionSetCommand,
} from '@aws-sdk/client-sso-admin';
import { CreateGroupCommand, CreateGroupMembershipCommand } from '@aws-sdk/client-identitystore';
import { driverFactory } from '../../../../src/drivers/aws-identity-center/index.js';
import { ORPHAN_AGE_MS } from '../../../../src/drivers/aws-identity-center/driver.js';
import { builtPermissionSetName } from '../../../../src/drivers/aws-identity-center/permission-sets.js';
import { NOW, makeCtx, makeServices, rejection, settle } from '../../aws/helpers.js';
import { INSTANCE, MGMT, PROD, STORE, World, type FakePermissionSet } from './world.js';

const world = new World();
const config = {
  accountId: MGMT,
  region: 'eu-west-1',
  instanceArn: INSTANCE,
  identityStoreId: STORE,
  isolation: 'permission-set',
};
const EXPIRES = '2026-11-26T08:00:00.000Z';
const go = <T>(p: Promise<T>): Promise<T> => settle(p, (ms) => vi.advanceTimersByTimeAsync(ms));

function grant(over: Record<string, unknown> = {}) {
  return {
    grantId: 'g-1',
    grantee: { email: 'jane@example.com' },
    resources: [{ type: 'account', id: PROD }],
    permission: 'permission-set:ReadOnly',
    expiresAt: EXPIRES,
    ...over,
  };
}

const EXPIRY_DENY = {
  Sid: 'LatchkeyGrantExpired',
  Effect: 'Deny',
  Action: '*',
  Resource: '*',
  Condition: { DateGreaterThan: { 'aws:CurrentTime': EXPIRES } },
};

describe('aws-identity-center permission-set isolation', () => {
  const services = makeServices();
  let driver = driverFactory(services);
  const ctx = makeCtx({ type: 'aws-identity-center', config });
  let jane: string;
  let readOnly: FakePermissionSet;
  const copyOf = (grantId: string) =>
    [...world.permissionSets.values()].find(
      (p) => p.name === builtPermissionSetName('latchkey', grantId),
    );

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    vi.setSystemTime(NOW);
    world.fresh();
    driver = driverFactory(services);
    jane = world.addUser('jane', 'jane@example.com');
    world.addPermissionSet('Billing');
    readOnly = world.addPermissionSet('ReadOnly', {
      managed: ['arn:aws:iam::aws:policy/ReadOnlyAccess'],
      sessionDuration: 'PT4H',
      inline: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: 's3:GetObject',
            Resource: '*',
            Condition: { DateLessThan: { 'aws:CurrentTime': '2026-11-26T00:00:00.000Z' } },
          },
        ],
      }),
      boundary: { ManagedPolicyArn: 'arn:aws:iam::aws:policy/ReadOnlyAccess' },
    });
    world.addPermissionSet('Admin', { managed: ['arn:aws:iam::aws:policy/AdministratorAccess'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(() => {
    world.restore();
  });

  it('copies the named permission set for the grant, with the expiry conditions, and assigns the copy to the user; no group, the original untouched', async () => {
    const out = await go(driver.grant(ctx, grant()));
    const name = builtPermissionSetName('latchkey', 'g-1');
    expect(world.sso).toHaveReceivedCommandWith(CreatePermissionSetCommand, {
      InstanceArn: INSTANCE,
      Name: name,
      Description: `managed-by=latchkey; grant=g-1; expires=${EXPIRES}; assign=user`,
      // PT4H lowered to maxSessionDurationSeconds (1 h).
      SessionDuration: 'PT1H',
      Tags: [
        { Key: 'latchkey-managed', Value: 'true' },
        { Key: 'latchkey-grant-id', Value: 'g-1' },
      ],
    });
    const copy = copyOf('g-1');
    expect(copy).toBeDefined();
    expect(world.sso).toHaveReceivedCommandWith(AttachManagedPolicyToPermissionSetCommand, {
      InstanceArn: INSTANCE,
      PermissionSetArn: copy?.arn,
      ManagedPolicyArn: 'arn:aws:iam::aws:policy/ReadOnlyAccess',
    });
    // The source's earlier end stays; the Deny ends everything at expiresAt.
    expect(world.sso).toHaveReceivedCommandWith(PutInlinePolicyToPermissionSetCommand, {
      InstanceArn: INSTANCE,
      PermissionSetArn: copy?.arn,
      InlinePolicy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: 's3:GetObject',
            Resource: '*',
            Condition: { DateLessThan: { 'aws:CurrentTime': '2026-11-26T00:00:00.000Z' } },
          },
          EXPIRY_DENY,
        ],
      }),
    });
    expect(world.sso).toHaveReceivedCommandWith(PutPermissionsBoundaryToPermissionSetCommand, {
      InstanceArn: INSTANCE,
      PermissionSetArn: copy?.arn,
      PermissionsBoundary: { ManagedPolicyArn: 'arn:aws:iam::aws:policy/ReadOnlyAccess' },
    });
    expect(world.sso).toHaveReceivedCommandWith(CreateAccountAssignmentCommand, {
      InstanceArn: INSTANCE,
      PermissionSetArn: copy?.arn,
      TargetType: 'AWS_ACCOUNT',
      TargetId: PROD,
      PrincipalType: 'USER',
      PrincipalId: jane,
    });
    expect(world.ids).toHaveReceivedCommandTimes(CreateGroupCommand, 0);
    expect(world.ids).toHaveReceivedCommandTimes(CreateGroupMembershipCommand, 0);
    expect(world.hasAccess(jane, copy?.arn ?? '', PROD)).toBe(true);
    expect(world.hasAccess(jane, readOnly.arn, PROD)).toBe(false);
    // Nothing written to the original.
    const onOriginal = { PermissionSetArn: readOnly.arn };
    expect(world.sso).not.toHaveReceivedCommandWith(
      PutInlinePolicyToPermissionSetCommand,
      onOriginal,
    );
    expect(world.sso).not.toHaveReceivedCommandWith(
      AttachManagedPolicyToPermissionSetCommand,
      onOriginal,
    );
    expect(world.sso).not.toHaveReceivedCommandWith(
      PutPermissionsBoundaryToPermissionSetCommand,
      onOriginal,
    );
    expect(out.access).toMatchObject({
      isolation: 'permission-set',
      userId: jane,
      permissionSet: {
        name,
        arn: copy?.arn,
        built: true,
        copiedFrom: 'ReadOnly',
        sessionDurationSeconds: 3600,
        sessionMayOutliveRevokeSeconds: 3600,
      },
    });
    expect(out.access).not.toHaveProperty('groupName');
  });

  it('two overlapping grants of the same permission set in the same account are revoked independently', async () => {
    // Someone else's direct assignment of the original must survive both revokes.
    world.assignments.push({
      permissionSetArn: readOnly.arn,
      accountId: PROD,
      principalType: 'USER',
      principalId: jane,
    });
    await go(driver.grant(ctx, grant({ grantId: 'g-1' })));
    await go(driver.grant(ctx, grant({ grantId: 'g-2' })));
    const c1 = copyOf('g-1');
    const c2 = copyOf('g-2');
    expect(c1?.arn).not.toBe(c2?.arn);
    expect(world.assignments).toHaveLength(3);

    const r1 = await go(driver.revoke(ctx, grant({ grantId: 'g-1' })));
    expect(r1).toMatchObject({
      alreadyRevoked: false,
      revoked: [`${c1?.arn}@${PROD}`, builtPermissionSetName('latchkey', 'g-1')],
    });
    expect(copyOf('g-1')).toBeUndefined();
    expect(world.hasAccess(jane, c2?.arn ?? '', PROD)).toBe(true);
    expect(r1.phases.at(-1)?.detail).toContain('up to 3600s');

    await go(driver.revoke(ctx, grant({ grantId: 'g-2' })));
    expect(copyOf('g-2')).toBeUndefined();
    expect(world.assignments).toEqual([
      { permissionSetArn: readOnly.arn, accountId: PROD, principalType: 'USER', principalId: jane },
    ]);
    expect(world.permissionSets.has(readOnly.arn)).toBe(true);
    expect(world.sso).not.toHaveReceivedCommandWith(DeletePermissionSetCommand, {
      PermissionSetArn: readOnly.arn,
    });
    const r3 = await go(driver.revoke(ctx, grant({ grantId: 'g-2' })));
    expect(r3).toMatchObject({ alreadyRevoked: true, revoked: [] });
  });

  it('a crash between building the copy and assigning it is finished by the next run, nothing duplicated', async () => {
    world.crashOnce.set(
      'CreateAccountAssignment',
      Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
    );
    const err = await go(rejection(driver.grant(ctx, grant())));
    expect(err.code).toBe('E_CONNECT');
    expect(copyOf('g-1')).toBeDefined();
    expect(world.assignments).toHaveLength(0);

    const out = await go(driver.grant(ctx, grant()));
    expect(out.alreadyGranted).toBe(false);
    expect(world.sso).toHaveReceivedCommandTimes(CreatePermissionSetCommand, 1);
    expect(world.sso).toHaveReceivedCommandTimes(PutPermissionsBoundaryToPermissionSetCommand, 1);
    expect(world.assignments).toHaveLength(1);
    expect(world.permissionSets.size).toBe(4);
    const again = await go(driver.grant(ctx, grant()));
    expect(again.alreadyGranted).toBe(true);
  });

  it('revoke does not depend on the mode: grants made before a switch are still revoked', async () => {
    const groupCtx = makeCtx({
      type: 'aws-identity-center',
      config: { ...config, isolation: 'group' },
    });
    await go(driver.grant(groupCtx, grant({ grantId: 'g-before' })));
    await go(driver.grant(ctx, grant({ grantId: 'g-after' })));
    expect(world.groups.size).toBe(1);
    const r1 = await go(driver.revoke(ctx, grant({ grantId: 'g-before' })));
    expect(r1.alreadyRevoked).toBe(false);
    expect(world.groups.size).toBe(0);
    const r2 = await go(driver.revoke(groupCtx, grant({ grantId: 'g-after' })));
    expect(r2.alreadyRevoked).toBe(false);
    expect(copyOf('g-after')).toBeUndefined();
    expect(world.assignments).toEqual([]);
  });

  it('a grant of policies builds the set and assigns it to the user', async () => {
    await go(
      driver.grant(
        ctx,
        grant({
          permission: 'policies',
          resources: [
            { type: 'account', id: PROD },
            { type: 'aws-managed-policy', id: 'arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess' },
          ],
        }),
      ),
    );
    const built = copyOf('g-1');
    expect(built?.description).toBe(
      `managed-by=latchkey; grant=g-1; expires=${EXPIRES}; assign=user`,
    );
    expect(world.assignments).toEqual([
      { permissionSetArn: built?.arn, accountId: PROD, principalType: 'USER', principalId: jane },
    ]);
    expect(world.groups.size).toBe(0);
  });

  it('refuses to copy an administrator-like permission set, or one whose inline policy it cannot rewrite, before any write', async () => {
    const admin = await go(
      rejection(driver.grant(ctx, grant({ permission: 'permission-set:Admin' }))),
    );
    expect(admin.code).toBe('E_GUARDRAIL');
    world.addPermissionSet('Legacy', {
      inline: JSON.stringify({
        Version: '2008-10-17',
        Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }],
      }),
    });
    // Unreadable for the guardrail too; with administrator access allowed, the copy refuses it.
    const allowAdmin = makeCtx({
      type: 'aws-identity-center',
      config: { ...config, allowAdministratorAccess: true },
    });
    const legacy = await go(
      rejection(driver.grant(allowAdmin, grant({ permission: 'permission-set:Legacy' }))),
    );
    expect(legacy.code).toBe('E_UNSUPPORTED');
    expect(legacy.message).toContain('permission set Legacy cannot be copied');
    expect(world.sso).toHaveReceivedCommandTimes(CreatePermissionSetCommand, 0);
  });

  it('sweep revokes expired user grants, keeps live ones, and removes an unassigned copy only once it is older than a command could run', async () => {
    await go(driver.grant(ctx, grant({ grantId: 'g-old', expiresAt: '2026-11-25T21:00:00.000Z' })));
    await go(driver.grant(ctx, grant({ grantId: 'g-new', expiresAt: '2026-11-27T21:00:00.000Z' })));
    // A grant that crashed before assigning and was never re-run.
    world.crashOnce.set(
      'CreateAccountAssignment',
      Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
    );
    await go(rejection(driver.grant(ctx, grant({ grantId: 'g-crashed', expiresAt: undefined }))));
    expect(copyOf('g-crashed')).toBeDefined();

    // Soon after: the unassigned copy may still be a grant in progress.
    const soon = driverFactory({ ...services, now: () => new Date(NOW.getTime() + 60_000) });
    expect(await go(soon.sweep!(ctx))).toEqual({ revoked: [], errors: [] });
    expect(copyOf('g-crashed')).toBeDefined();

    const later = driverFactory({
      ...services,
      now: () => new Date(NOW.getTime() + ORPHAN_AGE_MS + 5 * 60_000),
    });
    const report = await go(later.sweep!(ctx));
    expect(report.errors).toEqual([]);
    expect(report.revoked.sort()).toEqual(['g-crashed', 'g-old']);
    expect(copyOf('g-old')).toBeUndefined();
    expect(copyOf('g-crashed')).toBeUndefined();
    expect(world.hasAccess(jane, copyOf('g-new')?.arn ?? '', PROD)).toBe(true);
    expect(world.permissionSets.has(readOnly.arn)).toBe(true);
  });
});
