/**
 * The AWS side of discovery: which accounts (an AWS Organization walked through member
 * accounts), which regions (Resource Explorer's aggregator index, or every configured
 * region), and which databases (RDS instances and clusters, Redshift clusters) with
 * their tags. Turning a tagged database into a sub-integration is `toSubIntegration`.
 *
 * Failure policy: a problem with one database is a warning for that database; a problem
 * with one account (the member role cannot be assumed, access denied) or one region is a
 * warning for that account or region; discovery goes on with the rest. Only a failure that
 * makes the whole answer meaningless (the home identity, the organization listing) throws.
 */
import {
  DescribeDBClustersCommand,
  DescribeDBInstancesCommand,
  RDSClient,
  type DBCluster,
  type DBInstance,
  type Filter,
} from '@aws-sdk/client-rds';
import { DescribeClustersCommand, RedshiftClient, type Cluster } from '@aws-sdk/client-redshift';
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import {
  GetDefaultViewCommand,
  ListIndexesCommand,
  ListResourcesCommand,
  ResourceExplorer2Client,
} from '@aws-sdk/client-resource-explorer-2';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { awsSend } from '../../aws/call.js';
import { targetOf } from '../../aws/config.js';
import { listOrganizationAccounts, memberRoleArn, paginate } from '../../aws/organization.js';
import { isAccountLevelError } from '../../aws/org-scope.js';
import type { ServiceLimiters } from '../../aws/limiter.js';
import type { AwsClientFactory, AwsTarget } from '../../aws/types.js';
import { LatchkeyError, toWireError } from '../../errors.js';
import type { DiscoverOutput, Integration } from '../../protocol/messages.js';
import type { AwsDiscoveryConfig } from './config.js';
import { readConnectorTags, tagKeys, tagRecord, type TagVerdict } from './tags.js';

export type Resource = DiscoverOutput['resources'][number];
export type Warning = DiscoverOutput['warnings'][number];

/** RDS `Filters` values per call. */
const RDS_FILTER_CHUNK = 100;

// ---------------------------------------------------------------------------------------
// Accounts

export interface AccountRef {
  accountId: string;
  name: string | undefined;
  /** Role assumed in this account; undefined for the home account. */
  roleArn: string | undefined;
  externalId: string | undefined;
}

export interface HomeIdentity {
  accountId: string;
  arn: string;
  partition: string;
}

export interface DiscoveryEnv {
  aws: AwsClientFactory;
  limiters: ServiceLimiters;
  signal: AbortSignal;
  cfg: AwsDiscoveryConfig;
  tagPrefix: string;
}

/**
 * Through the per-service limiter. The signal is deliberately not handed to p-queue: its
 * `signal` option leaves one abort listener on the signal per task (never removed), which
 * over a large walk piles up thousands of listeners. `awsSend` checks the signal before
 * each call instead, so an aborted walk still stops at its next call.
 */
function run<T>(env: DiscoveryEnv, service: string, fn: () => Promise<T>): Promise<T> {
  return env.limiters.for(service).add(fn, { throwOnTimeout: true });
}

export function partitionOf(arn: string): string {
  return /^arn:(aws[a-z-]*):/.exec(arn)?.[1] ?? 'aws';
}

export async function homeIdentity(env: DiscoveryEnv): Promise<HomeIdentity> {
  const out = await awsSend(
    { service: 'sts', operation: 'GetCallerIdentity', signal: env.signal },
    (o) => env.aws.client(STSClient, targetOf(env.cfg)).send(new GetCallerIdentityCommand({}), o),
  );
  if (!out.Account || !out.Arn) {
    throw new LatchkeyError('E_INTERNAL', 'STS GetCallerIdentity returned no account');
  }
  return { accountId: out.Account, arn: out.Arn, partition: partitionOf(out.Arn) };
}

/**
 * The accounts to discover: the home account alone, or every active member account of
 * the organization minus excluded OUs (with everything under them) and excluded accounts
 * (the walk itself is `listOrganizationAccounts` in `src/aws/organization.ts`).
 * @throws LatchkeyError when the organization cannot be listed
 */
