import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  InternalServiceError,
  PutSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { tableId } from '../../../../src/drivers/sql/resources.js';
import { createSecretResolver } from '../../../../src/secrets/index.js';
import { createRdsAuthTokenProvider } from '../../../../src/secrets/iam-auth.js';
import type { AwsClientFactory } from '../../../../src/aws/types.js';
import type { Integration } from '../../../../src/protocol/messages.js';
import type { CallContext } from '../../../../src/drivers/driver.js';
import type { PgConnectionSpec } from '../../../../src/drivers/postgres/pool.js';
import { createPgTestEnv, ctxFor, testServices } from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

const sm = mockClient(SecretsManagerClient);

class IamProbeDriver extends PostgresDriver {
  async spec(ctx: CallContext): Promise<PgConnectionSpec> {
    return (await this.connection(ctx, this.parseConfig(ctx.integration))).spec;
  }
}
const aws: AwsClientFactory = { client: (cls, target) => new cls({ region: target.region }) };
const SECRET_ID = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:latchkey/pg-AbCdEf';

let env: PgTestEnv;
let db: string;

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  db = env.databases[0] ?? '';
  await env.asService(db, (c) => c.query('CREATE TABLE public.t (id int)'));
});

afterAll(async () => {
  await env?.teardown();
});

beforeEach(() => {
  sm.reset();
});

function smIntegration(): Integration {
  return {
    ...env.integration,
    secret: { store: 'aws-secrets-manager', secretId: SECRET_ID, region: 'eu-west-1' },
  };
}

describe('service-account rotation through Secrets Manager (two-phase)', () => {
  it('AWSPENDING → ALTER ROLE → verify login → AWSCURRENT, and a crash before promotion is finished by a re-run', async () => {
    let pending: { versionId: string; secretString: string } | null = null;
    // The generic answer first: a later, more specific stub wins.
    sm.on(GetSecretValueCommand, { SecretId: SECRET_ID }).resolves({
      ARN: SECRET_ID,
      VersionId: 'v-current',
      // As RDS writes it: bound to the server (src/secrets/binding.ts).
      SecretString: JSON.stringify({
        username: env.serviceAccount,
        password: 'old-password-1',
        host: env.integration.config['host'],
        port: env.integration.config['port'],
      }),
      VersionStages: ['AWSCURRENT'],
    });
    sm.on(GetSecretValueCommand, { SecretId: SECRET_ID, VersionStage: 'AWSPENDING' }).callsFake(
      () => {
        if (pending === null)
          throw new ResourceNotFoundException({ message: 'no pending', $metadata: {} });
        return {
          ARN: SECRET_ID,
          VersionId: pending.versionId,
          SecretString: pending.secretString,
          VersionStages: ['AWSPENDING'],
        };
      },
    );
    sm.on(PutSecretValueCommand).callsFake(
      (input: { ClientRequestToken: string; SecretString: string }) => {
        pending = { versionId: input.ClientRequestToken, secretString: input.SecretString };
        return {
          ARN: SECRET_ID,
          VersionId: input.ClientRequestToken,
          VersionStages: ['AWSPENDING'],
        };
      },
    );
    sm.on(DescribeSecretCommand).callsFake(() => ({
      ARN: SECRET_ID,
      VersionIdsToStages: {
        'v-current': ['AWSCURRENT'],
        ...(pending ? { [pending.versionId]: ['AWSPENDING'] } : {}),
      },
    }));
    // First promotion fails, as if the agent crashed between ALTER ROLE and promotion.
    sm.on(UpdateSecretVersionStageCommand)
      .rejectsOnce(
        new InternalServiceError({ message: 'boom', $metadata: { httpStatusCode: 500 } }),
      )
      .resolves({ ARN: SECRET_ID });

    const secrets = createSecretResolver({ aws, defaultRegion: 'eu-west-1', cacheTtlMs: 60_000 });
    const driver = new PostgresDriver({ ...testServices(secrets), aws });
    try {
      await expect(
        driver.rotate(ctxFor(smIntegration()), { target: { serviceAccount: true } }),
      ).rejects.toMatchObject({
        retryable: true,
      });
      expect(sm).toHaveReceivedCommandTimes(PutSecretValueCommand, 1);
      expect(sm).toHaveReceivedCommandWith(PutSecretValueCommand, {
        SecretId: SECRET_ID,
        VersionStages: ['AWSPENDING'],
      });
      const stored = JSON.parse(
        (pending as { secretString: string } | null)?.secretString ?? '{}',
      ) as {
        username: string;
        password: string;
      };
      expect(stored.username).toBe(env.serviceAccount);
      // The database already has the pending password; AWSCURRENT was not moved.
      expect(await env.passwordMatches(env.serviceAccount, stored.password)).toBe(true);

      const out = await driver.rotate(ctxFor(smIntegration()), {
        target: { serviceAccount: true },
      });
      expect(out.username).toBe(env.serviceAccount);
      expect(out.credentials).toBeUndefined();
      expect(out.phases.map((p) => [p.phase, p.status])).toEqual([
        ['put-pending', 'skipped'],
        ['set-password', 'done'],
        ['verify-login', 'done'],
        ['promote', 'done'],
      ]);
      // No second pending version: the interrupted one was finished.
      expect(sm).toHaveReceivedCommandTimes(PutSecretValueCommand, 1);
      expect(sm).toHaveReceivedCommandWith(UpdateSecretVersionStageCommand, {
        SecretId: SECRET_ID,
        VersionStage: 'AWSCURRENT',
        MoveToVersionId: (pending as { versionId: string } | null)?.versionId,
        RemoveFromVersionId: 'v-current',
      });
      expect(await env.passwordMatches(env.serviceAccount, stored.password)).toBe(true);
    } finally {
      await driver.close();
    }
  });

  it('refuses rotation of a secret store that cannot be written', async () => {
    const driver = new PostgresDriver(
      testServices(
        createSecretResolver({ aws, defaultRegion: 'eu-west-1', cacheTtlMs: 0, env: {} }),
      ),
    );
    try {
      await expect(
        driver.rotate(ctxFor(env.integration), { target: { serviceAccount: true } }),
      ).rejects.toMatchObject({
        code: 'E_UNSUPPORTED',
      });
    } finally {
      await driver.close();
    }
  });
});

