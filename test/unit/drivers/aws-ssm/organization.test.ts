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
import {
  DescribeInstanceInformationCommand,
  DescribeSessionsCommand,
  SSMClient,
  SSMServiceException,
} from '@aws-sdk/client-ssm';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { driverFactory } from '../../../../src/drivers/aws-ssm/index.js';
import { makeCtx, makeServices, rejection } from '../../aws/helpers.js';
import {
  A,
  B,
  C,
  HOME,
  MEMBER_ROLE,
  OU_SANDBOX,
  REGIONS,
  ROOT,
  ec2,
  memberRoleArnOf,
  orgs,
  serveOrganization,
  sts,
  whereOf,
} from '../../aws/org-world.js';

const iam = mockClient(IAMClient);
const ssm = mockClient(SSMClient);
const all = [iam, ssm, ec2, sts, orgs];

const tree = {
  ous: { [ROOT]: [OU_SANDBOX] },
  accounts: { [ROOT]: [HOME, A, B], [OU_SANDBOX]: [C] },
};

const config = {
  accountId: HOME,
  regions: REGIONS,
  organization: { memberRoleName: MEMBER_ROLE },
};

/** Two instances per (account, region); `deny` makes SSM refuse in that account+region. */
function serveInstances(deny: string[] = []): {
  calls: { op: string; account: string; region: string }[];
} {
  const calls: { op: string; account: string; region: string }[] = [];
  const ids = (account: string, region: string) => [
    `i-0${account.slice(0, 4)}${REGIONS.indexOf(region)}00000001`,
    `i-0${account.slice(0, 4)}${REGIONS.indexOf(region)}00000002`,
  ];
  ssm
    .on(DescribeInstanceInformationCommand)
    .callsFake(async (input: { NextToken?: string }, getClient) => {
      const { account, region } = await whereOf(getClient);
      calls.push({ op: 'DescribeInstanceInformation', account, region });
      if (deny.includes(`${account}/${region}`)) {
        throw new SSMServiceException({
          name: 'AccessDeniedException',
          message: 'not authorized to perform: ssm:DescribeInstanceInformation',
          $fault: 'client',
          $metadata: { httpStatusCode: 400 },
        });
      }
      // Two pages of one instance each.
      const [first, second] = ids(account, region);
      return input.NextToken
        ? { InstanceInformationList: [{ InstanceId: second, PingStatus: 'Online' }] }
        : {
            InstanceInformationList: [{ InstanceId: first, PingStatus: 'Online' }],
            NextToken: 'p2',
          };
    });
  ec2
    .on(DescribeInstancesCommand)
    .callsFake(async (input: { InstanceIds: string[] }, getClient) => {
      const { account, region } = await whereOf(getClient);
      calls.push({ op: 'DescribeInstances', account, region });
      return {
        Reservations: [
          {
            Instances: input.InstanceIds.map((InstanceId) => ({
              InstanceId,
              Tags: [{ Key: 'Name', Value: `web-${account.slice(0, 1)}` }],
            })),
          },
        ],
      };
    });
  return { calls };
}

