import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import {
  ListAccountsCommand,
  ListAccountsForParentCommand,
  ListOrganizationalUnitsForParentCommand,
  ListRootsCommand,
} from '@aws-sdk/client-organizations';
import {
  GetDefaultViewCommand,
  ListIndexesCommand,
  ListResourcesCommand,
  ResourceExplorer2ServiceException,
} from '@aws-sdk/client-resource-explorer-2';
import { DiscoverOutputSchema, type Integration } from '../../../../src/protocol/messages.js';
import {
  PostgresConfigSchema,
  parsePostgresConfig,
} from '../../../../src/drivers/postgres/config.js';
import { MysqlConfigSchema, parseMysqlConfig } from '../../../../src/drivers/mysql/config.js';
import { parseRedshiftConfig } from '../../../../src/drivers/redshift/config.js';
import { makeCtx, rejection } from '../../aws/helpers.js';
import {
  CONNECTOR,
  HOME,
  allMocks,
  dbCluster,
  instance,
  makeDriver,
  orgs,
  ours,
  re,
  redshiftCluster,
  secretArn,
  serveWorld,
  sts,
  type SeenCall,
  type World,
} from './world.js';

const EU = 'eu-west-1';
const US = 'us-east-1';
const A2 = '222222222222';
const A3 = '333333333333';
const A4 = '444444444444';
const A5 = '555555555555';

function ctxFor(config: Record<string, unknown>) {
  return makeCtx({ id: 'aws-disc-1', type: 'aws-discovery', config });
}

const baseConfig = {
  connectorId: CONNECTOR,
  regions: [EU, US],
  useResourceExplorer: false,
};

/** Every configuration the SQL drivers would be handed must parse with their own schemas. */
function assertSqlDriversAccept(integrations: Integration[]): void {
  for (const i of integrations) {
    if (i.type === 'postgres') {
      expect(PostgresConfigSchema.safeParse(i.config).success).toBe(true);
      expect(() => parsePostgresConfig(i)).not.toThrow();
    } else if (i.type === 'mysql') {
      expect(MysqlConfigSchema.safeParse(i.config).success).toBe(true);
      expect(() => parseMysqlConfig(i.config)).not.toThrow();
    } else if (i.type === 'redshift') {
      expect(() => parseRedshiftConfig(i)).not.toThrow();
    } else {
      throw new Error(`unexpected type ${i.type}`);
    }
  }
}

function ops(calls: SeenCall[], op: string): { account: string; region: string }[] {
  return calls.filter((c) => c.op === op).map(({ account, region }) => ({ account, region }));
}

