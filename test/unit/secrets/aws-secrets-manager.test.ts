import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import type {
  GetSecretValueCommandInput,
  PutSecretValueCommandInput,
  UpdateSecretVersionStageCommandInput,
} from '@aws-sdk/client-secrets-manager';
import { LatchkeyError } from '../../../src/errors.js';
import {
  AWSCURRENT,
  AWSPENDING,
  createAwsSecretsManagerStore,
} from '../../../src/secrets/aws-secrets-manager.js';
import type { AwsSecretRef } from '../../../src/secrets/aws-secrets-manager.js';
import { awsError, testAwsFactory, testClock } from './aws-fixtures.js';
import { errorOf } from '../../helpers/errors.js';

const sm = mockClient(SecretsManagerClient);
const ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:latchkey/pg-AbCdEf';
const REF: AwsSecretRef = { store: 'aws-secrets-manager', secretId: ARN };
const PASSWORD = 'S3cr3t-Pa55w0rd!';

const RDS_SECRET = JSON.stringify({
  username: 'latchkey_admin',
  password: PASSWORD,
  engine: 'postgres',
  host: 'db.abc.eu-west-1.rds.amazonaws.com',
  port: 5432,
  dbname: 'postgres',
  dbInstanceIdentifier: 'db-1',
});

function getValueResponse(secretString: string, versionId = 'v-current', stages = [AWSCURRENT]) {
  return {
    ARN,
    Name: 'latchkey/pg',
    VersionId: versionId,
    SecretString: secretString,
    VersionStages: stages,
    CreatedDate: new Date('2026-11-01T00:00:00Z'),
    $metadata: {},
  };
}

function newStore(ttlMs = 60_000) {
  const clock = testClock();
  const aws = testAwsFactory();
  const store = createAwsSecretsManagerStore({
    aws,
    defaultRegion: 'eu-west-1',
    cacheTtlMs: ttlMs,
    now: clock.now,
  });
  return { store, clock, aws };
}

beforeEach(() => {
  sm.reset();
});

