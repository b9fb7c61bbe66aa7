/**
 * `aws-eks` in organization mode: every member account of the organization through the
 * shared organization scope (src/aws/org-scope.ts). Each account becomes a scope account
 * (`scope.ts`) whose calls run with that account's member role (the home account with the
 * integration's own identity), so the single-account code of the driver runs unchanged per
 * account. Discover and sweep fan out over accounts × regions; an account whose member role
 * cannot be used is a warning (discover) or an error item (sweep), never a failed command.
 * Grants name clusters by ARN, which carries the account: a grant is refused (E_GUARDRAIL)
 * for an account out of scope (excluded, under an excluded OU, not a member); a revoke
 * always runs.
 */
import { LatchkeyError } from '../../errors.js';
import { accountOfArn, mergeOrgDiscovery, type OrgScope } from '../../aws/org-scope.js';
import type { DiscoverOutput, ResourceRef } from '../../protocol/messages.js';
import type { CallContext, SweepReport } from '../driver.js';
import type { AwsEksConfig } from './config.js';
import type { AwsEksDriver } from './driver.js';
import {
  clusterArn,
  parseClusterArn,
  type AccountScope,
  type ClusterRef,
  type ScopeAccount,
} from './scope.js';

type Warning = DiscoverOutput['warnings'][number];

/** One account of the organization as a scope account of the driver. */
export function orgScopeAccount(
  org: OrgScope,
  accountId: string,
  regions: readonly string[],
): ScopeAccount {
  return {
    accountId,
    partition: org.partition,
    regions: [...regions],
    target: (region) => org.target(accountId, region),
    assumeRoleArn: org.target(accountId).assumeRoleArn,
  };
}

/** The accounts the cluster (and namespace) ids of a grant or revoke name. */
export function accountsOfResources(resources: readonly ResourceRef[]): string[] {
  const ids = new Set<string>();
  for (const r of resources) {
    const at = r.id.lastIndexOf('/namespace/');
    const id = accountOfArn(r.type === 'eks-namespace' && at >= 0 ? r.id.slice(0, at) : r.id);
    if (id !== null) ids.add(id);
  }
  return [...ids];
}

/**
 * The scope of one grant or revoke: the accounts it touches (the clusters' and the
 * grantee's), each with its member role and regions. For a grant every one of them must be
 * in scope (E_GUARDRAIL otherwise), checked before any change.
 * @throws LatchkeyError E_GUARDRAIL (grant on an account out of scope)
 */
export async function organizationAccountScope(
  org: OrgScope,
  accountIds: readonly string[],
  signal: AbortSignal,
  opts: { grant: boolean },
): Promise<AccountScope> {
  const byId = new Map<string, ScopeAccount>();
  for (const id of new Set(accountIds)) {
    if (opts.grant) await org.assertInScope(id, signal);
    byId.set(id, orgScopeAccount(org, id, await org.regionsOf(id, signal)));
  }
  return {
    accounts: () => [...byId.values()],
    account(accountId) {
      const a = byId.get(accountId);
      if (a === undefined) {
        throw new LatchkeyError(
          'E_INVALID',
          `account ${accountId} is not among the accounts this command names`,
        );
      }
      return a;
    },
  };
}

/** Clusters of every (account, region) in scope, one `aws-account` parent per account. */
export async function discoverOrganization(
  driver: AwsEksDriver,
  cfg: AwsEksConfig,
  org: OrgScope,
  signal: AbortSignal,
): Promise<DiscoverOutput> {
  const out = await org.fanOut(signal, {
    perRegion: async (unit) => {
      const warnings: Warning[] = [];
      const account = orgScopeAccount(org, unit.account.accountId, [unit.region]);
      const resources = await driver.discoverRegion(cfg, account, unit.region, signal, warnings);
      return { resources, warnings };
    },
  });
  const { resources, warnings } = mergeOrgDiscovery(out, { keepParents: true });
  return { resources, permissions: driver.permissions(cfg), warnings };
}

/** The expiry sweep in every account in scope; an unreachable account is one error item. */
export async function sweepOrganization(
  driver: AwsEksDriver,
  ctx: CallContext,
  cfg: AwsEksConfig,
  org: OrgScope,
): Promise<SweepReport> {
  const signal = ctx.signal;
  const out = await org.fanOut(signal, {
    perAccount: async (account, run) => {
      const regions = await org.regionsOf(account.accountId, signal, run);
      const scoped = orgScopeAccount(org, account.accountId, regions);
      // A member role that cannot be assumed is one error item for the account (the
      // fan-out's), not one per region.
      await driver.reach(scoped);
      const report: SweepReport = { revoked: [], errors: [] };
      await driver.sweepAccount(ctx, cfg, scoped, report);
      return report;
    },
  });
  const revoked: string[] = [];
  const errors: SweepReport['errors'] = [];
  for (const r of out.results) {
    revoked.push(...r.value.revoked);
    errors.push(...r.value.errors);
  }
  for (const w of out.warnings) {
    errors.push({ item: w.resourceId ?? 'organization', code: w.code, message: w.message });
  }
  return { revoked, errors };
}

/**
 * Every cluster of the organization (allow-list applied), for a revoke that names none.
 * An account or region that cannot be listed fails the revoke before any change, as a
 * failing region does in a single account.
 * @throws LatchkeyError E_CONNECT naming the accounts and regions not listed
 */
export async function organizationClusters(
  driver: AwsEksDriver,
  cfg: AwsEksConfig,
  org: OrgScope,
  signal: AbortSignal,
): Promise<ClusterRef[]> {
  const out = await org.fanOut(signal, {
    perRegion: async (unit) => {
      const account = orgScopeAccount(org, unit.account.accountId, [unit.region]);
      const names = await driver.listClusters(account, unit.region, signal);
      return names
        .filter((n) => cfg.clusters === undefined || cfg.clusters.includes(n))
        .map((n) =>
          parseClusterArn(clusterArn(org.partition, unit.region, unit.account.accountId, n)),
        );
    },
  });
  if (out.warnings.length > 0) {
    throw new LatchkeyError(
      'E_CONNECT',
      `the clusters of the organization could not all be listed, nothing was revoked; name the clusters or retry: ${out.warnings
        .slice(0, 5)
        .map((w) => w.message)
        .join('; ')}`,
    );
  }
  return out.results.flatMap((r) => r.value);
}