export async function listAccounts(env: DiscoveryEnv, home: HomeIdentity): Promise<AccountRef[]> {
  const org = env.cfg.organization;
  if (!org?.enabled) {
    return [
      { accountId: home.accountId, name: undefined, roleArn: undefined, externalId: undefined },
    ];
  }
  const accounts = await listOrganizationAccounts({
    orgs: env.aws.client(OrganizationsClient, targetOf(env.cfg)),
    signal: env.signal,
    run: (fn) => run(env, 'organizations', fn),
    excludedOuIds: org.excludedOuIds,
    excludedAccountIds: org.excludedAccountIds,
  });
  return accounts.map((a) => {
    const isHome = a.accountId === home.accountId;
    return {
      accountId: a.accountId,
      name: a.name,
      roleArn: isHome ? undefined : memberRoleArn(home.partition, a.accountId, org.memberRoleName),
      externalId: isHome ? undefined : org.externalId,
    };
  });
}

/** The factory target of one account in one region. */
export function accountTarget(env: DiscoveryEnv, acct: AccountRef, region: string): AwsTarget {
  if (acct.roleArn === undefined) return targetOf(env.cfg, region);
  return {
    region,
    assumeRoleArn: acct.roleArn,
    ...(acct.externalId !== undefined ? { externalId: acct.externalId } : {}),
  };
}

// ---------------------------------------------------------------------------------------
// Databases

export type DbKind = 'rds-instance' | 'rds-cluster' | 'redshift-cluster';

/** One database as AWS describes it, reduced to what discovery needs. */
export interface FoundDatabase {
  kind: DbKind;
  identifier: string;
  arn: string;
  accountId: string;
  region: string;
  engine: string;
  engineVersion: string | undefined;
  status: string | undefined;
  host: string | undefined;
  port: number | undefined;
  dbName: string | undefined;
  masterUsername: string | undefined;
  /** RDS instance that is a member of an Aurora or Multi-AZ DB cluster. */
  memberOfCluster: string | undefined;
  iamAuthEnabled: boolean | undefined;
  tags: Record<string, string>;
}

function fromInstance(i: DBInstance, accountId: string, region: string): FoundDatabase | null {
  if (!i.DBInstanceIdentifier) return null;
  return {
    kind: 'rds-instance',
    identifier: i.DBInstanceIdentifier,
    arn: i.DBInstanceArn ?? `arn:aws:rds:${region}:${accountId}:db:${i.DBInstanceIdentifier}`,
    accountId,
    region,
    engine: i.Engine ?? 'unknown',
    engineVersion: i.EngineVersion,
    status: i.DBInstanceStatus,
    host: i.Endpoint?.Address,
    port: i.Endpoint?.Port,
    dbName: i.DBName,
    masterUsername: i.MasterUsername,
    memberOfCluster: i.DBClusterIdentifier,
    iamAuthEnabled: i.IAMDatabaseAuthenticationEnabled,
    tags: tagRecord(i.TagList),
  };
}

function fromDbCluster(c: DBCluster, accountId: string, region: string): FoundDatabase | null {
  if (!c.DBClusterIdentifier) return null;
  return {
    kind: 'rds-cluster',
    identifier: c.DBClusterIdentifier,
    arn: c.DBClusterArn ?? `arn:aws:rds:${region}:${accountId}:cluster:${c.DBClusterIdentifier}`,
    accountId,
    region,
    engine: c.Engine ?? 'unknown',
    engineVersion: c.EngineVersion,
    status: c.Status,
    host: c.Endpoint,
    port: c.Port,
    dbName: c.DatabaseName,
    masterUsername: c.MasterUsername,
    memberOfCluster: undefined,
    iamAuthEnabled: c.IAMDatabaseAuthenticationEnabled,
    tags: tagRecord(c.TagList),
  };
}

function fromRedshift(
  c: Cluster,
  accountId: string,
  region: string,
  partition: string,
): FoundDatabase | null {
  if (!c.ClusterIdentifier) return null;
  return {
    kind: 'redshift-cluster',
    identifier: c.ClusterIdentifier,
    arn: `arn:${partition}:redshift:${region}:${accountId}:cluster:${c.ClusterIdentifier}`,
    accountId,
    region,
    engine: 'redshift',
    engineVersion: c.ClusterVersion,
    status: c.ClusterStatus,
    host: c.Endpoint?.Address,
    port: c.Endpoint?.Port,
    dbName: c.DBName,
    masterUsername: c.MasterUsername,
    memberOfCluster: undefined,
    iamAuthEnabled: undefined,
    tags: tagRecord(c.Tags),
  };
}

