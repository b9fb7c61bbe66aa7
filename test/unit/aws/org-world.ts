/**
 * A fake AWS Organization for the organization-mode tests: a tree of OUs and accounts
 * served through `aws-sdk-client-mock` (Organizations listings with paging, ListParents),
 * STS AssumeRole that hands out `ASIA<account>` keys (or refuses for chosen accounts), and
 * EC2 DescribeRegions per account. A mocked call finds the account it was sent to from the
 * client's credentials, which come from the real client factory, so every call of a member
 * account proves it ran with that account's member role.
 */
import { mockClient } from 'aws-sdk-client-mock';
import {
  ChildNotFoundException,
  ListAccountsCommand,
  ListAccountsForParentCommand,
  ListOrganizationalUnitsForParentCommand,
  ListParentsCommand,
  ListRootsCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import {
  AssumeRoleCommand,
  GetCallerIdentityCommand,
  STSClient,
  STSServiceException,
} from '@aws-sdk/client-sts';
import { DescribeRegionsCommand, EC2Client } from '@aws-sdk/client-ec2';

export const HOME = '111111111111';
export const HOME_ARN = `arn:aws:sts::${HOME}:assumed-role/latchkey-connector/task`;
export const ROOT = 'r-ab12';
export const MEMBER_ROLE = 'latchkey-member';
/** Member accounts, OUs and regions the organization tests share. */
export const A = '222222222222';
export const B = '333333333333';
export const C = '444444444444';
export const D = '555555555555';
export const OU_PROD = 'ou-ab12-prod0001';
export const OU_SANDBOX = 'ou-ab12-sandbox1';
export const REGIONS = ['eu-west-1', 'us-east-1'];

export const orgs = mockClient(OrganizationsClient);
export const sts = mockClient(STSClient);
export const ec2 = mockClient(EC2Client);

export interface OrgTree {
  /** Parent id → child OU ids. */
  ous: Record<string, string[]>;
  /** Parent id (root or OU) → account ids. */
  accounts: Record<string, string[]>;
  /** Accounts whose member role refuses AssumeRole. */
  denyAssume?: string[];
  /** Enabled regions per account (DescribeRegions); default eu-west-1 and us-east-1. */
  regions?: Record<string, string[]>;
  /** Page size of the Organizations listings. */
  page?: number;
}

export interface ClientLike {
  config: {
    region: () => Promise<string>;
    credentials: () => Promise<{ accessKeyId: string }>;
  };
}

/** Account and region a mocked call was sent to (home when not an assumed member key). */
export async function whereOf(
  getClient: () => unknown,
): Promise<{ account: string; region: string }> {
  const client = getClient() as ClientLike;
  const region = await client.config.region();
  const creds = await client.config.credentials();
  const m = /^ASIA(\d{12})$/.exec(creds.accessKeyId);
  return { account: m?.[1] ?? HOME, region };
}

function paged<T>(items: T[], token: unknown, size: number): { items: T[]; next?: string } {
  const start = typeof token === 'string' ? Number(token) : 0;
  const end = start + size;
  return {
    items: items.slice(start, end),
    ...(end < items.length ? { next: String(end) } : {}),
  };
}

export function accessDenied(message: string): STSServiceException {
  return new STSServiceException({
    name: 'AccessDenied',
    message,
    $fault: 'client',
    $metadata: { httpStatusCode: 403 },
  });
}

/** Serve the tree. Returns the AssumeRole RoleArns seen, in order. */
export function serveOrganization(tree: OrgTree): { assumed: string[]; describeRegions: string[] } {
  const size = tree.page ?? 20;
  const assumed: string[] = [];
  const describeRegions: string[] = [];
  const allAccounts = Object.values(tree.accounts).flat();
  const parentOf = new Map<string, string>();
  for (const [parent, ids] of Object.entries(tree.accounts))
    for (const id of ids) parentOf.set(id, parent);
  for (const [parent, ids] of Object.entries(tree.ous))
    for (const id of ids) parentOf.set(id, parent);
  const account = (id: string) => ({
    Id: id,
    Name: `acct-${id.slice(-4)}`,
    State: 'ACTIVE' as const,
    Arn: `arn:aws:organizations::${HOME}:account/o-x/${id}`,
  });

  orgs.on(ListAccountsCommand).callsFake((input: { NextToken?: string }) => {
    const p = paged(allAccounts, input.NextToken, size);
    return { Accounts: p.items.map(account), ...(p.next ? { NextToken: p.next } : {}) };
  });
  orgs.on(ListRootsCommand).resolves({ Roots: [{ Id: ROOT, Name: 'Root' }] });
  orgs
    .on(ListAccountsForParentCommand)
    .callsFake((input: { ParentId: string; NextToken?: string }) => {
      const p = paged(tree.accounts[input.ParentId] ?? [], input.NextToken, size);
      return { Accounts: p.items.map(account), ...(p.next ? { NextToken: p.next } : {}) };
    });
  orgs
    .on(ListOrganizationalUnitsForParentCommand)
    .callsFake((input: { ParentId: string; NextToken?: string }) => {
      const p = paged(tree.ous[input.ParentId] ?? [], input.NextToken, size);
      return {
        OrganizationalUnits: p.items.map((Id) => ({ Id, Name: Id })),
        ...(p.next ? { NextToken: p.next } : {}),
      };
    });
  orgs.on(ListParentsCommand).callsFake((input: { ChildId: string }) => {
    const parent = parentOf.get(input.ChildId);
    if (parent === undefined) {
      throw new ChildNotFoundException({
        message: 'We could not find a child with the specified ID.',
        $metadata: { httpStatusCode: 400 },
      });
    }
    return { Parents: [{ Id: parent, Type: parent === ROOT ? 'ROOT' : 'ORGANIZATIONAL_UNIT' }] };
  });

  sts.on(GetCallerIdentityCommand).callsFake(async (_input: unknown, getClient) => {
    const { account: a } = await whereOf(getClient);
    return a === HOME
      ? { Account: HOME, Arn: HOME_ARN, UserId: 'AROAEXAMPLE:task' }
      : { Account: a, Arn: `arn:aws:sts::${a}:assumed-role/${MEMBER_ROLE}/lk`, UserId: 'AROA:lk' };
  });
  sts.on(AssumeRoleCommand).callsFake((input: { RoleArn: string }) => {
    assumed.push(input.RoleArn);
    const a = /::(\d{12}):/.exec(input.RoleArn)?.[1] ?? 'unknown';
    if (tree.denyAssume?.includes(a)) {
      throw accessDenied(
        `User: ${HOME_ARN} is not authorized to perform: sts:AssumeRole on resource: ${input.RoleArn}`,
      );
    }
    return {
      Credentials: {
        AccessKeyId: `ASIA${a}`,
        SecretAccessKey: 'assumed-secret',
        SessionToken: 'session-token',
        Expiration: new Date(Date.now() + 3600_000),
      },
    };
  });
  ec2.on(DescribeRegionsCommand).callsFake(async (_input: unknown, getClient) => {
    const { account: a } = await whereOf(getClient);
    describeRegions.push(a);
    const regions = tree.regions?.[a] ?? ['eu-west-1', 'us-east-1'];
    return { Regions: regions.map((RegionName) => ({ RegionName, OptInStatus: 'opted-in' })) };
  });
  return { assumed, describeRegions };
}

export function memberRoleArnOf(account: string): string {
  return `arn:aws:iam::${account}:role/${MEMBER_ROLE}`;
}
