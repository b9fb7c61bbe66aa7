import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  ClusterNotFoundFault,
  GetClusterCredentialsCommand,
  RedshiftClient,
} from '@aws-sdk/client-redshift';
import {
  createRdsAuthTokenProvider,
  getRedshiftClusterCredentials,
} from '../../../src/secrets/iam-auth.js';
import { awsError } from './aws-fixtures.js';
import { errorOf } from '../../helpers/errors.js';

const credentials = {
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
};

describe('createRdsAuthTokenProvider', () => {
  it('signs a presigned connect URL for the user, host, port and region', async () => {
    const token = await createRdsAuthTokenProvider({ credentials })({
      hostname: 'pg-1.abcdefghijkl.eu-west-1.rds.amazonaws.com',
      port: 5432,
      username: 'latchkey_iam',
      region: 'eu-west-1',
    });

    expect(token.startsWith('pg-1.abcdefghijkl.eu-west-1.rds.amazonaws.com:5432/?')).toBe(true);
    const url = new URL(`https://${token}`);
    expect(url.searchParams.get('Action')).toBe('connect');
    expect(url.searchParams.get('DBUser')).toBe('latchkey_iam');
    expect(url.searchParams.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(
      /^AKIAIOSFODNN7EXAMPLE\/\d{8}\/eu-west-1\/rds-db\/aws4_request$/,
    );
    expect(url.searchParams.get('X-Amz-Expires')).toBe('900');
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    // The secret key signs the token but never appears in it.
    expect(token).not.toContain(credentials.secretAccessKey);
  });

  it('escapes the user name and signs each call anew', async () => {
    const sign = createRdsAuthTokenProvider({ credentials });
    const p = { hostname: 'h.example', port: 3306, username: 'lk_a+b', region: 'us-east-1' };
    const token = await sign(p);
    expect(new URL(`https://${token}`).searchParams.get('DBUser')).toBe('lk_a+b');
    expect(token).toContain('DBUser=lk_a%2Bb');
  });

  it('without usable credentials it is E_CONNECT, naming the login but no secret', async () => {
    const sign = createRdsAuthTokenProvider({
      credentials: () =>
        Promise.reject(
          Object.assign(new Error('Could not load credentials from any providers'), {
            name: 'CredentialsProviderError',
          }),
        ),
    });
    const err = await errorOf(
      sign({ hostname: 'h.example', port: 5432, username: 'svc', region: 'eu-west-1' }),
    );
    expect(err.code).toBe('E_CONNECT');
    expect(err.message).toMatch(/svc@h\.example:5432.*CredentialsProviderError/);
  });
});

describe('getRedshiftClusterCredentials', () => {
  const redshift = mockClient(RedshiftClient);
  const client = new RedshiftClient({ region: 'eu-west-1', credentials });

  beforeEach(() => {
    redshift.reset();
  });

  it('sends the exact GetClusterCredentials request and returns the IAM user', async () => {
    const expiration = new Date('2026-11-25T21:00:00Z');
    redshift.on(GetClusterCredentialsCommand).resolves({
      DbUser: 'IAM:latchkey_admin',
      DbPassword: 'AskjdhfTemporaryPwd==',
      Expiration: expiration,
      $metadata: {},
    });
    const creds = await getRedshiftClusterCredentials(client, {
      clusterIdentifier: 'analytics',
      dbUser: 'latchkey_admin',
      dbName: 'dev',
      durationSeconds: 900,
      autoCreate: false,
      dbGroups: ['latchkey_admins'],
    });
    expect(creds).toEqual({
      username: 'IAM:latchkey_admin',
      password: 'AskjdhfTemporaryPwd==',
      expiresAt: expiration,
    });
    expect(redshift).toHaveReceivedCommandExactlyOnceWith(GetClusterCredentialsCommand, {
      ClusterIdentifier: 'analytics',
      DbUser: 'latchkey_admin',
      DbName: 'dev',
      DurationSeconds: 900,
      AutoCreate: false,
      DbGroups: ['latchkey_admins'],
    });
  });

  it('omits optional fields that were not given', async () => {
    redshift.on(GetClusterCredentialsCommand).resolves({
      DbUser: 'IAM:u',
      DbPassword: 'pw',
      Expiration: new Date('2026-11-25T21:00:00Z'),
      $metadata: {},
    });
    await getRedshiftClusterCredentials(client, { clusterIdentifier: 'c', dbUser: 'u' });
    const input = redshift.commandCalls(GetClusterCredentialsCommand)[0]?.args[0].input;
    expect(input).toStrictEqual({ ClusterIdentifier: 'c', DbUser: 'u' });
  });

  it.each([
    [
      'ClusterNotFoundFault',
      new ClusterNotFoundFault({ message: 'Cluster analytics not found.', $metadata: {} }),
      'E_NOT_FOUND',
    ],
    ['AccessDenied', awsError('AccessDenied', 403), 'E_PRIVILEGE'],
    ['Throttling', awsError('Throttling', 400, 'Rate exceeded'), 'E_THROTTLED'],
    ['UnsupportedOperationFault', awsError('UnsupportedOperationFault', 400), 'E_UNSUPPORTED'],
    ['a 503', awsError('ServiceUnavailable', 503), 'E_CONNECT'],
  ] as const)('%s maps to %s', async (_, error, code) => {
    redshift.on(GetClusterCredentialsCommand).rejects(error);
    const err = await errorOf(
      getRedshiftClusterCredentials(client, { clusterIdentifier: 'analytics', dbUser: 'u' }),
    );
    expect(err.code).toBe(code);
    expect(err.message).toContain('analytics');
  });

  it('refuses a duration outside 900..3600 before calling AWS', async () => {
    const err = await errorOf(
      getRedshiftClusterCredentials(client, {
        clusterIdentifier: 'c',
        dbUser: 'u',
        durationSeconds: 60,
      }),
    );
    expect(err.code).toBe('E_INVALID');
    expect(redshift).toHaveReceivedCommandTimes(GetClusterCredentialsCommand, 0);
  });
});
