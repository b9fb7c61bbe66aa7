/**
 * AWS Secrets Manager store, and the two-phase rotation helpers the SQL drivers use for
 * their service account.
 *
 * A secret is a JSON object `{username, password}` with optional `host`, `port`, `dbname`
 * (the shape RDS and Redshift write); other string fields land in `extra`. Values are
 * cached for `cacheTtlMs` (see `SecretCache`).
 *
 * Error mapping (decided once, documented in docs/secrets.md):
 * - reading (GetSecretValue): missing, access denied, KMS decryption failure, not JSON,
 *   binary, missing fields → `E_SECRET` (the integration cannot work; the message says why);
 * - writing during rotation (PutSecretValue, DescribeSecret, UpdateSecretVersionStage):
 *   access denied → `E_PRIVILEGE` (the connector role lacks `secretsmanager:PutSecretValue`…);
 * - throttling → `E_THROTTLED`; network failure or a 5xx → `E_CONNECT`; abort → the abort reason.
 *
 * Rotation (crash-safety argument in docs/secrets.md):
 * 1. `putPendingSecret(ref, value)`: new version staged `AWSPENDING` only; AWSCURRENT untouched.
 * 2. the driver changes the password on the target and verifies a login with it;
 * 3. `promotePendingSecret(ref, versionId)`: AWSCURRENT moves to that version (AWS keeps the
 *    old one as AWSPREVIOUS), AWSPENDING is removed, and the cached value is dropped.
 * After a crash between 2 and 3, the target's password is the AWSPENDING one:
 * `getPendingSecret(ref)` returns it (with its `versionId`) so the driver can log in with
 * it and finish the promotion.
 */
