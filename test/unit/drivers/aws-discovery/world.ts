/**
 * A fake AWS estate for the aws-discovery tests: accounts × regions holding RDS
 * instances, RDS clusters and Redshift clusters, served through `aws-sdk-client-mock`
 * with paging. Each mocked call finds out which account and region it was sent to from
 * the client itself: the region from its config, the account from its credentials. The
 * credentials come from the real client factory, so member accounts are reached through
 * a real (mocked) STS AssumeRole, exactly as in production.
 */
import { mockClient } from 'aws-sdk-client-mock';
import {
  DescribeDBClustersCommand,
  DescribeDBInstancesCommand,
  RDSClient,
  RDSServiceException,
  type DBCluster,
  type DBInstance,
  type Filter,
} from '@aws-sdk/client-rds';
import {
  DescribeClustersCommand,
  RedshiftClient,
  RedshiftServiceException,
  type Cluster,
} from '@aws-sdk/client-redshift';
import {
  AssumeRoleCommand,
  GetCallerIdentityCommand,
  STSClient,
  STSServiceException,
} from '@aws-sdk/client-sts';
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import { ResourceExplorer2Client } from '@aws-sdk/client-resource-explorer-2';
import { AwsDiscoveryDriver } from '../../../../src/drivers/aws-discovery/index.js';
import { makeServices } from '../../aws/helpers.js';

export const HOME = '111111111111';
export const HOME_ROLE_ARN = `arn:aws:sts::${HOME}:assumed-role/latchkey-connector/task`;
export const CONNECTOR = 'conn-7f3a';
export const PAGE = 2;

export const rds = mockClient(RDSClient);
export const redshift = mockClient(RedshiftClient);
export const sts = mockClient(STSClient);
export const orgs = mockClient(OrganizationsClient);
export const re = mockClient(ResourceExplorer2Client);
export const allMocks = [rds, redshift, sts, orgs, re];

export interface RegionData {
  instances?: DBInstance[];
  clusters?: DBCluster[];
  redshift?: Cluster[];
  /** AWS error name thrown by every call of that service in this region. */
  deny?: { rds?: string; redshift?: string };
}
export type World = Record<string, Record<string, RegionData>>;

export interface SeenCall {
  op: string;
  account: string;
  region: string;
  input: Record<string, unknown>;
}

interface ClientLike {
  config: {
    region: () => Promise<string>;
    credentials: () => Promise<{ accessKeyId: string }>;
  };
}

/** Account and region a mocked call was sent to. */
export async function whereOf(
  getClient: () => unknown,
): Promise<{ account: string; region: string }> {
  const client = getClient() as ClientLike;
  const region = await client.config.region();
  const creds = await client.config.credentials();
  const m = /^ASIA(\d{12})$/.exec(creds.accessKeyId);
  return { account: m?.[1] ?? HOME, region };
}

function page<T>(items: T[], marker: unknown): { items: T[]; next: string | undefined } {
  const start = typeof marker === 'string' ? Number(marker) : 0;
  const end = start + PAGE;
  return { items: items.slice(start, end), next: end < items.length ? String(end) : undefined };
}

function matchesFilter(filters: Filter[] | undefined, id: string, arn: string): boolean {
  if (!filters || filters.length === 0) return true;
  return filters.every((f) => (f.Values ?? []).some((v) => v === id || v === arn));
}

function rdsError(name: string): RDSServiceException {
  return new RDSServiceException({
    name,
    message: `User is not authorized to perform: rds:${name}`,
    $fault: 'client',
    $metadata: { httpStatusCode: 403 },
  });
}

/**
 * Serve the world. `denyAssume` lists accounts whose member role refuses AssumeRole.
 * Returns the calls seen, in order.
 */
