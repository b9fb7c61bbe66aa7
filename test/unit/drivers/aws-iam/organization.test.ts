import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  GetRoleCommand,
  GetRolePolicyCommand,
  IAMClient,
  ListRolePoliciesCommand,
  ListRolesCommand,
  ListRoleTagsCommand,
  ListUsersCommand,
  NoSuchEntityException,
  PutRolePolicyCommand,
  DeleteRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { ListQueuesCommand, ListQueueTagsCommand, SQSClient } from '@aws-sdk/client-sqs';
import { driverFactory } from '../../../../src/drivers/aws-iam/index.js';
import { makeCtx, makeServices, rejection } from '../../aws/helpers.js';
import {
  A,
  B,
  HOME,
  MEMBER_ROLE,
  ROOT,
  ec2,
  memberRoleArnOf,
  orgs,
  serveOrganization,
  sts,
  whereOf,
} from '../../aws/org-world.js';

const iam = mockClient(IAMClient);
const sqs = mockClient(SQSClient);
const all = [iam, sqs, ec2, sts, orgs];

const config = {
  accountId: HOME,
  regions: ['eu-west-1', 'us-east-1'],
  resourceTypes: ['iam-role', 'sqs-queue'],
  organization: { memberRoleName: MEMBER_ROLE, excludedAccountIds: [B] },
};

