/**
 * A PostgreSQL database found in an AWS Organization member account (issue 12): its
 * Secrets Manager secret is read, and its RDS IAM auth token signed, with that account's
 * member role, through the real client factory (STS and Secrets Manager mocked at the SDK
 * command level), against the real local PostgreSQL.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  GetSecretValueCommand,
  SecretsManagerClient,
  SecretsManagerServiceException,
} from '@aws-sdk/client-secrets-manager';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import pino from 'pino';
import { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { tableId } from '../../../../src/drivers/sql/resources.js';
import { createAwsClientFactory } from '../../../../src/aws/index.js';
import { AgentEvents } from '../../../../src/events.js';
import { createSecretResolver } from '../../../../src/secrets/index.js';
import type { Integration } from '../../../../src/protocol/messages.js';
import type { CallContext } from '../../../../src/drivers/driver.js';
import type { PgConnectionSpec } from '../../../../src/drivers/postgres/pool.js';
import { createPgTestEnv, ctxFor, testServices } from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

const MEMBER = '222222222222';
const ROLE = `arn:aws:iam::${MEMBER}:role/latchkey-member`;
const SECRET_ID = `arn:aws:secretsmanager:eu-west-1:${MEMBER}:secret:latchkey/pg-AbCdEf`;

const sm = mockClient(SecretsManagerClient);
const sts = mockClient(STSClient);

class ProbeDriver extends PostgresDriver {
  async spec(ctx: CallContext): Promise<PgConnectionSpec> {
    return (await this.connection(ctx, this.parseConfig(ctx.integration))).spec;
  }
}

function factory() {
  return createAwsClientFactory({
    defaultRegion: 'eu-west-1',
    events: new AgentEvents(),
    logger: pino({ level: 'silent' }),
    baseCredentials: () =>
      Promise.resolve({ accessKeyId: 'AKIAHOMEEXAMPLE', secretAccessKey: 'home-secret' }),
    maxAttempts: 1,
  });
}

let env: PgTestEnv;
let db: string;

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  db = env.databases[0] ?? '';
  await env.asService(db, (c) => c.query('CREATE TABLE public.t (id int)'));
});

afterAll(async () => {
  await env?.teardown();
  sm.restore();
  sts.restore();
});

beforeEach(() => {
  sm.reset();
  sts.reset();
  sts.on(AssumeRoleCommand).callsFake((input: { RoleArn: string }) => {
    const account = /::(\d{12}):/.exec(input.RoleArn)?.[1] ?? '';
    return {
      Credentials: {
        AccessKeyId: `ASIA${account}`,
        SecretAccessKey: 'member-secret',
        SessionToken: 'member-token',
        Expiration: new Date(Date.now() + 3600_000),
      },
    };
  });
});

describe('a database in a member account', () => {
  it('user-password: the secret is read with the member role and the service account logs in with it', async () => {
    const readBy: string[] = [];
    sm.on(GetSecretValueCommand).callsFake(async (_input: unknown, getClient) => {
      const client = getClient() as {
        config: { credentials: () => Promise<{ accessKeyId: string }> };
      };
      const key = (await client.config.credentials()).accessKeyId;
      readBy.push(key);
      // Only the member account itself may read its secret (no resource policy needed).
      if (key !== `ASIA${MEMBER}`) {
        throw new SecretsManagerServiceException({
          name: 'AccessDeniedException',
          message: 'not authorized to perform: secretsmanager:GetSecretValue',
          $fault: 'client',
          $metadata: { httpStatusCode: 400 },
        });
      }
      return {
        ARN: SECRET_ID,
        VersionId: 'v1',
        VersionStages: ['AWSCURRENT'],
        SecretString: JSON.stringify({
          username: env.serviceAccount,
          password: 'unused-on-trusted-localhost',
          host: env.integration.config.host,
          port: env.integration.config.port,
        }),
      };
    });
    const aws = factory();
    const secrets = createSecretResolver({ aws, defaultRegion: 'eu-west-1', cacheTtlMs: 60_000 });
    const driver = new PostgresDriver({ ...testServices(secrets), aws });
    const integration: Integration = {
      ...env.integration,
      secret: {
        store: 'aws-secrets-manager',
        secretId: SECRET_ID,
        region: 'eu-west-1',
        assumeRoleArn: ROLE,
      },
    };
    try {
      const email = 'member.user@example.com';
      const out = await driver.grant(ctxFor(integration), {
        grantId: 'm1',
        grantee: { email },
        resources: [{ type: 'table', id: tableId(db, 'public', 't') }],
        permission: 'read',
        recipientKey: env.recipient.publicKey,
      });
      expect(out.username).toMatch(/^lk_/);
      expect(readBy[0]).toBe(`ASIA${MEMBER}`);
      expect(sts).toHaveReceivedCommandExactlyOnceWith(AssumeRoleCommand, { RoleArn: ROLE });
      await driver.revoke(ctxFor(integration), {
        grantId: 'm1',
        grantee: { email },
        resources: [],
        permission: 'read',
      });
      // Without the role the same secret is refused: the connector's own identity is not used.
      const plain = new PostgresDriver({
        ...testServices(createSecretResolver({ aws, defaultRegion: 'eu-west-1', cacheTtlMs: 0 })),
        aws,
      });
      try {
        await expect(
          plain.discover(
            ctxFor({
              ...env.integration,
              secret: { store: 'aws-secrets-manager', secretId: SECRET_ID, region: 'eu-west-1' },
            }),
          ),
        ).rejects.toMatchObject({ code: 'E_SECRET' });
      } finally {
        await plain.close();
      }
    } finally {
      await driver.close();
      aws.destroy();
    }
  });

  it('iam-auth: the RDS token is signed with the member role, and the connection works', async () => {
    const aws = factory();
    const driver = new ProbeDriver({
      ...testServices({ resolve: () => Promise.reject(new Error('no secret store')) }),
      aws,
    });
    const integration: Integration = {
      id: `member-iam-${env.suffix}`,
      type: 'postgres',
      config: {
        ...env.integration.config,
        sslMode: 'prefer', // the local server has no TLS
        authType: 'iam-auth',
        region: 'eu-west-1',
        username: env.serviceAccount,
        assumeRoleArn: ROLE,
      },
    };
    try {
      const spec = await driver.spec(ctxFor(integration));
      const token = typeof spec.password === 'function' ? await spec.password() : '';
      const url = new URL(`https://${token}`);
      expect(url.searchParams.get('X-Amz-Credential')).toMatch(
        new RegExp(`^ASIA${MEMBER}/\\d{8}/eu-west-1/rds-db/aws4_request$`),
      );
      expect(url.searchParams.get('X-Amz-Security-Token')).toBe('member-token');
      expect(url.searchParams.get('DBUser')).toBe(env.serviceAccount);
      expect(sts).toHaveReceivedCommandExactlyOnceWith(AssumeRoleCommand, { RoleArn: ROLE });
      // The local server trusts 127.0.0.1; the connection itself works through the spec.
      const out = await driver.discover(ctxFor(integration));
      expect(out.resources.some((r) => r.type === 'database' && r.name === db)).toBe(true);
      // A role outside the allowed pattern is refused before any call.
      await expect(
        driver.spec(
          ctxFor({
            ...integration,
            config: { ...integration.config, assumeRoleArn: `arn:aws:iam::${MEMBER}:role/Admin` },
          }),
        ),
      ).rejects.toMatchObject({ code: 'E_GUARDRAIL' });
    } finally {
      await driver.close();
      aws.destroy();
    }
  });
});
