/**
 * The parts of the Redshift dialect that are also valid PostgreSQL (the journal schema,
 * the lock, grant records) and the GetClusterCredentials auth path, against the real
 * PostgreSQL. The Redshift-only statements are covered in test/unit/drivers/redshift.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { GetClusterCredentialsCommand, RedshiftClient } from '@aws-sdk/client-redshift';
import pino from 'pino';
import { RedshiftDialect } from '../../../../src/drivers/redshift/dialect.js';
import { RedshiftDriver } from '../../../../src/drivers/redshift/driver.js';
import { PgPools } from '../../../../src/drivers/postgres/pool.js';
import type { PgConnectionSpec } from '../../../../src/drivers/postgres/pool.js';
import type { GrantRecord, SqlScope, SqlSession } from '../../../../src/drivers/sql/dialect.js';
import type { AwsClientFactory } from '../../../../src/aws/types.js';
import type { Integration } from '../../../../src/protocol/messages.js';
import { createPgTestEnv, ctxFor, pgEndpoint, q, testServices } from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';

let env: PgTestEnv;
let pools: PgPools;
let spec: PgConnectionSpec;
const rs = mockClient(RedshiftClient);

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  const ep = pgEndpoint();
  pools = new PgPools(pino({ level: 'silent' }));
  spec = {
    key: `rs-${env.suffix}`,
    host: ep.host,
    port: ep.port,
    user: env.serviceAccount,
    password: '',
    sslMode: 'disable',
    ca: undefined,
    max: 4,
    idleTimeoutMs: 10_000,
    connectTimeoutMs: 5000,
  };
});

afterAll(async () => {
  await pools?.close();
  await env?.teardown();
});

beforeEach(() => rs.reset());

function withScope<T>(fn: (scope: SqlScope) => Promise<T>): Promise<T> {
  const db = env.databases[0] ?? '';
  const signal = AbortSignal.timeout(30_000);
  return pools.withSession(spec, db, 'main', signal, (session) =>
    fn({
      session,
      onDatabase: <R>(_d: string, f: (s: SqlSession) => Promise<R>) => f(session),
      withLockSession: <R>(f: (s: SqlSession) => Promise<R>) =>
        pools.withSession(spec, db, 'lock', signal, f),
      signal,
      serviceAccount: env.serviceAccount,
      prefix: env.prefix,
    }),
  );
}

describe('redshift journal on PostgreSQL', () => {
  it('creates the journal idempotently and keeps grant records', async () => {
    const dialect = new RedshiftDialect();
    const record: GrantRecord = {
      grantId: 'g1',
      role: `${env.prefix}g_g1`,
      username: `${env.prefix}ann_0000aaaa`,
      permission: { kind: 'read' },
      resources: [{ kind: 'table', database: 'dev', schema: 'public', table: 'orders' }],
      expiresAt: '2030-01-01T00:00:00.000Z',
    };
    await withScope(async (scope) => {
      await dialect.ensureMeta(scope);
      await dialect.ensureMeta(scope);
      await dialect.createGrantRole(scope, record); // CREATE ROLE is valid PostgreSQL too
      expect(await dialect.listGrantRoles(scope, { username: record.username })).toEqual([record]);
      await dialect.updateGrantRecord(scope, { ...record, expiresAt: '2031-01-01T00:00:00.000Z' });
      expect((await dialect.listGrantRoles(scope, {}))[0]?.expiresAt).toBe(
        '2031-01-01T00:00:00.000Z',
      );
      expect(await dialect.listGrantRoles(scope, { username: 'someone-else' })).toEqual([]);
    });
    await env.asAdmin(undefined, (a) => a.query(`DROP ROLE ${q(record.role)}`));
  });

  it('serializes two holders of the user lock', async () => {
    const dialect = new RedshiftDialect();
    const events: string[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const first = withScope((scope) =>
      dialect.withUserLock(scope, 'u', async () => {
        events.push('first:in');
        await gate;
        events.push('first:out');
      }),
    );
    await new Promise((r) => setTimeout(r, 100));
    const second = withScope((scope) =>
      dialect.withUserLock(scope, 'u', () => {
        events.push('second:in');
        return Promise.resolve();
      }),
    );
    await new Promise((r) => setTimeout(r, 200));
    release();
    await Promise.all([first, second]);
    expect(events).toEqual(['first:in', 'first:out', 'second:in']);
  });
});

describe('redshift GetClusterCredentials auth', () => {
  it('logs in as IAM:<user> with temporary credentials, cached until close to expiry', async () => {
    const iamLogin = `IAM:${env.serviceAccount}`;
    await env.asAdmin(undefined, (a) => a.query(`CREATE ROLE ${q(iamLogin)} LOGIN`));
    rs.on(GetClusterCredentialsCommand).resolves({
      DbUser: iamLogin,
      DbPassword: 'temporary-Password-1',
      Expiration: new Date(Date.now() + 15 * 60_000),
    });
    const aws: AwsClientFactory = { client: (cls, target) => new cls({ region: target.region }) };
    const driver = new RedshiftDriver({
      ...testServices({ resolve: () => Promise.reject(new Error('unused')) }),
      aws,
    });
    const ep = pgEndpoint();
    const integration: Integration = {
      id: `rs-${env.suffix}`,
      type: 'redshift',
      config: {
        host: ep.host,
        port: ep.port,
        database: env.databases[0],
        sslMode: 'prefer',
        authType: 'iam-auth',
        region: 'eu-west-1',
        username: env.serviceAccount,
        clusterIdentifier: 'analytics-1',
        userPrefix: env.prefix,
      },
    };
    try {
      const out = await driver.check(ctxFor(integration));
      expect(out.checks[0]).toMatchObject({ name: 'connect', ok: true });
      expect(out.checks[0]?.detail).toContain(env.serviceAccount);
      expect(out.serverVersion).toMatch(/PostgreSQL/);
      // Not a superuser: the operator is told what to grant.
      expect(out.checks.find((c) => c.name === 'create-user')).toMatchObject({ ok: false });
      await driver.check(ctxFor(integration));
      expect(rs).toHaveReceivedCommandTimes(GetClusterCredentialsCommand, 1);
      expect(rs).toHaveReceivedCommandWith(GetClusterCredentialsCommand, {
        ClusterIdentifier: 'analytics-1',
        DbUser: env.serviceAccount,
        DbName: env.databases[0],
        DurationSeconds: 900,
        AutoCreate: false,
      });
    } finally {
      await driver.close();
      await env.asAdmin(undefined, (a) => a.query(`DROP ROLE IF EXISTS ${q(iamLogin)}`));
    }
  });

  it('asks for the credentials of a member account cluster with that account’s member role', async () => {
    const iamLogin = `IAM:${env.serviceAccount}`;
    await env.asAdmin(undefined, (a) => a.query(`CREATE ROLE ${q(iamLogin)} LOGIN`));
    rs.reset();
    rs.on(GetClusterCredentialsCommand).resolves({
      DbUser: iamLogin,
      DbPassword: 'temporary-Password-2',
      Expiration: new Date(Date.now() + 15 * 60_000),
    });
    const targets: unknown[] = [];
    const aws: AwsClientFactory = {
      client: (cls, target) => {
        targets.push(target);
        return new cls({ region: target.region });
      },
    };
    const driver = new RedshiftDriver({
      ...testServices({ resolve: () => Promise.reject(new Error('unused')) }),
      aws,
    });
    const ep = pgEndpoint();
    const role = 'arn:aws:iam::222222222222:role/latchkey-member';
    const integration: Integration = {
      id: `rs-member-${env.suffix}`,
      type: 'redshift',
      config: {
        host: ep.host,
        port: ep.port,
        database: env.databases[0],
        sslMode: 'prefer',
        authType: 'iam-auth',
        region: 'eu-west-1',
        username: env.serviceAccount,
        clusterIdentifier: 'member-1',
        userPrefix: env.prefix,
        assumeRoleArn: role,
        externalId: 'org-ext-1',
      },
    };
    try {
      const out = await driver.check(ctxFor(integration));
      expect(out.checks[0]).toMatchObject({ name: 'connect', ok: true });
      expect(targets).toEqual([
        { region: 'eu-west-1', assumeRoleArn: role, externalId: 'org-ext-1' },
      ]);
      expect(rs).toHaveReceivedCommandWith(GetClusterCredentialsCommand, {
        ClusterIdentifier: 'member-1',
      });
    } finally {
      await driver.close();
      await env.asAdmin(undefined, (a) => a.query(`DROP ROLE IF EXISTS ${q(iamLogin)}`));
    }
  });
});