describe('aws-iam organization mode', () => {
  let driver = driverFactory(makeServices());
  const ctx = () => makeCtx({ type: 'aws-iam', config });

  beforeEach(() => {
    for (const m of all) m.reset();
    driver = driverFactory(makeServices());
  });
  afterAll(() => {
    iam.restore();
    sqs.restore();
  });

  it('lists global resources once per account and regional ones per region, each with its account', async () => {
    const { assumed } = serveOrganization({ ous: {}, accounts: { [ROOT]: [HOME, A, B] } });
    const calls: string[] = [];
    iam.on(ListRolesCommand).callsFake(async (_i: unknown, getClient) => {
      const { account } = await whereOf(getClient);
      calls.push(`ListRoles ${account}`);
      return {
        IsTruncated: false,
        Roles: [
          {
            RoleName: 'app',
            Arn: `arn:aws:iam::${account}:role/app`,
            Path: '/',
            RoleId: 'AROA1',
            CreateDate: new Date(),
            MaxSessionDuration: 3600,
          },
        ],
      };
    });
    iam.on(ListRoleTagsCommand).resolves({ Tags: [] });
    sqs.on(ListQueuesCommand).callsFake(async (_i: unknown, getClient) => {
      const { account, region } = await whereOf(getClient);
      calls.push(`ListQueues ${account} ${region}`);
      return { QueueUrls: [`https://sqs.${region}.amazonaws.com/${account}/jobs`] };
    });
    sqs.on(ListQueueTagsCommand).resolves({ Tags: {} });

    const out = await driver.discover(ctx());
    expect(calls.sort()).toEqual(
      [
        `ListRoles ${HOME}`,
        `ListRoles ${A}`,
        ...[HOME, A].flatMap((a) => [`ListQueues ${a} eu-west-1`, `ListQueues ${a} us-east-1`]),
      ].sort(),
    );
    expect(assumed).toEqual([memberRoleArnOf(A)]); // B excluded, HOME never assumed
    const ids = out.resources.map((r) => `${r.type} ${r.id} ${String(r.parentId)}`).sort();
    expect(ids).toEqual(
      [
        `aws-account aws-account:${HOME} undefined`,
        `aws-account aws-account:${A} undefined`,
        ...[HOME, A].flatMap((a) => [
          `iam-role arn:aws:iam::${a}:role/app aws-account:${a}`,
          `sqs-queue arn:aws:sqs:eu-west-1:${a}:jobs aws-account:${a}`,
          `sqs-queue arn:aws:sqs:us-east-1:${a}:jobs aws-account:${a}`,
        ]),
      ].sort(),
    );
    expect(out.warnings).toEqual([]);
  });

  it('grants with the member role of the grantee’s account and refuses the member role itself', async () => {
    serveOrganization({ ous: {}, accounts: { [ROOT]: [HOME, A, B] } });
    const by: string[] = [];
    iam.on(GetRolePolicyCommand).rejects(
      new NoSuchEntityException({
        message: 'cannot be found',
        $metadata: { httpStatusCode: 404 },
      }),
    );
    iam.on(ListRolePoliciesCommand).resolves({ PolicyNames: [], IsTruncated: false });
    iam.on(PutRolePolicyCommand).callsFake(async (_i: unknown, getClient) => {
      by.push((await whereOf(getClient)).account);
      return {};
    });
    iam.on(GetRoleCommand).resolves({
      Role: {
        RoleName: 'x',
        Arn: 'x',
        Path: '/',
        RoleId: 'x',
        CreateDate: new Date(),
        MaxSessionDuration: 3600,
      },
    });
    const grantee = `arn:aws:iam::${A}:role/dev`;
    await driver.grant(ctx(), {
      grantId: 'g-1',
      grantee: { email: 'jane@example.com', awsPrincipalArn: grantee },
      resources: [{ type: 'sqs-queue', id: `arn:aws:sqs:eu-west-1:${A}:jobs` }],
      permission: 'read',
    });
    expect(by).toEqual([A]);
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, { RoleArn: memberRoleArnOf(A) });
    // Assuming the member role through a grant would hand out the connector's reach.
    const own = await rejection(
      driver.grant(ctx(), {
        grantId: 'g-2',
        grantee: { email: 'jane@example.com', awsPrincipalArn: grantee },
        resources: [{ type: 'iam-role', id: memberRoleArnOf(A) }],
        permission: 'assume',
      }),
    );
    expect(own.code).toBe('E_GUARDRAIL');
    // An excluded account: refused before any change.
    const excluded = await rejection(
      driver.grant(ctx(), {
        grantId: 'g-3',
        grantee: { email: 'jane@example.com', awsPrincipalArn: `arn:aws:iam::${B}:role/dev` },
        resources: [{ type: 'sqs-queue', id: `arn:aws:sqs:eu-west-1:${B}:jobs` }],
        permission: 'read',
      }),
    );
    expect(excluded.code).toBe('E_GUARDRAIL');
    expect(by).toEqual([A]);
  });

  it('sweeps every account in scope with its own member role; an unreachable account is one error', async () => {
    serveOrganization({
      ous: {},
      accounts: { [ROOT]: [HOME, A, '444444444444'] },
      denyAssume: ['444444444444'],
    });
    const listed: string[] = [];
    iam.on(ListRolesCommand).callsFake(async (_i: unknown, getClient) => {
      listed.push((await whereOf(getClient)).account);
      return {
        IsTruncated: false,
        Roles: [
          {
            RoleName: 'dev',
            Arn: 'arn:aws:iam::222222222222:role/dev',
            Path: '/',
            RoleId: 'r',
            CreateDate: new Date(),
          },
        ],
      };
    });
    iam.on(ListUsersCommand).resolves({ IsTruncated: false, Users: [] });
    iam
      .on(ListRolePoliciesCommand)
      .resolves({ PolicyNames: ['latchkey-grant-old'], IsTruncated: false });
    iam.on(GetRolePolicyCommand).resolves({
      PolicyDocument: encodeURIComponent(
        JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Action: 'sqs:ReceiveMessage',
              Resource: '*',
              Condition: { DateLessThan: { 'aws:CurrentTime': '2026-01-01T00:00:00.000Z' } },
            },
          ],
        }),
      ),
    });
    iam.on(DeleteRolePolicyCommand).resolves({});
    const report = await driver.sweep!(ctx());
    expect(listed.sort()).toEqual([HOME, A]);
    expect(report.revoked).toHaveLength(2);
    expect(report.errors.map((e) => [e.item, e.code])).toEqual([
      ['aws-account:444444444444', 'E_PRIVILEGE'],
    ]);
  });
});
