/**
 * `aws-eks`: Kubernetes access on EKS clusters through access entries. A grant gives the
 * grantee's IAM principal an access entry on each named cluster and associates one EKS
 * access policy (view, edit, admin, cluster-admin) scoped to the cluster or to namespaces;
 * revoke takes back exactly what the grant added. See docs/drivers/aws-eks.md and
 * docs/decisions/0006-eks-access-entry-sharing.md.
 *
 * Glossary
 * - **access entry**: EKS's record that lets one IAM principal into one cluster; at most one
 *   per (cluster, principal), so overlapping grants share it.
 * - **association**: one access policy on an entry with one access scope; at most one per
 *   (entry, policy), so overlapping grants of the same level share it too.
 * - **records**: the agent's tags on the entry (`records.ts`): which grants hold which level
 *   with which scope, whether the agent created the entry, what existed before it.
 * - **scope account**: where calls go (`scope.ts`); the config's account, or in organization
 *   mode each member account with its member role (`organization.ts`).
 *
 * Grant order (each step reads first, so a re-run after a crash continues where the last
 * run stopped): validate everything (config, resources, permission, principal, guardrails,
 * each cluster's authentication mode, each existing entry's tags) → per cluster: create the
 * entry with the grant's record in its tags (one call), or add the record to an existing
 * entry's tags → associate the policy with the union of the scopes that hold it.
 * Revoke order: per cluster: re-associate the policy with what the other holders need, or
 * disassociate it when none is left → delete the entry when the agent created it and
 * nothing else is on it, else remove the grant's tags.
 */
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
  TagResourceCommand,
  UntagResourceCommand,
  type AccessEntry,
} from '@aws-sdk/client-eks';
import {
  GetRoleCommand,
  GetUserCommand,
  IAMClient,
  SimulatePrincipalPolicyCommand,
} from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { awsSend } from '../../aws/call.js';
import { ServiceLimiters } from '../../aws/limiter.js';
import { OrgScopeCache, orgScopeOf, type OrgScope } from '../../aws/org-scope.js';
import { paginate } from '../../aws/organization.js';
import { MAX_NAMED_RESOURCES } from '../../aws/policy.js';
import { LatchkeyError, toWireError } from '../../errors.js';
import type {
  CheckOutput,
  DiscoverOutput,
  GrantOutput,
  GrantParams,
  Phase,
  RevokeOutput,
  RevokeParams,
} from '../../protocol/messages.js';
import { probe } from '../probe.js';
import type { CallContext, Driver, DriverServices, SweepReport } from '../driver.js';
import { parseEksConfig, type AwsEksConfig } from './config.js';
import { eksSend } from './errors.js';
import {
  accountsOfResources,
  discoverOrganization,
  organizationAccountScope,
  organizationClusters,
  orgScopeAccount,
  sweepOrganization,
} from './organization.js';
import { eksToken, kubernetesNamespaceLister, type NamespaceLister } from './kubernetes.js';
import {
  MAX_TAGS,
  baseTags,
  desiredScope,
  grantTagId,
  grantTags,
  managedKey,
  readRecords,
  sameScope,
  type EntryRecords,
  type GrantRecord,
} from './records.js';
import {
  EKS_LEVELS,
  accessPolicyArn,
  accountScope as singleAccountScope,
  clusterArn,
  namespaceId,
  parseClusterArn,
  parseEntryPrincipal,
  parseLevel,
  parseResources,
  type AccessScopeSpec,
  type AccountScope,
  type ClusterRef,
  type EksLevel,
  type EntryPrincipal,
  type ScopeAccount,
} from './scope.js';

type Resource = DiscoverOutput['resources'][number];
type Warning = DiscoverOutput['warnings'][number];

/** What DescribeCluster tells the driver. */
export interface ClusterInfo {
  ref: ClusterRef;
  status: string | undefined;
  version: string | undefined;
  authenticationMode: string | undefined;
  endpoint: string | undefined;
  caData: string | undefined;
  tags: Record<string, string>;
}

export interface AwsEksDriverOptions {
  /** The Kubernetes namespace listing (default: `@kubernetes/client-node`). */
  namespaces?: NamespaceLister;
  /** Where the driver works; default one account and the regions of the config. */
  scope?: (cfg: AwsEksConfig) => AccountScope;
}

/** One cluster of a grant, validated and read before any change. */
interface GrantPlan {
  account: ScopeAccount;
  cluster: ClusterRef;
  scope: AccessScopeSpec;
  entry: AccessEntry | null;
}

interface RemoveResult {
  removed: boolean;
  entryDeleted: boolean;
  phases: Phase[];
}

const AUTH_MODES_WITH_ENTRIES = new Set(['API', 'API_AND_CONFIG_MAP']);

export class AwsEksDriver implements Driver {
  readonly type = 'aws-eks';
  readonly kinds = ['discover', 'grant', 'revoke', 'check'] as const;
  private readonly limiters = new ServiceLimiters();
  private readonly lister: NamespaceLister;
  private readonly scopeOf: (cfg: AwsEksConfig) => AccountScope;
  private readonly orgCache = new OrgScopeCache();

  constructor(
    private readonly services: DriverServices,
    opts: AwsEksDriverOptions = {},
  ) {
    this.lister = opts.namespaces ?? kubernetesNamespaceLister();
    this.scopeOf = opts.scope ?? singleAccountScope;
  }

  /** The organization scope in organization mode, else null (src/aws/org-scope.ts). */
  orgScope(cfg: AwsEksConfig): OrgScope | null {
    return orgScopeOf(this.services, cfg, this.orgCache);
  }

  /**
   * The scope of a grant or revoke: the config's account, or in organization mode the
   * accounts named (clusters and grantee), each with its member role.
   */
  private async commandScope(
    cfg: AwsEksConfig,
    org: OrgScope | null,
    accountIds: readonly string[],
    signal: AbortSignal,
    grant: boolean,
  ): Promise<AccountScope> {
    if (org === null) return this.scopeOf(cfg);
    return organizationAccountScope(org, accountIds, signal, { grant });
  }