export function serveWorld(world: World, opts: { denyAssume?: string[] } = {}): SeenCall[] {
  const calls: SeenCall[] = [];
  const data = (account: string, region: string): RegionData => world[account]?.[region] ?? {};

  sts.on(GetCallerIdentityCommand).callsFake(async (_input: unknown, getClient) => {
    const { account } = await whereOf(getClient);
    return account === HOME
      ? { Account: HOME, Arn: HOME_ROLE_ARN, UserId: 'AROAEXAMPLE:task' }
      : {
          Account: account,
          Arn: `arn:aws:sts::${account}:assumed-role/latchkey-discovery/latchkey-connector`,
          UserId: 'AROAMEMBER:latchkey-connector',
        };
  });
  sts.on(AssumeRoleCommand).callsFake((input: { RoleArn: string }) => {
    const account = /::(\d{12}):/.exec(input.RoleArn)?.[1] ?? 'unknown';
    if (opts.denyAssume?.includes(account)) {
      throw new STSServiceException({
        name: 'AccessDenied',
        message: `User: ${HOME_ROLE_ARN} is not authorized to perform: sts:AssumeRole on resource: ${input.RoleArn}`,
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
      });
    }
    return {
      Credentials: {
        AccessKeyId: `ASIA${account}`,
        SecretAccessKey: 'assumed-secret',
        SessionToken: 'session-token',
        Expiration: new Date(Date.now() + 3600_000),
      },
    };
  });

  rds
    .on(DescribeDBInstancesCommand)
    .callsFake(async (input: Record<string, unknown>, getClient) => {
      const { account, region } = await whereOf(getClient);
      calls.push({ op: 'DescribeDBInstances', account, region, input });
      const d = data(account, region);
      if (d.deny?.rds) throw rdsError(d.deny.rds);
      const filters = input.Filters as Filter[] | undefined;
      const all = (d.instances ?? []).filter((i) =>
        matchesFilter(filters, i.DBInstanceIdentifier ?? '', i.DBInstanceArn ?? ''),
      );
      const p = page(all, input.Marker);
      return { DBInstances: p.items, ...(p.next ? { Marker: p.next } : {}) };
    });
  rds.on(DescribeDBClustersCommand).callsFake(async (input: Record<string, unknown>, getClient) => {
    const { account, region } = await whereOf(getClient);
    calls.push({ op: 'DescribeDBClusters', account, region, input });
    const d = data(account, region);
    if (d.deny?.rds) throw rdsError(d.deny.rds);
    const filters = input.Filters as Filter[] | undefined;
    const all = (d.clusters ?? []).filter((c) =>
      matchesFilter(filters, c.DBClusterIdentifier ?? '', c.DBClusterArn ?? ''),
    );
    const p = page(all, input.Marker);
    return { DBClusters: p.items, ...(p.next ? { Marker: p.next } : {}) };
  });
  redshift
    .on(DescribeClustersCommand)
    .callsFake(async (input: Record<string, unknown>, getClient) => {
      const { account, region } = await whereOf(getClient);
      calls.push({ op: 'DescribeClusters', account, region, input });
      const d = data(account, region);
      if (d.deny?.redshift) {
        throw new RedshiftServiceException({
          name: d.deny.redshift,
          message: 'not authorized to perform redshift:DescribeClusters',
          $fault: 'client',
          $metadata: { httpStatusCode: 403 },
        });
      }
      const p = page(d.redshift ?? [], input.Marker);
      return { Clusters: p.items, ...(p.next ? { Marker: p.next } : {}) };
    });
  return calls;
}

export function tags(t: Record<string, string>): { Key: string; Value: string }[] {
  return Object.entries(t).map(([Key, Value]) => ({ Key, Value }));
}

export function secretArn(account: string, region: string, name: string): string {
  return `arn:aws:secretsmanager:${region}:${account}:secret:${name}-AbCdEf`;
}

export function instance(
  account: string,
  region: string,
  id: string,
  engine: string,
  t: Record<string, string>,
  extra: Partial<DBInstance> = {},
): DBInstance {
  const port = engine === 'postgres' ? 5432 : 3306;
  return {
    DBInstanceIdentifier: id,
    DBInstanceArn: `arn:aws:rds:${region}:${account}:db:${id}`,
    Engine: engine,
    EngineVersion: engine === 'postgres' ? '16.4' : '8.0.39',
    DBInstanceStatus: 'available',
    Endpoint: { Address: `${id}.abcdefghijkl.${region}.rds.amazonaws.com`, Port: port },
    MasterUsername: 'admin_user',
    DBName: engine === 'postgres' ? 'app' : undefined,
    IAMDatabaseAuthenticationEnabled: true,
    TagList: tags(t),
    ...extra,
  };
}

export function dbCluster(
  account: string,
  region: string,
  id: string,
  engine: string,
  t: Record<string, string>,
): DBCluster {
  return {
    DBClusterIdentifier: id,
    DBClusterArn: `arn:aws:rds:${region}:${account}:cluster:${id}`,
    Engine: engine,
    EngineVersion: '16.4',
    Status: 'available',
    Endpoint: `${id}.cluster-abcdefghijkl.${region}.rds.amazonaws.com`,
    Port: 5432,
    MasterUsername: 'postgres_admin',
    IAMDatabaseAuthenticationEnabled: true,
    TagList: tags(t),
  };
}

export function redshiftCluster(region: string, id: string, t: Record<string, string>): Cluster {
  return {
    ClusterIdentifier: id,
    ClusterStatus: 'available',
    ClusterVersion: '1.0',
    DBName: 'analytics',
    MasterUsername: 'awsuser',
    Endpoint: { Address: `${id}.c1a2b3c4d5e6.${region}.redshift.amazonaws.com`, Port: 5439 },
    Tags: tags(t),
  };
}

/** Tags of a database for `CONNECTOR` with the given prefix. */
export function ours(
  authType: 'iam-auth' | 'user-password',
  secret?: string,
  prefix = 'latchkey',
): Record<string, string> {
  return {
    [`${prefix}-connector-id`]: CONNECTOR,
    auth_type: authType,
    ...(secret !== undefined ? { [`${prefix}-secret`]: secret } : {}),
  };
}

export function makeDriver(tagPrefix = 'latchkey', allowedRolePattern?: string) {
  const services = {
    ...makeServices(allowedRolePattern !== undefined ? { allowedRolePattern } : {}),
    tagPrefix,
  };
  return new AwsDiscoveryDriver(services, { limiter: { concurrency: 16, perSecond: 100_000 } });
}
