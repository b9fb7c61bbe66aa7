/**
 * Where the `aws-eks` driver works, and what a grant names. Pure: no AWS calls.
 *
 * Glossary
 * - **scope account**: one AWS account the driver works in, with its regions and the
 *   factory target (assumed role, external id) of each region. A single-account
 *   integration has exactly one (`accountScope` below); an organization integration has one
 *   per member account, with its member role (`organization.ts`). Every AWS call of the
 *   driver goes through the scope account of the resource's own account.
 * - **cluster ref**: a cluster named by its ARN (`arn:aws:eks:<region>:<account>:cluster/<name>`).
 * - **namespace resource**: `<cluster ARN>/namespace/<name>`, parent the cluster.
 * - **level**: the permission of a grant (`view`, `edit`, `admin`, `cluster-admin`), one
 *   EKS access policy each.
 * - **access scope**: `cluster`, or a set of namespaces, as EKS associates a policy.
 */
import { LatchkeyError } from '../../errors.js';
import { targetOf } from '../../aws/config.js';
import type { AwsTarget } from '../../aws/types.js';
import type { ResourceRef } from '../../protocol/messages.js';
import { NamespaceSchema, type AwsEksConfig } from './config.js';

export interface ScopeAccount {
  accountId: string;
  partition: string;
  regions: readonly string[];
  /** The factory target of this account in one region. */
  target(region: string): AwsTarget;
  /** The role the connector works as in this account, when it assumes one. */
  assumeRoleArn: string | undefined;
}

/** The accounts an integration works in, and the lookup of one by id. */
export interface AccountScope {
  accounts(): readonly ScopeAccount[];
  /** @throws LatchkeyError E_INVALID when the account is not in the scope */
  account(accountId: string): ScopeAccount;
}

/** The scope of a single-account integration: its account and regions. */
export function accountScope(cfg: AwsEksConfig): AccountScope {
  const only: ScopeAccount = {
    accountId: cfg.accountId,
    partition: cfg.partition,
    regions: cfg.regions,
    target: (region) => targetOf(cfg, region),
    assumeRoleArn: cfg.assumeRoleArn,
  };
  return {
    accounts: () => [only],
    account(accountId) {
      if (accountId !== cfg.accountId) {
        throw new LatchkeyError(
          'E_INVALID',
          `account ${accountId} is not this integration's account (${cfg.accountId})`,
        );
      }
      return only;
    },
  };
}

export const EKS_RESOURCE_TYPES = ['eks-cluster', 'eks-namespace'] as const;

/** Permission level → EKS access policy name. */
export const ACCESS_POLICIES = {
  view: 'AmazonEKSViewPolicy',
  edit: 'AmazonEKSEditPolicy',
  admin: 'AmazonEKSAdminPolicy',
  'cluster-admin': 'AmazonEKSClusterAdminPolicy',
} as const;
export type EksLevel = keyof typeof ACCESS_POLICIES;
export const EKS_LEVELS = Object.keys(ACCESS_POLICIES) as EksLevel[];

export function accessPolicyArn(partition: string, level: EksLevel): string {
  return `arn:${partition}:eks::aws:cluster-access-policy/${ACCESS_POLICIES[level]}`;
}

/** The level of an access policy ARN, or undefined for a policy the driver does not grant. */
export function levelOfPolicyArn(arn: string): EksLevel | undefined {
  const name = /:cluster-access-policy\/([A-Za-z]+)$/.exec(arn)?.[1];
  return EKS_LEVELS.find((l) => ACCESS_POLICIES[l] === name);
}

/** @throws LatchkeyError E_INVALID (unknown), E_GUARDRAIL (cluster-admin not allowed) */
export function parseLevel(
  permission: string,
  cfg: Pick<AwsEksConfig, 'allowClusterAdmin'>,
): EksLevel {
  if (!(EKS_LEVELS as string[]).includes(permission)) {
    throw new LatchkeyError(
      'E_INVALID',
      `unknown permission '${permission}' for aws-eks; use ${EKS_LEVELS.join(', ')}`,
    );
  }
  const level = permission as EksLevel;
  if (level === 'cluster-admin' && !cfg.allowClusterAdmin) {
    throw new LatchkeyError(
      'E_GUARDRAIL',
      'cluster-admin (AmazonEKSClusterAdminPolicy) is refused unless the integration sets allowClusterAdmin',
    );
  }
  return level;
}

export interface ClusterRef {
  arn: string;
  partition: string;
  region: string;
  accountId: string;
  name: string;
}

const CLUSTER_ARN =
  /^arn:(aws[a-z-]*):eks:([a-z0-9-]+):(\d{12}):cluster\/([0-9A-Za-z][A-Za-z0-9_-]{0,99})$/;

export function clusterArn(
  partition: string,
  region: string,
  accountId: string,
  name: string,
): string {
  return `arn:${partition}:eks:${region}:${accountId}:cluster/${name}`;
}

export function namespaceId(cluster: string, namespace: string): string {
  return `${cluster}/namespace/${namespace}`;
}

/** @throws LatchkeyError E_INVALID */
export function parseClusterArn(arn: string): ClusterRef {
  const m = CLUSTER_ARN.exec(arn);
  const [, partition, region, accountId, name] = m ?? [];
  if (!partition || !region || !accountId || !name) {
    throw new LatchkeyError('E_INVALID', `an EKS cluster id must be its ARN, got ${arn}`);
  }
  return { arn, partition, region, accountId, name };
}