describe('IAM database authentication', () => {
  it('signs a token per connection and creates grantees with rds_iam instead of a password', async () => {
    const created = await env.asAdmin(undefined, async (a) => {
      const r = await a.query(`SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'`);
      if (r.rowCount === 0) await a.query('CREATE ROLE rds_iam NOLOGIN');
      return r.rowCount === 0;
    });
    const sign = createRdsAuthTokenProvider({
      credentials: {
        accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      },
    });
    const tokens: string[] = [];
    const provider = vi.fn(
      async (p: { hostname: string; port: number; username: string; region: string }) => {
        const t = await sign(p);
        tokens.push(t);
        return t;
      },
    );
    const integration: Integration = {
      id: `iam-${env.suffix}`,
      type: 'postgres',
      config: {
        ...env.integration.config,
        sslMode: 'prefer', // the local server has no TLS: prefer falls back, as libpq does
        authType: 'iam-auth',
        region: 'eu-west-1',
        username: env.serviceAccount,
      },
    };
    const driver = new IamProbeDriver(
      testServices({ resolve: () => Promise.reject(new Error('no secret store')) }),
      {
        rdsTokenProvider: provider,
      },
    );
    try {
      const email = 'iam.user@example.com';
      const out = await driver.grant(ctxFor(integration), {
        grantId: 'iam1',
        grantee: { email },
        resources: [{ type: 'table', id: tableId(db, 'public', 't') }],
        permission: 'read',
      });
      expect(out.credentials).toBeUndefined();
      expect(out.access).toMatchObject({ authType: 'iam-auth', database: db });
      // The local server trusts 127.0.0.1 and never asks for the password: ask the
      // connection spec for it the way pg does on a server that does.
      const host = String(env.integration.config.host);
      const port = Number(env.integration.config.port);
      const spec = await driver.spec(ctxFor(integration));
      expect(spec.user).toBe(env.serviceAccount);
      expect(typeof spec.password).toBe('function');
      const token = typeof spec.password === 'function' ? await spec.password() : '';
      expect(token).toBe(tokens[0]);
      expect(provider).toHaveBeenCalledWith({
        hostname: host,
        port,
        username: env.serviceAccount,
        region: 'eu-west-1',
      });
      expect(new URL(`https://${tokens[0] ?? ''}`).searchParams.get('DBUser')).toBe(
        env.serviceAccount,
      );
      const info = await env.asAdmin(undefined, (a) =>
        a.query<{ p: string | null; iam: boolean }>(
          `SELECT rolpassword AS p, pg_has_role(rolname, 'rds_iam', 'MEMBER') AS iam FROM pg_authid WHERE rolname = $1`,
          [out.username],
        ),
      );
      expect(info.rows[0]).toEqual({ p: null, iam: true });
      await expect(
        driver.rotate(ctxFor(integration), { target: { grantee: { email } } }),
      ).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
      await driver.revoke(ctxFor(integration), {
        grantId: 'iam1',
        grantee: { email },
        resources: [],
        permission: 'read',
      });
    } finally {
      await driver.close();
      // Users that are members of rds_iam go first, then rds_iam itself (if we made it).
      await env.teardown();
      if (created) await env.asAdmin(undefined, (a) => a.query('DROP ROLE IF EXISTS rds_iam'));
    }
  });

  it('refuses IAM auth without TLS', async () => {
    const driver = new PostgresDriver(
      testServices({ resolve: () => Promise.reject(new Error('unused')) }),
    );
    try {
      const integration: Integration = {
        id: 'iam-notls',
        type: 'postgres',
        config: {
          host: 'db.internal',
          authType: 'iam-auth',
          region: 'eu-west-1',
          username: 'x',
          sslMode: 'disable',
        },
      };
      await expect(driver.discover(ctxFor(integration))).rejects.toMatchObject({
        code: 'E_INVALID',
      });
    } finally {
      await driver.close();
    }
  });
});
