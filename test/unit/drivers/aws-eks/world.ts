/**
 * A small in-memory EKS (clusters, access entries with tags, policy associations) behind
 * `aws-sdk-client-mock`, answering as the real API does where the driver depends on it:
 * one entry per (cluster, principal) (`ResourceInUseException` on a second create), one
 * association per (entry, policy) (a second associate replaces the scope),
 * `ResourceNotFoundException` for absent entries and associations, pagination by
 * `maxResults`/`nextToken`, and injected faults. IAM answers GetRole/GetUser tags and STS
 * the connector's identity. Tests also assert the exact requests on the mocks.
 */
import { mockClient } from 'aws-sdk-client-mock';
import {
  AssociateAccessPolicyCommand,
  CreateAccessEntryCommand,
  DeleteAccessEntryCommand,
  DescribeAccessEntryCommand,
  DescribeClusterCommand,
  DisassociateAccessPolicyCommand,
  EKSClient,
  ListAccessEntriesCommand,
  ListAssociatedAccessPoliciesCommand,
  ListClustersCommand,
  ResourceInUseException,
  ResourceNotFoundException,
  TagResourceCommand,
  UntagResourceCommand,
  type AccessScope,
} from '@aws-sdk/client-eks';
import {
  GetRoleCommand,
  GetUserCommand,
  IAMClient,
  NoSuchEntityException,
  SimulatePrincipalPolicyCommand,
} from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';

export const ACCOUNT = '123456789012';
export const CONNECTOR_ROLE = `arn:aws:iam::${ACCOUNT}:role/latchkey-connector`;

export const eks = mockClient(EKSClient);
export const iam = mockClient(IAMClient);
export const sts = mockClient(STSClient);

export interface FakeEntry {
  principalArn: string;
  accessEntryArn: string;
  type: string;
  kubernetesGroups: string[];
  tags: Record<string, string>;
  associations: Map<string, AccessScope>;
}

export interface FakeCluster {
  name: string;
  region: string;
  authenticationMode: string;
  status: string;
  tags: Record<string, string>;
}

type Op =
  | 'CreateAccessEntry'
  | 'AssociateAccessPolicy'
  | 'DisassociateAccessPolicy'
  | 'DeleteAccessEntry'
  | 'TagResource'
  | 'UntagResource'
  | 'DescribeAccessEntry'
  | 'ListClusters'
  | 'DescribeCluster'
  | 'ListAccessEntries'
  | 'ListAssociatedAccessPolicies';

const notFound = (what: string) =>
  new ResourceNotFoundException({
    message: `${what} not found`,
    $metadata: { httpStatusCode: 404 },
  });

function page<T>(items: T[], input: { maxResults?: number; nextToken?: string }) {
  const size = input.maxResults ?? 100;
  const start = input.nextToken ? Number(input.nextToken) : 0;
  const slice = items.slice(start, start + size);
  const next = start + size < items.length ? String(start + size) : undefined;
  return { slice, next };
}

export class EksWorld {
  clusters = new Map<string, FakeCluster>();
  entries = new Map<string, FakeEntry>();
  roleTags = new Map<string, { Key: string; Value: string }[]>();
  /** Page size the fake uses regardless of maxResults (to force pagination). */
  pageSize = 100;
  /** Runs at the start of CreateAccessEntry (a race: someone creates the entry first). */
  onCreate: (() => void) | undefined;
  private faults = new Map<Op, unknown[]>();
  private uuid = 0;

  constructor() {
    this.install();
  }

  addCluster(name: string, over: Partial<FakeCluster> = {}): FakeCluster {
    const c: FakeCluster = {
      name,
      region: 'eu-west-1',
      authenticationMode: 'API_AND_CONFIG_MAP',
      status: 'ACTIVE',
      tags: {},
      ...over,
    };
    this.clusters.set(name, c);
    return c;
  }

  /** An entry someone else made (or the agent, when tags say so). */
  addEntry(
    cluster: string,
    principalArn: string,
    over: Partial<Omit<FakeEntry, 'associations'>> & {
      associations?: Record<string, AccessScope>;
    } = {},
  ): FakeEntry {
    const { associations, ...rest } = over;
    const e: FakeEntry = {
      principalArn,
      accessEntryArn: this.entryArn(cluster, principalArn),
      type: 'STANDARD',
      kubernetesGroups: [],
      tags: {},
      ...rest,
      associations: new Map(Object.entries(associations ?? {})),
    };
    this.entries.set(`${cluster}|${principalArn}`, e);
    return e;
  }