describe('aws-ssm organization mode', () => {
  let services = makeServices();
  let driver = driverFactory(services);
  const ctx = (cfg: Record<string, unknown> = config) => makeCtx({ type: 'aws-ssm', config: cfg });

  beforeEach(() => {
    for (const m of all) m.reset();
    services = makeServices();
    driver = driverFactory(services);
  });
  afterAll(() => {
    for (const m of [iam, ssm]) m.restore();
  });

  it('discovers every account and region with that account’s member role; one failing account or region is a warning', async () => {
    const { assumed } = serveOrganization({ ...tree, denyAssume: [B] });
    const { calls } = serveInstances([`${C}/us-east-1`]);
    const out = await driver.discover(ctx());

    // Accounts, each a parent resource; B unreachable.
    const accounts = out.resources.filter((r) => r.type === 'aws-account');
    expect(accounts.map((r) => [r.id, r.metadata.reachable])).toEqual([
      [`aws-account:${HOME}`, true],
      [`aws-account:${A}`, true],
      [`aws-account:${B}`, false],
      [`aws-account:${C}`, true],
    ]);
    // Instances carry their account in ARN, metadata and parent.
    const instances = out.resources.filter((r) => r.type === 'ec2-instance');
    expect(instances).toHaveLength(2 * 2 + 2 * 2 + 2); // HOME, A: 2 regions; C: 1 region
    for (const r of instances) {
      const account = String(r.metadata.accountId);
      expect(r.id).toMatch(
        new RegExp(
          `^arn:aws:ec2:(eu-west-1|us-east-1):${account}:instance/i-0${account.slice(0, 4)}`,
        ),
      );
      expect(r.parentId).toBe(`aws-account:${account}`);
    }
    expect(out.warnings.map((w) => [w.resourceId, w.code])).toEqual([
      [`aws-account:${B}`, 'E_PRIVILEGE'],
      [`aws-account:${C}`, 'E_PRIVILEGE'],
    ]);
    expect(out.warnings[0]?.message).toContain('sts:AssumeRole');
    expect(out.warnings[1]?.message).toContain('region us-east-1');

    // Exactly the member role of each member account, once; never for the home account.
    expect([...assumed].sort()).toEqual([A, B, C].map(memberRoleArnOf));
    // AWS calls per account: 2 pages of DescribeInstanceInformation and 1 DescribeInstances
    // per region; nothing in B after its role failed.
    const count = (op: string, account: string) =>
      calls.filter((c) => c.op === op && c.account === account).length;
    for (const a of [HOME, A]) {
      expect(count('DescribeInstanceInformation', a)).toBe(4);
      expect(count('DescribeInstances', a)).toBe(2);
    }
    expect(count('DescribeInstanceInformation', B)).toBe(0);
    expect(count('DescribeInstanceInformation', C)).toBe(3); // us-east-1 refused at once
    expect(count('DescribeInstances', C)).toBe(1);
  });

  it('grants in the grantee’s account with its member role, and refuses an excluded account before any change', async () => {
    serveOrganization(tree);
    const putBy: string[] = [];
    iam.on(GetRolePolicyCommand).rejects(
      new NoSuchEntityException({
        message: 'cannot be found',
        $metadata: { httpStatusCode: 404 },
      }),
    );
    iam.on(ListRolePoliciesCommand).resolves({ PolicyNames: [], IsTruncated: false });
    iam.on(PutRolePolicyCommand).callsFake(async (_input: unknown, getClient) => {
      putBy.push((await whereOf(getClient)).account);
      return {};
    });
    const grantee = `arn:aws:iam::${A}:role/AWSReservedSSO_Dev_0123456789abcdef`;
    const instance = `arn:aws:ec2:us-east-1:${A}:instance/i-0aaaa00000000001`;
    const out = await driver.grant(ctx(), {
      grantId: 'g-org-1',
      grantee: { email: 'jane@example.com', awsPrincipalArn: grantee },
      resources: [{ type: 'ec2-instance', id: instance }],
      permission: 'shell',
    });
    expect(putBy).toEqual([A]);
    expect(out.access).toMatchObject({ accountId: A, principalArn: grantee });
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, { RoleArn: memberRoleArnOf(A) });
    const doc = String(iam.commandCalls(PutRolePolicyCommand)[0]?.args[0].input.PolicyDocument);
    expect(doc).toContain(instance);

    // An instance of another account than the grantee's: refused, nothing put.
    const other = await rejection(
      driver.grant(ctx(), {
        grantId: 'g-org-2',
        grantee: { email: 'jane@example.com', awsPrincipalArn: grantee },
        resources: [
          { type: 'ec2-instance', id: `arn:aws:ec2:us-east-1:${B}:instance/i-0bbbb00000000001` },
        ],
        permission: 'shell',
      }),
    );
    expect(other.code).toBe('E_INVALID');
    // The grantee's account is under an excluded OU: refused, nothing put.
    const excluded = await rejection(
      driver.grant(
        ctx({
          ...config,
          organization: { memberRoleName: MEMBER_ROLE, excludedOuIds: [OU_SANDBOX] },
        }),
        {
          grantId: 'g-org-3',
          grantee: { email: 'jane@example.com', awsPrincipalArn: `arn:aws:iam::${C}:role/dev` },
          resources: [
            { type: 'ec2-instance', id: `arn:aws:ec2:us-east-1:${C}:instance/i-0cccc00000000001` },
          ],
          permission: 'shell',
        },
      ),
    );
    expect(excluded.code).toBe('E_GUARDRAIL');
    expect(putBy).toEqual([A]);
  });

  it('revokes in the grantee’s account even when it is now excluded (taking access away is never refused)', async () => {
    serveOrganization(tree);
    const by: string[] = [];
    const policy = {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: 'ssm:StartSession',
          Resource: [`arn:aws:ec2:eu-west-1:${C}:instance/i-0cccc00000000001`],
        },
      ],
    };
    iam
      .on(GetRolePolicyCommand)
      .resolves({ PolicyDocument: encodeURIComponent(JSON.stringify(policy)) });
    iam.on(DeleteRolePolicyCommand).callsFake(async (_input: unknown, getClient) => {
      by.push((await whereOf(getClient)).account);
      return {};
    });
    ssm.on(DescribeSessionsCommand).resolves({ Sessions: [] });
    const out = await driver.revoke(
      ctx({ ...config, organization: { memberRoleName: MEMBER_ROLE, excludedAccountIds: [C] } }),
      {
        grantId: 'g-org-3',
        grantee: { email: 'jane@example.com', awsPrincipalArn: `arn:aws:iam::${C}:role/dev` },
        resources: [],
        permission: 'shell',
      },
    );
    expect(out.revoked).toEqual(['latchkey-ssm-grant-g-org-3']);
    expect(by).toEqual([C]);
    expect(ssm).toHaveReceivedCommandWith(DescribeSessionsCommand, {
      Filters: [{ key: 'Target', value: 'i-0cccc00000000001' }],
    });
  });
});
