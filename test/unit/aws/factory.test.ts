import 'aws-sdk-client-mock-vitest/extend';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { IAMClient, ListRolesCommand } from '@aws-sdk/client-iam';
import { S3Client } from '@aws-sdk/client-s3';
import { AssumeRoleCommand, STSClient, STSServiceException } from '@aws-sdk/client-sts';
import { createAwsClientFactory, globToRegExp, roleNameOf } from '../../../src/aws/index.js';
import { awsSend } from '../../../src/aws/call.js';
import { AgentEvents } from '../../../src/events.js';
import { LatchkeyError } from '../../../src/errors.js';
import { FakeHttpHandler, iamError, iamOk, STATIC_CREDENTIALS } from './fake-http.js';
import { recordAwsCalls, rejection, settle, silentLogger } from './helpers.js';

const ACCOUNT = '210987654321';
const ROLE = `arn:aws:iam::${ACCOUNT}:role/teams/latchkey-target`;

function factory(over: Partial<Parameters<typeof createAwsClientFactory>[0]> = {}) {
  const events = new AgentEvents();
  return {
    events,
    f: createAwsClientFactory({
      defaultRegion: 'eu-west-1',
      events,
      logger: silentLogger,
      baseCredentials: STATIC_CREDENTIALS,
      ...over,
    }),
  };
}