  entry(cluster: string, principalArn: string): FakeEntry | undefined {
    return this.entries.get(`${cluster}|${principalArn}`);
  }

  /** The next `times` calls of `op` fail with `err`. */
  fail(op: Op, err: unknown, times = 1): void {
    this.faults.set(op, [...(this.faults.get(op) ?? []), ...Array<unknown>(times).fill(err)]);
  }

  private fault(op: Op): void {
    const list = this.faults.get(op);
    const err = list?.shift();
    if (err !== undefined) throw err as Error;
  }

  private entryArn(cluster: string, principalArn: string): string {
    const c = this.clusters.get(cluster);
    const [, , , , acct, res] = principalArn.split(':');
    const [kind, name] = (res ?? '').split('/');
    this.uuid++;
    return `arn:aws:eks:${c?.region ?? 'eu-west-1'}:${ACCOUNT}:access-entry/${cluster}/${kind}/${acct}/${name}/uuid-${this.uuid}`;
  }

  private byArn(arn: string): FakeEntry {
    for (const e of this.entries.values()) if (e.accessEntryArn === arn) return e;
    throw notFound(arn);
  }

  private cluster(name: string | undefined): FakeCluster {
    const c = name === undefined ? undefined : this.clusters.get(name);
    if (!c) throw notFound(`cluster ${name ?? ''}`);
    return c;
  }

  private getEntry(cluster: string | undefined, principal: string | undefined): FakeEntry {
    this.cluster(cluster);
    const e = this.entries.get(`${cluster ?? ''}|${principal ?? ''}`);
    if (!e) throw notFound('access entry');
    return e;
  }

  private describe(e: FakeEntry, cluster: string) {
    return {
      clusterName: cluster,
      principalArn: e.principalArn,
      accessEntryArn: e.accessEntryArn,
      type: e.type,
      kubernetesGroups: [...e.kubernetesGroups],
      tags: { ...e.tags },
      username: e.principalArn,
    };
  }

