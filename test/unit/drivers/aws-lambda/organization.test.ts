import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  InvokeCommand,
  LambdaClient,
  ListTagsCommand,
  ResourceNotFoundException,
  type InvokeCommandOutput,
} from '@aws-sdk/client-lambda';
import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { driverFactory } from '../../../../src/drivers/aws-lambda/index.js';
import { makeCtx, makeServices, rejection } from '../../aws/helpers.js';
import {
  A,
  B,
  C,
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

const lambda = mockClient(LambdaClient);
const config = {
  functionArn: `arn:aws:lambda:eu-west-1:${HOME}:function:acme-access`,
  region: 'eu-west-1',
  regions: ['eu-west-1', 'us-east-1'],
  organization: { memberRoleName: MEMBER_ROLE, excludedAccountIds: [C] },
};

function answer(body: unknown): InvokeCommandOutput {
  return {
    StatusCode: 200,
    Payload: Buffer.from(JSON.stringify(body), 'utf8') as unknown as InvokeCommandOutput['Payload'],
    $metadata: { httpStatusCode: 200 },
  };
}

/** The function exists only in A (both regions), tagged; nowhere else. */
function serveFunctions(): { invoked: { account: string; region: string; event: unknown }[] } {
  const invoked: { account: string; region: string; event: unknown }[] = [];
  const exists = (account: string) => account === A;
  lambda.on(ListTagsCommand).callsFake(async (_i: unknown, getClient) => {
    const { account } = await whereOf(getClient);
    if (!exists(account)) {
      throw new ResourceNotFoundException({
        message: 'Function not found',
        $metadata: { httpStatusCode: 404 },
        Type: 'User',
      });
    }
    return { Tags: { 'latchkey-connector-access': 'true' } };
  });
  lambda
    .on(InvokeCommand)
    .callsFake(async (input: { FunctionName: string; Payload: Uint8Array }, getClient) => {
      const { account, region } = await whereOf(getClient);
      const event = JSON.parse(Buffer.from(input.Payload).toString('utf8')) as {
        event_type: string;
      };
      invoked.push({ account, region, event });
      expect(input.FunctionName).toBe(`arn:aws:lambda:${region}:${account}:function:acme-access`);
      if (event.event_type === 'list-resources') {
        return answer({
          status: 'ok',
          resources: [{ id: 'ws-1', type: 'workspace', name: `ws in ${region}` }],
          permissions: [{ id: 'editor' }],
        });
      }
      return answer({ status: 'ok' });
    });
  return { invoked };
}

describe('aws-lambda organization mode', () => {
  let driver = driverFactory(makeServices());
  const ctx = () => makeCtx({ type: 'aws-lambda', config });

  beforeEach(() => {
    for (const m of [lambda, sts, orgs, ec2]) m.reset();
    driver = driverFactory(makeServices());
  });
  afterAll(() => lambda.restore());

  it('discovers through each account’s own function with its member role; ids carry account and region', async () => {
    const { assumed } = serveOrganization({ ous: {}, accounts: { [ROOT]: [HOME, A, B, C] } });
    const { invoked } = serveFunctions();
    const out = await driver.discover(ctx());
    expect(invoked.map((i) => `${i.account}/${i.region}`).sort()).toEqual([
      `${A}/eu-west-1`,
      `${A}/us-east-1`,
    ]);
    expect(assumed.sort()).toEqual([memberRoleArnOf(A), memberRoleArnOf(B)]); // C excluded
    const ws = out.resources.filter((r) => r.type === 'workspace');
    expect(ws.map((r) => [r.id, r.parentId, r.metadata.accountId])).toEqual([
      [`lambda:${A}:eu-west-1:ws-1`, `aws-account:${A}`, A],
      [`lambda:${A}:us-east-1:ws-1`, `aws-account:${A}`, A],
    ]);
    expect(out.permissions).toEqual([{ id: 'editor', name: 'editor' }]);
    expect(out.warnings).toEqual([]); // no function in HOME and B: nothing deployed, no warning
  });

  it('grants through the function of the resources’ account and region, with ids as the function knows them', async () => {
    serveOrganization({ ous: {}, accounts: { [ROOT]: [HOME, A, B, C] } });
    const { invoked } = serveFunctions();
    await driver.grant(ctx(), {
      grantId: 'g-1',
      grantee: { email: 'jane@example.com' },
      resources: [{ type: 'workspace', id: `lambda:${A}:us-east-1:ws-1` }],
      permission: 'editor',
    });
    const grant = invoked.find(
      (i) => (i.event as { event_type: string }).event_type === 'grant-access',
    );
    expect(grant).toMatchObject({
      account: A,
      region: 'us-east-1',
      event: { params: { resources: ['ws-1'] } },
    });
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, { RoleArn: memberRoleArnOf(A) });
    const mixed = await rejection(
      driver.grant(ctx(), {
        grantId: 'g-2',
        grantee: { email: 'jane@example.com' },
        resources: [
          { type: 'workspace', id: `lambda:${A}:us-east-1:ws-1` },
          { type: 'workspace', id: `lambda:${A}:eu-west-1:ws-1` },
        ],
        permission: 'editor',
      }),
    );
    expect(mixed.code).toBe('E_INVALID');
    const excluded = await rejection(
      driver.grant(ctx(), {
        grantId: 'g-3',
        grantee: { email: 'jane@example.com' },
        resources: [{ type: 'workspace', id: `lambda:${C}:us-east-1:ws-1` }],
        permission: 'editor',
      }),
    );
    expect(excluded.code).toBe('E_GUARDRAIL');
    expect(invoked.filter((i) => i.account === C)).toEqual([]);
  });
});
