/**
 * `aws-iam` in organization mode: discover and sweep over every member account through the
 * shared organization scope (src/aws/org-scope.ts). Grants and revokes run the
 * single-account code with the config of the grantee's account (`AwsIamDriver.configFor`).
 */
import { IAMClient } from '@aws-sdk/client-iam';
import { targetOf } from '../../aws/config.js';
import { createServiceLimiter } from '../../aws/limiter.js';
import { mergeOrgDiscovery, type OrgScope } from '../../aws/org-scope.js';
import { sweepExpiredPolicies } from '../../aws/policy.js';
import type { DiscoverOutput } from '../../protocol/messages.js';
import type { SweepReport } from '../driver.js';
import type { AwsIamConfig } from './config.js';
import type { AwsIamDriver } from './driver.js';
import { iamPermissions } from './policy.js';

/**
 * Every account in scope: its global resources (S3 buckets, IAM roles) once, its regional
 * ones per region. Resource ids are ARNs (which carry the account; S3 bucket names are
 * global) and every resource's metadata names its `accountId`. One `aws-account` resource
 * per account walked; an unreachable account is a warning, never a failed discover.
 */
export async function discoverOrganization(
  driver: AwsIamDriver,
  cfg: AwsIamConfig,
  scope: OrgScope,
  signal: AbortSignal,
): Promise<DiscoverOutput> {
  const out = await scope.fanOut(signal, {
    perAccount: (account, run) =>
      driver.discoverAccount(scope.accountConfig(cfg, account.accountId), signal, run, {
        global: true,
        regions: [],
        strict: true,
      }),
    perRegion: (unit) =>
      driver.discoverAccount(
        scope.accountConfig(cfg, unit.account.accountId, [unit.region]),
        signal,
        unit.run,
        { global: false, regions: [unit.region], strict: true },
      ),
  });
  const { resources, warnings } = mergeOrgDiscovery(out);
  return { resources, permissions: iamPermissions(cfg), warnings };
}

/** The expiry sweep in every account in scope; an unreachable account is one error item. */
export async function sweepOrganization(
  driver: AwsIamDriver,
  cfg: AwsIamConfig,
  scope: OrgScope,
  signal: AbortSignal,
): Promise<SweepReport> {
  const prefix = driver.policyName('');
  const now = driver.services.now();
  const out = await scope.fanOut(signal, {
    perAccount: async (account) => {
      const acfg = scope.accountConfig(cfg, account.accountId);
      const iam = driver.services.aws.client(IAMClient, targetOf(acfg));
      // One IAM limiter per account: AWS throttles per account.
      return sweepExpiredPolicies(iam, prefix, now, createServiceLimiter(), { signal });
    },
  });
  const revoked: string[] = [];
  const errors: SweepReport['errors'] = [];
  for (const r of out.results) {
    for (const d of r.value.deleted) revoked.push(`${d.principal.arn}#${d.policyName}`);
    errors.push(...r.value.errors);
  }
  for (const w of out.warnings) {
    errors.push({ item: w.resourceId ?? 'organization', code: w.code, message: w.message });
  }
  return { revoked, errors };
}
