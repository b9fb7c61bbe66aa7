/**
 * `aws-ssm` in organization mode: discover and sweep over every member account through the
 * shared organization scope (src/aws/org-scope.ts). Grants and revokes run the
 * single-account code with the config of the grantee's account (`AwsSsmDriver.configFor`);
 * instance ARNs carry their account and region.
 */
import { createServiceLimiter } from '../../aws/limiter.js';
import { mergeOrgDiscovery, type OrgScope } from '../../aws/org-scope.js';
import type { DiscoverOutput } from '../../protocol/messages.js';
import type { SweepReport } from '../driver.js';
import type { AwsSsmConfig } from './config.js';
import type { AwsSsmDriver } from './driver.js';
import { SSM_PERMISSIONS } from './policy.js';

type Warning = DiscoverOutput['warnings'][number];

/** Managed instances of every (account, region) in scope, one `aws-account` parent each. */
export async function discoverOrganization(
  driver: AwsSsmDriver,
  cfg: AwsSsmConfig,
  scope: OrgScope,
  signal: AbortSignal,
): Promise<DiscoverOutput> {
  const out = await scope.fanOut(signal, {
    perRegion: async (unit) => {
      const warnings: Warning[] = [];
      const acfg = scope.accountConfig(cfg, unit.account.accountId, [unit.region]);
      const resources = await driver.discoverRegion(acfg, unit.region, signal, warnings, unit.run);
      return { resources, warnings };
    },
  });
  const { resources, warnings } = mergeOrgDiscovery(out);
  return {
    resources,
    permissions: SSM_PERMISSIONS.map((p) => ({ id: p, name: `Session Manager: ${p}` })),
    warnings,
  };
}

/** The expiry sweep in every account in scope; an unreachable account is one error item. */
export async function sweepOrganization(
  driver: AwsSsmDriver,
  cfg: AwsSsmConfig,
  scope: OrgScope,
  signal: AbortSignal,
): Promise<SweepReport> {
  const out = await scope.fanOut(signal, {
    perAccount: async (account, run) =>
      driver.sweepAccount(
        scope.accountConfig(
          cfg,
          account.accountId,
          await scope.regionsOf(account.accountId, signal, run),
        ),
        createServiceLimiter(),
        signal,
      ),
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
