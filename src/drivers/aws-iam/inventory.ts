/**
 * `aws-iam` access inventory and standing cleanup (issue 13): which IAM users and roles
 * reach each discovered resource through their inline, attached and group policies, at
 * which level, and the removal of one such path. Levels are the driver's own permissions
 * (`read`, `write`, `admin`; `assume`/`admin` for roles), each the action list of
 * `ACTIONS` (policy.ts); a policy allowing only some of a level's actions is `partial`.
 * S3 object actions are asked on `<bucket ARN>/*` (every object), bucket actions on the
 * bucket. See docs/drivers/aws-iam.md, "Access inventory".
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import { LatchkeyError } from '../../errors.js';
import { roleNameOf } from '../../aws/index.js';
import {
  agentPolicyMatcher,
  buildAwsInventory,
  inventoryOrWarning,
  readAuthorization,
  type InventoryResource,
} from '../../aws/authorization.js';
import type { LevelSpec } from '../../aws/policy-eval.js';
import { applyAwsStanding, planAwsStanding } from '../../aws/standing.js';
import type {
  CleanupOutput,
  DiscoverOutput,
  StandingCleanupParams,
} from '../../protocol/messages.js';
import type { AwsIamConfig, IamResourceType } from './config.js';
import { ACTIONS, isIamResourceType, type IamPermission } from './policy.js';

/** S3 actions that act on objects (`arn:…:bucket/key`), not on the bucket. */
const S3_OBJECT_ACTIONS = new Set([
  's3:GetObject',
  's3:GetObjectVersion',
  's3:PutObject',
  's3:DeleteObject',
  's3:AbortMultipartUpload',
  's3:ListMultipartUploadParts',
]);

/** The levels of one resource, lowest first, each action with the ARNs it is asked on. */
export function iamLevels(type: IamResourceType, arn: string): LevelSpec[] {
  const names: readonly IamPermission[] =
    type === 'iam-role'
      ? ['assume', 'admin']
      : type === 'ec2-instance'
        ? ['read', 'operate', 'admin']
        : type === 'rds-db-user'
          ? ['connect']
          : ['read', 'write', 'admin'];
  return names.map((level) => ({
    level,
    actions: (ACTIONS[type][level] ?? []).flatMap((action) => {
      if (type !== 's3-bucket') return [{ action, arns: [arn] }];
      if (action === 's3:*') {
        return [
          { action, arns: [arn] },
          { action, arns: [`${arn}/*`] },
        ];
      }
      return [{ action, arns: [S3_OBJECT_ACTIONS.has(action) ? `${arn}/*` : arn] }];
    }),
  }));
}

/** The resource type of an ARN this driver serves, or null. */
export function typeOfArn(arn: string): IamResourceType | null {
  const service = arn.split(':')[2] ?? '';
  const byService: Record<string, IamResourceType> = {
    s3: 's3-bucket',
    dynamodb: 'dynamodb-table',
    sns: 'sns-topic',
    sqs: 'sqs-queue',
    secretsmanager: 'secretsmanager-secret',
    iam: 'iam-role',
  };
  const t = byService[service];
  return t !== undefined && isIamResourceType(t) ? t : null;
}

export interface IamInventoryDeps {
  iam: IAMClient;
  cfg: AwsIamConfig;
  tagPrefix: string;
  signal: AbortSignal;
  run: <T>(fn: () => Promise<T>) => Promise<T>;
}

function options(deps: IamInventoryDeps) {
  return {
    tagPrefix: deps.tagPrefix,
    ownRoleName: deps.cfg.assumeRoleArn !== undefined ? roleNameOf(deps.cfg.assumeRoleArn) : null,
    agentPolicy: agentPolicyMatcher(deps.tagPrefix),
  };
}

/** Adds `inventory` to a discover output; a failed read is a warning, not an error. */
export async function addIamInventory(out: DiscoverOutput, deps: IamInventoryDeps): Promise<void> {
  const read = await inventoryOrWarning(out.warnings, deps.signal, () =>
    readAuthorization(deps.iam, { signal: deps.signal, run: deps.run }),
  );
  if (read === undefined) return;
  out.warnings.push(...read.warnings);
  const resources: InventoryResource[] = out.resources.flatMap((r) =>
    isIamResourceType(r.type) ? [{ id: r.id, levels: iamLevels(r.type, r.id) }] : [],
  );
  out.inventory = buildAwsInventory(read.principals, resources, options(deps));
}

/** `cleanup` with `standing` for aws-iam (see src/aws/standing.ts). */
export async function removeIamStanding(
  params: StandingCleanupParams,
  deps: IamInventoryDeps,
): Promise<CleanupOutput> {
  const resources: InventoryResource[] = [];
  for (const t of params.standing) {
    const type = typeOfArn(t.resourceId);
    if (type === null) {
      throw new LatchkeyError('E_INVALID', `${t.resourceId} is not a resource aws-iam serves`);
    }
    if (!resources.some((r) => r.id === t.resourceId)) {
      resources.push({ id: t.resourceId, levels: iamLevels(type, t.resourceId) });
    }
  }
  const { principals } = await readAuthorization(deps.iam, { signal: deps.signal, run: deps.run });
  const opts = options(deps);
  const inventory = buildAwsInventory(principals, resources, opts);
  const plans = params.standing.map((t) => planAwsStanding(principals, inventory, t, opts));
  return applyAwsStanding(deps.iam, plans, params, deps.signal);
}