/** What a grant asks for on one cluster: the whole cluster, or some namespaces. */
export interface ClusterRequest {
  cluster: ClusterRef;
  account: ScopeAccount;
  /** `cluster`, or the sorted namespaces. */
  scope: AccessScopeSpec;
}

export type AccessScopeSpec = { type: 'cluster' } | { type: 'namespace'; namespaces: string[] };

/**
 * The clusters and access scopes a grant's resources name, checked against the scope
 * (account, partition, region, cluster allow-list). A cluster named whole and through its
 * namespaces in the same grant is ambiguous and refused.
 * @throws LatchkeyError E_INVALID
 */
export function parseResources(
  resources: readonly ResourceRef[],
  scope: AccountScope,
  cfg: Pick<AwsEksConfig, 'clusters'>,
): ClusterRequest[] {
  const byCluster = new Map<string, { cluster: ClusterRef; whole: boolean; ns: Set<string> }>();
  for (const r of resources) {
    let clusterId: string;
    let ns: string | undefined;
    if (r.type === 'eks-cluster') {
      clusterId = r.id;
    } else if (r.type === 'eks-namespace') {
      const at = r.id.lastIndexOf('/namespace/');
      if (at < 0) {
        throw new LatchkeyError(
          'E_INVALID',
          `an eks-namespace id is <cluster ARN>/namespace/<name>, got ${r.id}`,
        );
      }
      clusterId = r.id.slice(0, at);
      ns = r.id.slice(at + '/namespace/'.length);
      if (!NamespaceSchema.safeParse(ns).success) {
        throw new LatchkeyError('E_INVALID', `${r.id}: '${ns}' is not a Kubernetes namespace name`);
      }
    } else {
      throw new LatchkeyError(
        'E_INVALID',
        `resource type '${r.type}' is not served by aws-eks (${EKS_RESOURCE_TYPES.join(', ')})`,
      );
    }
    const cluster = parseClusterArn(clusterId);
    const account = scope.account(cluster.accountId);
    if (cluster.partition !== account.partition) {
      throw new LatchkeyError(
        'E_INVALID',
        `${cluster.arn} is not in partition ${account.partition}`,
      );
    }
    if (!account.regions.includes(cluster.region)) {
      throw new LatchkeyError(
        'E_INVALID',
        `${cluster.arn} is in region ${cluster.region}, not one of this integration's regions (${account.regions.join(', ')})`,
      );
    }
    if (cfg.clusters !== undefined && !cfg.clusters.includes(cluster.name)) {
      throw new LatchkeyError(
        'E_INVALID',
        `cluster ${cluster.name} is not on the integration's cluster list`,
      );
    }
    const entry = byCluster.get(cluster.arn) ?? { cluster, whole: false, ns: new Set<string>() };
    if (ns === undefined) entry.whole = true;
    else entry.ns.add(ns);
    byCluster.set(cluster.arn, entry);
  }
  const out: ClusterRequest[] = [];
  for (const { cluster, whole, ns } of byCluster.values()) {
    if (whole && ns.size > 0) {
      throw new LatchkeyError(
        'E_INVALID',
        `${cluster.arn} is named both whole and through namespaces; a grant names one or the other`,
      );
    }
    out.push({
      cluster,
      account: scope.account(cluster.accountId),
      scope: whole ? { type: 'cluster' } : { type: 'namespace', namespaces: [...ns].sort() },
    });
  }
  return out;
}

/**
 * The principal an access entry is for. IAM users and roles by their ARN without a path
 * (EKS matches roles by name; an Identity Center role's `aws-reserved/sso.amazonaws.com/…`
 * path is dropped), an assumed-role session by its role.
 */
export interface EntryPrincipal {
  kind: 'role' | 'user';
  name: string;
  accountId: string;
  partition: string;
  /** The ARN given to EKS. */
  arn: string;
}

const IAM_ARN =
  /^arn:(aws[a-z-]*):iam::(\d{12}):(role|user)\/(?:[\w+=,.@/-]*\/)?([\w+=,.@-]{1,128})$/;
const ASSUMED_ARN =
  /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([\w+=,.@-]{1,64})\/[\w+=,.@-]+$/;

/** @throws LatchkeyError E_INVALID */
export function parseEntryPrincipal(arn: string | undefined): EntryPrincipal {
  if (arn === undefined) {
    throw new LatchkeyError(
      'E_INVALID',
      'grantee.awsPrincipalArn is required: the IAM role or user (or Identity Center role) that receives the access entry',
    );
  }
  const assumed = ASSUMED_ARN.exec(arn);
  const m = assumed ? null : IAM_ARN.exec(arn);
  const partition = assumed?.[1] ?? m?.[1];
  const accountId = assumed?.[2] ?? m?.[2];
  const kind = assumed ? 'role' : m?.[3];
  const name = assumed?.[3] ?? m?.[4];
  if (!partition || !accountId || !name || (kind !== 'role' && kind !== 'user')) {
    throw new LatchkeyError(
      'E_INVALID',
      `grantee.awsPrincipalArn must be an IAM role or user ARN (or an assumed-role session ARN), got ${arn}`,
    );
  }
  return {
    kind,
    name,
    accountId,
    partition,
    arn: `arn:${partition}:iam::${accountId}:${kind}/${name}`,
  };
}
