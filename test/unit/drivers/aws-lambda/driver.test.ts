import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  InvokeCommand,
  type InvokeCommandOutput,
  LambdaClient,
  LambdaServiceException,
  ListTagsCommand,
} from '@aws-sdk/client-lambda';
import { driverFactory } from '../../../../src/drivers/aws-lambda/index.js';
import { FakeHttpHandler, restJsonError } from '../../aws/fake-http.js';
import { NOW, fakeSealer, makeCtx, makeServices, rejection, settle } from '../../aws/helpers.js';

const ACCOUNT = '123456789012';
const FN = `arn:aws:lambda:eu-west-1:${ACCOUNT}:function:acme-access`;
const config = {
  functionArn: `${FN}:live`,
  region: 'eu-west-1',
  customParameters: { tenant: 'acme', dryRun: false },
};
const RECIPIENT = 'A'.repeat(43);

const lambda = mockClient(LambdaClient);

function answer(body: unknown, extra: Partial<InvokeCommandOutput> = {}): InvokeCommandOutput {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return {
    StatusCode: 200,
    ExecutedVersion: '7',
    Payload: Buffer.from(text, 'utf8') as unknown as InvokeCommandOutput['Payload'],
    $metadata: { httpStatusCode: 200 },
    ...extra,
  };
}

function sentEvents(): { event_type: string; params: Record<string, unknown> }[] {
  return lambda.commandCalls(InvokeCommand).map(
    (c) =>
      JSON.parse(Buffer.from(c.args[0].input.Payload as Uint8Array).toString('utf8')) as {
        event_type: string;
        params: Record<string, unknown>;
      },
  );
}

const tagged = () =>
  lambda
    .on(ListTagsCommand)
    .resolves({ Tags: { 'latchkey-connector-access': 'true', team: 'iam' } });

const grantParams = {
  grantId: 'g-9',
  grantee: { email: 'Jane.Doe@Example.com' },
  resources: [
    { type: 'workspace', id: 'ws-1' },
    { type: 'workspace', id: 'ws-2' },
  ],
  permission: 'editor',
  expiresAt: '2026-11-26T08:00:00.000Z',
  recipientKey: RECIPIENT,
};

