/**
 * Secrets as customers store them (docs/secrets.md, "Binding by tag"): a Secrets Manager
 * secret `{username, password}` under any name, without `host`, is refused by the
 * secret-to-target binding, and `check` says why and which tags allow it; once tagged
 * `latchkey-connector-read=true` and `latchkey-connector-target=<host>`, the real PostgreSQL
 * driver works with it. Secrets Manager is mocked at the SDK command level.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import type { AwsClientFactory } from '../../../src/aws/types.js';
import { driverFactory as postgresFactory } from '../../../src/drivers/postgres/index.js';
import type { Integration } from '../../../src/protocol/messages.js';
import { createSecretResolver } from '../../../src/secrets/index.js';
import { createPgTestEnv, ctxFor, testServices, type PgTestEnv } from '../../helpers/pg.js';

const sm = mockClient(SecretsManagerClient);
const rds = mockClient(RDSClient);
const aws: AwsClientFactory = { client: (cls, target) => new cls({ region: target.region }) };
const SECRET_ID = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/orders-admin-Xy12Zq';
const PASSWORD = 'Customer-Stored-Pa55';

let env: PgTestEnv;
beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
});
afterAll(async () => {
  await env?.teardown();
  sm.restore();
  rds.restore();
});
beforeEach(() => {
  sm.reset();
  rds.reset();
  sm.on(GetSecretValueCommand, { SecretId: SECRET_ID }).resolves({
    ARN: SECRET_ID,
    VersionId: 'v1',
    SecretString: JSON.stringify({ username: env.serviceAccount, password: PASSWORD }),
    VersionStages: ['AWSCURRENT'],
  });
});

function integration(): Integration {
  return {
    ...env.integration,
    secret: { store: 'aws-secrets-manager', secretId: SECRET_ID, region: 'eu-west-1' },
  };
}

function driverWith(tagPrefix?: string) {
  const secrets = createSecretResolver({
    aws,
    defaultRegion: 'eu-west-1',
    cacheTtlMs: 0,
    ...(tagPrefix !== undefined ? { tagPrefix } : {}),
  });
  return postgresFactory({ ...testServices(secrets), aws });
}

describe('binding by tag through the postgres driver', () => {
  it('check says why an untagged {username, password} secret is refused, and how to allow it', async () => {
    sm.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ID,
      Tags: [{ Key: 'team', Value: 'orders' }],
    });
    const driver = driverWith();
    const out = await driver.check(ctxFor(integration()));
    expect(out.ok).toBe(false);
    const text = JSON.stringify(out.checks);
    expect(text).toContain('E_GUARDRAIL');
    expect(text).toContain('names no host');
    expect(text).toContain(
      `tag the secret latchkey-connector-read=true and latchkey-connector-target=${String(env.integration.config['host'])}`,
    );
    expect(text).not.toContain(PASSWORD);
    await driver.close();
  });

  it('a secret tagged connector-read and connector-target=<host> works; another target is refused', async () => {
    const host = String(env.integration.config['host']);
    sm.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ID,
      Tags: [
        { Key: 'apono-connector-read', Value: 'true' },
        { Key: 'apono-connector-target', Value: host },
      ],
    });
    const driver = driverWith('apono');
    const out = await driver.check(ctxFor(integration()));
    expect(out.checks.filter((c) => !c.ok)).toEqual([]);
    expect(sm).toHaveReceivedCommandWith(DescribeSecretCommand, { SecretId: SECRET_ID });
    await driver.close();

    sm.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ID,
      Tags: [
        { Key: 'apono-connector-read', Value: 'true' },
        { Key: 'apono-connector-target', Value: 'orders.other.internal' },
      ],
    });
    const other = driverWith('apono');
    const refused = await other.check(ctxFor(integration()));
    expect(refused.ok).toBe(false);
    expect(JSON.stringify(refused.checks)).toContain(
      'is bound by its tag apono-connector-target to another server',
    );
    await other.close();
  });

  it('an integration by rdsInstanceId: the target tag may name the instance', async () => {
    rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'orders-pg' }).resolves({
      DBInstances: [
        {
          DBInstanceIdentifier: 'orders-pg',
          Engine: 'postgres',
          Endpoint: { Address: '127.0.0.1', Port: Number(env.integration.config['port']) },
        },
      ],
    });
    sm.on(DescribeSecretCommand).resolves({
      ARN: SECRET_ID,
      Tags: [
        { Key: 'latchkey-connector-read', Value: 'true' },
        { Key: 'latchkey-connector-target', Value: 'orders-pg' },
      ],
    });
    const { host: _h, port: _p, ...config } = env.integration.config;
    const byId: Integration = {
      ...integration(),
      config: { ...config, rdsInstanceId: 'orders-pg', region: 'eu-west-1' },
    };
    const driver = driverWith();
    const out = await driver.check(ctxFor(byId));
    expect(out.checks.filter((c) => !c.ok)).toEqual([]);
    await driver.close();
    // The same tag does not bind the secret to a host given directly.
    const direct = driverWith();
    const refused = await direct.check(ctxFor(integration()));
    expect(refused.ok).toBe(false);
    await direct.close();
  });
});