describe('resolve', () => {
  it('reads the AWSCURRENT JSON value into a ServiceSecret', async () => {
    sm.on(GetSecretValueCommand).resolves(getValueResponse(RDS_SECRET));
    const { store, aws } = newStore();

    const secret = await store.resolve(REF);

    expect(secret).toEqual({
      username: 'latchkey_admin',
      password: PASSWORD,
      host: 'db.abc.eu-west-1.rds.amazonaws.com',
      port: 5432,
      dbname: 'postgres',
      extra: { engine: 'postgres', dbInstanceIdentifier: 'db-1' },
    });
    expect(sm).toHaveReceivedCommandExactlyOnceWith(GetSecretValueCommand, { SecretId: ARN });
    expect(aws.targets).toEqual([{ region: 'eu-west-1' }]);
  });

  it('uses the region of the ref over the default one, and accepts a string port', async () => {
    sm.on(GetSecretValueCommand).resolves(
      getValueResponse(JSON.stringify({ username: 'u', password: 'p', port: '3306' })),
    );
    const { store, aws } = newStore();
    const secret = await store.resolve({ ...REF, region: 'us-east-2' });
    expect(secret.port).toBe(3306);
    // GetSecretValue, then DescribeSecret (no host: its tags may bind it), both in us-east-2.
    expect(aws.targets).toEqual([{ region: 'us-east-2' }, { region: 'us-east-2' }]);
  });

  it('caches for the TTL, then reads again', async () => {
    sm.on(GetSecretValueCommand).resolves(getValueResponse(RDS_SECRET));
    const { store, clock } = newStore(30_000);

    await store.resolve(REF);
    const again = await store.resolve(REF);
    expect(again.password).toBe(PASSWORD);
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 1);

    clock.advance(29_999);
    await store.resolve(REF);
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 1);

    clock.advance(1);
    await store.resolve(REF);
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 2);
  });

  it('hands out copies: a caller changing its value does not change the cache', async () => {
    sm.on(GetSecretValueCommand).resolves(getValueResponse(RDS_SECRET));
    const { store } = newStore();
    const first = await store.resolve(REF);
    first.password = 'changed';
    first.extra['engine'] = 'changed';
    const second = await store.resolve(REF);
    expect(second.password).toBe(PASSWORD);
    expect(second.extra['engine']).toBe('postgres');
  });

  it('does not cache with a TTL of 0, and invalidate() drops a cached value', async () => {
    sm.on(GetSecretValueCommand).resolves(getValueResponse(RDS_SECRET));
    const uncached = newStore(0).store;
    await uncached.resolve(REF);
    await uncached.resolve(REF);
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 2);

    sm.resetHistory();
    const { store } = newStore();
    await store.resolve(REF);
    store.invalidate(REF);
    await store.resolve(REF);
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 2);
  });

  it.each([
    ['not JSON', `password=${PASSWORD}`, /is not JSON/],
    ['a JSON array', JSON.stringify([PASSWORD]), /is not a JSON object/],
    [
      'JSON nested too deep (refused before parsing)',
      `{"username":"u","password":"${PASSWORD}","x":${'['.repeat(200)}${']'.repeat(200)}}`,
      /nests deeper than 64 levels/,
    ],
    ['missing password', JSON.stringify({ username: 'u' }), /field "password" is missing/],
    ['missing username', JSON.stringify({ password: PASSWORD }), /field "username" is missing/],
    [
      'a number password',
      JSON.stringify({ username: 'u', password: 1234 }),
      /"password" is not a string/,
    ],
    ['an empty password', JSON.stringify({ username: 'u', password: '' }), /"password" is empty/],
    [
      'a bad port',
      JSON.stringify({ username: 'u', password: PASSWORD, port: 'x' + PASSWORD }),
      /"port" is not a TCP port/,
    ],
  ])(
    'a secret that is %s gives E_SECRET with the reason, not the value',
    async (_, value, reason) => {
      sm.on(GetSecretValueCommand).resolves(getValueResponse(value));
      const err = await errorOf(newStore().store.resolve(REF));
      expect(err.code).toBe('E_SECRET');
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(reason);
      expect(err.message).toContain(ARN);
      expect(err.message).not.toContain(PASSWORD);
      expect(err.cause).toBeUndefined();
      expect(JSON.stringify(err.details ?? {})).not.toContain(PASSWORD);
    },
  );

  it('a binary secret gives E_SECRET', async () => {
    sm.on(GetSecretValueCommand).resolves({
      ARN,
      VersionId: 'v1',
      SecretBinary: new TextEncoder().encode(RDS_SECRET),
      $metadata: {},
    });
    const err = await errorOf(newStore().store.resolve(REF));
    expect(err.code).toBe('E_SECRET');
    expect(err.message).toMatch(/is binary/);
  });

  it('a missing secret (ResourceNotFoundException) gives E_SECRET naming it', async () => {
    sm.on(GetSecretValueCommand).rejects(
      new ResourceNotFoundException({
        message: "Secrets Manager can't find the specified secret.",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const err = await errorOf(newStore().store.resolve(REF));
    expect(err.code).toBe('E_SECRET');
    expect(err.message).toBe(`secret "${ARN}" not found (GetSecretValue)`);
    expect(err.details).toMatchObject({ awsError: 'ResourceNotFoundException' });
  });

  it('access denied on read gives E_SECRET (unreadable), KMS failure says kms:Decrypt', async () => {
    sm.on(GetSecretValueCommand).rejects(awsError('AccessDeniedException', 400));
    const { store } = newStore();
    const denied = await errorOf(store.resolve(REF));
    expect(denied.code).toBe('E_SECRET');
    expect(denied.message).toMatch(/not readable.*secretsmanager:GetSecretValue/);

    sm.reset();
    sm.on(GetSecretValueCommand).rejects(awsError('DecryptionFailure', 400));
    const kms = await errorOf(store.resolve(REF));
    expect(kms.code).toBe('E_SECRET');
    expect(kms.message).toMatch(/kms:Decrypt/);
  });

  it('throttling is E_THROTTLED (retryable); a 5xx or network failure is E_CONNECT', async () => {
    const { store } = newStore();
    sm.on(GetSecretValueCommand).rejects(awsError('ThrottlingException', 400));
    const throttled = await errorOf(store.resolve(REF));
    expect(throttled.code).toBe('E_THROTTLED');
    expect(throttled.retryable).toBe(true);

    sm.reset();
    sm.on(GetSecretValueCommand).rejects(awsError('InternalServiceError', 500));
    expect((await errorOf(store.resolve(REF))).code).toBe('E_CONNECT');

    sm.reset();
    sm.on(GetSecretValueCommand).rejects(
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
    );
    expect((await errorOf(store.resolve(REF))).code).toBe('E_CONNECT');
  });

  it('an aborted signal stops before any call, with the abort reason when it is ours', async () => {
    const { store } = newStore();
    const cancelled = await errorOf(store.resolve(REF, AbortSignal.abort()));
    expect(cancelled.code).toBe('E_CANCELLED');

    const ctl = new AbortController();
    ctl.abort(new LatchkeyError('E_TIMEOUT', 'deadline exceeded'));
    const timedOut = await errorOf(store.resolve(REF, ctl.signal));
    expect(timedOut.code).toBe('E_TIMEOUT');
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 0);
  });

  it('passes the signal to the SDK, so an abort during the call ends it', async () => {
    const ctl = new AbortController();
    sm.on(GetSecretValueCommand).callsFake(() => {
      ctl.abort(new LatchkeyError('E_CANCELLED', 'cancelled by the control plane'));
      throw Object.assign(new Error('Request aborted'), { name: 'AbortError' });
    });
    const err = await errorOf(newStore().store.resolve(REF, ctl.signal));
    expect(err.code).toBe('E_CANCELLED');
    expect(err.message).toBe('cancelled by the control plane');
  });
});