describe('createAwsClientFactory', () => {
  const sts = mockClient(STSClient);
  afterEach(() => {
    sts.reset();
    vi.useRealTimers();
  });

  it('caches clients per class, region and role, and configures adaptive retries', async () => {
    const { f } = factory({ maxAttempts: 2 });
    const a = f.client(IAMClient, { region: 'eu-west-1' });
    expect(f.client(IAMClient, { region: 'eu-west-1' })).toBe(a);
    expect(f.client(IAMClient, { region: 'us-east-1' })).not.toBe(a);
    expect(f.client(IAMClient, { region: 'eu-west-1', assumeRoleArn: ROLE })).not.toBe(a);
    expect(f.client(S3Client, { region: 'eu-west-1' })).not.toBe(a);
    expect(f.client(IAMClient, { region: '' })).toBe(a); // default region
    expect(await a.config.region()).toBe('eu-west-1');
    expect(a.config.retryMode).toBe('adaptive');
    expect(await a.config.maxAttempts()).toBe(2);
    expect((await a.config.retryStrategy()).constructor.name).toBe('AdaptiveRetryStrategy');
    f.destroy();
  });

  it('keeps at most maxClients clients, evicting the least recently used', () => {
    const { f } = factory({ maxClients: 2 });
    const a = f.client(IAMClient, { region: 'eu-west-1' });
    const b = f.client(IAMClient, { region: 'us-east-1' });
    expect(f.client(IAMClient, { region: 'eu-west-1' })).toBe(a); // a is now the most recent
    f.client(S3Client, { region: 'eu-west-1' }); // evicts b
    expect(f.client(IAMClient, { region: 'eu-west-1' })).toBe(a);
    expect(f.client(IAMClient, { region: 'us-east-1' })).not.toBe(b);
    f.destroy();
  });

  it('refuses roles whose NAME does not match the allowed pattern, before any call', () => {
    const { f } = factory();
    const refused = [
      `arn:aws:iam::${ACCOUNT}:role/OrganizationAccountAccessRole`,
      `arn:aws:iam::${ACCOUNT}:role/latchkey-team/admin`,
      `arn:aws:iam::${ACCOUNT}:user/latchkey-user`,
    ];
    for (const arn of refused) {
      let err: unknown;
      try {
        f.client(IAMClient, { region: 'eu-west-1', assumeRoleArn: arn });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(LatchkeyError);
      expect((err as LatchkeyError).code).toBe('E_GUARDRAIL');
    }
    expect(sts).not.toHaveReceivedAnyCommand();
    const custom = factory({ allowedRolePattern: 'apono-?x*' }).f;
    expect(() =>
      custom.client(IAMClient, {
        region: 'eu-west-1',
        assumeRoleArn: `arn:aws:iam::${ACCOUNT}:role/apono-1x-conn`,
      }),
    ).not.toThrow();
  });

  it('parses role names and globs', () => {
    expect(roleNameOf(ROLE)).toBe('latchkey-target');
    expect(roleNameOf('arn:aws:iam::123456789012:user/x')).toBeNull();
    expect(globToRegExp('latchkey-*').test('latchkey-a.b')).toBe(true);
    expect(globToRegExp('latchkey-*').test('xlatchkey-a')).toBe(false);
    expect(globToRegExp('a.b').test('aXb')).toBe(false);
  });

  it('assumes the role with session name, tags and external id, and caches credentials until shortly before expiry', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const t0 = new Date('2026-11-25T20:00:00.000Z');
    vi.setSystemTime(t0);
    sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: 'ASIAEXAMPLE',
        SecretAccessKey: 'assumed-secret',
        SessionToken: 'token',
        Expiration: new Date(t0.getTime() + 3600_000),
      },
      AssumedRoleUser: {
        Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/latchkey-target/lk`,
        AssumedRoleId: 'AROA:lk',
      },
    });
    const { f } = factory({ sessionName: 'lk', sessionTags: { connector: 'c-1' } });
    const client = f.client(IAMClient, {
      region: 'eu-west-1',
      assumeRoleArn: ROLE,
      externalId: 'ext-123',
    });
    const first = await client.config.credentials();
    expect(first.accessKeyId).toBe('ASIAEXAMPLE');
    expect(sts).toHaveReceivedCommandExactlyOnceWith(AssumeRoleCommand, {
      RoleArn: ROLE,
      RoleSessionName: 'lk',
      ExternalId: 'ext-123',
      DurationSeconds: 3600,
      Tags: [{ Key: 'connector', Value: 'c-1' }],
    });
    // Same role in another region and another client class: same cached credentials.
    await f
      .client(S3Client, { region: 'us-east-1', assumeRoleArn: ROLE, externalId: 'ext-123' })
      .config.credentials();
    vi.setSystemTime(new Date(t0.getTime() + 50 * 60_000));
    await client.config.credentials();
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 1);
    vi.setSystemTime(new Date(t0.getTime() + 56 * 60_000)); // within 5 minutes of expiry
    await client.config.credentials();
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 2);
  });

  it('caches member-role credentials per account, and refreshes them once on ExpiredToken', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    const issued: string[] = [];
    sts.on(AssumeRoleCommand).callsFake((input: { RoleArn: string }) => {
      const account = /::(\d{12}):/.exec(input.RoleArn)?.[1] ?? '';
      const key = `ASIA${account.slice(-4)}N${issued.filter((k) => k.includes(account.slice(-4))).length}`;
      issued.push(key);
      return {
        Credentials: {
          AccessKeyId: key,
          SecretAccessKey: 's',
          SessionToken: 't',
          Expiration: new Date(Date.now() + 3600_000),
        },
      };
    });
    const A = `arn:aws:iam::222222222222:role/latchkey-member`;
    const B = `arn:aws:iam::333333333333:role/latchkey-member`;
    const http = new FakeHttpHandler([
      iamOk('ListRoles', '<IsTruncated>false</IsTruncated><Roles/>'),
      iamOk('ListRoles', '<IsTruncated>false</IsTruncated><Roles/>'),
      iamError('ExpiredToken', 'The security token included in the request is expired', 403),
      iamOk('ListRoles', '<IsTruncated>false</IsTruncated><Roles/>'),
      iamError('ExpiredToken', 'The security token included in the request is expired', 403),
      iamError('ExpiredToken', 'The security token included in the request is expired', 403),
    ]);
    const { f } = factory({ maxAttempts: 1, requestHandler: http });
    const keyOf = (i: number) =>
      /Credential=([A-Z0-9]+)\//.exec(http.requests[i]?.headers.authorization ?? '')?.[1];
    const send = (role: string, region = 'eu-west-1') =>
      settle(
        f.client(IAMClient, { region, assumeRoleArn: role }).send(new ListRolesCommand({})),
        (ms) => vi.advanceTimersByTimeAsync(ms),
      );
    await send(A);
    await send(B, 'us-east-1');
    expect(keyOf(0)).toBe('ASIA2222N0');
    expect(keyOf(1)).toBe('ASIA3333N0');
    // Each account's exact member role, once each.
    expect(sts.commandCalls(AssumeRoleCommand).map((c) => c.args[0].input.RoleArn)).toEqual([A, B]);
    // A's token expired early: dropped, A assumed again, the call sent once more and signed anew.
    await send(A);
    expect(keyOf(2)).toBe('ASIA2222N0');
    expect(keyOf(3)).toBe('ASIA2222N1');
    expect(sts.commandCalls(AssumeRoleCommand).map((c) => c.args[0].input.RoleArn)).toEqual([
      A,
      B,
      A,
    ]);
    // B's credentials were not touched by A's refresh.
    expect(issued).toEqual(['ASIA2222N0', 'ASIA3333N0', 'ASIA2222N1']);
    // Refreshed credentials that are refused again: the error surfaces, no loop.
    const err = await rejection(awsSend({ service: 'iam', operation: 'ListRoles' }, () => send(B)));
    expect(err.code).toBe('E_CONNECT');
    expect(http.requests).toHaveLength(6);
    expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(4);
  });

  it('maps an AssumeRole refusal to E_PRIVILEGE naming sts:AssumeRole', async () => {
    sts.on(AssumeRoleCommand).rejects(
      new STSServiceException({
        name: 'AccessDenied',
        message: `User: arn:aws:sts::111122223333:assumed-role/connector/x is not authorized to perform: sts:AssumeRole on resource: ${ROLE}`,
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
      }),
    );
    const { f } = factory();
    const client = f.client(IAMClient, { region: 'eu-west-1', assumeRoleArn: ROLE });
    const err = await rejection(client.config.credentials());
    expect(err.code).toBe('E_PRIVILEGE');
    expect(err.message).toContain('sts:AssumeRole');
  });
});

describe('aws:call metric and retries (real SDK stack, fake transport)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('counts every attempt by service and operation, throttles included, and retries throttling', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    const http = new FakeHttpHandler([
      iamError('Throttling', 'Rate exceeded'),
      iamOk('ListRoles', '<IsTruncated>false</IsTruncated><Roles/>'),
    ]);
    const { f, events } = factory({ maxAttempts: 3, requestHandler: http });
    const seen = recordAwsCalls(events);
    const out = await settle(
      f.client(IAMClient, { region: 'eu-west-1' }).send(new ListRolesCommand({})),
      (ms) => vi.advanceTimersByTimeAsync(ms),
    );
    expect(out.Roles).toEqual([]);
    expect(http.requests).toHaveLength(2);
    expect(http.requests[0]?.body).toBe('Action=ListRoles&Version=2010-05-08');
    expect(seen).toEqual([
      { service: 'iam', operation: 'ListRoles', outcome: 'throttled' },
      { service: 'iam', operation: 'ListRoles', outcome: 'ok' },
    ]);
  });

  it('surfaces E_THROTTLED after maxAttempts and counts non-throttle errors as errors', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    const http = new FakeHttpHandler([], iamError('Throttling', 'Rate exceeded'));
    const { f, events } = factory({ maxAttempts: 2, requestHandler: http });
    const seen = recordAwsCalls(events);
    const iam = f.client(IAMClient, { region: 'eu-west-1' });
    const err = await settle(
      rejection(
        awsSend({ service: 'iam', operation: 'ListRoles' }, (o) =>
          iam.send(new ListRolesCommand({}), o),
        ),
      ),
      (ms) => vi.advanceTimersByTimeAsync(ms),
    );
    expect(err.code).toBe('E_THROTTLED');
    expect(err.retryable).toBe(true);
    expect(http.requests).toHaveLength(2);
    expect(seen.map((s) => s.outcome)).toEqual(['throttled', 'throttled']);

    const denied = new FakeHttpHandler(
      [],
      iamError('AccessDenied', 'not authorized to perform: iam:ListRoles', 403),
    );
    const g = factory({ maxAttempts: 2, requestHandler: denied });
    const seen2 = recordAwsCalls(g.events);
    const iam2 = g.f.client(IAMClient, { region: 'eu-west-1' });
    const err2 = await rejection(
      awsSend({ service: 'iam', operation: 'ListRoles' }, (o) =>
        iam2.send(new ListRolesCommand({}), o),
      ),
    );
    expect(err2.code).toBe('E_PRIVILEGE');
    expect(denied.requests).toHaveLength(1); // not retried
    expect(seen2).toEqual([{ service: 'iam', operation: 'ListRoles', outcome: 'error' }]);
  });

  it('honours an aborted signal before sending', async () => {
    const http = new FakeHttpHandler([]);
    const { f } = factory({ requestHandler: http });
    const iam = f.client(IAMClient, { region: 'eu-west-1' });
    const ac = new AbortController();
    ac.abort();
    const err = await rejection(
      awsSend({ service: 'iam', operation: 'ListRoles', signal: ac.signal }, (o) =>
        iam.send(new ListRolesCommand({}), o),
      ),
    );
    expect(err.code).toBe('E_CANCELLED');
    expect(http.requests).toHaveLength(0);
  });
});
