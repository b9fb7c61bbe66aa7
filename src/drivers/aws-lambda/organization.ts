/**
 * `aws-lambda` in organization mode: the customer deploys the same function (the name of
 * `functionArn`) in member accounts, for example with a StackSet; the connector invokes, in
 * each account and region in scope, that account's function with that account's member role
 * (src/aws/org-scope.ts).
 *
 * Resource ids carry their account and region: `lambda:<account>:<region>:<id the function
 * gave>` (and the same for `parentId`). A grant or revoke names resources of one account
 * and region; the prefix is stripped before the function sees them. An account or region
 * without the function is skipped silently (not deployed there); one whose function is not
 * tagged `<prefix>-connector-access=true`, or fails, is a warning.
 */
import { LatchkeyError } from '../../errors.js';
import { OrgScope, accountResources } from '../../aws/org-scope.js';
import type {
  CheckOutput,
  DiscoverOutput,
  GrantOutput,
  GrantParams,
  RevokeOutput,
  RevokeParams,
} from '../../protocol/messages.js';
import type { CallContext } from '../driver.js';
import { FUNCTION_ARN, type AwsLambdaConfig } from './config.js';
import type { AwsLambdaDriver } from './driver.js';

const ORG_ID = /^lambda:(\d{12}):([a-z0-9-]+):(.+)$/s;

export function orgResourceId(account: string, region: string, id: string): string {
  return `lambda:${account}:${region}:${id}`;
}

function scopeOf(driver: AwsLambdaDriver, cfg: AwsLambdaConfig): OrgScope {
  // Organization mode requires functionArn (config.ts).
  const arn = cfg.functionArn ?? '';
  const m = FUNCTION_ARN.exec(arn);
  const partition = /^arn:(aws[a-z-]*):/.exec(arn)?.[1] ?? 'aws';
  return new OrgScope({
    aws: driver.services.aws,
    org: cfg.organization ?? {
      memberRoleName: '',
      regions: 'configured',
      concurrency: 8,
      regionConcurrency: 4,
    },
    home: {
      accountId: m?.[2] ?? '',
      partition,
      assumeRoleArn: cfg.assumeRoleArn,
      externalId: cfg.externalId,
    },
    regions: cfg.regions ?? [cfg.region],
    cache: driver.orgCache,
    now: driver.services.now,
  });
}

/** The single-function config of one account and region. */
export function memberConfig(
  scope: OrgScope,
  cfg: AwsLambdaConfig,
  account: string,
  region: string,
): AwsLambdaConfig {
  const m = FUNCTION_ARN.exec(cfg.functionArn ?? '');
  const name = m?.[3] ?? '';
  const qualifier = m?.[4] !== undefined ? `:${m[4]}` : '';
  const t = scope.target(account, region);
  const out: AwsLambdaConfig = {
    ...cfg,
    functionArn: `arn:${scope.partition}:lambda:${region}:${account}:function:${name}${qualifier}`,
    region,
  };
  delete out.assumeRoleArn;
  delete out.externalId;
  if (t.assumeRoleArn !== undefined) out.assumeRoleArn = t.assumeRoleArn;
  if (t.externalId !== undefined) out.externalId = t.externalId;
  return out;
}

export async function discoverOrganization(
  driver: AwsLambdaDriver,
  ctx: CallContext,
  cfg: AwsLambdaConfig,
): Promise<DiscoverOutput> {
  const scope = scopeOf(driver, cfg);
  const out = await scope.fanOut(ctx.signal, {
    perRegion: async (unit) => {
      const mcfg = memberConfig(scope, cfg, unit.account.accountId, unit.region);
      try {
        return await unit.run('lambda', () => driver.discoverWith(ctx, mcfg));
      } catch (err) {
        // No such function in this account and region: nothing deployed there.
        if (
          err instanceof LatchkeyError &&
          err.code === 'E_NOT_FOUND' &&
          err.details?.remote !== true
        )
          return null;
        throw err;
      }
    },
  });
  const resources = accountResources(out);
  const permissions = new Map<string, { id: string; name: string }>();
  for (const r of out.results) {
    if (r.value === null) continue;
    const a = r.account.accountId;
    for (const res of r.value.resources) {
      resources.push({
        ...res,
        id: orgResourceId(a, r.region, res.id),
        parentId:
          res.parentId !== undefined
            ? orgResourceId(a, r.region, res.parentId)
            : `aws-account:${a}`,
        metadata: { ...res.metadata, accountId: a, region: r.region },
      });
    }
    for (const p of r.value.permissions) if (!permissions.has(p.id)) permissions.set(p.id, p);
  }
  return { resources, permissions: [...permissions.values()], warnings: out.warnings };
}

/** The one account and region of a grant's resources, and the ids the function knows. */
function split<P extends GrantParams | RevokeParams>(
  params: P,
): { account: string; region: string; params: P } {
  let where: { account: string; region: string } | undefined;
  const resources = params.resources.map((r) => {
    const m = ORG_ID.exec(r.id);
    if (!m) {
      throw new LatchkeyError(
        'E_INVALID',
        `resource id ${r.id} does not name its account and region (lambda:<account>:<region>:<id>, as discover returns it)`,
      );
    }
    const [, account = '', region = '', id = ''] = m;
    if (where && (where.account !== account || where.region !== region)) {
      throw new LatchkeyError(
        'E_INVALID',
        'a grant names resources of one account and region; split it per account',
      );
    }
    where = { account, region };
    return { ...r, id };
  });
  if (!where)
    throw new LatchkeyError(
      'E_INVALID',
      'a grant in organization mode names at least one resource',
    );
  return { ...where, params: { ...params, resources } };
}

export async function grantOrganization(
  driver: AwsLambdaDriver,
  ctx: CallContext,
  cfg: AwsLambdaConfig,
  params: GrantParams,
): Promise<GrantOutput> {
  const scope = scopeOf(driver, cfg);
  const s = split(params);
  await scope.assertInScope(s.account, ctx.signal);
  const out = await driver.grantWith(ctx, memberConfig(scope, cfg, s.account, s.region), s.params);
  return { ...out, access: { ...out.access, accountId: s.account, region: s.region } };
}

export async function revokeOrganization(
  driver: AwsLambdaDriver,
  ctx: CallContext,
  cfg: AwsLambdaConfig,
  params: RevokeParams,
): Promise<RevokeOutput> {
  const scope = scopeOf(driver, cfg);
  const s = split(params);
  return driver.revokeWith(ctx, memberConfig(scope, cfg, s.account, s.region), s.params);
}

export async function checkOrganization(
  driver: AwsLambdaDriver,
  cfg: AwsLambdaConfig,
  checks: CheckOutput['checks'],
  signal: AbortSignal,
): Promise<void> {
  await scopeOf(driver, cfg).check(checks, signal);
}
