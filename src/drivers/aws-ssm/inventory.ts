/**
 * `aws-ssm` access inventory (issue 13): who may `ssm:StartSession` on each discovered
 * instance through their identity policies (inline, attached, group), evaluated by
 * src/aws/policy-eval.ts. One level, `session`: StartSession allowed on the instance ARN.
 * The session documents a principal may use are not evaluated (nor SCPs, permission
 * boundaries or conditions: their keys are reported). See docs/drivers/aws-ssm.md.
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import { roleNameOf } from '../../aws/index.js';
import {
  agentPolicyMatcher,
  buildAwsInventory,
  inventoryOrWarning,
  readAuthorization,
} from '../../aws/authorization.js';
import type { LevelSpec } from '../../aws/policy-eval.js';
import type { DiscoverOutput } from '../../protocol/messages.js';
import type { AwsSsmConfig } from './config.js';

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
    {
      tagPrefix: deps.tagPrefix,
      ownRoleName: deps.cfg.assumeRoleArn !== undefined ? roleNameOf(deps.cfg.assumeRoleArn) : null,
      agentPolicy: agentPolicyMatcher(deps.tagPrefix),
    },
  );
}
