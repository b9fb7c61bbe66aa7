/**
 * A Lambda function written to the common custom-integration contract (answers without
 * `status`, resources typed from the `resource_type` parameter, `get-status` answering
 * `{"status":"active"}`, credentials in a `secret` field), run through discover, grant,
 * rotate, revoke and check. The handler below is real code: every `InvokeCommand` the driver
 * sends is decoded and handed to it, and its return value is the payload the driver reads.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  InvokeCommand,
  type InvokeCommandInput,
  type InvokeCommandOutput,
  LambdaClient,
  ListTagsCommand,
} from '@aws-sdk/client-lambda';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { driverFactory } from '../../../../src/drivers/aws-lambda/index.js';
import { NOW, fakeSealer, makeCtx, makeServices, rejection } from '../../aws/helpers.js';

const ACCOUNT = '210987654321';
const FN = `arn:aws:lambda:eu-central-1:${ACCOUNT}:function:wiki-access`;
const RECIPIENT = 'A'.repeat(43);

// ---- the customer's function, written to the common contract --------------------------
interface ContractEvent {
  event_type: string;
  params: Record<string, unknown> & { custom_parameters?: Record<string, unknown> };
}
/** The application the function manages: its users, their passwords and grants. */
const app = {
  users: new Map<string, { password: string }>(),
  grants: new Map<string, { username: string; resources: string[]; permission: string }>(),
  passwordsMade: 0,
  seen: [] as ContractEvent[],
};
function newPassword(): string {
  app.passwordsMade += 1;
  return `pw-${app.passwordsMade}-${Math.random().toString(36).slice(2)}`;
}
function handler(event: ContractEvent): unknown {
  app.seen.push(event);
  const params = event.params;
  switch (event.event_type) {
    case 'get-status':
      return { status: 'active' };
    case 'list-resources':
      return {
        resources: [
          { id: 'space-eng', name: 'Engineering', type: params.resource_type },
          { id: 'space-ops', name: 'Operations', type: params.resource_type, metadata: { a: 1 } },
        ],
        permissions: [
          { id: 'admin', name: 'Admin' },
          { id: 'reader', name: 'Reader' },
        ],
      };
    case 'create-credentials': {
      const username = String(params.username);
      if (app.users.has(username)) return {};
      const password = newPassword();
      app.users.set(username, { password });
      return { secret: password };
    }
    case 'reset-credentials': {
      const user = app.users.get(String(params.username));
      if (!user) throw new Error('no such user');
      user.password = newPassword();
      return { secret: user.password };
    }
    case 'grant-access':
      app.grants.set(String(params.grant_id), {
        username: String(params.username),
        resources: params.resources as string[],
        permission: String(params.permission),
      });
      return { status: 'ok' };
    case 'revoke-access':
      app.grants.delete(String(params.grant_id));
      return { status: 'ok' };
    default:
      throw new Error(`unknown event ${event.event_type}`);
  }
}
// ----------------------------------------------------------------------------------------

const lambda = mockClient(LambdaClient);
const sts = mockClient(STSClient);

/** Invoke the handler as Lambda would: JSON in, JSON out, a thrown error as FunctionError. */
function invokeHandler(input: InvokeCommandInput): InvokeCommandOutput {
  const event = JSON.parse(
    Buffer.from(input.Payload as Uint8Array).toString('utf8'),
  ) as ContractEvent;
  let body: unknown;
  let functionError: string | undefined;
  try {
    body = handler(event);
  } catch (err) {
    functionError = 'Unhandled';
    body = { errorType: 'Error', errorMessage: (err as Error).message };
  }
  return {
    StatusCode: 200,
    ...(functionError ? { FunctionError: functionError } : {}),
    Payload: Buffer.from(JSON.stringify(body), 'utf8') as unknown as InvokeCommandOutput['Payload'],
    $metadata: { httpStatusCode: 200 },
  };
}

