/**
 * End users with IAM database authentication (issue 14, item 7), the whole path: the
 * postgres driver (authType iam-auth) creates the grantee's login as a member of `rds_iam`
 * on a real PostgreSQL (RDS's role simulated as the other IAM-auth tests do), and the
 * aws-iam driver lets the requester's AWS principal use exactly that database user
 * (`rds-db:connect` on `dbuser:<DbiResourceId>/<username>`) until the grant's expiry. IAM is
 * mocked at the SDK command level; revoke removes both.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DeleteRolePolicyCommand,
  GetRolePolicyCommand,
  IAMClient,
  ListRolePoliciesCommand,
  NoSuchEntityException,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import { driverFactory as awsIamDriver } from '../../../../src/drivers/aws-iam/index.js';
import { tableId } from '../../../../src/drivers/sql/resources.js';
import type { Integration } from '../../../../src/protocol/messages.js';
import { createPgTestEnv, ctxFor, testServices } from '../../../helpers/pg.js';
import type { PgTestEnv } from '../../../helpers/pg.js';
import { makeCtx, makeServices } from '../../../unit/aws/helpers.js';

const ACCOUNT = '123456789012';
const DBI_RESOURCE_ID = 'db-ABCDEFGHIJKLMNOPQRSTUVWXY1';
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/jane-sso`;
// Later than the real clock (postgres) and the fixed clock of the AWS services (2026-11-25).
const EXPIRES = new Date(Date.now() + 3_600_000).toISOString();
const iam = mockClient(IAMClient);

let env: PgTestEnv;
let db: string;
let createdRdsIam = false;

beforeAll(async () => {
  env = await createPgTestEnv({ databases: 1 });
  db = env.databases[0] ?? '';
  await env.asService(db, (c) => c.query('CREATE TABLE public.t (id int)'));
  createdRdsIam = await env.asAdmin(undefined, async (a) => {
    const r = await a.query(`SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'`);
    if (r.rowCount === 0) await a.query('CREATE ROLE rds_iam NOLOGIN');
    return r.rowCount === 0;
  });
});

afterAll(async () => {
  iam.restore();
  await env?.teardown();
  if (createdRdsIam) {
    await env
      .asAdmin(undefined, (a) => a.query('DROP ROLE IF EXISTS rds_iam'))
      .catch(() => undefined);
  }
});

describe('IAM database authentication of the grantee: database user + rds-db:connect', () => {
  it('grant: a passwordless rds_iam login, then rds-db:connect on exactly that user until expiry; revoke: both gone', async () => {
    const pgIntegration: Integration = {
      id: `iam-${env.suffix}`,
      type: 'postgres',
      config: {
        ...env.integration.config,
        sslMode: 'prefer', // the local server has no TLS
        authType: 'iam-auth',
        region: 'eu-west-1',
        username: env.serviceAccount,
      },
    };
    const pg = new PostgresDriver(
      testServices({ resolve: () => Promise.reject(new Error('no secret store')) }),
      { rdsTokenProvider: () => Promise.resolve('not-checked-by-the-local-server') },
    );
    const aws = awsIamDriver(makeServices());
    const awsCtx = makeCtx({
      type: 'aws-iam',
      config: {
        accountId: ACCOUNT,
        regions: ['eu-west-1'],
        resourceTypes: ['rds-db-user'],
        rdsDbUserPrefixes: [String(env.integration.config['userPrefix'])],
      },
    });
    const grantee = { email: 'jane.doe@example.com', awsPrincipalArn: ROLE_ARN };
    try {
      // 1. The database side: the login, no password, member of rds_iam.
      const dbGrant = await pg.grant(ctxFor(pgIntegration), {
        grantId: 'iamu1',
        grantee,
        resources: [{ type: 'table', id: tableId(db, 'public', 't') }],
        permission: 'read',
        expiresAt: EXPIRES,
      });
      expect(dbGrant.credentials).toBeUndefined();
      expect(dbGrant.access).toMatchObject({ authType: 'iam-auth' });
      const info = await env.asAdmin(undefined, (a) =>
        a.query<{ p: string | null; iam: boolean }>(
          `SELECT rolpassword AS p, pg_has_role(rolname, 'rds_iam', 'MEMBER') AS iam FROM pg_authid WHERE rolname = $1`,
          [dbGrant.username],
        ),
      );
      expect(info.rows[0]).toEqual({ p: null, iam: true });

      // 2. The AWS side: the requester's principal may connect as that user, and only it.
      iam
        .on(GetRolePolicyCommand)
        .rejects(new NoSuchEntityException({ message: 'no', $metadata: { httpStatusCode: 404 } }));
      iam.on(ListRolePoliciesCommand).resolves({ PolicyNames: [], IsTruncated: false });
      iam.on(PutRolePolicyCommand).resolves({});
      iam.on(DeleteRolePolicyCommand).resolves({});
      const dbUserArn = `arn:aws:rds-db:eu-west-1:${ACCOUNT}:dbuser:${DBI_RESOURCE_ID}/${dbGrant.username ?? ''}`;
      await aws.grant(awsCtx, {
        grantId: 'iamu1-connect',
        grantee,
        resources: [{ type: 'rds-db-user', id: dbUserArn }],
        permission: 'connect',
        expiresAt: EXPIRES,
      });
      expect(iam).toHaveReceivedCommandWith(PutRolePolicyCommand, {
        RoleName: 'jane-sso',
        PolicyName: 'latchkey-grant-iamu1-connect',
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Action: 'rds-db:connect',
              Resource: dbUserArn,
              Condition: { DateLessThan: { 'aws:CurrentTime': EXPIRES } },
            },
          ],
        }),
      });
      // A user the connector does not manage (the master user here) is never grantable.
      await expect(
        aws.grant(awsCtx, {
          grantId: 'iamu1-bad',
          grantee,
          resources: [
            {
              type: 'rds-db-user',
              id: `arn:aws:rds-db:eu-west-1:${ACCOUNT}:dbuser:${DBI_RESOURCE_ID}/postgres`,
            },
          ],
          permission: 'connect',
        }),
      ).rejects.toMatchObject({ code: 'E_GUARDRAIL' });

      // 3. Revoke both.
      await aws.revoke(awsCtx, {
        grantId: 'iamu1-connect',
        grantee,
        resources: [],
        permission: 'connect',
      });
      expect(iam).toHaveReceivedCommandWith(DeleteRolePolicyCommand, {
        RoleName: 'jane-sso',
        PolicyName: 'latchkey-grant-iamu1-connect',
      });
      await pg.revoke(ctxFor(pgIntegration), {
        grantId: 'iamu1',
        grantee,
        resources: [],
        permission: 'read',
      });
      const after = await env.asAdmin(undefined, (a) =>
        a.query<{ login: boolean }>(
          `SELECT rolcanlogin AS login FROM pg_roles WHERE rolname = $1`,
          [dbGrant.username],
        ),
      );
      expect(after.rows[0]?.login).toBe(false);
    } finally {
      await pg.close();
      await env.teardown();
    }
  });
});