  private get prefix(): string {
    return this.services.tagPrefix;
  }

  private eks(account: ScopeAccount, region: string): EKSClient {
    return this.services.aws.client(EKSClient, account.target(region));
  }

  private home(account: ScopeAccount): string {
    return account.regions[0] ?? 'us-east-1';
  }

  // -------------------------------------------------------------------------------------
  // Reads

  /** The connector's own principal in the account, as an access entry names it. */
  private async connectorPrincipal(account: ScopeAccount, signal: AbortSignal): Promise<string> {
    const id = await awsSend({ service: 'sts', operation: 'GetCallerIdentity', signal }, (o) =>
      this.services.aws
        .client(STSClient, account.target(this.home(account)))
        .send(new GetCallerIdentityCommand({}), o),
    );
    if (id.Arn === undefined) {
      throw new LatchkeyError('E_INTERNAL', 'STS GetCallerIdentity returned no ARN');
    }
    return parseEntryPrincipal(id.Arn).arn;
  }

  /** @throws LatchkeyError E_NOT_FOUND (no such cluster), E_PRIVILEGE, … */
  private async describeCluster(
    account: ScopeAccount,
    ref: ClusterRef,
    signal: AbortSignal,
  ): Promise<ClusterInfo> {
    const out = await eksSend({ operation: 'DescribeCluster', resource: ref.arn, signal }, (o) =>
      this.eks(account, ref.region).send(new DescribeClusterCommand({ name: ref.name }), o),
    );
    const c = out.cluster;
    return {
      ref,
      status: c?.status,
      version: c?.version,
      authenticationMode: c?.accessConfig?.authenticationMode,
      endpoint: c?.endpoint,
      caData: c?.certificateAuthority?.data,
      tags: c?.tags ?? {},
    };
  }

  /** @throws LatchkeyError E_UNSUPPORTED when the cluster does not use access entries */
  private assertAccessEntries(info: ClusterInfo): void {
    const mode = info.authenticationMode ?? 'CONFIG_MAP';
    if (!AUTH_MODES_WITH_ENTRIES.has(mode)) {
      throw new LatchkeyError(
        'E_UNSUPPORTED',
        `cluster ${info.ref.name} uses authentication mode ${mode}, which has no access entries; switch it to API_AND_CONFIG_MAP or API (aws eks update-cluster-config --access-config authenticationMode=API_AND_CONFIG_MAP)`,
      );
    }
  }

  /** The entry of a principal on a cluster, or null. */
  private async describeEntry(
    account: ScopeAccount,
    ref: ClusterRef,
    principalArn: string,
    signal: AbortSignal,
  ): Promise<AccessEntry | null> {
    try {
      const out = await eksSend(
        { operation: 'DescribeAccessEntry', resource: `${ref.arn} ${principalArn}`, signal },
        (o) =>
          this.eks(account, ref.region).send(
            new DescribeAccessEntryCommand({ clusterName: ref.name, principalArn }),
            o,
          ),
      );
      return out.accessEntry ?? null;
    } catch (err) {
      if (err instanceof LatchkeyError && err.code === 'E_NOT_FOUND') return null;
      throw err;
    }
  }

  /** Associated policies of an entry: policy ARN → scope (paginated). */
  private async associations(
    account: ScopeAccount,
    ref: ClusterRef,
    principalArn: string,
    signal: AbortSignal,
  ): Promise<Map<string, AccessScopeSpec>> {
    const out = new Map<string, AccessScopeSpec>();
    await paginate(
      (token) =>
        eksSend(
          {
            operation: 'ListAssociatedAccessPolicies',
            resource: `${ref.arn} ${principalArn}`,
            signal,
          },
          (o) =>
            this.eks(account, ref.region).send(
              new ListAssociatedAccessPoliciesCommand({
                clusterName: ref.name,
                principalArn,
                maxResults: 100,
                ...(token ? { nextToken: token } : {}),
              }),
              o,
            ),
        ),
      (p) => p.nextToken,
      (p) => {
        for (const a of p.associatedAccessPolicies ?? []) {
          if (!a.policyArn) continue;
          const s = a.accessScope;
          out.set(
            a.policyArn,
            s?.type === 'namespace'
              ? { type: 'namespace', namespaces: [...new Set(s.namespaces ?? [])].sort() }
              : { type: 'cluster' },
          );
        }
      },
    );
    return out;
  }

