/**
 * IAM authentication to databases, instead of a stored password:
 * - RDS (PostgreSQL, MySQL, MariaDB): a 15-minute auth token per new connection, signed
 *   locally with the agent's AWS credentials (`@aws-sdk/rds-signer`); the connection must
 *   use TLS. The token is a presigned URL (`host:port/?Action=connect&DBUser=…&X-Amz-…`)
 *   and is as secret as a password: never logged.
 * - Redshift (provisioned): temporary credentials from `redshift:GetClusterCredentials`.
 */
import type { SignerConfig } from '@aws-sdk/rds-signer';
import type { RedshiftClient } from '@aws-sdk/client-redshift';
import { LatchkeyError, isLatchkeyError } from '../errors.js';
import type { AwsClientFactory } from '../aws/types.js';
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

/** The credentials a signer uses; default: the AWS SDK's default provider chain. */
export type RdsSignerCredentials = NonNullable<SignerConfig['credentials']>;

export type RdsAuthTokenProvider = (p: {
  hostname: string;
  port: number;
  username: string;
  region: string;
  /** Sign with these (e.g. a member account's role) instead of the provider's default. */
  credentials?: RdsSignerCredentials;
}) => Promise<string>;

/**
 * Returns a function that signs an RDS IAM auth token for one login. Call it for every
 * new connection (a pool's password callback): tokens expire after 15 minutes.
 *
 * @throws LatchkeyError E_CONNECT when no AWS credentials can be found to sign with.
 */
export function createRdsAuthTokenProvider(opts: {
  credentials?: RdsSignerCredentials;
}): RdsAuthTokenProvider {
  return async ({ hostname, port, username, region, credentials }) => {
    const use = credentials ?? opts.credentials;
    // Loaded on first use: an agent without IAM database auth does not carry the SDK.
    const { Signer } = await import('@aws-sdk/rds-signer');
    const signer = new Signer({
      hostname,
      port,
      username,
      region,
      ...(use ? { credentials: use } : {}),
    });
    try {
      return await signer.getAuthToken();
    } catch (err) {
      throw secretStoreError(
        'E_CONNECT',
        `cannot sign an RDS IAM auth token for ${username}@${hostname}:${port}: no usable AWS credentials (${errorName(err) ?? 'Error'})`,
        err,
      );
    }
  };
}

/**
 * The credentials IAM database auth signs with for a database reached through a role (a
 * member account's role, `config.assumeRoleArn`): the client factory's cached, refreshed
 * assumed-role credentials, so a token is signed by that account's identity.
 * @throws LatchkeyError E_GUARDRAIL (role outside the allowed pattern), E_INTERNAL (a
 *   factory that cannot hand out credentials)
 */
export function roleSignerCredentials(
  aws: AwsClientFactory,
  target: { region: string; assumeRoleArn: string; externalId?: string | undefined },
): RdsSignerCredentials {
  if (aws.credentials === undefined) {
    throw new LatchkeyError('E_INTERNAL', 'the AWS client factory cannot provide role credentials');
  }
  return aws.credentials({
    region: target.region,
    assumeRoleArn: target.assumeRoleArn,
    ...(target.externalId !== undefined ? { externalId: target.externalId } : {}),
  });
}

export interface RedshiftClusterCredentials {
  /** The user to log in as, as Redshift returns it (`IAM:<dbUser>`, or `IAMA:` when auto-created). */
  username: string;
  password: string;
  expiresAt: Date;
}

/**
 * Temporary database credentials for a provisioned Redshift cluster.
 *
 * @param p.durationSeconds 900..3600 (Redshift's bounds; default 900).
 * @throws LatchkeyError E_NOT_FOUND (no such cluster), E_PRIVILEGE (the connector role may
 *   not call redshift:GetClusterCredentials for that user/db), E_THROTTLED, E_CONNECT,
 *   E_UNSUPPORTED (the cluster does not support it), E_INVALID (bad duration).
 */
export async function getRedshiftClusterCredentials(
  client: RedshiftClient,
  p: {
    clusterIdentifier: string;
    dbUser: string;
    dbName?: string;
    durationSeconds?: number;
    autoCreate?: boolean;
    dbGroups?: string[];
  },
  signal?: AbortSignal,
): Promise<RedshiftClusterCredentials> {
  if (
    p.durationSeconds !== undefined &&
    (!Number.isInteger(p.durationSeconds) || p.durationSeconds < 900 || p.durationSeconds > 3600)
  ) {
    throw new LatchkeyError('E_INVALID', 'durationSeconds must be an integer from 900 to 3600');
  }
  throwIfAborted(signal);
  const where = `cluster ${p.clusterIdentifier}`;
  let out;
  try {
    const { GetClusterCredentialsCommand } = await import('@aws-sdk/client-redshift');
    out = await client.send(
      new GetClusterCredentialsCommand({
        ClusterIdentifier: p.clusterIdentifier,
        DbUser: p.dbUser,
        ...(p.dbName !== undefined ? { DbName: p.dbName } : {}),
        ...(p.durationSeconds !== undefined ? { DurationSeconds: p.durationSeconds } : {}),
        ...(p.autoCreate !== undefined ? { AutoCreate: p.autoCreate } : {}),
        ...(p.dbGroups !== undefined && p.dbGroups.length > 0 ? { DbGroups: p.dbGroups } : {}),
      }),
      signal ? { abortSignal: signal } : {},
    );
  } catch (err) {
    throw mapRedshiftCredentialsError(err, where, signal);
  }
  if (!out.DbPassword) {
    throw new LatchkeyError(
      'E_INTERNAL',
      `GetClusterCredentials for ${where} returned no password`,
    );
  }
  return {
    username: out.DbUser ?? `IAM:${p.dbUser}`,
    password: out.DbPassword,
    expiresAt: out.Expiration ?? new Date(Date.now() + (p.durationSeconds ?? 900) * 1000),
  };
}

export function mapRedshiftCredentialsError(
  err: unknown,
  where: string,
  signal?: AbortSignal,
): LatchkeyError {
  if (signal?.aborted) return abortError(signal);
  if (isLatchkeyError(err)) return err;
  const name = errorName(err) ?? 'Error';
  const details = { awsError: name, operation: 'GetClusterCredentials' };
  const fail = (code: LatchkeyError['code'], message: string): LatchkeyError =>
    secretStoreError(code, message, err, details);
  if (isAbort(err)) return fail('E_CANCELLED', `GetClusterCredentials for ${where} was aborted`);
  if (name === 'ClusterNotFoundFault' || name === 'ClusterNotFound') {
    return fail('E_NOT_FOUND', `Redshift ${where} not found`);
  }
  if (isThrottling(err))
    return fail('E_THROTTLED', `GetClusterCredentials for ${where} was throttled`);
  if (name === 'UnsupportedOperationFault') {
    return fail('E_UNSUPPORTED', `Redshift ${where} does not support GetClusterCredentials`);
  }
  if (isAccessDenied(err)) {
    return fail(
      'E_PRIVILEGE',
      `the connector role may not call redshift:GetClusterCredentials for ${where}`,
    );
  }
  const status = httpStatus(err);
  if (isNetworkError(err) || (status !== undefined && status >= 500)) {
    return fail('E_CONNECT', `Redshift API unreachable for ${where}`);
  }
  return fail('E_CONNECT', `GetClusterCredentials for ${where} failed (${name})`);
}