/** What Resource Explorer found in one region: RDS ARNs and Redshift cluster ids. */
export interface RegionPlan {
  rdsInstances: string[];
  rdsClusters: string[];
  redshiftClusters: Set<string>;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

async function describeInstances(
  env: DiscoveryEnv,
  rds: RDSClient,
  region: string,
  filter: Filter | undefined,
  accountId: string,
  out: FoundDatabase[],
): Promise<void> {
  await paginate(
    (token) =>
      run(env, 'rds', () =>
        awsSend(
          {
            service: 'rds',
            operation: 'DescribeDBInstances',
            resource: region,
            signal: env.signal,
          },
          (o) =>
            rds.send(
              new DescribeDBInstancesCommand({
                MaxRecords: 100,
                ...(filter ? { Filters: [filter] } : {}),
                ...(token ? { Marker: token } : {}),
              }),
              o,
            ),
        ),
      ),
    (p) => p.Marker,
    (p) => {
      for (const i of p.DBInstances ?? []) {
        const db = fromInstance(i, accountId, region);
        if (db) out.push(db);
      }
    },
  );
}

async function describeDbClusters(
  env: DiscoveryEnv,
  rds: RDSClient,
  region: string,
  filter: Filter | undefined,
  accountId: string,
  out: FoundDatabase[],
): Promise<void> {
  await paginate(
    (token) =>
      run(env, 'rds', () =>
        awsSend(
          { service: 'rds', operation: 'DescribeDBClusters', resource: region, signal: env.signal },
          (o) =>
            rds.send(
              new DescribeDBClustersCommand({
                MaxRecords: 100,
                ...(filter ? { Filters: [filter] } : {}),
                ...(token ? { Marker: token } : {}),
              }),
              o,
            ),
        ),
      ),
    (p) => p.Marker,
    (p) => {
      for (const c of p.DBClusters ?? []) {
        const db = fromDbCluster(c, accountId, region);
        if (db) out.push(db);
      }
    },
  );
}

async function describeRedshift(
  env: DiscoveryEnv,
  redshift: RedshiftClient,
  region: string,
  only: Set<string> | undefined,
  accountId: string,
  partition: string,
  out: FoundDatabase[],
): Promise<void> {
  await paginate(
    (token) =>
      run(env, 'redshift', () =>
        awsSend(
          {
            service: 'redshift',
            operation: 'DescribeClusters',
            resource: region,
            signal: env.signal,
          },
          (o) =>
            redshift.send(
              new DescribeClustersCommand({ MaxRecords: 100, ...(token ? { Marker: token } : {}) }),
              o,
            ),
        ),
      ),
    (p) => p.Marker,
    (p) => {
      for (const c of p.Clusters ?? []) {
        if (only && (!c.ClusterIdentifier || !only.has(c.ClusterIdentifier))) continue;
        const db = fromRedshift(c, accountId, region, partition);
        if (db) out.push(db);
      }
    },
  );
}

/** True for errors that are about reaching the account at all (the member role). */
export { isAccountLevelError } from '../../aws/org-scope.js';

export class AccountUnreachable extends Error {
  constructor(readonly error: LatchkeyError) {
    super(error.message);
  }
}

function rethrowIfFatal(err: unknown, signal: AbortSignal): void {
  if (err instanceof LatchkeyError && err.code === 'E_CANCELLED') throw err;
  if (signal.aborted) throw new LatchkeyError('E_CANCELLED', 'discover aborted', { cause: err });
  if (isAccountLevelError(err)) throw new AccountUnreachable(err as LatchkeyError);
}

const RE_TYPES = {
  rdsInstances: 'rds:db',
  rdsClusters: 'rds:cluster',
  redshiftClusters: 'redshift:cluster',
} as const;

/**
 * Per configured region of one account: what its Resource Explorer aggregator index
 * found there (`RegionPlan`), `'all'` for a region that has no Resource Explorer index
 * (the aggregator cannot see it, so it is listed in full), or no entry (indexed, nothing
 * found: not called at all). Null when the account has no aggregator index or default
 * view, or Resource Explorer may not be used: the caller then lists every region.
 * @throws AccountUnreachable when the account's role cannot be assumed
 */
export async function resourceExplorerPlan(
  env: DiscoveryEnv,
  acct: AccountRef,
  logger: { debug: (obj: object, msg: string) => void },
): Promise<Map<string, RegionPlan | 'all'> | null> {
  const signal = env.signal;
  const first = env.cfg.regions[0] ?? 'us-east-1';
  try {
    const re = env.aws.client(ResourceExplorer2Client, accountTarget(env, acct, first));
    let aggregator: string | undefined;
    const indexed = new Set<string>();
    await paginate(
      (token) =>
        run(env, 'resource-explorer-2', () =>
          awsSend({ service: 'resource-explorer-2', operation: 'ListIndexes', signal }, (o) =>
            re.send(new ListIndexesCommand(token ? { NextToken: token } : {}), o),
          ),
        ),
      (p) => p.NextToken,
      (p) => {
        for (const i of p.Indexes ?? []) {
          if (!i.Region) continue;
          indexed.add(i.Region);
          if (i.Type === 'AGGREGATOR') aggregator ??= i.Region;
        }
      },
    );
    if (aggregator === undefined) {
      logger.debug({ accountId: acct.accountId }, 'no Resource Explorer aggregator index');
      return null;
    }
    const reAgg = env.aws.client(ResourceExplorer2Client, accountTarget(env, acct, aggregator));
    const view = await run(env, 'resource-explorer-2', () =>
      awsSend({ service: 'resource-explorer-2', operation: 'GetDefaultView', signal }, (o) =>
        reAgg.send(new GetDefaultViewCommand({}), o),
      ),
    );
    const viewArn = view.ViewArn;
    if (!viewArn) {
      logger.debug({ accountId: acct.accountId, aggregator }, 'aggregator has no default view');
      return null;
    }
    const wanted = new Set(env.cfg.regions);
    const plan = new Map<string, RegionPlan | 'all'>();
    for (const region of env.cfg.regions) if (!indexed.has(region)) plan.set(region, 'all');
    const slot = (region: string): RegionPlan => {
      let p = plan.get(region);
      if (p === 'all') return { rdsInstances: [], rdsClusters: [], redshiftClusters: new Set() };
      if (!p) {
        p = { rdsInstances: [], rdsClusters: [], redshiftClusters: new Set() };
        plan.set(region, p);
      }
      return p;
    };
    for (const [key, type] of Object.entries(RE_TYPES) as [keyof typeof RE_TYPES, string][]) {
      await paginate(
        (token) =>
          run(env, 'resource-explorer-2', () =>
            awsSend(
              {
                service: 'resource-explorer-2',
                operation: 'ListResources',
                resource: viewArn,
                signal,
              },
              (o) =>
                reAgg.send(
                  new ListResourcesCommand({
                    ViewArn: viewArn,
                    Filters: { FilterString: `resourcetype:${type}` },
                    MaxResults: 1000,
                    ...(token ? { NextToken: token } : {}),
                  }),
                  o,
                ),
            ),
          ),
        (p) => p.NextToken,
        (p) => {
          for (const r of p.Resources ?? []) {
            if (!r.Arn || !r.Region || !wanted.has(r.Region)) continue;
            if (r.OwningAccountId !== undefined && r.OwningAccountId !== acct.accountId) continue;
            if (key === 'redshiftClusters') {
              const id = /:cluster:([^:/]+)$/.exec(r.Arn)?.[1];
              if (id) slot(r.Region).redshiftClusters.add(id);
            } else slot(r.Region)[key].push(r.Arn);
          }
        },
      );
    }
    return plan;
  } catch (err) {
    rethrowIfFatal(err, signal);
    // Resource Explorer not set up or not allowed here: list every region instead.
    logger.debug(
      { accountId: acct.accountId, error: toWireError(err).message },
      'Resource Explorer unavailable; listing regions one by one',
    );
    return null;
  }
}

export interface AccountResult {
  databases: FoundDatabase[];
  warnings: Warning[];
  /** How regions were found: `resource-explorer` or `per-region`. */
  via: 'resource-explorer' | 'per-region';
}

export function accountResourceId(accountId: string): string {
  return `aws-account:${accountId}`;
}

/**
 * Every database of one account in the configured regions. A failing listing (one
 * service in one region) becomes a warning; the others go on.
 * @throws AccountUnreachable when the account's role cannot be assumed
 */
export async function discoverAccount(
  env: DiscoveryEnv,
  acct: AccountRef,
  partition: string,
  logger: { debug: (obj: object, msg: string) => void },
): Promise<AccountResult> {
  const plan = env.cfg.useResourceExplorer ? await resourceExplorerPlan(env, acct, logger) : null;
  const databases: FoundDatabase[] = [];
  const warnings: Warning[] = [];
  const attempt = async (what: string, region: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      rethrowIfFatal(err, env.signal);
      const w = toWireError(err);
      warnings.push({
        resourceId: accountResourceId(acct.accountId),
        code: w.code,
        message: `account ${acct.accountId} region ${region}: ${what} failed, databases there may be missing from this result: ${w.message}`,
      });
    }
  };
  for (const region of env.cfg.regions) {
    const planned = plan ? plan.get(region) : 'all';
    if (planned === undefined) continue;
    const p = planned === 'all' ? undefined : planned;
    const target = accountTarget(env, acct, region);
    const rds = (): RDSClient => env.aws.client(RDSClient, target);
    const redshift = (): RedshiftClient => env.aws.client(RedshiftClient, target);
    await attempt('rds:DescribeDBInstances', region, async () => {
      if (!p) return describeInstances(env, rds(), region, undefined, acct.accountId, databases);
      for (const chunk of chunks(p.rdsInstances, RDS_FILTER_CHUNK)) {
        const filter = { Name: 'db-instance-id', Values: chunk };
        await describeInstances(env, rds(), region, filter, acct.accountId, databases);
      }
    });
    await attempt('rds:DescribeDBClusters', region, async () => {
      if (!p) return describeDbClusters(env, rds(), region, undefined, acct.accountId, databases);
      for (const chunk of chunks(p.rdsClusters, RDS_FILTER_CHUNK)) {
        const filter = { Name: 'db-cluster-id', Values: chunk };
        await describeDbClusters(env, rds(), region, filter, acct.accountId, databases);
      }
    });
    await attempt('redshift:DescribeClusters', region, async () => {
      if (p && p.redshiftClusters.size === 0) return;
      await describeRedshift(
        env,
        redshift(),
        region,
        p?.redshiftClusters,
        acct.accountId,
        partition,
        databases,
      );
    });
  }
  return { databases, warnings, via: plan ? 'resource-explorer' : 'per-region' };
}