describe('tags of a secret without host (binding by tag)', () => {
  it('reads the tags of a {username, password} secret with DescribeSecret, once per cache entry', async () => {
    sm.on(GetSecretValueCommand).resolves(
      getValueResponse(JSON.stringify({ username: 'u', password: PASSWORD })),
    );
    sm.on(DescribeSecretCommand, { SecretId: ARN }).resolves({
      ARN,
      Tags: [
        { Key: 'latchkey-connector-read', Value: 'true' },
        { Key: 'latchkey-connector-target', Value: 'orders.internal' },
      ],
    });
    const { store } = newStore();
    const secret = await store.resolve(REF);
    expect(secret.tags).toEqual({
      'latchkey-connector-read': 'true',
      'latchkey-connector-target': 'orders.internal',
    });
    expect((await store.resolve(REF)).tags).toEqual(secret.tags);
    expect(sm).toHaveReceivedCommandTimes(DescribeSecretCommand, 1);
  });

  it('does not ask for tags when the secret names its host; survives DescribeSecret being denied', async () => {
    sm.on(GetSecretValueCommand).resolves(getValueResponse(RDS_SECRET));
    const { store } = newStore();
    expect((await store.resolve(REF)).tags).toBeUndefined();
    expect(sm).not.toHaveReceivedCommand(DescribeSecretCommand);

    sm.reset();
    sm.on(GetSecretValueCommand).resolves(
      getValueResponse(JSON.stringify({ username: 'u', password: PASSWORD })),
    );
    sm.on(DescribeSecretCommand).rejects(awsError('AccessDeniedException', 400));
    const other = newStore().store;
    const secret = await other.resolve(REF);
    expect(secret.password).toBe(PASSWORD);
    expect(secret.tags).toBeUndefined();
  });
});

