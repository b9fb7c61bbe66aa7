/**
 * aws-identity-center access inventory and standing cleanup (issue 13), on the fake
 * Identity Center of world.ts: direct and group assignments (the group as the chain),
 * the agent's grant assignments matched to grant ids, and DeleteAccountAssignment only
 * with apply, never for the agent's own.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DescribeUserCommand } from '@aws-sdk/client-identitystore';
import { DeleteAccountAssignmentCommand } from '@aws-sdk/client-sso-admin';
import { driverFactory } from '../../../../src/drivers/aws-identity-center/index.js';
import type { StandingTarget } from '../../../../src/protocol/messages.js';
import { NOW, makeCtx, makeServices, settle } from '../../aws/helpers.js';
import { DEV, INSTANCE, MGMT, PROD, STORE, World } from './world.js';

const world = new World();
const config = {
  accountId: MGMT,
  region: 'eu-west-1',
  instanceArn: INSTANCE,
  identityStoreId: STORE,
  portalUrl: 'https://d-1234567890.awsapps.com/start',
};
const go = <T>(p: Promise<T>): Promise<T> => settle(p, (ms) => vi.advanceTimersByTimeAsync(ms));

describe('aws-identity-center access inventory', () => {
  const services = makeServices();
  let driver = driverFactory(services);
  const ctx = makeCtx({ type: 'aws-identity-center', config });
  let jane: string;
  let bob: string;
  let billing: string;
  let readOnly: string;

  beforeEach(async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    vi.setSystemTime(NOW);
    world.fresh();
    world.ids.on(DescribeUserCommand).callsFake((i: { UserId?: string }) => ({
      UserId: i.UserId,
      UserName: world.users.get(i.UserId ?? '')?.userName,
      IdentityStoreId: STORE,
    }));
    driver = driverFactory(services);
    jane = world.addUser('jane', 'jane@example.com');
    bob = world.addUser('bob', 'bob@example.com');
    billing = world.addPermissionSet('Billing').arn;
    readOnly = world.addPermissionSet('ReadOnly').arn;
    // Standing access made outside Latchkey: jane directly, and the ops group (jane is a member).
    world.groups.set('g-ops', { displayName: 'ops' });
    world.memberships.set('m-1', { groupId: 'g-ops', userId: jane });
    world.permissionSets.get(billing)?.provisionedTo.add(DEV);
    world.permissionSets.get(readOnly)?.provisionedTo.add(PROD);
    world.assignments.push(
      { permissionSetArn: billing, accountId: DEV, principalType: 'USER', principalId: jane },
      { permissionSetArn: readOnly, accountId: PROD, principalType: 'GROUP', principalId: 'g-ops' },
    );
    // And a Latchkey grant for bob (its own group, assignment in PROD).
    await go(
      driver.grant(ctx, {
        grantId: 'g-77',
        grantee: { email: 'bob@example.com' },
        resources: [{ type: 'account', id: PROD }],
        permission: 'permission-set:ReadOnly',
      }),
    );
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(() => {
    world.restore();
  });

  it('lists assignments per account and permission set; groups expanded with the group as chain', async () => {
    const out = await go(driver.discover(ctx, { include: ['privileges'] }));
    const grantGroup = [...world.groups.entries()].find(([id]) => id !== 'g-ops')?.[0] ?? '';
    expect(grantGroup).not.toBe('');
    const ro = {
      resourceId: PROD,
      permission: 'permission-set:ReadOnly',
      privileges: ['ReadOnly'],
      source: readOnly,
    };
    expect(out.inventory?.entries).toEqual([
      {
        principalId: `user:${jane}`,
        resourceId: DEV,
        permission: 'permission-set:Billing',
        privileges: ['Billing'],
        source: billing,
        via: 'assignment',
        managedByAgent: false,
      },
      { principalId: 'group:g-ops', ...ro, via: 'assignment', managedByAgent: false },
      { principalId: `user:${jane}`, ...ro, via: 'group', chain: ['ops'], managedByAgent: false },
      {
        principalId: `group:${grantGroup}`,
        ...ro,
        via: 'assignment',
        managedByAgent: true,
        grantId: 'g-77',
      },
      {
        principalId: `user:${bob}`,
        ...ro,
        via: 'group',
        chain: ['latchkey-grant-g-77'],
        managedByAgent: true,
        grantId: 'g-77',
      },
    ]);
    expect(
      out.inventory?.principals.map((p) => [p.id, p.kind, p.name, p.managedByAgent, p.grantId]),
    ).toEqual([
      ['group:g-ops', 'group', 'ops', false, undefined],
      [`group:${grantGroup}`, 'group', 'latchkey-grant-g-77', true, 'g-77'],
      [`user:${bob}`, 'user', 'bob', false, undefined],
      [`user:${jane}`, 'user', 'jane', false, undefined],
    ]);
  });

  describe('standing cleanup', () => {
    const janeBilling = (): StandingTarget => ({
      principalId: `user:${jane}`,
      resourceId: DEV,
      permission: 'permission-set:Billing',
      via: 'assignment',
    });

    it('a dry run names the exact call and deletes nothing', async () => {
      const out = await go(driver.removeStanding!(ctx, { standing: [janeBilling()] }));
      expect(out.dryRun).toBe(true);
      expect(out.standing).toEqual([
        {
          target: janeBilling(),
          status: 'planned',
          actions: [
            `sso:DeleteAccountAssignment InstanceArn=${INSTANCE} TargetType=AWS_ACCOUNT TargetId=${DEV} PermissionSetArn=${billing} PrincipalType=USER PrincipalId=${jane}`,
          ],
        },
      ]);
      expect(world.sso).toHaveReceivedCommandTimes(DeleteAccountAssignmentCommand, 0);
    });

    it('applies: the assignment is gone, a re-run finds it absent', async () => {
      const out = await go(driver.removeStanding!(ctx, { standing: [janeBilling()], apply: true }));
      expect(out.standing?.map((s) => s.status)).toEqual(['removed']);
      expect(world.sso).toHaveReceivedCommandWith(DeleteAccountAssignmentCommand, {
        InstanceArn: INSTANCE,
        TargetType: 'AWS_ACCOUNT',
        TargetId: DEV,
        PermissionSetArn: billing,
        PrincipalType: 'USER',
        PrincipalId: jane,
      });
      expect(world.hasAccess(jane, billing, DEV)).toBe(false);
      const again = await go(
        driver.removeStanding!(ctx, { standing: [janeBilling()], apply: true }),
      );
      expect(again.standing?.map((s) => s.status)).toEqual(['absent']);
    });

    it("refuses the agent's assignments and group-held entries; then applies nothing", async () => {
      const grantGroup = [...world.groups.entries()].find(([id]) => id !== 'g-ops')?.[0] ?? '';
      const out = await go(
        driver.removeStanding!(ctx, {
          standing: [
            {
              principalId: `group:${grantGroup}`,
              resourceId: PROD,
              permission: 'permission-set:ReadOnly',
              via: 'assignment',
            },
            {
              principalId: `user:${jane}`,
              resourceId: PROD,
              permission: 'permission-set:ReadOnly',
              via: 'group',
            },
            janeBilling(),
          ],
          apply: true,
        }),
      );
      expect(out.dryRun).toBe(true);
      expect(out.standing?.map((s) => [s.status, s.code])).toEqual([
        ['refused', 'E_NOT_MANAGED'],
        ['refused', 'E_GUARDRAIL'],
        ['planned', undefined],
      ]);
      expect(world.sso).toHaveReceivedCommandTimes(DeleteAccountAssignmentCommand, 0);
      expect(world.hasAccess(bob, readOnly, PROD)).toBe(true);
    });
  });
});