  /**
   * The grantee is not the connector itself and is not tagged `<prefix>-protected` in IAM.
   * @throws LatchkeyError E_GUARDRAIL, E_NOT_FOUND (no such principal), E_INVALID (outside the scope)
   */
  private async assertGrantable(
    scope: AccountScope,
    principal: EntryPrincipal,
    signal: AbortSignal,
    opts: { missingOk?: boolean } = {},
  ): Promise<void> {
    let account: ScopeAccount;
    try {
      account = scope.account(principal.accountId);
    } catch {
      throw new LatchkeyError(
        'E_INVALID',
        `grantee ${principal.arn} is not in an account of this integration; its protection tag cannot be read`,
      );
    }
    const own = await this.connectorPrincipal(account, signal);
    if (own === principal.arn) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `the grantee ${principal.arn} is the connector's own identity; its access entries are never touched`,
      );
    }
    const iam = this.services.aws.client(IAMClient, account.target(this.home(account)));
    const tags = await this.principalTags(iam, principal, signal).catch((err: unknown) => {
      // A principal deleted from IAM is protected by nothing; its entry may still be revoked.
      if (opts.missingOk && err instanceof LatchkeyError && err.code === 'E_NOT_FOUND') return [];
      throw err;
    });
    if (tags.some((t) => t.Key === `${this.prefix}-protected` && t.Value === 'true')) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `the grantee ${principal.arn} is tagged ${this.prefix}-protected; the connector never gives or takes its access`,
      );
    }
  }

  private async principalTags(
    iam: IAMClient,
    principal: EntryPrincipal,
    signal: AbortSignal,
  ): Promise<{ Key?: string | undefined; Value?: string | undefined }[]> {
    const tags =
      principal.kind === 'role'
        ? (
            await awsSend(
              { service: 'iam', operation: 'GetRole', resource: principal.arn, signal },
              (o) => iam.send(new GetRoleCommand({ RoleName: principal.name }), o),
            )
          ).Role?.Tags
        : (
            await awsSend(
              { service: 'iam', operation: 'GetUser', resource: principal.arn, signal },
              (o) => iam.send(new GetUserCommand({ UserName: principal.name }), o),
            )
          ).User?.Tags;
    return tags ?? [];
  }

  /** An entry the agent may work on: not protected, a STANDARD entry (never a node's). */
  private assertWorkable(ref: ClusterRef, entry: AccessEntry, records: EntryRecords): void {
    if (records.protected) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `the access entry of ${entry.principalArn ?? 'the grantee'} on ${ref.name} is tagged ${this.prefix}-protected`,
      );
    }
    if (entry.type !== undefined && entry.type !== 'STANDARD') {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `the access entry of ${entry.principalArn ?? 'the grantee'} on ${ref.name} is of type ${entry.type}; only STANDARD entries are managed`,
      );
    }
  }

  // -------------------------------------------------------------------------------------
  // Grant

  async grant(ctx: CallContext, params: GrantParams): Promise<GrantOutput> {
    const cfg = parseEksConfig(ctx.integration.config);
    const signal = ctx.signal;
    if (params.resources.length > MAX_NAMED_RESOURCES) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `a grant may name at most ${MAX_NAMED_RESOURCES} clusters and namespaces (got ${params.resources.length})`,
      );
    }
    if (params.resources.length === 0) {
      throw new LatchkeyError(
        'E_INVALID',
        'an aws-eks grant names at least one cluster or namespace',
      );
    }
    if (params.tagScope !== undefined) {
      throw new LatchkeyError(
        'E_INVALID',
        'aws-eks grants name clusters; tagScope is not supported',
      );
    }
    const principal = parseEntryPrincipal(params.grantee.awsPrincipalArn);
    const level = parseLevel(params.permission, cfg);
    let expiresAt: number | undefined;
    if (params.expiresAt !== undefined) {
      expiresAt = new Date(params.expiresAt).getTime();
      if (expiresAt <= this.services.now().getTime()) {
        throw new LatchkeyError('E_INVALID', `expiresAt ${params.expiresAt} is in the past`);
      }
    }
    const scope = await this.commandScope(
      cfg,
      this.orgScope(cfg),
      [...accountsOfResources(params.resources), principal.accountId],
      signal,
      true,
    );
    const requests = parseResources(params.resources, scope, cfg);
    const gid = grantTagId(params.grantId, this.prefix);

    // Everything that can refuse the grant is read before the first change.
    await this.assertGrantable(scope, principal, signal);
    const plans: GrantPlan[] = [];
    for (const r of requests) {
      const info = await this.describeCluster(r.account, r.cluster, signal);
      this.assertAccessEntries(info);
      if (info.tags[`${this.prefix}-protected`] === 'true') {
        throw new LatchkeyError(
          'E_GUARDRAIL',
          `cluster ${r.cluster.name} is tagged ${this.prefix}-protected`,
        );
      }
      const entry = await this.describeEntry(r.account, r.cluster, principal.arn, signal);
      if (entry) {
        const records = readRecords(entry.tags, this.prefix);
        this.assertWorkable(r.cluster, entry, records);
        this.assertSameGrant(records, gid, { level, scope: r.scope, expiresAt }, params.grantId);
        if (!records.grants.has(gid)) {
          const adding =
            Object.keys(grantTags(this.prefix, gid, { level, scope: r.scope, expiresAt })).length +
            1; // a base record may be needed too
          if (records.tagCount + adding > MAX_TAGS) {
            throw new LatchkeyError(
              'E_GUARDRAIL',
              `the access entry of ${principal.arn} on ${r.cluster.name} carries ${records.tagCount} tags; recording this grant would pass AWS's ${MAX_TAGS}-tag limit (too many overlapping grants for one principal on one cluster)`,
            );
          }
        }
      }
      plans.push({ account: r.account, cluster: r.cluster, scope: r.scope, entry });
    }

    const clusters: Record<string, unknown>[] = [];
    let changed = false;
    for (const plan of plans) {
      const out = await this.applyGrant(
        plan,
        principal,
        gid,
        params.grantId,
        { level, expiresAt },
        signal,
      );
      changed ||= out.changed;
      clusters.push({
        clusterArn: plan.cluster.arn,
        clusterName: plan.cluster.name,
        region: plan.cluster.region,
        accountId: plan.cluster.accountId,
        accessScope: plan.scope,
        entryCreated: out.created,
        howTo: `aws eks update-kubeconfig --name ${plan.cluster.name} --region ${plan.cluster.region}`,
      });
    }
    return {
      username: principal.arn,
      access: {
        principalArn: principal.arn,
        permission: level,
        accessPolicyArn: accessPolicyArn(plans[0]?.cluster.partition ?? cfg.partition, level),
        clusters,
        expiryEnforcedBy: params.expiresAt !== undefined ? 'sweep' : 'none',
      },
      alreadyGranted: !changed,
      ...(params.expiresAt !== undefined ? { expiresAt: params.expiresAt } : {}),
    };
  }

  /** A re-run of the same grant id must ask for the same thing. */
  private assertSameGrant(
    records: EntryRecords,
    gid: string,
    want: GrantRecord,
    grantId: string,
  ): void {
    const have = records.grants.get(gid);
    if (have === undefined) return;
    const sameExpiry =
      (have.expiresAt === undefined && want.expiresAt === undefined) ||
      (have.expiresAt !== undefined &&
        want.expiresAt !== undefined &&
        Math.floor(have.expiresAt / 1000) === Math.floor(want.expiresAt / 1000));
    if (have.level !== want.level || !sameScope(have.scope, want.scope) || !sameExpiry) {
      throw new LatchkeyError(
        'E_INVALID',
        `grant ${grantId} is already recorded on this access entry with another permission, scope or expiry`,
      );
    }
  }

  private async applyGrant(
    plan: GrantPlan,
    principal: EntryPrincipal,
    gid: string,
    grantId: string,
    want: { level: EksLevel; expiresAt: number | undefined },
    signal: AbortSignal,
  ): Promise<{ created: boolean; changed: boolean }> {
    const { account, cluster } = plan;
    const eks = this.eks(account, cluster.region);
    const record: GrantRecord = { level: want.level, scope: plan.scope, expiresAt: want.expiresAt };
    const policyArn = accessPolicyArn(cluster.partition, want.level);
    let entry = plan.entry;
    let created = false;
    let changed = false;
    let records: EntryRecords | undefined;
    let current = new Map<string, AccessScopeSpec>();

    if (entry === null) {
      try {
        const tags = { [managedKey(this.prefix)]: 'true', ...grantTags(this.prefix, gid, record) };
        const out = await eksSend(
          { operation: 'CreateAccessEntry', resource: `${cluster.arn} ${principal.arn}`, signal },
          (o) =>
            eks.send(
              new CreateAccessEntryCommand({
                clusterName: cluster.name,
                principalArn: principal.arn,
                type: 'STANDARD',
                tags,
              }),
              o,
            ),
        );
        created = true;
        changed = true;
        records = readRecords(out.accessEntry?.tags ?? tags, this.prefix);
      } catch (err) {
        // Created meanwhile (another replica, a person): continue on the existing entry.
        if (!(err instanceof LatchkeyError && err.code === 'E_CONFLICT')) throw err;
        entry = await this.describeEntry(account, cluster, principal.arn, signal);
        if (entry === null) throw err;
      }
    }
    if (!created) {
      if (entry === null) throw new LatchkeyError('E_INTERNAL', 'access entry vanished');
      records = readRecords(entry.tags, this.prefix);
      this.assertWorkable(cluster, entry, records);
      this.assertSameGrant(records, gid, record, grantId);
      current = await this.associations(account, cluster, principal.arn, signal);
      if (!records.grants.has(gid)) {
        const tags = grantTags(this.prefix, gid, record);
        const held = [...records.grants.values()].some((g) => g.level === want.level);
        const before = current.get(policyArn);
        if (!held && before !== undefined && !records.bases.has(want.level)) {
          // The policy was associated before the agent granted it here: remember how.
          Object.assign(tags, baseTags(this.prefix, want.level, before));
        }
        if (records.tagCount + Object.keys(tags).length > MAX_TAGS) {
          throw new LatchkeyError(
            'E_GUARDRAIL',
            `recording grant ${grantId} would pass AWS's ${MAX_TAGS}-tag limit on the access entry of ${principal.arn} on ${cluster.name}`,
          );
        }
        const entryArn = this.entryArn(entry, cluster);
        await eksSend({ operation: 'TagResource', resource: entryArn, signal }, (o) =>
          eks.send(new TagResourceCommand({ resourceArn: entryArn, tags }), o),
        );
        changed = true;
        records = readRecords({ ...(entry.tags ?? {}), ...tags }, this.prefix);
      }
    }
    if (records === undefined) throw new LatchkeyError('E_INTERNAL', 'no records read');
    const desired = desiredScope(records, want.level);
    if (desired !== undefined && !sameScope(current.get(policyArn), desired)) {
      await eksSend(
        { operation: 'AssociateAccessPolicy', resource: `${cluster.arn} ${principal.arn}`, signal },
        (o) =>
          eks.send(
            new AssociateAccessPolicyCommand({
              clusterName: cluster.name,
              principalArn: principal.arn,
              policyArn,
              accessScope: desired,
            }),
            o,
          ),
      );
      changed = true;
    }
    return { created, changed };
  }

  private entryArn(entry: AccessEntry, cluster: ClusterRef): string {
    if (entry.accessEntryArn === undefined) {
      throw new LatchkeyError(
        'E_INTERNAL',
        `DescribeAccessEntry on ${cluster.name} returned no accessEntryArn`,
      );
    }
    return entry.accessEntryArn;
  }

  // -------------------------------------------------------------------------------------
  // Revoke

  async revoke(ctx: CallContext, params: RevokeParams): Promise<RevokeOutput> {
    const cfg = parseEksConfig(ctx.integration.config);
    const principal = parseEntryPrincipal(params.grantee.awsPrincipalArn);
    const gid = grantTagId(params.grantId, this.prefix);
    const signal = ctx.signal;
    const org = this.orgScope(cfg);
    // In organization mode without resources: every cluster of the organization.
    const orgClusters =
      org !== null && params.resources.length === 0
        ? await organizationClusters(this, cfg, org, signal)
        : [];
    const scope = await this.commandScope(
      cfg,
      org,
      [
        ...accountsOfResources(params.resources),
        ...orgClusters.map((c) => c.accountId),
        principal.accountId,
      ],
      signal,
      false,
    );
    // The clusters: those named, or (a revoke without resources) every cluster of the scope.
    const targets: { account: ScopeAccount; cluster: ClusterRef }[] =
      params.resources.length > 0
        ? parseResources(params.resources, scope, { clusters: undefined })
        : org !== null
          ? orgClusters.map((cluster) => ({ cluster, account: scope.account(cluster.accountId) }))
          : await this.allClusters(scope, cfg, signal);
    await this.assertGrantable(scope, principal, signal, { missingOk: true });

    const phases: Phase[] = [];
    const revoked: string[] = [];
    for (const t of targets) {
      const res = await this.removeGrant(t.account, t.cluster, principal.arn, gid, signal);
      phases.push(...res.phases);
      if (res.removed) revoked.push(`${t.cluster.arn}#${this.prefix}-g.${gid}`);
    }
    return {
      username: principal.arn,
      revoked,
      phases,
      sessionsTerminated: 0,
      alreadyRevoked: revoked.length === 0,
    };
  }

  /** Every cluster of the scope (allow-list applied); a region that fails fails the call. */
  private async allClusters(
    scope: AccountScope,
    cfg: AwsEksConfig,
    signal: AbortSignal,
  ): Promise<{ account: ScopeAccount; cluster: ClusterRef }[]> {
    const out: { account: ScopeAccount; cluster: ClusterRef }[] = [];
    for (const account of scope.accounts()) {
      for (const region of account.regions) {
        for (const name of await this.listClusters(account, region, signal)) {
          if (cfg.clusters !== undefined && !cfg.clusters.includes(name)) continue;
          out.push({
            account,
            cluster: parseClusterArn(
              clusterArn(account.partition, region, account.accountId, name),
            ),
          });
        }
      }
    }
    return out;
  }

  /**
   * Take one grant's share off a principal's entry on one cluster. Idempotent: a grant not
   * recorded there is "already revoked"; a re-run after a crash finds the record and
   * finishes.
   */
  private async removeGrant(
    account: ScopeAccount,
    cluster: ClusterRef,
    principalArn: string,
    gid: string,
    signal: AbortSignal,
  ): Promise<RemoveResult> {
    const eks = this.eks(account, cluster.region);
    const entry = await this.describeEntry(account, cluster, principalArn, signal);
    const records = entry ? readRecords(entry.tags, this.prefix) : undefined;
    const record = records?.grants.get(gid);
    if (!entry || !records || !record) {
      return {
        removed: false,
        entryDeleted: false,
        phases: [
          {
            phase: `access-entry ${cluster.name}`,
            status: 'skipped',
            detail: entry ? 'this grant is not recorded on the entry' : 'no access entry',
          },
        ],
      };
    }
    this.assertWorkable(cluster, entry, records);
    const phases: Phase[] = [];
    const level = record.level;
    const policyArn = accessPolicyArn(cluster.partition, level);
    const current = await this.associations(account, cluster, principalArn, signal);
    const desired = desiredScope(records, level, gid);
    const otherHolders = [...records.grants].some(([g, r]) => g !== gid && r.level === level);
    const after = new Map(current);
    if (desired === undefined) {
      if (current.has(policyArn)) {
        try {
          await eksSend(
            {
              operation: 'DisassociateAccessPolicy',
              resource: `${cluster.arn} ${principalArn}`,
              signal,
            },
            (o) =>
              eks.send(
                new DisassociateAccessPolicyCommand({
                  clusterName: cluster.name,
                  principalArn,
                  policyArn,
                }),
                o,
              ),
          );
        } catch (err) {
          if (!(err instanceof LatchkeyError && err.code === 'E_NOT_FOUND')) throw err;
        }
        phases.push({ phase: `disassociate ${cluster.name}`, status: 'done', detail: policyArn });
      } else {
        phases.push({
          phase: `disassociate ${cluster.name}`,
          status: 'skipped',
          detail: `${policyArn} was not associated`,
        });
      }
      after.delete(policyArn);
    } else if (!sameScope(current.get(policyArn), desired)) {
      await eksSend(
        { operation: 'AssociateAccessPolicy', resource: `${cluster.arn} ${principalArn}`, signal },
        (o) =>
          eks.send(
            new AssociateAccessPolicyCommand({
              clusterName: cluster.name,
              principalArn,
              policyArn,
              accessScope: desired,
            }),
            o,
          ),
      );
      after.set(policyArn, desired);
      phases.push({
        phase: `narrow ${cluster.name}`,
        status: 'done',
        detail: `${policyArn} kept for the other holders: ${desired.type === 'cluster' ? 'cluster' : desired.namespaces.join(', ')}`,
      });
    } else {
      phases.push({
        phase: `narrow ${cluster.name}`,
        status: 'skipped',
        detail: `${policyArn} unchanged: other holders need the same scope`,
      });
    }

    // The base record is consumed when the last grant of the level goes (it was restored).
    const keys = [...(records.grantKeys.get(gid) ?? [])];
    if (!otherHolders) keys.push(...(records.baseKeys.get(level) ?? []));
    const basesLeft = [...records.bases.keys()].filter((l) => l !== level || otherHolders);
    const deletable =
      records.managed &&
      records.grants.size === 1 &&
      basesLeft.length === 0 &&
      records.unreadable.length === 0 &&
      after.size === 0 &&
      (entry.kubernetesGroups ?? []).length === 0;
    if (deletable) {
      try {
        await eksSend(
          { operation: 'DeleteAccessEntry', resource: `${cluster.arn} ${principalArn}`, signal },
          (o) =>
            eks.send(new DeleteAccessEntryCommand({ clusterName: cluster.name, principalArn }), o),
        );
      } catch (err) {
        if (!(err instanceof LatchkeyError && err.code === 'E_NOT_FOUND')) throw err;
      }
      phases.push({ phase: `delete-entry ${cluster.name}`, status: 'done', detail: principalArn });
      return { removed: true, entryDeleted: true, phases };
    }
    const entryArn = this.entryArn(entry, cluster);
    await eksSend({ operation: 'UntagResource', resource: entryArn, signal }, (o) =>
      eks.send(new UntagResourceCommand({ resourceArn: entryArn, tagKeys: keys }), o),
    );
    phases.push({
      phase: `untag ${cluster.name}`,
      status: 'done',
      detail: records.managed
        ? 'entry kept: other grants or associations remain on it'
        : 'entry kept: the connector did not create it',
    });
    return { removed: true, entryDeleted: false, phases };
  }

  // -------------------------------------------------------------------------------------
  // Sweep

  /**
   * EKS has no time condition: expiry is enforced here. Every entry of every cluster in
   * the scope is read; grants whose expiry has passed are removed as revoke would, and the
   * associations of the grants still live are brought back to what their records need.
   */
  async sweep(ctx: CallContext): Promise<SweepReport> {
    const cfg = parseEksConfig(ctx.integration.config);
    const org = this.orgScope(cfg);
    if (org) return sweepOrganization(this, ctx, cfg, org);
    const report: SweepReport = { revoked: [], errors: [] };
    for (const account of this.scopeOf(cfg).accounts()) {
      await this.sweepAccount(ctx, cfg, account, report);
    }
    return report;
  }

  /**
   * Get the credentials of an account (assume its member role) without another call.
   * @throws LatchkeyError (operation AssumeRole) when the role cannot be assumed
   */
  async reach(account: ScopeAccount): Promise<void> {
    await this.services.aws
      .client(STSClient, account.target(this.home(account)))
      .config.credentials();
  }

  /** The sweep of one scope account; every failure is an error item of `report`. */
  async sweepAccount(
    ctx: CallContext,
    cfg: AwsEksConfig,
    account: ScopeAccount,
    report: SweepReport,
  ): Promise<void> {
    const signal = ctx.signal;
    const now = this.services.now().getTime();
    const fail = (item: string, err: unknown): void => {
      if ((err instanceof LatchkeyError && err.code === 'E_CANCELLED') || signal.aborted) throw err;
      const w = toWireError(err);
      report.errors.push({ item, code: w.code, message: w.message });
    };
    for (const region of account.regions) {
      let names: string[];
      try {
        names = await this.listClusters(account, region, signal);
      } catch (err) {
        fail(`eks ${account.accountId} ${region}`, err);
        continue;
      }
      for (const name of names) {
        if (cfg.clusters !== undefined && !cfg.clusters.includes(name)) continue;
        const ref = parseClusterArn(clusterArn(account.partition, region, account.accountId, name));
        try {
          const info = await this.limiters.run(
            'eks',
            () => this.describeCluster(account, ref, signal),
            signal,
          );
          if (!AUTH_MODES_WITH_ENTRIES.has(info.authenticationMode ?? 'CONFIG_MAP')) continue;
          for (const principalArn of await this.listEntries(account, ref, signal)) {
            try {
              const entry = await this.limiters.run(
                'eks',
                () => this.describeEntry(account, ref, principalArn, signal),
                signal,
              );
              if (!entry) continue;
              const records = readRecords(entry.tags, this.prefix);
              if (records.protected) continue;
              for (const [gid, g] of records.grants) {
                if (g.expiresAt === undefined || g.expiresAt > now) continue;
                const item = `${ref.arn}#${principalArn}#${this.prefix}-g.${gid}`;
                try {
                  const res = await this.limiters.run(
                    'eks',
                    () => this.removeGrant(account, ref, principalArn, gid, signal),
                    signal,
                  );
                  if (res.removed) report.revoked.push(item);
                } catch (err) {
                  fail(item, err);
                }
              }
              const live = [...records.grants.values()].some(
                (g) => g.expiresAt === undefined || g.expiresAt > now,
              );
              if (live) {
                const repaired = await this.limiters.run(
                  'eks',
                  () => this.reconcile(account, ref, principalArn, signal),
                  signal,
                );
                for (const policyArn of repaired) {
                  ctx.logger.warn(
                    { clusterArn: ref.arn, principalArn, policyArn },
                    'aws-eks sweep: association repaired to the union of the grants recorded on the entry',
                  );
                }
              }
            } catch (err) {
              fail(`${ref.arn}#${principalArn}`, err);
            }
          }
        } catch (err) {
          fail(ref.arn, err);
        }
      }
    }
  }

  /**
   * Bring each association the agent's records hold back to the union they need (after a
   * race between replicas, or a change by hand). Returns the policy ARNs re-associated.
   */
  private async reconcile(
    account: ScopeAccount,
    ref: ClusterRef,
    principalArn: string,
    signal: AbortSignal,
  ): Promise<string[]> {
    const entry = await this.describeEntry(account, ref, principalArn, signal);
    if (!entry) return [];
    const records = readRecords(entry.tags, this.prefix);
    if (records.protected || records.grants.size === 0) return [];
    const current = await this.associations(account, ref, principalArn, signal);
    const repaired: string[] = [];
    for (const level of new Set([...records.grants.values()].map((g) => g.level))) {
      const desired = desiredScope(records, level);
      const policyArn = accessPolicyArn(ref.partition, level);
      if (desired === undefined || sameScope(current.get(policyArn), desired)) continue;
      await eksSend(
        { operation: 'AssociateAccessPolicy', resource: `${ref.arn} ${principalArn}`, signal },
        (o) =>
          this.eks(account, ref.region).send(
            new AssociateAccessPolicyCommand({
              clusterName: ref.name,
              principalArn,
              policyArn,
              accessScope: desired,
            }),
            o,
          ),
      );
      repaired.push(policyArn);
    }
    return repaired;
  }

  async listClusters(
    account: ScopeAccount,
    region: string,
    signal: AbortSignal,
  ): Promise<string[]> {
    const names: string[] = [];
    await paginate(
      (token) =>
        this.limiters.run(
          'eks',
          () =>
            eksSend({ operation: 'ListClusters', resource: region, signal }, (o) =>
              this.eks(account, region).send(
                new ListClustersCommand({
                  maxResults: 100,
                  ...(token ? { nextToken: token } : {}),
                }),
                o,
              ),
            ),
          signal,
        ),
      (p) => p.nextToken,
      (p) => names.push(...(p.clusters ?? [])),
    );
    return names;
  }

  private async listEntries(
    account: ScopeAccount,
    ref: ClusterRef,
    signal: AbortSignal,
  ): Promise<string[]> {
    const arns: string[] = [];
    await paginate(
      (token) =>
        this.limiters.run(
          'eks',
          () =>
            eksSend({ operation: 'ListAccessEntries', resource: ref.arn, signal }, (o) =>
              this.eks(account, ref.region).send(
                new ListAccessEntriesCommand({
                  clusterName: ref.name,
                  maxResults: 100,
                  ...(token ? { nextToken: token } : {}),
                }),
                o,
              ),
            ),
          signal,
        ),
      (p) => p.nextToken,
      (p) => arns.push(...(p.accessEntries ?? [])),
    );
    return arns;
  }

  // -------------------------------------------------------------------------------------
  // Discover

  async discover(ctx: CallContext): Promise<DiscoverOutput> {
    const cfg = parseEksConfig(ctx.integration.config);
    const org = this.orgScope(cfg);
    if (org) return discoverOrganization(this, cfg, org, ctx.signal);
    const scope = this.scopeOf(cfg);
    const signal = ctx.signal;
    const resources: Resource[] = [];
    const warnings: Warning[] = [];
    for (const account of scope.accounts()) {
      for (const region of account.regions) {
        try {
          resources.push(...(await this.discoverRegion(cfg, account, region, signal, warnings)));
        } catch (err) {
          if ((err instanceof LatchkeyError && err.code === 'E_CANCELLED') || signal.aborted) {
            throw err;
          }
          const w = toWireError(err);
          warnings.push({
            code: w.code,
            message: `eks ListClusters in ${account.accountId} ${region}: ${w.message}`,
          });
        }
      }
    }
    return { resources, permissions: this.permissions(cfg), warnings };
  }

  /** The permissions a discover offers. */
  permissions(cfg: AwsEksConfig): DiscoverOutput['permissions'] {
    return EKS_LEVELS.filter((l) => l !== 'cluster-admin' || cfg.allowClusterAdmin).map((l) => ({
      id: l,
      name: `EKS ${l} (${accessPolicyArn(cfg.partition, l).split('/')[1] ?? l})`,
    }));
  }

  /**
   * The clusters (and their namespaces) of one account in one region. A cluster that cannot
   * be described is a warning.
   * @throws LatchkeyError when the region's clusters cannot be listed
   */
  async discoverRegion(
    cfg: AwsEksConfig,
    account: ScopeAccount,
    region: string,
    signal: AbortSignal,
    warnings: Warning[],
  ): Promise<Resource[]> {
    const resources: Resource[] = [];
    const rethrow = (err: unknown): void => {
      if ((err instanceof LatchkeyError && err.code === 'E_CANCELLED') || signal.aborted) throw err;
    };
    const names = await this.listClusters(account, region, signal);
    for (const name of names) {
      if (cfg.clusters !== undefined && !cfg.clusters.includes(name)) continue;
      const ref = parseClusterArn(clusterArn(account.partition, region, account.accountId, name));
      let info: ClusterInfo;
      try {
        info = await this.limiters.run(
          'eks',
          () => this.describeCluster(account, ref, signal),
          signal,
        );
      } catch (err) {
        rethrow(err);
        const w = toWireError(err);
        warnings.push({ resourceId: ref.arn, code: w.code, message: w.message });
        continue;
      }
      const mode = info.authenticationMode ?? 'CONFIG_MAP';
      const entries = AUTH_MODES_WITH_ENTRIES.has(mode);
      resources.push({
        id: ref.arn,
        name,
        type: 'eks-cluster',
        metadata: {
          arn: ref.arn,
          accountId: account.accountId,
          region,
          authenticationMode: mode,
          accessEntries: entries,
          tags: info.tags,
          ...(info.version ? { version: info.version } : {}),
          ...(info.status ? { status: info.status } : {}),
        },
      });
      if (!entries) {
        warnings.push({
          resourceId: ref.arn,
          code: 'E_UNSUPPORTED',
          message: `cluster ${name} uses authentication mode ${mode}: no access entries, it cannot be granted until switched to API_AND_CONFIG_MAP or API`,
        });
      }
      for (const ns of await this.namespacesOf(cfg, account, info, signal, warnings)) {
        resources.push({
          id: namespaceId(ref.arn, ns.name),
          name: ns.name,
          type: 'eks-namespace',
          parentId: ref.arn,
          metadata: { cluster: name, source: ns.source },
        });
      }
    }
    return resources;
  }

  /** Namespaces through the Kubernetes API, or from the config when that is off or fails. */
  private async namespacesOf(
    cfg: AwsEksConfig,
    account: ScopeAccount,
    info: ClusterInfo,
    signal: AbortSignal,
    warnings: Warning[],
  ): Promise<{ name: string; source: 'kubernetes-api' | 'config' }[]> {
    const fromConfig = (cfg.namespaces?.[info.ref.name] ?? []).map((name) => ({
      name,
      source: 'config' as const,
    }));
    if (!cfg.listNamespaces) return fromConfig;
    if (info.endpoint === undefined || info.status !== 'ACTIVE') {
      warnings.push({
        resourceId: info.ref.arn,
        code: 'E_CONNECT',
        message: `namespaces of ${info.ref.name} not listed: the cluster is ${info.status ?? 'in an unknown state'} with no API endpoint`,
      });
      return fromConfig;
    }
    try {
      const sts = this.services.aws.client(STSClient, account.target(info.ref.region));
      const credentials = await sts.config.credentials();
      const token = await eksToken({
        clusterName: info.ref.name,
        region: info.ref.region,
        partition: info.ref.partition,
        credentials,
        now: this.services.now(),
      });
      const names = await this.lister.listNamespaces(
        { endpoint: info.endpoint, caData: info.caData, token },
        signal,
      );
      return names.map((name) => ({ name, source: 'kubernetes-api' as const }));
    } catch (err) {
      if ((err instanceof LatchkeyError && err.code === 'E_CANCELLED') || signal.aborted) throw err;
      const w = toWireError(err);
      warnings.push({
        resourceId: info.ref.arn,
        code: w.code,
        message: `namespaces of ${info.ref.name} not listed: ${w.message}${fromConfig.length > 0 ? '; the namespaces of the integration config are reported' : ''}`,
      });
      return fromConfig;
    }
  }

  // -------------------------------------------------------------------------------------
  // Check

  async check(ctx: CallContext): Promise<CheckOutput> {
    const cfg = parseEksConfig(ctx.integration.config);
    const signal = ctx.signal;
    const checks: CheckOutput['checks'] = [];
    const org = this.orgScope(cfg);
    if (org) {
      // The home account as a single account, then the organization and one member role.
      await this.checkAccount(
        cfg,
        orgScopeAccount(org, org.homeAccountId, cfg.regions),
        checks,
        signal,
      );
      await org.check(checks, signal);
      return { ok: checks.every((c) => c.ok), checks };
    }
    for (const account of this.scopeOf(cfg).accounts()) {
      await this.checkAccount(cfg, account, checks, signal);
    }
    return { ok: checks.every((c) => c.ok), checks };
  }

  /** The checks of one scope account: identity, clusters, access entries, permissions. */
  private async checkAccount(
    cfg: AwsEksConfig,
    account: ScopeAccount,
    checks: CheckOutput['checks'],
    signal: AbortSignal,
  ): Promise<void> {
    let own: string | undefined;
    await probe(
      checks,
      `identity ${account.accountId}`,
      async () => {
        own = await this.connectorPrincipal(account, signal);
        const acct = /::(\d{12}):/.exec(own)?.[1];
        if (acct !== account.accountId) {
          throw new LatchkeyError(
            'E_INVALID',
            `credentials belong to account ${acct ?? 'unknown'}, not ${account.accountId}`,
          );
        }
        return `connected as ${own}`;
      },
      { signal },
    );
    for (const region of account.regions) {
      let names: string[] = [];
      const listed = await probe(
        checks,
        `eks:ListClusters ${account.accountId} ${region}`,
        async () => {
          names = (await this.listClusters(account, region, signal)).filter(
            (n) => cfg.clusters === undefined || cfg.clusters.includes(n),
          );
          return `${names.length} cluster(s)`;
        },
        { signal },
      );
      if (!listed) continue;
      for (const name of names) {
        const ref = parseClusterArn(clusterArn(account.partition, region, account.accountId, name));
        const ok = await probe(
          checks,
          `access entries ${name}`,
          async () => {
            const info = await this.describeCluster(account, ref, signal);
            this.assertAccessEntries(info);
            return `authentication mode ${info.authenticationMode ?? 'unknown'}`;
          },
          { signal },
        );
        if (!ok) continue;
        await probe(
          checks,
          `eks:ListAccessEntries ${name}`,
          async () => `${(await this.listEntries(account, ref, signal)).length} access entries`,
          { signal },
        );
        if (own !== undefined) {
          const principal = own;
          await probe(
            checks,
            `may manage access entries ${name}`,
            () => this.simulateManage(account, ref, principal, signal),
            { signal },
          );
        }
      }
    }
  }

  /**
   * Whether the connector's policies allow the writes of grant and revoke on the cluster,
   * asked of IAM's policy simulator (nothing is written). A sample grantee stands for the
   * principal; SCPs and permission boundaries are not simulated.
   */
  private async simulateManage(
    account: ScopeAccount,
    ref: ClusterRef,
    connectorArn: string,
    signal: AbortSignal,
  ): Promise<string> {
    const iam = this.services.aws.client(IAMClient, account.target(this.home(account)));
    const sample = `arn:${ref.partition}:iam::${account.accountId}:role/eks-access-check`;
    const entryArn = `arn:${ref.partition}:eks:${ref.region}:${account.accountId}:access-entry/${ref.name}/role/${account.accountId}/eks-access-check/00000000-0000-0000-0000-000000000000`;
    const asks: { actions: string[]; resource: string }[] = [
      { actions: ['eks:CreateAccessEntry'], resource: ref.arn },
      {
        actions: [
          'eks:AssociateAccessPolicy',
          'eks:DisassociateAccessPolicy',
          'eks:DeleteAccessEntry',
          'eks:TagResource',
          'eks:UntagResource',
        ],
        resource: entryArn,
      },
    ];
    const denied: string[] = [];
    for (const ask of asks) {
      const out = await awsSend(
        { service: 'iam', operation: 'SimulatePrincipalPolicy', resource: connectorArn, signal },
        (o) =>
          iam.send(
            new SimulatePrincipalPolicyCommand({
              PolicySourceArn: connectorArn,
              ActionNames: ask.actions,
              ResourceArns: [ask.resource],
              ContextEntries: [
                {
                  ContextKeyName: 'eks:principalArn',
                  ContextKeyType: 'string',
                  ContextKeyValues: [sample],
                },
                {
                  ContextKeyName: 'eks:policyArn',
                  ContextKeyType: 'string',
                  ContextKeyValues: [accessPolicyArn(ref.partition, 'view')],
                },
              ],
            }),
            o,
          ),
      );
      for (const r of out.EvaluationResults ?? []) {
        if (r.EvalActionName && r.EvalDecision !== 'allowed') denied.push(r.EvalActionName);
      }
    }
    if (denied.length > 0) {
      throw new LatchkeyError(
        'E_PRIVILEGE',
        `the connector's policies do not allow ${denied.join(', ')} on ${ref.name}; see the EksAccessEntries statement of deploy/iam/connector-policy.json`,
      );
    }
    return 'CreateAccessEntry, AssociateAccessPolicy, DisassociateAccessPolicy, DeleteAccessEntry, TagResource, UntagResource allowed';
  }

  rotate(): Promise<never> {
    return Promise.reject(
      new LatchkeyError('E_UNSUPPORTED', 'aws-eks has no credentials to rotate'),
    );
  }

  cleanup(): Promise<never> {
    return Promise.reject(
      new LatchkeyError('E_UNSUPPORTED', 'aws-eks creates no users to clean up'),
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