// ---------------------------------------------------------------------------------------
// Sub-integrations

export type SqlType = 'postgres' | 'mysql' | 'redshift';

function accountOfSecret(arn: string): string | undefined {
  return /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:(\d{12}):secret:/.exec(arn)?.[1];
}

/** Engine name → driver type (and MySQL flavor); null when no SQL driver serves it. */
export function engineType(
  engine: string,
): { type: SqlType; flavor?: 'mysql' | 'mariadb'; defaultPort: number } | null {
  switch (engine) {
    case 'postgres':
    case 'aurora-postgresql':
      return { type: 'postgres', defaultPort: 5432 };
    case 'mysql':
    case 'aurora-mysql':
    case 'aurora':
      return { type: 'mysql', flavor: 'mysql', defaultPort: 3306 };
    case 'mariadb':
      return { type: 'mysql', flavor: 'mariadb', defaultPort: 3306 };
    case 'redshift':
      return { type: 'redshift', defaultPort: 5439 };
    default:
      return null;
  }
}

const KIND_ID: Record<DbKind, string> = {
  'rds-instance': 'rds',
  'rds-cluster': 'rds-cluster',
  'redshift-cluster': 'redshift',
};

/** Deterministic sub-integration id: `aws:<account>:<region>:<rds|rds-cluster|redshift>:<identifier>`. */
export function subIntegrationId(
  db: Pick<FoundDatabase, 'accountId' | 'region' | 'kind' | 'identifier'>,
): string {
  return `aws:${db.accountId}:${db.region}:${KIND_ID[db.kind]}:${db.identifier}`;
}