describe('aws-lambda: a function written to the common contract', () => {
  const services = makeServices();
  const byName = {
    functionName: 'wiki-access',
    region: 'eu-central-1',
    resourceType: 'wiki-space',
    customParameters: { base_url: 'https://wiki.example' },
  };

  beforeEach(() => {
    lambda.reset();
    sts.reset();
    app.users.clear();
    app.grants.clear();
    app.seen.length = 0;
    fakeSealer.sealed.length = 0;
    lambda
      .on(ListTagsCommand, { Resource: FN })
      .resolves({ Tags: { 'latchkey-connector-access': 'true' } });
    lambda.on(InvokeCommand).callsFake((input: InvokeCommandInput) => invokeHandler(input));
    sts.on(GetCallerIdentityCommand).resolves({
      Account: ACCOUNT,
      Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/latchkey/task`,
      UserId: 'AROA:task',
    });
  });
  afterAll(() => {
    lambda.restore();
    sts.restore();
  });

  it('configured by name + region: check, discover, grant, rotate, revoke', async () => {
    const driver = driverFactory({ ...services, now: () => NOW });
    const ctx = makeCtx({ type: 'aws-lambda', config: byName });

    // check: get-status answers {"status":"active"}
    expect(await driver.check(ctx)).toEqual({
      ok: true,
      checks: [
        { name: 'function-tag', ok: true, detail: 'latchkey-connector-access=true' },
        { name: 'get-status', ok: true, detail: 'active' },
      ],
    });

    // discover: no status, type from the resource_type parameter
    const found = await driver.discover(ctx);
    expect(found.resources).toEqual([
      { id: 'space-eng', name: 'Engineering', type: 'wiki-space', metadata: {} },
      { id: 'space-ops', name: 'Operations', type: 'wiki-space', metadata: { a: 1 } },
    ]);
    expect(found.permissions).toEqual([
      { id: 'admin', name: 'Admin' },
      { id: 'reader', name: 'Reader' },
    ]);

    // grant: create-credentials answers {secret}, grant-access {status: ok}
    const granted = await driver.grant(ctx, {
      grantId: 'g-1',
      grantee: { email: 'Ann@Example.com' },
      resources: [{ type: 'wiki-space', id: 'space-eng' }],
      permission: 'reader',
      recipientKey: RECIPIENT,
    });
    const firstPassword = app.users.get('ann@example.com')?.password;
    expect(firstPassword).toMatch(/^pw-1-/);
    expect(fakeSealer.sealed).toEqual([{ secret: firstPassword }]);
    expect(JSON.stringify(granted)).not.toContain(String(firstPassword));
    expect(granted).toMatchObject({
      username: 'ann@example.com',
      access: { functionArn: FN },
      credentials: { sealed: { alg: 'X25519-HKDF-SHA256-A256GCM' } },
      alreadyGranted: false,
    });
    expect(app.grants.get('g-1')).toEqual({
      username: 'ann@example.com',
      resources: ['space-eng'],
      permission: 'reader',
    });

    // rotate: reset-credentials answers {secret}
    const rotated = await driver.rotate(ctx, {
      target: { grantee: { email: 'ann@example.com' } },
      recipientKey: RECIPIENT,
    });
    const secondPassword = app.users.get('ann@example.com')?.password;
    expect(secondPassword).toMatch(/^pw-2-/);
    expect(fakeSealer.sealed[1]).toEqual({ secret: secondPassword });
    expect(JSON.stringify(rotated)).not.toContain(String(secondPassword));

    // revoke
    const revoked = await driver.revoke(ctx, {
      grantId: 'g-1',
      grantee: { email: 'Ann@Example.com' },
      resources: [{ type: 'wiki-space', id: 'space-eng' }],
      permission: 'reader',
    });
    expect(revoked).toMatchObject({ revoked: ['g-1'], alreadyRevoked: false });
    expect(app.grants.size).toBe(0);

    // what the function received
    expect(app.seen.map((e) => [e.event_type, e.params.resource_type])).toEqual([
      ['get-status', undefined],
      ['list-resources', 'wiki-space'],
      ['create-credentials', 'wiki-space'],
      ['grant-access', 'wiki-space'],
      ['reset-credentials', 'wiki-space'],
      ['revoke-access', 'wiki-space'],
    ]);
    expect(
      app.seen.every((e) => e.params.custom_parameters?.base_url === 'https://wiki.example'),
    ).toBe(true);
    // the name was resolved once, to the ARN the tag was checked on and Invoke was sent to
    expect(sts).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
    expect(lambda).toHaveReceivedCommandWith(ListTagsCommand, { Resource: FN });
    for (const call of lambda.commandCalls(InvokeCommand)) {
      expect(call.args[0].input.FunctionName).toBe(FN);
    }
  });

  it('keeps the tag gate for a function configured by name', async () => {
    lambda.on(ListTagsCommand, { Resource: FN }).resolves({ Tags: { team: 'wiki' } });
    const ctx = makeCtx({ type: 'aws-lambda', config: byName });
    const err = await rejection(driverFactory(services).discover(ctx));
    expect(err.code).toBe('E_PRIVILEGE');
    expect(err.message).toContain(`function ${FN} is not tagged latchkey-connector-access=true`);
    expect(lambda).not.toHaveReceivedCommand(InvokeCommand);
  });

  it('a qualified name keeps its qualifier; the tag is read on the unqualified ARN', async () => {
    const ctx = makeCtx({
      type: 'aws-lambda',
      config: { ...byName, functionName: 'wiki-access:live' },
    });
    await driverFactory(services).discover(ctx);
    expect(lambda).toHaveReceivedCommandWith(ListTagsCommand, { Resource: FN });
    expect(lambda).toHaveReceivedCommandWith(InvokeCommand, { FunctionName: `${FN}:live` });
  });

  it('refuses a config with both or neither of functionArn and functionName', async () => {
    for (const config of [{ region: 'eu-central-1' }, { ...byName, functionArn: FN }]) {
      const err = await rejection(
        driverFactory(services).discover(makeCtx({ type: 'aws-lambda', config })),
      );
      expect(err.code).toBe('E_INVALID');
      expect(err.message).toContain('exactly one of functionArn and functionName');
    }
    expect(lambda).not.toHaveReceivedAnyCommand();
    expect(sts).not.toHaveReceivedAnyCommand();
  });
});