describe('aws-lambda driver', () => {
  let clock = NOW;
  const services = { ...makeServices(), now: () => clock };
  const ctx = makeCtx({ type: 'aws-lambda', config });

  beforeEach(() => {
    lambda.reset();
    fakeSealer.sealed.length = 0;
    clock = NOW;
  });
  afterAll(() => {
    lambda.restore();
  });

  it('never invokes a function without the connector-access tag', async () => {
    const variants: Record<string, string>[] = [
      {},
      { 'latchkey-connector-access': 'false' },
      { 'apono-connector-access': 'true' },
    ];
    for (const tags of variants) {
      lambda.reset();
      lambda.on(ListTagsCommand).resolves({ Tags: tags });
      const driver = driverFactory(services);
      const err = await rejection(driver.grant(ctx, grantParams));
      expect(err.code).toBe('E_PRIVILEGE');
      expect(err.message).toContain('latchkey-connector-access=true');
      expect(lambda).toHaveReceivedCommandWith(ListTagsCommand, { Resource: FN });
      expect(lambda).not.toHaveReceivedCommand(InvokeCommand);
    }
  });

  it('grant: create-credentials then grant-access with the documented params; credentials sealed', async () => {
    tagged();
    lambda
      .on(InvokeCommand)
      .resolvesOnce(
        answer({
          status: 'ok',
          username: 'jane_doe',
          credentials: { password: 'function-made-secret' },
        }),
      )
      .resolvesOnce(answer({ status: 'success', access: { url: 'https://acme.example/ws' } }));
    const driver = driverFactory(services);
    const out = await driver.grant(ctx, grantParams);
    expect(lambda).toHaveReceivedCommandWith(InvokeCommand, {
      FunctionName: `${FN}:live`,
      InvocationType: 'RequestResponse',
    });
    expect(sentEvents()).toEqual([
      {
        event_type: 'create-credentials',
        params: {
          username: 'jane.doe@example.com',
          email: 'Jane.Doe@Example.com',
          grant_id: 'g-9',
          resource_type: 'workspace',
          request_id: 'cmd-1',
          custom_parameters: { tenant: 'acme', dryRun: false },
        },
      },
      {
        event_type: 'grant-access',
        params: {
          grant_id: 'g-9',
          username: 'jane_doe',
          email: 'Jane.Doe@Example.com',
          resource_type: 'workspace',
          resources: ['ws-1', 'ws-2'],
          permission: 'editor',
          expires_at: '2026-11-26T08:00:00.000Z',
          request_id: 'cmd-1',
          custom_parameters: { tenant: 'acme', dryRun: false },
        },
      },
    ]);
    expect(fakeSealer.sealed).toEqual([{ password: 'function-made-secret' }]);
    expect(JSON.stringify(out)).not.toContain('function-made-secret');
    expect(out).toMatchObject({
      username: 'jane_doe',
      alreadyGranted: false,
      access: { functionArn: `${FN}:live`, url: 'https://acme.example/ws' },
      credentials: { sealed: { alg: 'X25519-HKDF-SHA256-A256GCM' } },
    });
  });

  it('checks the tag before the first use and trusts it only for tagCacheSeconds', async () => {
    tagged();
    lambda.on(InvokeCommand).resolves(answer({ status: 'ok', resources: [] }));
    const driver = driverFactory(services);
    await driver.discover(ctx);
    await driver.discover(ctx);
    expect(lambda).toHaveReceivedCommandTimes(ListTagsCommand, 1);
    clock = new Date(NOW.getTime() + 301_000);
    await driver.discover(ctx);
    expect(lambda).toHaveReceivedCommandTimes(ListTagsCommand, 2);
    expect(lambda).toHaveReceivedCommandTimes(InvokeCommand, 3);
  });

  it.each([
    [
      'FunctionError (unhandled exception)',
      answer(
        {
          errorType: 'TypeError',
          errorMessage: "Cannot read properties of undefined (reading 'id')",
          trace: ['at x'],
        },
        { FunctionError: 'Unhandled' },
      ),
      /failed on list-resources \(Unhandled\): TypeError: Cannot read properties/,
    ],
    ['malformed JSON', answer('{"status": "ok", '), /not JSON/],
    [
      'JSON nested too deep (refused before parsing)',
      answer(`{"status":"ok","resources":${'['.repeat(400)}${']'.repeat(400)}}`),
      /nested deeper than 64 levels/,
    ],
    [
      'unknown status',
      answer({ status: 'pending', resources: [] }),
      /outside the contract: status/,
    ],
    [
      'a resource without id',
      answer({ resources: [{ type: 'x' }] }),
      /outside the contract: resources\.0\.id/,
    ],
    [
      'wrong field type',
      answer({ status: 'ok', resources: [{ id: 1, type: 'x' }] }),
      /outside the contract: resources\.0\.id/,
    ],
    [
      'oversized payload',
      answer({ status: 'ok', resources: [], pad: 'x'.repeat(2000) }),
      /over the 1024-byte limit/,
    ],
    [
      'status error',
      answer({ status: 'error', message: 'upstream API is down' }),
      /reported an error on list-resources: upstream API is down/,
    ],
  ])('reports %s as a clear E_REMOTE error', async (_name, reply, pattern) => {
    tagged();
    lambda.on(InvokeCommand).resolves(reply);
    const driver = driverFactory(services);
    const small = makeCtx({ type: 'aws-lambda', config: { ...config, maxResponseBytes: 1024 } });
    const err = await rejection(driver.discover(small));
    expect(err.code).toBe('E_REMOTE');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(pattern);
    expect(err.message).not.toContain('at x');
  });

  it.each([
    [
      'a password field',
      { password: 'hunter2' },
      /credentials in 'password', which the contract does not read/,
    ],
    ['a token field', { status: 'ok', api_token: 't' }, /credentials in 'api_token'/],
    ['a numeric secret', { secret: 9876 }, /outside the contract: secret/],
    ['an empty secret', { secret: '' }, /outside the contract: secret/],
    ['a nested secret', { secret: { db: { password: 'x' } } }, /outside the contract: secret/],
    [
      'credentials and secret disagreeing',
      { credentials: { secret: 'a' }, secret: 'b' },
      /two different values of 'secret'/,
    ],
  ])(
    'rotate: an answer with %s is an error, never credentials dropped',
    async (_n, body, pattern) => {
      tagged();
      lambda.on(InvokeCommand).resolves(answer(body));
      const err = await rejection(
        driverFactory(services).rotate(ctx, {
          target: { grantee: { email: 'jane@example.com' } },
          recipientKey: RECIPIENT,
        }),
      );
      expect(err.code).toBe('E_REMOTE');
      expect(err.message).toMatch(pattern);
      expect(err.message).not.toMatch(/hunter2|9876/);
      expect(fakeSealer.sealed).toEqual([]);
    },
  );

  it('reads field names by words: credential-looking ones refused, look-alikes kept', async () => {
    const { unreadCredentialFields } =
      await import('../../../../src/drivers/aws-lambda/protocol.js');
    expect(
      unreadCredentialFields({
        password: 'x',
        db_password: 'x',
        accessToken: 'x',
        'api-key': 'x',
        privateKey: 'x',
        secret_key: 'x',
        credential: 'x',
        passthrough: 'x',
        key_id: 'x',
        username: 'x',
        secret: 'x',
        credentials: {},
        message: 'x',
      }),
    ).toEqual([
      'password',
      'db_password',
      'accessToken',
      'api-key',
      'privateKey',
      'secret_key',
      'credential',
    ]);
  });

  it('grant: a create-credentials answer whose credentials cannot be read stops the grant', async () => {
    tagged();
    lambda.on(InvokeCommand).resolves(answer({ status: 'ok', token: 'abc' }));
    const err = await rejection(driverFactory(services).grant(ctx, grantParams));
    expect(err.code).toBe('E_REMOTE');
    expect(err.message).toContain("answered create-credentials with credentials in 'token'");
    expect(sentEvents().map((e) => e.event_type)).toEqual(['create-credentials']);
  });

  it('accepts answers without status, and secret as a string map', async () => {
    tagged();
    lambda
      .on(InvokeCommand)
      .resolvesOnce(answer({ secret: { username: 'jd', password: 'p1' } }))
      .resolvesOnce(answer({}))
      .resolvesOnce(answer({ secret: 'p2', credentials: { username: 'jd' } }));
    const driver = driverFactory(services);
    const out = await driver.grant(ctx, grantParams);
    expect(out.credentials).toBeDefined();
    await driver.rotate(ctx, {
      target: { grantee: { email: 'jane@example.com' } },
      recipientKey: RECIPIENT,
    });
    expect(fakeSealer.sealed).toEqual([
      { username: 'jd', password: 'p1' },
      { username: 'jd', secret: 'p2' },
    ]);
    expect(sentEvents()[2]).toMatchObject({
      event_type: 'reset-credentials',
      params: { resource_type: 'custom' },
    });
  });

  it('revoke: a function answering E_NOT_FOUND means already revoked', async () => {
    tagged();
    lambda
      .on(InvokeCommand)
      .resolves(answer({ status: 'error', error_code: 'E_NOT_FOUND', message: 'no such grant' }));
    const out = await driverFactory(services).revoke(ctx, {
      ...grantParams,
      terminateSessions: true,
    });
    expect(out).toMatchObject({ alreadyRevoked: true, revoked: [], sessionsTerminated: 0 });
    expect(sentEvents()[0]).toMatchObject({
      event_type: 'revoke-access',
      params: { grant_id: 'g-9', terminate_sessions: true },
    });
  });

  it('revoke reports what the function did', async () => {
    tagged();
    lambda.on(InvokeCommand).resolves(answer({ status: 'ok', sessions_terminated: 2 }));
    const out = await driverFactory(services).revoke(ctx, grantParams);
    expect(out).toMatchObject({ alreadyRevoked: false, revoked: ['g-9'], sessionsTerminated: 2 });
  });

  it('rotate seals the reset credentials; cleanup keeps what the function refuses', async () => {
    tagged();
    lambda
      .on(InvokeCommand)
      .resolvesOnce(answer({ status: 'ok', credentials: { password: 'rotated-secret' } }))
      .resolvesOnce(answer({ status: 'ok' }))
      .resolvesOnce(answer({ status: 'ok', deleted: false, reason: 'owner of shared resources' }))
      .resolvesOnce(answer({ status: 'error', message: 'user is locked' }));
    const driver = driverFactory(services);
    const rotated = await driver.rotate(ctx, {
      target: { grantee: { email: 'jane@example.com' } },
      recipientKey: RECIPIENT,
    });
    expect(fakeSealer.sealed).toEqual([{ password: 'rotated-secret' }]);
    expect(JSON.stringify(rotated)).not.toContain('rotated-secret');
    const cleaned = await driver.cleanup(ctx, { usernames: ['a', 'b', 'c'] });
    expect(cleaned.dropped).toEqual(['a']);
    expect(cleaned.kept).toEqual([
      { username: 'b', reason: 'owner of shared resources', code: 'E_NOT_MANAGED' },
      {
        username: 'c',
        reason: expect.stringContaining('user is locked') as unknown,
        code: 'E_REMOTE',
      },
    ]);
    expect(sentEvents().map((e) => e.event_type)).toEqual([
      'reset-credentials',
      'delete-credentials',
      'delete-credentials',
      'delete-credentials',
    ]);
    expect((await rejection(driver.rotate(ctx, { target: { serviceAccount: true } }))).code).toBe(
      'E_UNSUPPORTED',
    );
  });

  it('discover maps the function’s resources and permissions', async () => {
    tagged();
    lambda.on(InvokeCommand).resolves(
      answer({
        status: 'ok',
        resources: [
          { id: 'ws-1', name: 'Sales', type: 'workspace', metadata: { region: 'eu' } },
          { id: 'ws-1/board-1', type: 'board', parent_id: 'ws-1' },
        ],
        permissions: [{ id: 'viewer', name: 'Viewer' }, { id: 'editor' }],
      }),
    );
    const out = await driverFactory(services).discover(ctx);
    expect(out).toEqual({
      resources: [
        { id: 'ws-1', name: 'Sales', type: 'workspace', metadata: { region: 'eu' } },
        { id: 'ws-1/board-1', name: 'ws-1/board-1', type: 'board', parentId: 'ws-1', metadata: {} },
      ],
      permissions: [
        { id: 'viewer', name: 'Viewer' },
        { id: 'editor', name: 'editor' },
      ],
      warnings: [],
    });
    expect(sentEvents()[0]?.event_type).toBe('list-resources');
  });

  it('check reports the tag and get-status; AccessDenied on Invoke names lambda:InvokeFunction', async () => {
    tagged();
    lambda
      .on(InvokeCommand)
      .resolves(answer({ status: 'ok', version: '2.3.1', message: 'healthy' }));
    const ok = await driverFactory(services).check(ctx);
    expect(ok).toEqual({
      ok: true,
      serverVersion: '2.3.1',
      checks: [
        { name: 'function-tag', ok: true, detail: 'latchkey-connector-access=true' },
        { name: 'get-status', ok: true, detail: 'healthy' },
      ],
    });
    lambda.on(InvokeCommand).rejects(
      new LambdaServiceException({
        name: 'AccessDeniedException',
        message: 'not authorized to perform: lambda:InvokeFunction',
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
      }),
    );
    const err = await rejection(driverFactory(services).discover(ctx));
    expect(err.code).toBe('E_PRIVILEGE');
    expect(err.message).toContain('lambda:InvokeFunction');
  });

  it('refuses mixed resource types and a bad config before any call', async () => {
    const driver = driverFactory(services);
    const mixed = {
      ...grantParams,
      resources: [
        { type: 'a', id: '1' },
        { type: 'b', id: '2' },
      ],
    };
    expect((await rejection(driver.grant(ctx, mixed))).code).toBe('E_INVALID');
    const bad = makeCtx({ type: 'aws-lambda', config: { ...config, region: 'us-east-1' } });
    expect((await rejection(driver.discover(bad))).code).toBe('E_INVALID');
    expect(lambda).not.toHaveReceivedAnyCommand();
  });
});

describe('aws-lambda throttling (real SDK stack, fake transport)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('retries a throttled Invoke then surfaces E_THROTTLED', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    const http = new FakeHttpHandler(
      [
        {
          statusCode: 200,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ Tags: { 'latchkey-connector-access': 'true' } }),
        },
      ],
      restJsonError('TooManyRequestsException', 'Rate Exceeded.', 429),
    );
    const services = makeServices({ maxAttempts: 2, requestHandler: http });
    const ctx = makeCtx({ type: 'aws-lambda', config });
    const err = await settle(rejection(driverFactory(services).discover(ctx)), (ms) =>
      vi.advanceTimersByTimeAsync(ms),
    );
    expect(err.code).toBe('E_THROTTLED');
    expect(http.requests.map((r) => `${r.method} ${decodeURIComponent(r.path)}`)).toEqual([
      `GET /2017-03-31/tags/${FN}`,
      `POST /2015-03-31/functions/${FN}:live/invocations`,
      `POST /2015-03-31/functions/${FN}:live/invocations`,
    ]);
  });
});
