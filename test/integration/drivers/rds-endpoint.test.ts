/**
 * Integration by region + RDS instance / cluster id (docs/drivers/postgres.md and mysql.md,
 * "By RDS instance id"): the driver looks the endpoint up with DescribeDBInstances /
 * DescribeDBClusters (mocked here, answering 127.0.0.1 and the test server's port) and then
 * works against the real PostgreSQL and MariaDB.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DBInstanceNotFoundFault,
  DescribeDBClustersCommand,
  DescribeDBInstancesCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import type { AwsClientFactory } from '../../../src/aws/types.js';
import { driverFactory as postgresFactory } from '../../../src/drivers/postgres/index.js';
import { driverFactory as mysqlFactory } from '../../../src/drivers/mysql/index.js';
import { tableId } from '../../../src/drivers/sql/resources.js';
import type { Integration } from '../../../src/protocol/messages.js';
import type { LatchkeyError } from '../../../src/errors.js';
import {
  createPgTestEnv,
  ctxFor,
  pgEndpoint,
  staticSecrets,
  testServices,
  type PgTestEnv,
} from '../../helpers/pg.js';
import {
  createMysqlFixture,
  mysqlEndpoint,
  mysqlLogin,
  type MysqlFixture,
} from '../../helpers/mysql.js';

const rds = mockClient(RDSClient);
const aws: AwsClientFactory = { client: (cls, target) => new cls({ region: target.region }) };

async function rejection(p: Promise<unknown>): Promise<LatchkeyError> {
  try {
    await p;
  } catch (err) {
    return err as LatchkeyError;
  }
  throw new Error('expected a rejection');
}

afterAll(() => {
  rds.restore();
});
beforeEach(() => {
  rds.reset();
});

describe('postgres by rdsInstanceId / rdsClusterId', () => {
  let env: PgTestEnv;
  let db: string;
  beforeAll(async () => {
    env = await createPgTestEnv({ databases: 1 });
    db = env.databases[0] ?? '';
    await env.asService(db, (c) => c.query('CREATE TABLE public.items (id int)'));
  });
  afterAll(async () => {
    await env?.teardown();
  });

  function byId(extra: Record<string, unknown>): Integration {
    const { host: _h, port: _p, ...config } = env.integration.config;
    return { ...env.integration, config: { ...config, region: 'eu-west-1', ...extra } };
  }
  const services = () => ({
    ...testServices(staticSecrets({ username: env.serviceAccount, password: '' })),
    aws,
  });

  it('resolves the instance endpoint once, then grants, checks and revokes on it', async () => {
    rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'orders-pg' }).resolves({
      DBInstances: [
        {
          DBInstanceIdentifier: 'orders-pg',
          Engine: 'postgres',
          DBInstanceStatus: 'available',
          Endpoint: { Address: '127.0.0.1', Port: pgEndpoint().port },
        },
      ],
    });
    const driver = postgresFactory(services());
    const integration = byId({ rdsInstanceId: 'orders-pg' });
    const check = await driver.check(ctxFor(integration));
    expect(check.ok).toBe(true);
    expect(check.checks[0]).toEqual({
      name: 'rds-endpoint',
      ok: true,
      detail: `endpoint 127.0.0.1:${pgEndpoint().port}`,
    });
    const granted = await driver.grant(ctxFor(integration), {
      grantId: 'g1',
      grantee: { email: 'rds.user@example.com' },
      resources: [{ type: 'table', id: tableId(db, 'public', 'items') }],
      permission: 'read',
      recipientKey: env.recipient.publicKey,
    });
    // Grantees are told the resolved endpoint.
    expect(granted.access).toMatchObject({ host: '127.0.0.1', port: pgEndpoint().port });
    const c = await env.connectAs(granted.username, db);
    await c.query('SELECT * FROM public.items');
    await c.end();
    await driver.revoke(ctxFor(integration), {
      grantId: 'g1',
      grantee: { email: 'rds.user@example.com' },
      resources: [{ type: 'table', id: tableId(db, 'public', 'items') }],
      permission: 'read',
    });
    // One lookup for the three calls (cached), with exactly the id given.
    expect(rds).toHaveReceivedCommandTimes(DescribeDBInstancesCommand, 1);
    expect(rds).toHaveReceivedCommandWith(DescribeDBInstancesCommand, {
      DBInstanceIdentifier: 'orders-pg',
    });
    await driver.close();
  });

  it('an Aurora cluster id resolves to the writer endpoint', async () => {
    rds.on(DescribeDBClustersCommand, { DBClusterIdentifier: 'events-aurora' }).resolves({
      DBClusters: [
        {
          DBClusterIdentifier: 'events-aurora',
          Engine: 'aurora-postgresql',
          Status: 'available',
          Endpoint: '127.0.0.1',
          Port: pgEndpoint().port,
        },
      ],
    });
    const driver = postgresFactory(services());
    const out = await driver.discover(ctxFor(byId({ rdsClusterId: 'events-aurora' })));
    expect(out.resources.some((r) => r.name === db)).toBe(true);
    expect(rds).not.toHaveReceivedCommand(DescribeDBInstancesCommand);
    await driver.close();
  });

  it('refuses a wrong engine, a missing instance, one not ready, and bad configs, before connecting', async () => {
    rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'billing-mysql' }).resolves({
      DBInstances: [
        {
          DBInstanceIdentifier: 'billing-mysql',
          Engine: 'mysql',
          Endpoint: { Address: '127.0.0.1', Port: pgEndpoint().port },
        },
      ],
    });
    rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'new-pg' }).resolves({
      DBInstances: [
        { DBInstanceIdentifier: 'new-pg', Engine: 'postgres', DBInstanceStatus: 'creating' },
      ],
    });
    rds
      .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'gone-pg' })
      .rejects(
        new DBInstanceNotFoundFault({ message: 'DBInstance gone-pg not found.', $metadata: {} }),
      );
    const driver = postgresFactory(services());
    const wrongEngine = await rejection(
      driver.discover(ctxFor(byId({ rdsInstanceId: 'billing-mysql' }))),
    );
    expect(wrongEngine.code).toBe('E_INVALID');
    expect(wrongEngine.message).toContain('runs mysql, not PostgreSQL');
    const creating = await rejection(driver.discover(ctxFor(byId({ rdsInstanceId: 'new-pg' }))));
    expect(creating.code).toBe('E_CONNECT');
    expect(creating.message).toContain('no endpoint yet (status creating)');
    const gone = await rejection(driver.discover(ctxFor(byId({ rdsInstanceId: 'gone-pg' }))));
    expect(gone.code).toBe('E_NOT_FOUND');
    const check = await driver.check(ctxFor(byId({ rdsInstanceId: 'gone-pg' })));
    expect(check).toMatchObject({ ok: false, checks: [{ name: 'rds-endpoint', ok: false }] });

    const calls = rds.commandCalls(DescribeDBInstancesCommand).length;
    for (const [extra, problem] of [
      [{ rdsInstanceId: 'a', rdsClusterId: 'b' }, 'give one, not both'],
      [{ rdsInstanceId: 'a', region: undefined }, 'region: required'],
      [{ rdsInstanceId: 'a', host: 'db.internal' }, 'host: give host or an RDS id, not both'],
      [{ rdsInstanceId: '1bad_id' }, 'an RDS DB instance identifier'],
    ] as const) {
      const err = await rejection(driver.discover(ctxFor(byId(extra))));
      expect(err.code).toBe('E_INVALID');
      expect(err.message).toContain(problem);
    }
    const noHost = await rejection(driver.discover(ctxFor(byId({}))));
    expect(noHost.message).toContain(
      'host: required (or rdsInstanceId / rdsClusterId with region)',
    );
    expect(rds.commandCalls(DescribeDBInstancesCommand).length).toBe(calls);
    await driver.close();
  });
});

describe('mysql (MariaDB) by rdsInstanceId', () => {
  let f: MysqlFixture;
  beforeAll(async () => {
    f = await createMysqlFixture();
  });
  afterAll(async () => {
    await f?.teardown();
  });

  it('resolves the endpoint and grants on the real MariaDB', async () => {
    rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'legacy-maria' }).resolves({
      DBInstances: [
        {
          DBInstanceIdentifier: 'legacy-maria',
          Engine: 'mariadb',
          DBInstanceStatus: 'available',
          Endpoint: { Address: '127.0.0.1', Port: mysqlEndpoint().port },
        },
      ],
    });
    const driver = mysqlFactory({ ...f.services, aws });
    const { host: _h, port: _p, ...config } = f.integration().config;
    const integration: Integration = {
      ...f.integration(),
      config: { ...config, rdsInstanceId: 'legacy-maria', region: 'eu-west-1' },
    };
    const out = await driver.grant(f.ctx(integration), {
      grantId: `g-rds-${f.suffix}`,
      grantee: { email: `rds.${f.suffix}@example.com` },
      resources: [{ type: 'table', id: tableId(f.database, null, 'orders') }],
      permission: 'read',
    });
    const creds = out.credentials as { plaintext: Record<string, string> };
    const conn = await mysqlLogin(out.username, creds.plaintext.password ?? '');
    const [rows] = await conn.query(`SELECT COUNT(*) AS n FROM \`${f.database}\`.orders`);
    expect((rows as { n: number }[])[0]?.n).toBe(2);
    await conn.end();
    const check = await driver.check(f.ctx(integration));
    expect(check.checks[0]).toMatchObject({ name: 'rds-endpoint', ok: true });
    expect(rds).toHaveReceivedCommandTimes(DescribeDBInstancesCommand, 1);
    // A PostgreSQL instance id is refused by the mysql driver.
    rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'orders-pg' }).resolves({
      DBInstances: [
        {
          DBInstanceIdentifier: 'orders-pg',
          Engine: 'postgres',
          Endpoint: { Address: '127.0.0.1', Port: 5432 },
        },
      ],
    });
    const err = await rejection(
      driver.discover(
        f.ctx({ ...integration, config: { ...integration.config, rdsInstanceId: 'orders-pg' } }),
      ),
    );
    expect(err.code).toBe('E_INVALID');
    expect(err.message).toContain('not MySQL/MariaDB');
    await driver.close();
  });
});