import { randomUUID } from 'node:crypto';
import type * as SecretsManagerModule from '@aws-sdk/client-secrets-manager';
import type {
  GetSecretValueCommandOutput,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { LatchkeyError, isLatchkeyError } from '../errors.js';
import type { AwsClientFactory } from '../aws/types.js';
import type { SecretRef } from '../protocol/messages.js';
import { JsonTooDeepError, parseJsonBounded } from '../protocol/json-depth.js';
import { SecretCache } from './cache.js';
import {
  abortError,
  errorName,
  httpStatus,
  isAbort,
  isAccessDenied,
  isNetworkError,
  isThrottling,
  secretStoreError,
  throwIfAborted,
} from './errors.js';
import { fromServiceSecret, toServiceSecret } from './fields.js';
import type { PendingServiceSecret, SecretRotation, ServiceSecret } from './types.js';

export type AwsSecretRef = Extract<SecretRef, { store: 'aws-secrets-manager' }>;

/**
 * The Secrets Manager client module, loaded on the first call: an agent that reads no
 * secret from Secrets Manager does not carry it (several MiB of resident memory).
 */
type SecretsManagerSdk = typeof SecretsManagerModule;
let sdk: Promise<SecretsManagerSdk> | undefined;
const loadSecretsManager = (): Promise<SecretsManagerSdk> =>
  (sdk ??= import('@aws-sdk/client-secrets-manager'));

export const AWSCURRENT = 'AWSCURRENT';
export const AWSPENDING = 'AWSPENDING';

export interface AwsSecretsManagerStoreOptions {
  aws: AwsClientFactory;
  /** Region for refs that name none. */
  defaultRegion: string;
  /** How long a value read is reused; `<= 0` disables caching. */
  cacheTtlMs: number;
  now?: () => Date;
}

export interface AwsSecretsManagerStore extends SecretRotation {
  /** The AWSCURRENT value of the secret (cached). */
  resolve(ref: AwsSecretRef, signal?: AbortSignal): Promise<ServiceSecret>;
  /** Drops the cached value of `ref`. */
  invalidate(ref: AwsSecretRef): void;
  /** Drops every cached value. */
  clear(): void;
}

type Operation =
  'GetSecretValue' | 'PutSecretValue' | 'DescribeSecret' | 'UpdateSecretVersionStage';

export function createAwsSecretsManagerStore(
  opts: AwsSecretsManagerStoreOptions,
): AwsSecretsManagerStore {
  const cache = new SecretCache(opts.cacheTtlMs, opts.now);
  const regionOf = (ref: AwsSecretRef): string => ref.region ?? opts.defaultRegion;
  const keyOf = (ref: AwsSecretRef): string =>
    `${regionOf(ref)}\u0000${ref.assumeRoleArn ?? ''}\u0000${ref.secretId}`;
  // A ref with `assumeRoleArn` (a member account's database) is read with that role.
  const clientFor = (ref: AwsSecretRef, sm: SecretsManagerSdk): SecretsManagerClient =>
    opts.aws.client(sm.SecretsManagerClient, {
      region: regionOf(ref),
      ...(ref.assumeRoleArn !== undefined ? { assumeRoleArn: ref.assumeRoleArn } : {}),
      ...(ref.externalId !== undefined ? { externalId: ref.externalId } : {}),
    });

  async function call<T>(
    ref: AwsSecretRef,
    operation: Operation,
    signal: AbortSignal | undefined,
    run: (
      client: SecretsManagerClient,
      options: { abortSignal?: AbortSignal },
      sm: SecretsManagerSdk,
    ) => Promise<T>,
  ): Promise<T> {
    throwIfAborted(signal);
    try {
      const sm = await loadSecretsManager();
      return await run(clientFor(ref, sm), signal ? { abortSignal: signal } : {}, sm);
    } catch (err) {
      throw mapSecretsManagerError(err, ref, operation, signal);
    }
  }

  async function resolve(ref: AwsSecretRef, signal?: AbortSignal): Promise<ServiceSecret> {
    const key = keyOf(ref);
    const hit = cache.get(key);
    if (hit) return hit;
    const out = await call(ref, 'GetSecretValue', signal, (client, o, sm) =>
      client.send(new sm.GetSecretValueCommand({ SecretId: ref.secretId }), o),
    );
    const secret = parseSecretValue(out, ref);
    if (secret.host === undefined) {
      // Unbound by content: its tags may bind it (binding by tag, ./binding.ts).
      const tags = await secretTags(ref, signal);
      if (tags !== undefined) secret.tags = tags;
    }
    cache.set(key, secret);
    return secret;
  }

  /** The secret's tags (`DescribeSecret`), or undefined when they cannot be read. */
  async function secretTags(
    ref: AwsSecretRef,
    signal: AbortSignal | undefined,
  ): Promise<Record<string, string> | undefined> {
    try {
      const out = await call(ref, 'DescribeSecret', signal, (client, o, sm) =>
        client.send(new sm.DescribeSecretCommand({ SecretId: ref.secretId }), o),
      );
      const tags: Record<string, string> = {};
      for (const t of out.Tags ?? []) if (t.Key !== undefined) tags[t.Key] = t.Value ?? '';
      return tags;
    } catch (err) {
      if (signal?.aborted) throw err;
      // Not readable (e.g. no secretsmanager:DescribeSecret): the secret stays unbound.
      return undefined;
    }
  }

  async function putPendingSecret(
    ref: SecretRef,
    value: ServiceSecret,
    signal?: AbortSignal,
  ): Promise<{ versionId: string }> {
    const awsRef = requireAwsRef(ref);
    const token = randomUUID();
    const out = await call(awsRef, 'PutSecretValue', signal, (client, o, sm) =>
      client.send(
        new sm.PutSecretValueCommand({
          SecretId: awsRef.secretId,
          ClientRequestToken: token,
          SecretString: JSON.stringify(fromServiceSecret(value)),
          VersionStages: [AWSPENDING],
        }),
        o,
      ),
    );
    return { versionId: out.VersionId ?? token };
  }

  async function getPendingSecret(
    ref: SecretRef,
    signal?: AbortSignal,
  ): Promise<PendingServiceSecret | null> {
    const awsRef = requireAwsRef(ref);
    let out: GetSecretValueCommandOutput;
    try {
      out = await call(awsRef, 'GetSecretValue', signal, (client, o, sm) =>
        client.send(
          new sm.GetSecretValueCommand({ SecretId: awsRef.secretId, VersionStage: AWSPENDING }),
          o,
        ),
      );
    } catch (err) {
      if (isLatchkeyError(err) && err.details?.['awsError'] === 'ResourceNotFoundException') {
        return null;
      }
      throw err;
    }
    // A version both pending and current is a finished rotation whose AWSPENDING label
    // was not removed: nothing is pending.
    if (out.VersionStages?.includes(AWSCURRENT)) return null;
    const secret = parseSecretValue(out, awsRef, AWSPENDING);
    if (out.VersionId === undefined) {
      throw new LatchkeyError(
        'E_SECRET',
        `secret "${awsRef.secretId}": AWSPENDING version has no version id`,
      );
    }
    return { ...secret, versionId: out.VersionId };
  }

  async function promotePendingSecret(
    ref: SecretRef,
    versionId: string,
    signal?: AbortSignal,
  ): Promise<void> {
    const awsRef = requireAwsRef(ref);
    const described = await call(awsRef, 'DescribeSecret', signal, (client, o, sm) =>
      client.send(new sm.DescribeSecretCommand({ SecretId: awsRef.secretId }), o),
    );
    const stages = described.VersionIdsToStages ?? {};
    const stagesOfTarget = stages[versionId];
    if (stagesOfTarget === undefined) {
      throw new LatchkeyError(
        'E_SECRET',
        `secret "${awsRef.secretId}": version ${versionId} to promote does not exist`,
      );
    }
    const current = Object.entries(stages).find(([, s]) => s.includes(AWSCURRENT))?.[0];
    if (current !== versionId) {
      await call(awsRef, 'UpdateSecretVersionStage', signal, (client, o, sm) =>
        client.send(
          new sm.UpdateSecretVersionStageCommand({
            SecretId: awsRef.secretId,
            VersionStage: AWSCURRENT,
            MoveToVersionId: versionId,
            ...(current === undefined ? {} : { RemoveFromVersionId: current }),
          }),
          o,
        ),
      );
    }
    cache.delete(keyOf(awsRef));
    if (stagesOfTarget.includes(AWSPENDING)) {
      await call(awsRef, 'UpdateSecretVersionStage', signal, (client, o, sm) =>
        client.send(
          new sm.UpdateSecretVersionStageCommand({
            SecretId: awsRef.secretId,
            VersionStage: AWSPENDING,
            RemoveFromVersionId: versionId,
          }),
          o,
        ),
      );
    }
  }

  return {
    resolve,
    putPendingSecret,
    getPendingSecret,
    promotePendingSecret,
    invalidate: (ref) => cache.delete(keyOf(ref)),
    clear: () => cache.clear(),
  };
}

function requireAwsRef(ref: SecretRef): AwsSecretRef {
  if (ref.store !== 'aws-secrets-manager') {
    throw new LatchkeyError(
      'E_UNSUPPORTED',
      `rotation of a service-account secret needs the aws-secrets-manager store, not "${ref.store}"`,
    );
  }
  return ref;
}

/** Parses a GetSecretValue answer; errors name the secret and the reason, never the value. */
export function parseSecretValue(
  out: Pick<GetSecretValueCommandOutput, 'SecretString' | 'SecretBinary'>,
  ref: AwsSecretRef,
  stage: string = AWSCURRENT,
): ServiceSecret {
  const where = `secret "${ref.secretId}" (${stage})`;
  if (out.SecretString === undefined) {
    if (out.SecretBinary !== undefined) {
      throw new LatchkeyError(
        'E_SECRET',
        `${where} is binary; store a JSON string {"username": …, "password": …}`,
      );
    }
    throw new LatchkeyError('E_SECRET', `${where} has no value`);
  }
  let parsed: unknown;
  try {
    parsed = parseJsonBounded(out.SecretString);
  } catch (err) {
    if (err instanceof JsonTooDeepError) {
      throw new LatchkeyError('E_SECRET', `${where} nests deeper than ${err.maxDepth} levels`);
    }
    // No cause: the SyntaxError message quotes the secret's text.
    throw new LatchkeyError(
      'E_SECRET',
      `${where} is not JSON; store {"username": …, "password": …}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new LatchkeyError('E_SECRET', `${where} is not a JSON object`);
  }
  return toServiceSecret(parsed as Record<string, unknown>, where);
}

const WRITE_OPERATIONS: ReadonlySet<Operation> = new Set([
  'PutSecretValue',
  'DescribeSecret',
  'UpdateSecretVersionStage',
]);

/** Maps an error of a Secrets Manager call to a `LatchkeyError`; the SDK error stays as cause. */
export function mapSecretsManagerError(
  err: unknown,
  ref: AwsSecretRef,
  operation: Operation,
  signal?: AbortSignal,
): LatchkeyError {
  if (signal?.aborted) return abortError(signal);
  if (isLatchkeyError(err)) return err;
  const name = errorName(err) ?? 'Error';
  const details = { awsError: name, operation, secretId: ref.secretId };
  const where = `secret "${ref.secretId}"`;
  const fail = (code: LatchkeyError['code'], message: string): LatchkeyError =>
    secretStoreError(code, message, err, details);

  if (isAbort(err)) return fail('E_CANCELLED', `${operation} on ${where} was aborted`);
  if (isThrottling(err)) return fail('E_THROTTLED', `${operation} on ${where} was throttled`);
  switch (name) {
    case 'ResourceNotFoundException':
      return fail('E_SECRET', `${where} not found (${operation})`);
    case 'DecryptionFailure':
      return fail(
        'E_SECRET',
        `${where} cannot be decrypted: the connector role needs kms:Decrypt on the secret's KMS key`,
      );
    case 'InvalidRequestException':
      return fail(
        'E_SECRET',
        `${operation} refused for ${where} (deleted, scheduled for deletion, or stage conflict)`,
      );
    case 'InvalidParameterException':
      return fail('E_SECRET', `${operation} refused for ${where}: invalid parameter`);
    case 'LimitExceededException':
      return fail('E_SECRET', `${operation} on ${where} exceeds a Secrets Manager quota`);
    case 'InternalServiceError':
      return fail('E_CONNECT', `Secrets Manager failed on ${operation} for ${where}; retry`);
  }
  if (isAccessDenied(err)) {
    return WRITE_OPERATIONS.has(operation)
      ? fail(
          'E_PRIVILEGE',
          `the connector role may not call secretsmanager:${operation} on ${where}`,
        )
      : fail(
          'E_SECRET',
          `${where} is not readable: the connector role may not call secretsmanager:${operation}`,
        );
  }
  const status = httpStatus(err);
  if (isNetworkError(err) || (status !== undefined && status >= 500)) {
    return fail('E_CONNECT', `Secrets Manager unreachable for ${operation} on ${where}`);
  }
  return fail('E_SECRET', `${operation} on ${where} failed (${name})`);
}
