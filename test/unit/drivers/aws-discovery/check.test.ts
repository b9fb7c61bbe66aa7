import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ListAccountsCommand, ListRootsCommand } from '@aws-sdk/client-organizations';
import { ListIndexesCommand } from '@aws-sdk/client-resource-explorer-2';
import { driverFactory } from '../../../../src/drivers/aws-discovery/index.js';
import { makeCtx, makeServices, rejection } from '../../aws/helpers.js';
import {
  CONNECTOR,
  HOME,
  HOME_ROLE_ARN,
  allMocks,
  makeDriver,
  orgs,
  re,
  serveWorld,
  sts,
} from './world.js';
import { AssumeRoleCommand } from '@aws-sdk/client-sts';

const ctxFor = (config: Record<string, unknown>) =>
  makeCtx({ id: 'aws-disc-1', type: 'aws-discovery', config });

describe('aws-discovery driver: check and unsupported kinds', () => {
  beforeEach(() => {
    for (const m of allMocks) m.reset();
  });
  afterAll(() => {
    for (const m of allMocks) m.restore();
  });

  it('reports identity, organization, Resource Explorer and each region in operator words', async () => {
    serveWorld({ [HOME]: { 'us-east-1': { deny: { redshift: 'AccessDenied' } } } });
    orgs.on(ListAccountsCommand).resolves({
      Accounts: [
        { Id: HOME, Name: 'management', State: 'ACTIVE' },
        { Id: '222222222222', Name: 'prod', State: 'ACTIVE' },
      ],
    });
    re.on(ListIndexesCommand).resolves({ Indexes: [{ Region: 'us-east-1', Type: 'AGGREGATOR' }] });
    const out = await makeDriver().check(
      ctxFor({
        connectorId: CONNECTOR,
        regions: ['eu-west-1', 'us-east-1'],
        organization: { enabled: true, memberRoleName: 'latchkey-discovery' },
      }),
    );
    expect(out.ok).toBe(false);
    expect(out.checks.map((c) => [c.name, c.ok])).toEqual([
      ['identity', true],
      ['organization', true],
      ['member-role', true],
      ['resource-explorer', true],
      ['rds eu-west-1', true],
      ['redshift eu-west-1', true],
      ['rds us-east-1', true],
      ['redshift us-east-1', false],
    ]);
    expect(out.checks[0]?.detail).toBe(`connected to AWS as ${HOME_ROLE_ARN} (account ${HOME})`);
    expect(out.checks[1]?.detail).toContain(
      'member accounts are reached through role latchkey-discovery',
    );
    expect(out.checks[2]?.detail).toBe('assumed latchkey-discovery in account 222222222222 (prod)');
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: 'arn:aws:iam::222222222222:role/latchkey-discovery',
    });
    expect(out.checks[3]?.detail).toBe(
      'Resource Explorer aggregator index in us-east-1: regions are searched through it',
    );
    expect(out.checks[7]?.detail).toContain('not allowed to perform redshift:DescribeClusters');
    expect(orgs).toHaveReceivedCommandWith(ListAccountsCommand, { MaxResults: 20 });
  });

  it('explains a refused organization listing and a missing aggregator without failing on the latter', async () => {
    serveWorld({});
    orgs.on(ListRootsCommand).rejects(
      Object.assign(new Error('denied'), {
        name: 'AccessDeniedException',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    re.on(ListIndexesCommand).resolves({ Indexes: [] });
    const out = await makeDriver().check(
      ctxFor({
        connectorId: CONNECTOR,
        regions: ['eu-west-1'],
        organization: {
          enabled: true,
          memberRoleName: 'latchkey-discovery',
          excludedOuIds: ['ou-ab12-sandbox1'],
        },
      }),
    );
    const org = out.checks.find((c) => c.name === 'organization');
    expect(org?.ok).toBe(false);
    expect(org?.detail).toContain(
      "cannot list the organization's accounts (run the connector in the management account or a delegated administrator",
    );
    const reCheck = out.checks.find((c) => c.name === 'resource-explorer');
    expect(reCheck).toEqual({
      name: 'resource-explorer',
      ok: true,
      detail: 'no Resource Explorer aggregator index: every configured region is listed one by one',
    });
    expect(out.ok).toBe(false);
  });

  it('says when the member role cannot be assumed in a member account', async () => {
    serveWorld({}, { denyAssume: ['444444444444'] });
    orgs.on(ListAccountsCommand).resolves({
      Accounts: [
        { Id: '333333333333', Name: 'excluded', State: 'ACTIVE' },
        { Id: '444444444444', Name: 'analytics', State: 'ACTIVE' },
      ],
    });
    const out = await makeDriver().check(
      ctxFor({
        connectorId: CONNECTOR,
        regions: ['eu-west-1'],
        useResourceExplorer: false,
        organization: {
          enabled: true,
          memberRoleName: 'latchkey-discovery',
          excludedAccountIds: ['333333333333'],
        },
      }),
    );
    const m = out.checks.find((c) => c.name === 'member-role');
    expect(m?.ok).toBe(false);
    expect(m?.detail).toContain(
      'cannot assume arn:aws:iam::444444444444:role/latchkey-discovery in account 444444444444 (analytics)',
    );
    expect(m?.detail).toContain('Deploy the role to every member account');
    expect(out.checks.some((c) => c.name === 'resource-explorer')).toBe(false);
    expect(out.ok).toBe(false);
  });

  it('answers grant, revoke, rotate and cleanup with E_UNSUPPORTED and advertises discover and check', async () => {
    const driver = driverFactory(makeServices());
    expect(driver.type).toBe('aws-discovery');
    expect(driver.kinds).toEqual(['discover', 'check']);
    const ctx = ctxFor({ connectorId: CONNECTOR, regions: ['eu-west-1'] });
    const params = {
      grantId: 'g-1',
      grantee: { email: 'a@example.com' },
      resources: [],
      permission: 'read',
    };
    for (const p of [
      driver.grant(ctx, params),
      driver.revoke(ctx, params),
      driver.rotate(ctx, { target: { serviceAccount: true } }),
      driver.cleanup(ctx, { usernames: ['x'] }),
    ]) {
      expect((await rejection(p)).code).toBe('E_UNSUPPORTED');
    }
    await driver.close();
  });
});