describe('aws-discovery driver: discover', () => {
  beforeEach(() => {
    for (const m of allMocks) m.reset();
  });
  afterAll(() => {
    for (const m of allMocks) m.restore();
  });

  it('turns tagged RDS PostgreSQL, MySQL, MariaDB, Aurora and Redshift across two regions and pages into exact sub-integrations', async () => {
    const pgSecret = secretArn(HOME, EU, 'prod/orders-pg');
    const rsSecret = secretArn(HOME, US, 'prod/warehouse');
    const world: World = {
      [HOME]: {
        [EU]: {
          instances: [
            instance(HOME, EU, 'orders-pg', 'postgres', {
              ...ours('user-password', pgSecret),
              owner: 'team-orders',
              'cost-center': 'cc-17',
            }),
            instance(HOME, EU, 'untagged-pg', 'postgres', { team: 'payments' }),
            instance(HOME, EU, 'billing-mysql', 'mysql', {
              ...ours('iam-auth'),
              'latchkey-username': 'latchkey_svc',
            }),
            instance(HOME, EU, 'legacy-maria', 'mariadb', ours('user-password', pgSecret)),
            instance(HOME, EU, 'other-pg', 'postgres', {
              'latchkey-connector-id': 'someone-else',
              auth_type: 'iam-auth',
            }),
          ],
        },
        [US]: {
          clusters: [
            dbCluster(HOME, US, 'events-aurora', 'aurora-postgresql', {
              ...ours('iam-auth'),
              'latchkey-database': 'events',
              owner: 'team-events',
            }),
          ],
          redshift: [
            redshiftCluster(US, 'warehouse', {
              ...ours('user-password', rsSecret),
              owner: 'team-bi',
            }),
            redshiftCluster(US, 'scratch', {}),
            redshiftCluster(US, 'marts', ours('iam-auth')),
          ],
        },
      },
    };
    const calls = serveWorld(world);
    const out = await makeDriver().discover(ctxFor(baseConfig));

    expect(out.warnings).toEqual([]);
    expect(out.permissions).toEqual([]);
    expect(out.integrations).toEqual([
      {
        id: `aws:${HOME}:${EU}:rds:orders-pg`,
        type: 'postgres',
        config: {
          host: `orders-pg.abcdefghijkl.${EU}.rds.amazonaws.com`,
          port: 5432,
          sslMode: 'verify-full',
          authType: 'user-password',
          region: EU,
        },
        secret: { store: 'aws-secrets-manager', secretId: pgSecret, region: EU },
      },
      {
        id: `aws:${HOME}:${EU}:rds:billing-mysql`,
        type: 'mysql',
        config: {
          host: `billing-mysql.abcdefghijkl.${EU}.rds.amazonaws.com`,
          port: 3306,
          sslMode: 'verify-full',
          authType: 'iam-auth',
          region: EU,
          username: 'latchkey_svc',
          flavor: 'mysql',
          caBundle: 'aws-rds',
        },
      },
      {
        id: `aws:${HOME}:${EU}:rds:legacy-maria`,
        type: 'mysql',
        config: {
          host: `legacy-maria.abcdefghijkl.${EU}.rds.amazonaws.com`,
          port: 3306,
          sslMode: 'verify-full',
          authType: 'user-password',
          region: EU,
          flavor: 'mariadb',
          caBundle: 'aws-rds',
        },
        secret: { store: 'aws-secrets-manager', secretId: pgSecret, region: EU },
      },
      {
        id: `aws:${HOME}:${US}:rds-cluster:events-aurora`,
        type: 'postgres',
        config: {
          host: `events-aurora.cluster-abcdefghijkl.${US}.rds.amazonaws.com`,
          port: 5432,
          sslMode: 'verify-full',
          authType: 'iam-auth',
          region: US,
          database: 'events',
          username: 'postgres_admin',
        },
      },
      {
        id: `aws:${HOME}:${US}:redshift:warehouse`,
        type: 'redshift',
        config: {
          host: `warehouse.c1a2b3c4d5e6.${US}.redshift.amazonaws.com`,
          port: 5439,
          sslMode: 'verify-full',
          authType: 'user-password',
          region: US,
          database: 'analytics',
          clusterIdentifier: 'warehouse',
        },
        secret: { store: 'aws-secrets-manager', secretId: rsSecret, region: US },
      },
      {
        id: `aws:${HOME}:${US}:redshift:marts`,
        type: 'redshift',
        config: {
          host: `marts.c1a2b3c4d5e6.${US}.redshift.amazonaws.com`,
          port: 5439,
          sslMode: 'verify-full',
          authType: 'iam-auth',
          region: US,
          database: 'analytics',
          username: 'awsuser',
          clusterIdentifier: 'marts',
        },
      },
    ]);
    assertSqlDriversAccept(out.integrations ?? []);
    expect(DiscoverOutputSchema.parse(out)).toEqual(out);

    // One account resource, then one resource per sub-integration, pointing at it.
    expect(out.resources.map((r) => [r.type, r.id, r.parentId])).toEqual([
      ['aws-account', `aws-account:${HOME}`, undefined],
      ['rds-instance', `arn:aws:rds:${EU}:${HOME}:db:orders-pg`, `aws-account:${HOME}`],
      ['rds-instance', `arn:aws:rds:${EU}:${HOME}:db:billing-mysql`, `aws-account:${HOME}`],
      ['rds-instance', `arn:aws:rds:${EU}:${HOME}:db:legacy-maria`, `aws-account:${HOME}`],
      ['rds-cluster', `arn:aws:rds:${US}:${HOME}:cluster:events-aurora`, `aws-account:${HOME}`],
      [
        'redshift-cluster',
        `arn:aws:redshift:${US}:${HOME}:cluster:warehouse`,
        `aws-account:${HOME}`,
      ],
      ['redshift-cluster', `arn:aws:redshift:${US}:${HOME}:cluster:marts`, `aws-account:${HOME}`],
    ]);
    expect(out.resources[1]?.metadata).toEqual({
      arn: `arn:aws:rds:${EU}:${HOME}:db:orders-pg`,
      accountId: HOME,
      region: EU,
      engine: 'postgres',
      engineVersion: '16.4',
      status: 'available',
      host: `orders-pg.abcdefghijkl.${EU}.rds.amazonaws.com`,
      port: 5432,
      authType: 'user-password',
      integrationId: `aws:${HOME}:${EU}:rds:orders-pg`,
      integrationType: 'postgres',
      memberRoleArn: null,
      tags: {
        ...ours('user-password', pgSecret),
        owner: 'team-orders',
        'cost-center': 'cc-17',
      },
    });
    // Tags on every database resource (instances, Aurora clusters, Redshift), as aws-iam has them.
    const ownerOf = (name: string) =>
      (out.resources.find((r) => r.name === name)?.metadata.tags as Record<string, string>).owner;
    expect(ownerOf('events-aurora')).toBe('team-events');
    expect(ownerOf('warehouse')).toBe('team-bi');
    expect(out.resources.find((r) => r.name === 'marts')?.metadata.tags).toEqual(ours('iam-auth'));

    // Paging: 5 instances in eu-west-1 at 2 a page = 3 calls, with the markers; 3 Redshift
    // clusters in us-east-1 = 2 calls. Each region listed with all three APIs, home credentials.
    const euInstances = calls.filter((c) => c.op === 'DescribeDBInstances' && c.region === EU);
    expect(euInstances.map((c) => c.input.Marker)).toEqual([undefined, '2', '4']);
    expect(euInstances[0]?.input).toEqual({ MaxRecords: 100 });
    expect(
      calls.filter((c) => c.op === 'DescribeClusters' && c.region === US).map((c) => c.input),
    ).toEqual([{ MaxRecords: 100 }, { MaxRecords: 100, Marker: '2' }]);
    expect(new Set(calls.map((c) => `${c.account}/${c.region}/${c.op}`))).toEqual(
      new Set(
        [EU, US].flatMap((r) =>
          ['DescribeDBInstances', 'DescribeDBClusters', 'DescribeClusters'].map(
            (op) => `${HOME}/${r}/${op}`,
          ),
        ),
      ),
    );
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 0);
  });

  it('reports a missing or malformed tag as a per-database E_INVALID warning and goes on', async () => {
    const good = secretArn(HOME, EU, 'ok');
    const world: World = {
      [HOME]: {
        [EU]: {
          instances: [
            instance(HOME, EU, 'no-auth-type', 'postgres', {
              'latchkey-connector-id': CONNECTOR,
              'latchkey-secret': good,
            }),
            instance(HOME, EU, 'bad-auth-type', 'postgres', {
              'latchkey-connector-id': CONNECTOR,
              auth_type: 'kerberos',
            }),
            instance(HOME, EU, 'no-secret', 'mysql', ours('user-password')),
            instance(HOME, EU, 'bad-secret', 'postgres', ours('user-password', 'prod/pg-secret')),
            instance(HOME, EU, 'no-connector-id', 'postgres', {
              auth_type: 'user-password',
              'latchkey-secret': good,
            }),
            instance(HOME, EU, 'oracle', 'oracle-ee', ours('user-password', good)),
            instance(HOME, EU, 'iam-off', 'postgres', ours('iam-auth'), {
              IAMDatabaseAuthenticationEnabled: false,
            }),
            instance(HOME, EU, 'aurora-member', 'aurora-mysql', ours('iam-auth'), {
              DBClusterIdentifier: 'shop-aurora',
            }),
            instance(HOME, EU, 'creating', 'postgres', ours('user-password', good), {
              DBInstanceStatus: 'creating',
              Endpoint: undefined,
            }),
            instance(HOME, EU, 'fine', 'postgres', ours('user-password', good)),
          ],
        },
      },
    };
    serveWorld(world);
    const out = await makeDriver().discover(ctxFor({ ...baseConfig, regions: [EU] }));

    expect(out.integrations?.map((i) => i.id)).toEqual([`aws:${HOME}:${EU}:rds:fine`]);
    const arn = (id: string) => `arn:aws:rds:${EU}:${HOME}:db:${id}`;
    expect(out.warnings.map((w) => [w.resourceId, w.code])).toEqual([
      [arn('no-auth-type'), 'E_INVALID'],
      [arn('bad-auth-type'), 'E_INVALID'],
      [arn('no-secret'), 'E_INVALID'],
      [arn('bad-secret'), 'E_INVALID'],
      [arn('no-connector-id'), 'E_INVALID'],
      [arn('oracle'), 'E_UNSUPPORTED'],
      [arn('iam-off'), 'E_INVALID'],
      [arn('aurora-member'), 'E_INVALID'],
      [arn('creating'), 'E_CONNECT'],
    ]);
    const msg = (id: string) => out.warnings.find((w) => w.resourceId === arn(id))?.message;
    expect(msg('no-auth-type')).toBe(
      `rds-instance no-auth-type (account ${HOME}, ${EU}): tag auth_type is missing; set it to iam-auth or user-password`,
    );
    expect(msg('bad-auth-type')).toContain(
      "tag auth_type is 'kerberos'; it must be iam-auth or user-password",
    );
    expect(msg('no-secret')).toContain('tag latchkey-secret is missing');
    expect(msg('bad-secret')).toContain(
      "tag latchkey-secret must be a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>), got 'prod/pg-secret'",
    );
    expect(msg('no-connector-id')).toContain(
      `tag latchkey-connector-id is missing (the database has latchkey-secret); set it to ${CONNECTOR}`,
    );
    expect(msg('oracle')).toContain('engine oracle-ee is not supported');
    expect(msg('iam-off')).toContain('IAM database authentication is disabled');
    expect(msg('aurora-member')).toContain('belongs to cluster shop-aurora; tag the cluster');
    expect(msg('creating')).toContain('no endpoint yet (status creating)');
    expect(DiscoverOutputSchema.safeParse(out).success).toBe(true);
  });

  it("skips another connector's databases silently", async () => {
    serveWorld({
      [HOME]: {
        [EU]: {
          instances: [
            instance(HOME, EU, 'theirs', 'postgres', {
              'latchkey-connector-id': 'conn-other',
              auth_type: 'bogus',
            }),
          ],
          redshift: [
            redshiftCluster(EU, 'theirs-too', {
              'latchkey-connector-id': 'conn-other',
              auth_type: 'iam-auth',
            }),
          ],
        },
      },
    });
    const out = await makeDriver().discover(ctxFor({ ...baseConfig, regions: [EU] }));
    expect(out.integrations).toEqual([]);
    expect(out.warnings).toEqual([]);
    expect(out.resources.map((r) => r.id)).toEqual([`aws-account:${HOME}`]);
  });

  it('works with the apono tag prefix and ignores latchkey- tags then', async () => {
    const s = secretArn(HOME, EU, 'apono');
    serveWorld({
      [HOME]: {
        [EU]: {
          instances: [
            instance(HOME, EU, 'from-apono', 'postgres', {
              ...ours('user-password', s, 'apono'),
              'apono-database': 'orders',
            }),
            instance(HOME, EU, 'latchkey-tagged', 'postgres', ours('user-password', s)),
          ],
          redshift: [redshiftCluster(EU, 'apono-rs', ours('iam-auth', undefined, 'apono'))],
        },
      },
    });
    const out = await makeDriver('apono').discover(ctxFor({ ...baseConfig, regions: [EU] }));
    expect(out.integrations?.map((i) => [i.id, i.type, i.config.database, i.secret])).toEqual([
      [
        `aws:${HOME}:${EU}:rds:from-apono`,
        'postgres',
        'orders',
        { store: 'aws-secrets-manager', secretId: s, region: EU },
      ],
      [`aws:${HOME}:${EU}:redshift:apono-rs`, 'redshift', 'analytics', undefined],
    ]);
    // latchkey-* tags are someone else's prefix here; not a warning either (no apono-* tag).
    expect(out.warnings).toEqual([]);
    assertSqlDriversAccept(out.integrations ?? []);
  });

  describe('AWS Organization', () => {
    const orgConfig = {
      ...baseConfig,
      organization: {
        enabled: true,
        memberRoleName: 'latchkey-discovery',
        excludedOuIds: ['ou-ab12-sandbox1'],
        excludedAccountIds: [A3],
        externalId: 'org-ext-1',
      },
    };
    const pg = (account: string, region: string) =>
      instance(account, region, `pg-${account.slice(0, 1)}`, 'postgres', ours('iam-auth'));

    function serveTree(): void {
      orgs.on(ListRootsCommand).resolves({ Roots: [{ Id: 'r-ab12', Name: 'Root' }] });
      orgs
        .on(ListAccountsForParentCommand, { ParentId: 'r-ab12' })
        .resolvesOnce({
          Accounts: [
            { Id: HOME, Name: 'management', State: 'ACTIVE' },
            { Id: A2, Name: 'prod', State: 'ACTIVE' },
          ],
          NextToken: 'tok-1',
        })
        .resolvesOnce({
          Accounts: [
            { Id: A3, Name: 'excluded', State: 'ACTIVE' },
            { Id: '999999999999', Name: 'leaving', State: 'SUSPENDED' },
          ],
        });
      orgs.on(ListOrganizationalUnitsForParentCommand, { ParentId: 'r-ab12' }).resolves({
        OrganizationalUnits: [
          { Id: 'ou-ab12-sandbox1', Name: 'Sandbox' },
          { Id: 'ou-ab12-workload', Name: 'Workloads' },
        ],
      });
      orgs
        .on(ListAccountsForParentCommand, { ParentId: 'ou-ab12-workload' })
        .resolves({ Accounts: [{ Id: A4, Name: 'analytics', State: 'ACTIVE' }] });
      orgs
        .on(ListOrganizationalUnitsForParentCommand, { ParentId: 'ou-ab12-workload' })
        .resolves({ OrganizationalUnits: [] });
      // Never asked: the excluded OU holds A5.
      orgs
        .on(ListAccountsForParentCommand, { ParentId: 'ou-ab12-sandbox1' })
        .resolves({ Accounts: [{ Id: A5, Name: 'sandbox', State: 'ACTIVE' }] });
    }

    const world: World = {
      [HOME]: { [EU]: { instances: [pg(HOME, EU)] } },
      [A2]: { [US]: { instances: [pg(A2, US)] } },
      [A3]: { [EU]: { instances: [pg(A3, EU)] } },
      [A4]: { [EU]: { instances: [pg(A4, EU)] } },
      [A5]: { [EU]: { instances: [pg(A5, EU)] } },
    };

    it('walks the OU tree, skips the excluded OU and account, and assumes the member role only where needed', async () => {
      serveTree();
      const calls = serveWorld(world);
      const out = await makeDriver().discover(ctxFor(orgConfig));

      expect(out.warnings).toEqual([]);
      expect(out.integrations?.map((i) => i.id)).toEqual([
        `aws:${HOME}:${EU}:rds:pg-1`,
        `aws:${A2}:${US}:rds:pg-2`,
        `aws:${A4}:${EU}:rds:pg-4`,
      ]);
      expect(out.resources.filter((r) => r.type === 'aws-account').map((r) => r.name)).toEqual([
        'management',
        'prod',
        'analytics',
      ]);
      expect(orgs).toHaveReceivedCommandWith(ListAccountsForParentCommand, {
        ParentId: 'r-ab12',
        NextToken: 'tok-1',
      });
      expect(orgs).not.toHaveReceivedCommandWith(ListAccountsForParentCommand, {
        ParentId: 'ou-ab12-sandbox1',
      });
      expect(orgs).not.toHaveReceivedCommandWith(ListOrganizationalUnitsForParentCommand, {
        ParentId: 'ou-ab12-sandbox1',
      });
      expect(orgs).toHaveReceivedCommandTimes(ListAccountsCommand, 0);

      // AssumeRole exactly once per member account (home uses its own identity).
      const assumed = sts
        .commandCalls(AssumeRoleCommand)
        .map((c) => [c.args[0].input.RoleArn, c.args[0].input.ExternalId]);
      expect(assumed.sort()).toEqual([
        [`arn:aws:iam::${A2}:role/latchkey-discovery`, 'org-ext-1'],
        [`arn:aws:iam::${A4}:role/latchkey-discovery`, 'org-ext-1'],
      ]);
      // Describe calls went to exactly the walked accounts, in both regions.
      const accounts = new Set(ops(calls, 'DescribeDBInstances').map((c) => c.account));
      expect(accounts).toEqual(new Set([HOME, A2, A4]));
      expect(ops(calls, 'DescribeDBInstances')).toHaveLength(6);
    });

    it('names the member role on a member account database: on its iam-auth config and on its secret', async () => {
      serveTree();
      const member = {
        [HOME]: {
          [EU]: {
            instances: [
              instance(
                HOME,
                EU,
                'home-pw',
                'postgres',
                ours('user-password', secretArn(HOME, EU, 'home')),
              ),
            ],
          },
        },
        [A2]: {
          [US]: {
            instances: [
              instance(A2, US, 'a2-iam', 'postgres', ours('iam-auth')),
              instance(A2, US, 'a2-pw', 'mysql', ours('user-password', secretArn(A2, US, 'a2'))),
              // A secret kept in the home account is read with the connector's own identity.
              instance(
                A2,
                US,
                'a2-homesecret',
                'postgres',
                ours('user-password', secretArn(HOME, US, 'shared')),
              ),
            ],
          },
        },
      };
      serveWorld(member);
      const out = await makeDriver().discover(ctxFor(orgConfig));
      const byName = new Map((out.integrations ?? []).map((i) => [i.id.split(':').pop(), i]));
      const role = `arn:aws:iam::${A2}:role/latchkey-discovery`;
      expect(byName.get('a2-iam')?.config).toMatchObject({
        authType: 'iam-auth',
        assumeRoleArn: role,
        externalId: 'org-ext-1',
      });
      expect(byName.get('a2-iam')?.secret).toBeUndefined();
      expect(byName.get('a2-pw')?.secret).toEqual({
        store: 'aws-secrets-manager',
        secretId: secretArn(A2, US, 'a2'),
        region: US,
        assumeRoleArn: role,
        externalId: 'org-ext-1',
      });
      expect(byName.get('a2-pw')?.config.assumeRoleArn).toBeUndefined();
      expect(byName.get('a2-homesecret')?.secret).toEqual({
        store: 'aws-secrets-manager',
        secretId: secretArn(HOME, US, 'shared'),
        region: US,
      });
      // The home account's databases use the connector's identity.
      expect(byName.get('home-pw')?.secret).not.toHaveProperty('assumeRoleArn');
      assertSqlDriversAccept(out.integrations ?? []);
    });

    it('uses the flat ListAccounts when no OU is excluded', async () => {
      orgs
        .on(ListAccountsCommand)
        .resolvesOnce({
          Accounts: [{ Id: HOME, Name: 'management', State: 'ACTIVE' }],
          NextToken: 'n1',
        })
        .resolvesOnce({
          Accounts: [
            { Id: A2, Name: 'prod', Status: 'ACTIVE' },
            { Id: A3, Name: 'excluded', State: 'ACTIVE' },
          ],
        });
      const calls = serveWorld(world);
      const out = await makeDriver().discover(
        ctxFor({
          ...orgConfig,
          organization: { ...orgConfig.organization, excludedOuIds: [] },
        }),
      );
      expect(orgs).toHaveReceivedCommandWith(ListAccountsCommand, { NextToken: 'n1' });
      expect(orgs).toHaveReceivedCommandTimes(ListRootsCommand, 0);
      expect(out.integrations?.map((i) => i.id)).toEqual([
        `aws:${HOME}:${EU}:rds:pg-1`,
        `aws:${A2}:${US}:rds:pg-2`,
      ]);
      expect(new Set(calls.map((c) => c.account))).toEqual(new Set([HOME, A2]));
    });

    it('reports AccessDenied in one account as a warning and discovers the others', async () => {
      serveTree();
      const calls = serveWorld(
        {
          ...world,
          // and a region-level denial in the home account
          [HOME]: {
            [EU]: { instances: [pg(HOME, EU)] },
            [US]: { deny: { redshift: 'AccessDenied' } },
          },
        },
        { denyAssume: [A2] },
      );
      const out = await makeDriver().discover(ctxFor(orgConfig));

      expect(out.integrations?.map((i) => i.id)).toEqual([
        `aws:${HOME}:${EU}:rds:pg-1`,
        `aws:${A4}:${EU}:rds:pg-4`,
      ]);
      expect(out.warnings.map((w) => [w.resourceId, w.code])).toEqual([
        [`aws-account:${HOME}`, 'E_PRIVILEGE'],
        [`aws-account:${A2}`, 'E_PRIVILEGE'],
      ]);
      expect(out.warnings[0]?.message).toContain(
        `account ${HOME} region ${US}: redshift:DescribeClusters failed, databases there may be missing from this result`,
      );
      expect(out.warnings[1]?.message).toContain(
        `account ${A2} (prod) skipped, its databases are not in this result: the connector's AWS identity is not allowed to perform sts:AssumeRole on arn:aws:iam::${A2}:role/latchkey-discovery`,
      );
      expect(out.resources.find((r) => r.id === `aws-account:${A2}`)?.metadata.reachable).toBe(
        false,
      );
      // A2 was tried once (its first call), never again in the other region.
      expect(calls.some((c) => c.account === A2)).toBe(false);
      expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, {
        RoleArn: `arn:aws:iam::${A2}:role/latchkey-discovery`,
      });
    });

    it('refuses a member role outside the allowed role pattern without calling STS', async () => {
      serveTree();
      const calls = serveWorld(world);
      const out = await makeDriver().discover(
        ctxFor({
          ...orgConfig,
          organization: {
            ...orgConfig.organization,
            memberRoleName: 'OrganizationAccountAccessRole',
          },
        }),
      );
      expect(out.integrations?.map((i) => i.id)).toEqual([`aws:${HOME}:${EU}:rds:pg-1`]);
      expect(out.warnings.map((w) => [w.resourceId, w.code])).toEqual([
        [`aws-account:${A2}`, 'E_GUARDRAIL'],
        [`aws-account:${A4}`, 'E_GUARDRAIL'],
      ]);
      expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 0);
      expect(new Set(calls.map((c) => c.account))).toEqual(new Set([HOME]));
    });

    it('fails the whole discovery when the organization cannot be listed', async () => {
      orgs.on(ListRootsCommand).rejects(
        Object.assign(new Error('You do not have access'), {
          name: 'AccessDeniedException',
          $metadata: { httpStatusCode: 400 },
        }),
      );
      serveWorld(world);
      const err = await rejection(makeDriver().discover(ctxFor(orgConfig)));
      expect(err.code).toBe('E_PRIVILEGE');
      expect(err.message).toContain('organizations:ListRoots');
    });
  });

  describe('Resource Explorer', () => {
    const VIEW = `arn:aws:resource-explorer-2:${US}:${HOME}:view/all/0a1b2c3d`;
    const reConfig = { connectorId: CONNECTOR, regions: [EU, US, 'ap-southeast-2'] };
    const world: World = {
      [HOME]: {
        [EU]: {
          instances: [
            instance(HOME, EU, 'orders-pg', 'postgres', ours('iam-auth')),
            instance(HOME, EU, 'billing-mysql', 'mysql', ours('iam-auth')),
            instance(HOME, EU, 'stale-in-index', 'postgres', ours('iam-auth')),
          ],
        },
        [US]: {
          redshift: [
            redshiftCluster(US, 'warehouse', ours('iam-auth')),
            redshiftCluster(US, 'other', {}),
          ],
        },
        'ap-southeast-2': {},
      },
    };

    it('finds regions and databases through the aggregator view, describes just those, and lists unindexed regions in full', async () => {
      re.on(ListIndexesCommand).resolves({
        Indexes: [
          {
            Region: US,
            Type: 'AGGREGATOR',
            Arn: `arn:aws:resource-explorer-2:${US}:${HOME}:index/x`,
          },
          { Region: EU, Type: 'LOCAL', Arn: `arn:aws:resource-explorer-2:${EU}:${HOME}:index/y` },
          // ap-southeast-2 has no index: the aggregator cannot see it, so it is listed in full.
        ],
      });
      re.on(GetDefaultViewCommand).resolves({ ViewArn: VIEW });
      re.on(ListResourcesCommand, { Filters: { FilterString: 'resourcetype:rds:db' } })
        .resolvesOnce({
          Resources: [
            {
              Arn: `arn:aws:rds:${EU}:${HOME}:db:orders-pg`,
              Region: EU,
              OwningAccountId: HOME,
              ResourceType: 'rds:db',
            },
          ],
          NextToken: 're-2',
        })
        .resolvesOnce({
          Resources: [
            {
              Arn: `arn:aws:rds:${EU}:${HOME}:db:billing-mysql`,
              Region: EU,
              OwningAccountId: HOME,
              ResourceType: 'rds:db',
            },
            // outside the configured regions: ignored
            {
              Arn: `arn:aws:rds:sa-east-1:${HOME}:db:far`,
              Region: 'sa-east-1',
              OwningAccountId: HOME,
              ResourceType: 'rds:db',
            },
          ],
        });
      re.on(ListResourcesCommand, {
        Filters: { FilterString: 'resourcetype:rds:cluster' },
      }).resolves({
        Resources: [],
      });
      re.on(ListResourcesCommand, {
        Filters: { FilterString: 'resourcetype:redshift:cluster' },
      }).resolves({
        Resources: [
          {
            Arn: `arn:aws:redshift:${US}:${HOME}:cluster:warehouse`,
            Region: US,
            OwningAccountId: HOME,
            ResourceType: 'redshift:cluster',
          },
        ],
      });
      const calls = serveWorld(world);
      const out = await makeDriver().discover(ctxFor(reConfig));

      expect(out.integrations?.map((i) => i.id)).toEqual([
        `aws:${HOME}:${EU}:rds:orders-pg`,
        `aws:${HOME}:${EU}:rds:billing-mysql`,
        `aws:${HOME}:${US}:redshift:warehouse`,
      ]);
      expect(re.commandCalls(ListIndexesCommand).map((c) => c.args[0].input)).toEqual([{}]);
      expect(re).toHaveReceivedCommandWith(ListResourcesCommand, {
        ViewArn: VIEW,
        Filters: { FilterString: 'resourcetype:rds:db' },
        NextToken: 're-2',
      });
      // The view was queried in the aggregator's region.
      const reRegions = await Promise.all(
        re
          .commandCalls(ListResourcesCommand)
          .map((c) =>
            (c.thisValue as { config: { region: () => Promise<string> } }).config.region(),
          ),
      );
      expect(new Set(reRegions)).toEqual(new Set([US]));
      // Only what the index found is described: RDS with an id filter in eu-west-1, Redshift in us-east-1.
      expect(calls.map((c) => [c.op, c.region, c.input])).toEqual([
        [
          'DescribeDBInstances',
          EU,
          {
            MaxRecords: 100,
            Filters: [
              {
                Name: 'db-instance-id',
                Values: [
                  `arn:aws:rds:${EU}:${HOME}:db:orders-pg`,
                  `arn:aws:rds:${EU}:${HOME}:db:billing-mysql`,
                ],
              },
            ],
          },
        ],
        ['DescribeClusters', US, { MaxRecords: 100 }],
        ['DescribeDBInstances', 'ap-southeast-2', { MaxRecords: 100 }],
        ['DescribeDBClusters', 'ap-southeast-2', { MaxRecords: 100 }],
        ['DescribeClusters', 'ap-southeast-2', { MaxRecords: 100 }],
      ]);
      expect(out.resources[0]?.metadata.via).toBe('resource-explorer');
    });

    it('falls back to listing every configured region when there is no aggregator index', async () => {
      re.on(ListIndexesCommand).resolves({ Indexes: [{ Region: EU, Type: 'LOCAL' }] });
      const calls = serveWorld(world);
      const out = await makeDriver().discover(ctxFor(reConfig));
      expect(re).toHaveReceivedCommandTimes(GetDefaultViewCommand, 0);
      expect(re).toHaveReceivedCommandTimes(ListResourcesCommand, 0);
      expect(out.integrations?.map((i) => i.id)).toEqual([
        `aws:${HOME}:${EU}:rds:orders-pg`,
        `aws:${HOME}:${EU}:rds:billing-mysql`,
        `aws:${HOME}:${EU}:rds:stale-in-index`,
        `aws:${HOME}:${US}:redshift:warehouse`,
      ]);
      expect(new Set(ops(calls, 'DescribeDBInstances').map((c) => c.region))).toEqual(
        new Set([EU, US, 'ap-southeast-2']),
      );
      expect(calls.every((c) => c.input.Filters === undefined)).toBe(true);
      expect(out.resources[0]?.metadata.via).toBe('per-region');
    });

    it('falls back when Resource Explorer is not allowed, and does not use it when disabled', async () => {
      re.on(ListIndexesCommand).rejects(
        new ResourceExplorer2ServiceException({
          name: 'AccessDeniedException',
          message: 'not authorized to perform resource-explorer-2:ListIndexes',
          $fault: 'client',
          $metadata: { httpStatusCode: 403 },
        }),
      );
      serveWorld(world);
      const out = await makeDriver().discover(ctxFor(reConfig));
      expect(out.warnings).toEqual([]);
      expect(out.integrations).toHaveLength(4);

      re.reset();
      serveWorld(world);
      await makeDriver().discover(ctxFor({ ...reConfig, useResourceExplorer: false }));
      expect(re).toHaveReceivedCommandTimes(ListIndexesCommand, 0);
    });
  });

  it('answers an invalid config with E_INVALID naming the fields', async () => {
    const err = await rejection(
      makeDriver().discover(ctxFor({ regions: ['mars-1'], organization: { enabled: true } })),
    );
    expect(err.code).toBe('E_INVALID');
    expect(err.message).toContain('connectorId');
    expect(err.message).toContain('regions.0');
    expect(err.message).toContain('organization.memberRoleName');
  });

  it('honours an aborted signal', async () => {
    serveWorld({});
    const ac = new AbortController();
    ac.abort();
    const ctx = { ...ctxFor(baseConfig), signal: ac.signal };
    const err = await rejection(makeDriver().discover(ctx));
    expect(err.code).toBe('E_CANCELLED');
  });
});