export type Verdict =
  | { kind: 'skip' }
  | { kind: 'warning'; warning: Warning }
  | { kind: 'integration'; integration: Integration; resource: Resource };

/**
 * One database → a sub-integration (with its resource entry), a warning, or nothing.
 *
 * The config is what the SQL drivers' schemas accept: `{host, port, database?, sslMode:
 * 'verify-full', authType, region}`, plus `username` under `iam-auth`, `flavor` and
 * `caBundle: 'aws-rds'` for MySQL/MariaDB, `clusterIdentifier` for Redshift and
 * `caBundleFile` for postgres/redshift when configured.
 *
 * A database of a member account (`member`, the role discovery reached it with) is worked
 * with that account's role: `assumeRoleArn` (and `externalId`) in the config under
 * `iam-auth` (the token, or Redshift's temporary credentials, is signed by that account),
 * and on the Secrets Manager reference when the secret lives in the database's account.
 * A secret in another account is read with the connector's own identity, as before.
 */
export function toSubIntegration(
  db: FoundDatabase,
  env: Pick<DiscoveryEnv, 'cfg' | 'tagPrefix'>,
  member?: { roleArn: string; externalId?: string | undefined },
): Verdict {
  const where = `${db.kind} ${db.identifier} (account ${db.accountId}, ${db.region})`;
  const warn = (code: Warning['code'], message: string): Verdict => ({
    kind: 'warning',
    warning: { resourceId: db.arn, code, message: `${where}: ${message}` },
  });
  const tags: TagVerdict = readConnectorTags(db.tags, env.tagPrefix, env.cfg.connectorId);
  if (tags.kind === 'not-ours') return { kind: 'skip' };
  if (db.memberOfCluster !== undefined) {
    // Aurora / Multi-AZ cluster members: the cluster (its writer endpoint) is the integration.
    return warn(
      'E_INVALID',
      `the instance belongs to cluster ${db.memberOfCluster}; tag the cluster, not its instances`,
    );
  }
  if (tags.kind === 'invalid') return warn('E_INVALID', tags.problems.join('; '));
  const et = engineType(db.engine);
  if (et === null) {
    return warn(
      'E_UNSUPPORTED',
      `engine ${db.engine} is not supported (PostgreSQL, MySQL, MariaDB, Aurora and Redshift are)`,
    );
  }
  if (!db.host) {
    return warn(
      'E_CONNECT',
      `no endpoint yet (status ${db.status ?? 'unknown'}); it is discovered once available`,
    );
  }
  if (tags.authType === 'iam-auth' && db.iamAuthEnabled === false) {
    return warn(
      'E_INVALID',
      'auth_type is iam-auth but IAM database authentication is disabled on it; enable it or use user-password',
    );
  }
  const username = tags.username ?? db.masterUsername;
  if (tags.authType === 'iam-auth' && username === undefined) {
    return warn(
      'E_INVALID',
      `auth_type iam-auth needs the service-account user: set tag ${tagKeys(env.tagPrefix).username}`,
    );
  }
  const port = db.port ?? et.defaultPort;
  const config: Record<string, unknown> = {
    host: db.host,
    port,
    sslMode: 'verify-full',
    authType: tags.authType,
    region: db.region,
  };
  const database = tags.database ?? (et.type === 'redshift' ? db.dbName : undefined);
  if (et.type !== 'mysql' && database !== undefined) config.database = database;
  if (tags.authType === 'iam-auth') config.username = username;
  if (member !== undefined && tags.authType === 'iam-auth') {
    config.assumeRoleArn = member.roleArn;
    if (member.externalId !== undefined) config.externalId = member.externalId;
  }
  const secretRole =
    member !== undefined && tags.secret && accountOfSecret(tags.secret.arn) === db.accountId
      ? member
      : undefined;
  if (et.type === 'mysql') {
    config.flavor = et.flavor;
    config.caBundle = 'aws-rds';
  } else if (env.cfg.caBundleFile !== undefined) {
    config.caBundleFile = env.cfg.caBundleFile;
  }
  if (et.type === 'redshift') config.clusterIdentifier = db.identifier;

  const id = subIntegrationId(db);
  const integration: Integration = {
    id,
    type: et.type,
    config,
    ...(tags.secret
      ? {
          secret: {
            store: 'aws-secrets-manager' as const,
            secretId: tags.secret.arn,
            region: tags.secret.region,
            ...(secretRole !== undefined ? { assumeRoleArn: secretRole.roleArn } : {}),
            ...(secretRole?.externalId !== undefined ? { externalId: secretRole.externalId } : {}),
          },
        }
      : {}),
  };
  const resource: Resource = {
    id: db.arn,
    name: db.identifier,
    type: db.kind,
    parentId: accountResourceId(db.accountId),
    metadata: {
      arn: db.arn,
      accountId: db.accountId,
      region: db.region,
      engine: db.engine,
      engineVersion: db.engineVersion ?? null,
      status: db.status ?? null,
      host: db.host,
      port,
      authType: tags.authType,
      integrationId: id,
      integrationType: et.type,
      tags: db.tags,
    },
  };
  return { kind: 'integration', integration, resource };
}