  install(): void {
    eks.on(ListClustersCommand).callsFake((input: { maxResults?: number; nextToken?: string }) => {
      this.fault('ListClusters');
      const names = [...this.clusters.values()].map((c) => c.name);
      const { slice, next } = page(names, { ...input, maxResults: this.pageSize });
      return { clusters: slice, ...(next ? { nextToken: next } : {}) };
    });
    eks.on(DescribeClusterCommand).callsFake((input: { name?: string }) => {
      this.fault('DescribeCluster');
      const c = this.cluster(input.name);
      return {
        cluster: {
          name: c.name,
          arn: `arn:aws:eks:${c.region}:${ACCOUNT}:cluster/${c.name}`,
          status: c.status,
          version: '1.31',
          endpoint: `https://${c.name}.gr7.${c.region}.eks.amazonaws.com`,
          certificateAuthority: { data: 'Q0EK' },
          accessConfig: { authenticationMode: c.authenticationMode },
          tags: { ...c.tags },
        },
      };
    });
    eks
      .on(DescribeAccessEntryCommand)
      .callsFake((input: { clusterName?: string; principalArn?: string }) => {
        this.fault('DescribeAccessEntry');
        const e = this.getEntry(input.clusterName, input.principalArn);
        return { accessEntry: this.describe(e, input.clusterName ?? '') };
      });
    eks
      .on(CreateAccessEntryCommand)
      .callsFake(
        (input: {
          clusterName?: string;
          principalArn?: string;
          type?: string;
          tags?: Record<string, string>;
        }) => {
          this.fault('CreateAccessEntry');
          this.onCreate?.();
          this.cluster(input.clusterName);
          const key = `${input.clusterName ?? ''}|${input.principalArn ?? ''}`;
          if (this.entries.has(key)) {
            throw new ResourceInUseException({
              message: 'The specified access entry resource is already in use on this cluster.',
              $metadata: { httpStatusCode: 409 },
            });
          }
          const e = this.addEntry(input.clusterName ?? '', input.principalArn ?? '', {
            type: input.type ?? 'STANDARD',
            tags: { ...(input.tags ?? {}) },
          });
          return { accessEntry: this.describe(e, input.clusterName ?? '') };
        },
      );
    eks
      .on(TagResourceCommand)
      .callsFake((input: { resourceArn?: string; tags?: Record<string, string> }) => {
        this.fault('TagResource');
        const e = this.byArn(input.resourceArn ?? '');
        Object.assign(e.tags, input.tags ?? {});
        if (Object.keys(e.tags).length > 50) throw new Error('fake: more than 50 tags');
        return {};
      });
    eks
      .on(UntagResourceCommand)
      .callsFake((input: { resourceArn?: string; tagKeys?: string[] }) => {
        this.fault('UntagResource');
        const e = this.byArn(input.resourceArn ?? '');
        for (const k of input.tagKeys ?? []) delete e.tags[k];
        return {};
      });
    eks
      .on(AssociateAccessPolicyCommand)
      .callsFake(
        (input: {
          clusterName?: string;
          principalArn?: string;
          policyArn?: string;
          accessScope?: AccessScope;
        }) => {
          this.fault('AssociateAccessPolicy');
          const e = this.getEntry(input.clusterName, input.principalArn);
          e.associations.set(input.policyArn ?? '', { ...(input.accessScope ?? {}) });
          return {};
        },
      );
    eks
      .on(DisassociateAccessPolicyCommand)
      .callsFake((input: { clusterName?: string; principalArn?: string; policyArn?: string }) => {
        this.fault('DisassociateAccessPolicy');
        const e = this.getEntry(input.clusterName, input.principalArn);
        if (!e.associations.delete(input.policyArn ?? '')) throw notFound('association');
        return {};
      });
    eks
      .on(ListAssociatedAccessPoliciesCommand)
      .callsFake(
        (input: {
          clusterName?: string;
          principalArn?: string;
          maxResults?: number;
          nextToken?: string;
        }) => {
          this.fault('ListAssociatedAccessPolicies');
          const e = this.getEntry(input.clusterName, input.principalArn);
          const all = [...e.associations].map(([policyArn, accessScope]) => ({
            policyArn,
            accessScope,
          }));
          const { slice, next } = page(all, { ...input, maxResults: this.pageSize });
          return {
            clusterName: input.clusterName,
            principalArn: input.principalArn,
            associatedAccessPolicies: slice,
            ...(next ? { nextToken: next } : {}),
          };
        },
      );
    eks
      .on(DeleteAccessEntryCommand)
      .callsFake((input: { clusterName?: string; principalArn?: string }) => {
        this.fault('DeleteAccessEntry');
        this.getEntry(input.clusterName, input.principalArn);
        this.entries.delete(`${input.clusterName ?? ''}|${input.principalArn ?? ''}`);
        return {};
      });
    eks
      .on(ListAccessEntriesCommand)
      .callsFake((input: { clusterName?: string; maxResults?: number; nextToken?: string }) => {
        this.fault('ListAccessEntries');
        this.cluster(input.clusterName);
        const arns = [...this.entries]
          .filter(([k]) => k.startsWith(`${input.clusterName ?? ''}|`))
          .map(([, e]) => e.principalArn);
        const { slice, next } = page(arns, { ...input, maxResults: this.pageSize });
        return { accessEntries: slice, ...(next ? { nextToken: next } : {}) };
      });

    iam.on(GetRoleCommand).callsFake((input: { RoleName?: string }) => {
      const tags = this.roleTags.get(input.RoleName ?? '');
      if (!tags) {
        throw new NoSuchEntityException({
          message: 'role not found',
          $metadata: { httpStatusCode: 404 },
        });
      }
      return { Role: { RoleName: input.RoleName, Tags: tags } };
    });
    iam.on(GetUserCommand).callsFake((input: { UserName?: string }) => {
      const tags = this.roleTags.get(`user:${input.UserName ?? ''}`);
      if (!tags) {
        throw new NoSuchEntityException({
          message: 'user not found',
          $metadata: { httpStatusCode: 404 },
        });
      }
      return { User: { UserName: input.UserName, Tags: tags } };
    });
    iam.on(SimulatePrincipalPolicyCommand).callsFake((input: { ActionNames?: string[] }) => ({
      EvaluationResults: (input.ActionNames ?? []).map((a) => ({
        EvalActionName: a,
        EvalDecision: 'allowed',
      })),
    }));
    sts.on(GetCallerIdentityCommand).resolves({
      Account: ACCOUNT,
      Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/latchkey-connector/latchkey-connector`,
    });
  }
}

export function resetMocks(): void {
  eks.reset();
  iam.reset();
  sts.reset();
}

export function restoreMocks(): void {
  eks.restore();
  iam.restore();
  sts.restore();
}
