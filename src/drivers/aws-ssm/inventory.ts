/**
 * `aws-ssm` access inventory (issue 13): who may `ssm:StartSession` on each discovered
 * instance through their identity policies (inline, attached, group), evaluated by
 * src/aws/policy-eval.ts. One level, `session`: StartSession allowed on the instance ARN.
 * The session documents a principal may use are not evaluated (nor SCPs, permission
 * boundaries or conditions: their keys are reported). Standing cleanup as in aws-iam
 * (src/aws/standing.ts). See docs/drivers/aws-ssm.md.
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import { LatchkeyError } from '../../errors.js';
import { roleNameOf } from '../../aws/index.js';
import {
  agentPolicyMatcher,
  buildAwsInventory,
  inventoryOrWarning,
  readAuthorization,
  type AwsInventoryOptions,
  type InventoryResource,
} from '../../aws/authorization.js';
import type { LevelSpec } from '../../aws/policy-eval.js';
import { applyAwsStanding, planAwsStanding } from '../../aws/standing.js';
import type {
  CleanupOutput,
  DiscoverOutput,
  StandingCleanupParams,
} from '../../protocol/messages.js';
import type { AwsSsmConfig } from './config.js';

const INSTANCE_ARN =
  /^arn:aws[a-z-]*:(ec2|ssm):[a-z0-9-]+:\d{12}:(instance|managed-instance)\/(i|mi)-[0-9a-f]{8,17}$/;

export function sessionLevels(instanceArn: string): LevelSpec[] {
  return [{ level: 'session', actions: [{ action: 'ssm:StartSession', arns: [instanceArn] }] }];
}

export interface SsmInventoryDeps {
  iam: IAMClient;
  cfg: AwsSsmConfig;
  tagPrefix: string;
  signal: AbortSignal;
  run: <T>(fn: () => Promise<T>) => Promise<T>;
}

function options(deps: SsmInventoryDeps): AwsInventoryOptions {
  return {
    tagPrefix: deps.tagPrefix,
    ownRoleName: deps.cfg.assumeRoleArn !== undefined ? roleNameOf(deps.cfg.assumeRoleArn) : null,
    agentPolicy: agentPolicyMatcher(deps.tagPrefix),
  };
}

/** Adds `inventory` to a discover output; a failed read is a warning, not an error. */
export async function addSsmInventory(out: DiscoverOutput, deps: SsmInventoryDeps): Promise<void> {
  const read = await inventoryOrWarning(out.warnings, deps.signal, () =>
    readAuthorization(deps.iam, { signal: deps.signal, run: deps.run }),
  );
  if (read === undefined) return;
  out.warnings.push(...read.warnings);
  out.inventory = buildAwsInventory(
    read.principals,
    out.resources.map((r) => ({ id: r.id, levels: sessionLevels(r.id) })),
    options(deps),
  );
}

/**
 * `cleanup` with `standing` for aws-ssm: the same calls and refusals as aws-iam
 * (src/aws/standing.ts) on the policies that allow `ssm:StartSession` on the instance.
 */
export async function removeSsmStanding(
  params: StandingCleanupParams,
  deps: SsmInventoryDeps,
): Promise<CleanupOutput> {
  const resources: InventoryResource[] = [];
  for (const t of params.standing) {
    if (!INSTANCE_ARN.test(t.resourceId)) {
      throw new LatchkeyError('E_INVALID', `${t.resourceId} is not an instance ARN`);
    }
    if (!resources.some((r) => r.id === t.resourceId)) {
      resources.push({ id: t.resourceId, levels: sessionLevels(t.resourceId) });
    }
  }
  const { principals } = await readAuthorization(deps.iam, { signal: deps.signal, run: deps.run });
  const opts = options(deps);
  const inventory = buildAwsInventory(principals, resources, opts);
  const plans = params.standing.map((t) => planAwsStanding(principals, inventory, t, opts));
  return applyAwsStanding(deps.iam, plans, params, deps.signal);
}
