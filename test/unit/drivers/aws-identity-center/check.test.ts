/**
 * `check` of aws-identity-center: each sub-check named; the instance really listed even
 * when its ids are configured; the writes proven with iam:SimulatePrincipalPolicy on the
 * connector's own role, each action on the resource types AWS authorizes it on.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ListInstancesCommand } from '@aws-sdk/client-sso-admin';
import { GetCallerIdentityCommand, AssumeRoleCommand } from '@aws-sdk/client-sts';
import { SimulatePrincipalPolicyCommand } from '@aws-sdk/client-iam';
import { driverFactory } from '../../../../src/drivers/aws-identity-center/index.js';
import { principalOfCaller } from '../../../../src/drivers/aws-identity-center/simulate.js';
import { NOW, makeCtx, makeServices, settle } from '../../aws/helpers.js';
import { INSTANCE, MGMT, PROD, STORE, World } from './world.js';

const world = new World();
const config = {
  accountId: MGMT,
  region: 'eu-west-1',
  instanceArn: INSTANCE,
  identityStoreId: STORE,
};
const ROLE = `arn:aws:iam::${MGMT}:role/latchkey-identity-center`;
const go = <T>(p: Promise<T>): Promise<T> => settle(p, (ms) => vi.advanceTimersByTimeAsync(ms));
const meta = { $metadata: { httpStatusCode: 400 } };

describe('aws-identity-center check', () => {
  const services = makeServices();
  let driver = driverFactory(services);
  let sample: string;

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    vi.setSystemTime(NOW);
    world.fresh();
    driver = driverFactory(services);
    sample = world.addPermissionSet('ReadOnly').arn;
    world.addPermissionSet('Billing');
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(() => {
    world.restore();
  });

  it('proves assignments, grant groups and built permission sets by simulating the role, each action on its own resource types', async () => {
    const out = await go(driver.check(makeCtx({ type: 'aws-identity-center', config })));
    expect(out.ok).toBe(true);
    expect(out.checks.map((c) => c.name)).toEqual([
      'identity',
      'sso:ListInstances',
      'sso:ListPermissionSets',
      'identitystore:ListUsers',
      'simulate:assignments',
      'simulate:grant-groups',
      'simulate:built-permission-sets',
    ]);
    // Configured ids are not taken on trust: the instance is listed.
    expect(world.sso).toHaveReceivedCommand(ListInstancesCommand);
    const account = `arn:aws:sso:::account/${MGMT}`; // first account ListAccounts returns
    const anySet = 'arn:aws:sso:::permissionSet/ssoins-1234567890abcdef/*';
    const calls = world.iam
      .commandCalls(SimulatePrincipalPolicyCommand)
      .map((c) => c.args[0].input);
    expect(calls).toEqual([
      {
        PolicySourceArn: ROLE,
        ActionNames: ['sso:CreateAccountAssignment', 'sso:DeleteAccountAssignment'],
        ResourceArns: [INSTANCE, sample, account],
      },
      {
        PolicySourceArn: ROLE,
        ActionNames: [
          'sso:DescribeAccountAssignmentCreationStatus',
          'sso:DescribeAccountAssignmentDeletionStatus',
        ],
        ResourceArns: [INSTANCE],
      },
      {
        PolicySourceArn: ROLE,
        ActionNames: ['identitystore:CreateGroup'],
        ResourceArns: [`arn:aws:identitystore::${MGMT}:identitystore/${STORE}`],
      },
      {
        PolicySourceArn: ROLE,
        ActionNames: ['identitystore:CreateGroupMembership'],
        ResourceArns: [
          `arn:aws:identitystore::${MGMT}:identitystore/${STORE}`,
          'arn:aws:identitystore:::group/*',
          'arn:aws:identitystore:::user/*',
        ],
      },
      {
        PolicySourceArn: ROLE,
        ActionNames: ['identitystore:DeleteGroupMembership'],
        ResourceArns: [
          `arn:aws:identitystore::${MGMT}:identitystore/${STORE}`,
          'arn:aws:identitystore:::group/*',
          'arn:aws:identitystore:::user/*',
          'arn:aws:identitystore:::membership/*',
        ],
      },
      {
        PolicySourceArn: ROLE,
        ActionNames: ['identitystore:DeleteGroup'],
        ResourceArns: [
          `arn:aws:identitystore::${MGMT}:identitystore/${STORE}`,
          'arn:aws:identitystore:::group/*',
        ],
      },
      // Six actions on the same resources: two pages (the fake answers three per page).
      ...[undefined, '3'].map((Marker) => ({
        PolicySourceArn: ROLE,
        ActionNames: [
          'sso:CreatePermissionSet',
          'sso:PutInlinePolicyToPermissionSet',
          'sso:AttachManagedPolicyToPermissionSet',
          'sso:AttachCustomerManagedPolicyReferenceToPermissionSet',
          'sso:PutPermissionsBoundaryToPermissionSet',
          'sso:DeletePermissionSet',
        ],
        ResourceArns: [INSTANCE, anySet],
        ...(Marker !== undefined ? { Marker } : {}),
      })),
      {
        PolicySourceArn: ROLE,
        ActionNames: ['sso:ProvisionPermissionSet'],
        ResourceArns: [INSTANCE, anySet, account],
      },
      {
        PolicySourceArn: ROLE,
        ActionNames: ['sso:DescribePermissionSetProvisioningStatus'],
        ResourceArns: [INSTANCE],
      },
    ]);
  });

  it('a denied action fails its sub-check naming the action, the resource and the decision; the others still pass', async () => {
    world.denied.add(`sso:DeleteAccountAssignment@arn:aws:sso:::account/${MGMT}`);
    const out = await go(driver.check(makeCtx({ type: 'aws-identity-center', config })));
    expect(out.ok).toBe(false);
    const line = out.checks.find((c) => c.name === 'simulate:assignments');
    expect(line).toMatchObject({ ok: false });
    expect(line?.detail).toBe(
      `${ROLE} may not: sso:DeleteAccountAssignment on arn:aws:sso:::account/${MGMT}: implicitDeny`,
    );
    expect(out.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['simulate:assignments']);
  });

  it('a role without iam:SimulatePrincipalPolicy fails the simulated sub-checks with E_PRIVILEGE wording', async () => {
    world.iam.on(SimulatePrincipalPolicyCommand).rejects(
      Object.assign(new Error('not authorized to perform: iam:SimulatePrincipalPolicy'), {
        name: 'AccessDenied',
        ...meta,
      }),
    );
    const out = await go(driver.check(makeCtx({ type: 'aws-identity-center', config })));
    expect(out.ok).toBe(false);
    const sims = out.checks.filter((c) => c.name.startsWith('simulate:'));
    expect(sims).toHaveLength(3);
    for (const s of sims) {
      expect(s.ok).toBe(false);
      expect(s.detail).toContain('iam:SimulatePrincipalPolicy');
    }
  });

  it('permission-set isolation does not simulate group writes', async () => {
    const out = await go(
      driver.check(
        makeCtx({
          type: 'aws-identity-center',
          config: { ...config, isolation: 'permission-set' },
        }),
      ),
    );
    expect(out.checks.map((c) => c.name)).not.toContain('simulate:grant-groups');
    const actions = world.iam
      .commandCalls(SimulatePrincipalPolicyCommand)
      .flatMap((c) => c.args[0].input.ActionNames ?? []);
    expect(actions.some((a) => a.startsWith('identitystore:'))).toBe(false);
    expect(out.ok).toBe(true);
  });

  it('uses the first allowed account as the sample and assumeRoleArn as the principal', async () => {
    const role = `arn:aws:iam::${MGMT}:role/latchkey-sso`;
    world.sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: 'ASIAEXAMPLE',
        SecretAccessKey: 'secret',
        SessionToken: 'token',
        Expiration: new Date(NOW.getTime() + 3600_000),
      },
    });
    const out = await go(
      driver.check(
        makeCtx({
          type: 'aws-identity-center',
          config: { ...config, assumeRoleArn: role, allowedAccountIds: [PROD] },
        }),
      ),
    );
    expect(out.ok).toBe(true);
    expect(world.iam).toHaveReceivedCommandWith(SimulatePrincipalPolicyCommand, {
      PolicySourceArn: role,
      ActionNames: ['sso:CreateAccountAssignment', 'sso:DeleteAccountAssignment'],
      ResourceArns: [INSTANCE, sample, `arn:aws:sso:::account/${PROD}`],
    });
  });

  it('a configured instance that ListInstances does not return, or that is not ACTIVE, fails sso:ListInstances and stops there', async () => {
    world.sso.on(ListInstancesCommand).resolves({
      Instances: [
        {
          InstanceArn: 'arn:aws:sso:::instance/ssoins-ffffffffffffffff',
          IdentityStoreId: 'd-ffffffffff',
        },
      ],
    });
    const out = await go(driver.check(makeCtx({ type: 'aws-identity-center', config })));
    expect(out.ok).toBe(false);
    expect(out.checks.map((c) => [c.name, c.ok])).toEqual([
      ['identity', true],
      ['sso:ListInstances', false],
    ]);
    world.sso.on(ListInstancesCommand).resolves({
      Instances: [{ InstanceArn: INSTANCE, IdentityStoreId: STORE, Status: 'DELETE_IN_PROGRESS' }],
    });
    const again = await go(driver.check(makeCtx({ type: 'aws-identity-center', config })));
    expect(again.checks[1]).toMatchObject({
      name: 'sso:ListInstances',
      ok: false,
      detail: `instance ${INSTANCE} is DELETE_IN_PROGRESS, not ACTIVE`,
    });
  });

  it('credentials of another account fail identity', async () => {
    world.sts
      .on(GetCallerIdentityCommand)
      .resolves({ Account: PROD, Arn: `arn:aws:sts::${PROD}:assumed-role/x/y` });
    const out = await go(driver.check(makeCtx({ type: 'aws-identity-center', config })));
    expect(out.checks[0]).toMatchObject({
      name: 'identity',
      ok: false,
      detail: `credentials belong to account ${PROD}, not ${MGMT}`,
    });
    expect(out.ok).toBe(false);
  });

  it('turns an assumed-role session into its role, keeps users, refuses the root', () => {
    expect(principalOfCaller('arn:aws:sts::111111111111:assumed-role/latchkey-x/session-1')).toBe(
      'arn:aws:iam::111111111111:role/latchkey-x',
    );
    expect(principalOfCaller('arn:aws-us-gov:iam::111111111111:user/ops/jane')).toBe(
      'arn:aws-us-gov:iam::111111111111:user/ops/jane',
    );
    expect(() => principalOfCaller('arn:aws:iam::111111111111:root')).toThrow(/assumeRoleArn/);
  });
});