describe('two-phase rotation', () => {
  const current = {
    username: 'latchkey_admin',
    password: PASSWORD,
    host: 'db.example',
    port: 5432,
    extra: { engine: 'postgres' },
  };

  it('putPendingSecret stages the whole value as AWSPENDING with a fresh ClientRequestToken', async () => {
    sm.on(PutSecretValueCommand).callsFake((input: PutSecretValueCommandInput) => ({
      ARN,
      VersionId: input.ClientRequestToken,
      VersionStages: [AWSPENDING],
      $metadata: {},
    }));
    const { store } = newStore();
    const { versionId } = await store.putPendingSecret(REF, { ...current, password: 'n3w-pass' });
    const second = await store.putPendingSecret(REF, { ...current, password: 'n3w-pass' });

    expect(versionId).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(second.versionId).not.toBe(versionId);
    expect(sm).toHaveReceivedNthCommandWith(PutSecretValueCommand, 1, {
      SecretId: ARN,
      ClientRequestToken: versionId,
      VersionStages: [AWSPENDING],
    });
    const input = sm.commandCalls(PutSecretValueCommand)[0]?.args[0].input;
    expect(JSON.parse(input?.SecretString ?? '')).toEqual({
      engine: 'postgres',
      username: 'latchkey_admin',
      password: 'n3w-pass',
      host: 'db.example',
      port: 5432,
    });
  });

  it('getPendingSecret returns the AWSPENDING value with its version id, or null', async () => {
    sm.on(GetSecretValueCommand, { SecretId: ARN, VersionStage: AWSPENDING }).resolves(
      getValueResponse(JSON.stringify({ ...current, password: 'n3w-pass' }), 'v-pending', [
        AWSPENDING,
      ]),
    );
    const { store } = newStore();
    const pending = await store.getPendingSecret(REF);
    expect(pending).toMatchObject({ versionId: 'v-pending', password: 'n3w-pass' });
    expect(sm).toHaveReceivedCommandWith(GetSecretValueCommand, {
      SecretId: ARN,
      VersionStage: AWSPENDING,
    });

    sm.reset();
    sm.on(GetSecretValueCommand, { SecretId: ARN, VersionStage: AWSPENDING }).rejects(
      new ResourceNotFoundException({ message: 'no AWSPENDING', $metadata: {} }),
    );
    expect(await store.getPendingSecret(REF)).toBeNull();

    // Pending and current on the same version: a finished rotation, nothing pending.
    sm.reset();
    sm.on(GetSecretValueCommand, { SecretId: ARN, VersionStage: AWSPENDING }).resolves(
      getValueResponse(RDS_SECRET, 'v-current', [AWSCURRENT, AWSPENDING]),
    );
    expect(await store.getPendingSecret(REF)).toBeNull();
  });

  it('promotePendingSecret moves AWSCURRENT from the old version and removes AWSPENDING', async () => {
    sm.on(DescribeSecretCommand).resolves({
      ARN,
      VersionIdsToStages: {
        'v-old': ['AWSPREVIOUS'],
        'v-current': [AWSCURRENT],
        'v-pending': [AWSPENDING],
      },
      $metadata: {},
    });
    sm.on(UpdateSecretVersionStageCommand).resolves({ ARN, $metadata: {} });
    const { store } = newStore();
    await store.promotePendingSecret(REF, 'v-pending');

    expect(sm).toHaveReceivedCommandExactlyOnceWith(DescribeSecretCommand, { SecretId: ARN });
    expect(sm).toHaveReceivedCommandTimes(UpdateSecretVersionStageCommand, 2);
    const calls = sm.commandCalls(UpdateSecretVersionStageCommand).map((c) => c.args[0].input);
    expect(calls).toEqual([
      {
        SecretId: ARN,
        VersionStage: AWSCURRENT,
        MoveToVersionId: 'v-pending',
        RemoveFromVersionId: 'v-current',
      },
      { SecretId: ARN, VersionStage: AWSPENDING, RemoveFromVersionId: 'v-pending' },
    ]);
  });

  it('promotePendingSecret is idempotent: an already current version is not moved again', async () => {
    sm.on(DescribeSecretCommand).resolves({
      ARN,
      VersionIdsToStages: { 'v-old': ['AWSPREVIOUS'], 'v-new': [AWSCURRENT] },
      $metadata: {},
    });
    await newStore().store.promotePendingSecret(REF, 'v-new');
    expect(sm).toHaveReceivedCommandTimes(UpdateSecretVersionStageCommand, 0);
  });

  it('promoting an unknown version is E_SECRET; a denied write is E_PRIVILEGE', async () => {
    sm.on(DescribeSecretCommand).resolves({
      ARN,
      VersionIdsToStages: { 'v-current': [AWSCURRENT] },
      $metadata: {},
    });
    const { store } = newStore();
    const unknown = await errorOf(store.promotePendingSecret(REF, 'v-gone'));
    expect(unknown.code).toBe('E_SECRET');
    expect(unknown.message).toMatch(/v-gone to promote does not exist/);

    sm.on(PutSecretValueCommand).rejects(awsError('AccessDeniedException', 400));
    const denied = await errorOf(store.putPendingSecret(REF, current));
    expect(denied.code).toBe('E_PRIVILEGE');
    expect(denied.message).toMatch(/secretsmanager:PutSecretValue/);
    expect(denied.message).not.toContain(PASSWORD);
  });

  it('rotation refuses stores other than aws-secrets-manager with E_UNSUPPORTED', async () => {
    const { store } = newStore();
    const err = await errorOf(store.putPendingSecret({ store: 'env', prefix: 'PG_' }, current));
    expect(err.code).toBe('E_UNSUPPORTED');
  });

  /**
   * A stateful fake of Secrets Manager's versions and stages, to walk the rotation and
   * crash at each step: at every point, one of AWSCURRENT / AWSPENDING holds the password
   * the database has.
   */
  function fakeSecretsManager(initialPassword: string) {
    const versions = new Map<string, { value: string; stages: Set<string> }>();
    versions.set('v1', {
      value: JSON.stringify({ username: 'svc', password: initialPassword }),
      stages: new Set([AWSCURRENT]),
    });
    const withStage = (stage: string) =>
      [...versions.entries()].find(([, v]) => v.stages.has(stage));
    sm.on(GetSecretValueCommand).callsFake((input: GetSecretValueCommandInput) => {
      const found = withStage(input.VersionStage ?? AWSCURRENT);
      if (!found) throw new ResourceNotFoundException({ message: 'no such stage', $metadata: {} });
      return {
        ARN,
        VersionId: found[0],
        SecretString: found[1].value,
        VersionStages: [...found[1].stages],
        $metadata: {},
      };
    });
    sm.on(PutSecretValueCommand).callsFake((input: PutSecretValueCommandInput) => {
      const id = input.ClientRequestToken ?? 'missing-token';
      for (const stage of input.VersionStages ?? []) withStage(stage)?.[1].stages.delete(stage);
      versions.set(id, { value: input.SecretString ?? '', stages: new Set(input.VersionStages) });
      return { ARN, VersionId: id, $metadata: {} };
    });
    sm.on(DescribeSecretCommand).callsFake(() => ({
      ARN,
      VersionIdsToStages: Object.fromEntries(
        [...versions.entries()].map(([id, v]) => [id, [...v.stages]]),
      ),
      $metadata: {},
    }));
    sm.on(UpdateSecretVersionStageCommand).callsFake(
      (input: UpdateSecretVersionStageCommandInput) => {
        const stage = input.VersionStage ?? '';
        if (input.RemoveFromVersionId)
          versions.get(input.RemoveFromVersionId)?.stages.delete(stage);
        if (input.MoveToVersionId) versions.get(input.MoveToVersionId)?.stages.add(stage);
        return { ARN, $metadata: {} };
      },
    );
  }

  it('a crash after the password change is recovered from AWSPENDING', async () => {
    fakeSecretsManager('old-pass');
    let databasePassword = 'old-pass';
    const { store } = newStore();

    // Phase 1: stage the new password; the current one still works.
    const before = await store.resolve(REF);
    const { versionId } = await store.putPendingSecret(REF, { ...before, password: 'new-pass' });
    store.invalidate(REF);
    expect((await store.resolve(REF)).password).toBe(databasePassword);

    // Phase 2: the database gets the new password, then the agent "crashes".
    databasePassword = 'new-pass';
    // After restart: AWSCURRENT fails to log in, so the driver looks at AWSPENDING.
    const fresh = newStore().store;
    expect((await fresh.resolve(REF)).password).not.toBe(databasePassword);
    const pending = await fresh.getPendingSecret(REF);
    expect(pending?.password).toBe(databasePassword);
    expect(pending?.versionId).toBe(versionId);

    // Phase 3: promote; AWSCURRENT now works and nothing is pending.
    await fresh.promotePendingSecret(REF, pending?.versionId ?? '');
    expect((await fresh.resolve(REF)).password).toBe(databasePassword);
    expect(await fresh.getPendingSecret(REF)).toBeNull();
  });
});
