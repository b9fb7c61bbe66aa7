/**
 * What each permission of each resource type means in IAM actions, and how a grant
 * becomes a minimal policy document. Pure: no AWS calls here.
 *
 * One statement per (resource type, permission) of the grant, ARNs sorted and
 * de-duplicated, plus one statement for the KMS keys of SSE-KMS buckets, plus one per tag
 * scope. Every statement carries the expiry condition when the grant has `expiresAt`.
 */
import type { ResourceRef } from '../../protocol/messages.js';
import { LatchkeyError } from '../../errors.js';
import {
  type Condition,
  expiryCondition,
  mergeConditions,
  policyDocument,
  statement,
  type PolicyDocument,
  type Statement,
} from '../../aws/policy.js';
import type { AwsIamConfig, IamResourceType } from './config.js';
import { IAM_RESOURCE_TYPES, servedTypes } from './config.js';

export const IAM_PERMISSIONS = ['read', 'write', 'admin'] as const;
export type IamPermission = (typeof IAM_PERMISSIONS)[number] | 'assume' | 'operate' | 'connect';

/** The permissions each resource type accepts (`connect`, `read`, `write`, `admin` all mean `rds-db:connect`). */
export const PERMISSIONS_OF: Record<IamResourceType, readonly IamPermission[]> = {
  's3-bucket': IAM_PERMISSIONS,
  'dynamodb-table': IAM_PERMISSIONS,
  'sns-topic': IAM_PERMISSIONS,
  'sqs-queue': IAM_PERMISSIONS,
  'secretsmanager-secret': IAM_PERMISSIONS,
  'iam-role': ['assume', 'read', 'write', 'admin'],
  'ec2-instance': ['read', 'operate', 'admin'],
  'rds-db-user': ['connect', 'read', 'write', 'admin'],
};

/** S3 actions on the bucket itself (`arn:aws:s3:::<bucket>`), per permission. */
export const S3_BUCKET_ACTIONS: Partial<Record<IamPermission, readonly string[]>> = {
  read: ['s3:GetBucketLocation', 's3:ListBucket'],
  write: ['s3:GetBucketLocation', 's3:ListBucket', 's3:ListBucketMultipartUploads'],
  admin: ['s3:*'],
};
/** S3 actions on objects (`arn:aws:s3:::<bucket>/*`), per permission. */
export const S3_OBJECT_ACTIONS: Partial<Record<IamPermission, readonly string[]>> = {
  read: ['s3:GetObject', 's3:GetObjectVersion'],
  write: [
    's3:GetObject',
    's3:GetObjectVersion',
    's3:PutObject',
    's3:DeleteObject',
    's3:AbortMultipartUpload',
    's3:ListMultipartUploadParts',
  ],
  admin: ['s3:*'],
};

/**
 * EC2 actions that allow no resource-level permission: they go on `"Resource": "*"`, limited
 * to the integration's regions with `aws:RequestedRegion`, with every `ec2-instance` grant.
 */
export const EC2_DESCRIBE_ACTIONS = [
  'ec2:DescribeInstances',
  'ec2:DescribeInstanceStatus',
  'ec2:DescribeTags',
] as const;

/** The action lists (documented in docs/drivers/aws-iam.md). */
export const ACTIONS: Record<IamResourceType, Partial<Record<IamPermission, readonly string[]>>> = {
  's3-bucket': {
    read: [...(S3_BUCKET_ACTIONS.read ?? []), ...(S3_OBJECT_ACTIONS.read ?? [])],
    write: [...(S3_BUCKET_ACTIONS.write ?? []), ...(S3_OBJECT_ACTIONS.write ?? [])],
    admin: ['s3:*'],
  },
  'dynamodb-table': {
    read: [
      'dynamodb:DescribeTable',
      'dynamodb:GetItem',
      'dynamodb:BatchGetItem',
      'dynamodb:Query',
      'dynamodb:Scan',
      'dynamodb:ConditionCheckItem',
    ],
    write: [
      'dynamodb:DescribeTable',
      'dynamodb:GetItem',
      'dynamodb:BatchGetItem',
      'dynamodb:Query',
      'dynamodb:Scan',
      'dynamodb:ConditionCheckItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:BatchWriteItem',
    ],
    admin: ['dynamodb:*'],
  },
  'sns-topic': {
    read: ['sns:GetTopicAttributes', 'sns:ListSubscriptionsByTopic', 'sns:ListTagsForResource'],
    write: [
      'sns:GetTopicAttributes',
      'sns:ListSubscriptionsByTopic',
      'sns:ListTagsForResource',
      'sns:Publish',
    ],
    admin: ['sns:*'],
  },
  'sqs-queue': {
    read: ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:ListQueueTags', 'sqs:ReceiveMessage'],
    write: [
      'sqs:GetQueueAttributes',
      'sqs:GetQueueUrl',
      'sqs:ListQueueTags',
      'sqs:ReceiveMessage',
      'sqs:SendMessage',
      'sqs:DeleteMessage',
      'sqs:ChangeMessageVisibility',
    ],
    admin: ['sqs:*'],
  },
  'secretsmanager-secret': {
    read: [
      'secretsmanager:DescribeSecret',
      'secretsmanager:GetSecretValue',
      'secretsmanager:ListSecretVersionIds',
    ],
    write: [
      'secretsmanager:DescribeSecret',
      'secretsmanager:GetSecretValue',
      'secretsmanager:ListSecretVersionIds',
      'secretsmanager:PutSecretValue',
      'secretsmanager:UpdateSecretVersionStage',
    ],
    admin: ['secretsmanager:*'],
  },
  'iam-role': {
    assume: ['sts:AssumeRole'],
    read: ['sts:AssumeRole'],
    write: ['sts:AssumeRole'],
    admin: ['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity'],
  },
  'ec2-instance': {
    read: ['ec2:DescribeInstanceAttribute', 'ec2:GetConsoleOutput'],
    operate: [
      'ec2:DescribeInstanceAttribute',
      'ec2:GetConsoleOutput',
      'ec2:StartInstances',
      'ec2:StopInstances',
      'ec2:RebootInstances',
    ],
    admin: ['ec2:*'],
  },
  'rds-db-user': {
    connect: ['rds-db:connect'],
    read: ['rds-db:connect'],
    write: ['rds-db:connect'],
    admin: ['rds-db:connect'],
  },
};

function actionsOf(type: IamResourceType, perm: IamPermission): readonly string[] {
  const a = ACTIONS[type][perm];
  if (a === undefined) throw new LatchkeyError('E_INTERNAL', `no actions for ${type}/${perm}`);
  return a;
}

/** KMS actions for the customer-managed key of an SSE-KMS bucket. */
export const KMS_ACTIONS: Partial<Record<IamPermission, readonly string[]>> = {
  read: ['kms:Decrypt'],
  write: ['kms:Decrypt', 'kms:GenerateDataKey'],
  admin: ['kms:Decrypt', 'kms:GenerateDataKey'],
};

/** The permissions `discover` offers. */
export function iamPermissions(cfg: AwsIamConfig): { id: string; name: string }[] {
  const permissions: { id: string; name: string }[] = IAM_PERMISSIONS.map((p) => ({
    id: p,
    name: `${p.charAt(0).toUpperCase()}${p.slice(1)}`,
  }));
  const types = servedTypes(cfg);
  if (types.includes('iam-role'))
    permissions.push({ id: 'assume', name: 'Assume (iam-role only)' });
  if (types.includes('ec2-instance'))
    permissions.push({ id: 'operate', name: 'Operate: start, stop, reboot (ec2-instance only)' });
  if (types.includes('rds-db-user'))
    permissions.push({ id: 'connect', name: 'Connect with IAM auth (rds-db-user only)' });
  return permissions;
}

export function parsePermission(type: IamResourceType, permission: string): IamPermission {
  const accepted = PERMISSIONS_OF[type];
  if (!(accepted as readonly string[]).includes(permission)) {
    throw new LatchkeyError(
      'E_INVALID',
      `unknown permission '${permission}' for ${type}; use ${accepted.join(', ')}`,
    );
  }
  return permission as IamPermission;
}

/**
 * How a resource of a grant is chosen:
 * - `named`: one resource by its ARN (counted by the 100-resource guardrail);
 * - `all`: `{"type": …, "id": "*"}`, every resource of that type in the integration's
 *   account and regions;
 * - `region`: `{"type": …, "id": "region:eu-west-1"}`, every resource of that type in one
 *   region of the integration (regional types only).
 */
export type ResourceScope = 'named' | 'all' | 'region';

export interface ParsedResource {
  type: IamResourceType;
  scope: ResourceScope;
  /** The ARN (`named`), or the id as given (`*`, `region:<region>`). */
  arn: string;
  /** Region of regional resources and region scopes; null for S3 buckets, IAM roles and `all`. */
  region: string | null;
  name: string;
}

const P = 'aws[a-z-]*';
const ARN_PATTERNS: Record<IamResourceType, RegExp> = {
  's3-bucket': new RegExp(`^arn:(${P}):s3:::([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])$`),
  'dynamodb-table': new RegExp(
    `^arn:(${P}):dynamodb:([a-z0-9-]+):(\\d{12}):table/([A-Za-z0-9_.-]{3,255})$`,
  ),
  'sns-topic': new RegExp(
    `^arn:(${P}):sns:([a-z0-9-]+):(\\d{12}):([A-Za-z0-9_-]{1,256}(?:\\.fifo)?)$`,
  ),
  'sqs-queue': new RegExp(
    `^arn:(${P}):sqs:([a-z0-9-]+):(\\d{12}):([A-Za-z0-9_-]{1,80}(?:\\.fifo)?)$`,
  ),
  'secretsmanager-secret': new RegExp(
    `^arn:(${P}):secretsmanager:([a-z0-9-]+):(\\d{12}):secret:([A-Za-z0-9/_+=.@-]{1,512})$`,
  ),
  'iam-role': new RegExp(`^arn:(${P}):iam::(\\d{12}):role/(?:[\\w+=,.@/-]*/)?([\\w+=,.@-]{1,64})$`),
  'ec2-instance': new RegExp(`^arn:(${P}):ec2:([a-z0-9-]+):(\\d{12}):instance/(i-[0-9a-f]{8,17})$`),
  // dbuser:<DbiResourceId or cluster resource id>/<database user name>; no wildcards.
  'rds-db-user': new RegExp(
    `^arn:(${P}):rds-db:([a-z0-9-]+):(\\d{12}):dbuser:((?:db|cluster)-[A-Z0-9]{1,64})/([a-z0-9_]{1,63})$`,
  ),
};

/** Types whose ARNs carry no region: a `region:` scope means nothing for them. */
const GLOBAL_TYPES: readonly IamResourceType[] = ['s3-bucket', 'iam-role'];

export function isIamResourceType(t: string): t is IamResourceType {
  return (IAM_RESOURCE_TYPES as readonly string[]).includes(t);
}

function servedType(type: string, cfg: AwsIamConfig, what: string): IamResourceType {
  const allowed = servedTypes(cfg);
  if (!isIamResourceType(type) || !allowed.includes(type)) {
    throw new LatchkeyError(
      'E_INVALID',
      `${what} '${type}' is not served by this integration (${allowed.join(', ')})`,
    );
  }
  return type;
}

/**
 * Validate one resource of a grant: a known type, and a well-formed ARN of the
 * integration's partition, account and regions, or a scope (`*`, `region:<region>`).
 * @throws LatchkeyError E_INVALID; E_GUARDRAIL for scopes that would amount to the whole account
 */
export function parseResource(ref: ResourceRef, cfg: AwsIamConfig): ParsedResource {
  const type = servedType(ref.type, cfg, 'resource type');
  if (ref.id === '*' || ref.id.startsWith('region:')) return parseScope(type, ref.id, cfg);
  const m = ARN_PATTERNS[type].exec(ref.id);
  if (!m) throw new LatchkeyError('E_INVALID', `${type} id must be its ARN, got ${ref.id}`);
  const partition = m[1];
  if (partition !== cfg.partition) {
    throw new LatchkeyError('E_INVALID', `${ref.id} is not in partition ${cfg.partition}`);
  }
  let region: string | null = null;
  let account: string | null = null;
  let name: string;
  if (type === 's3-bucket') {
    name = m[2] ?? '';
  } else if (type === 'iam-role') {
    account = m[2] ?? null;
    name = m[3] ?? '';
  } else if (type === 'rds-db-user') {
    region = m[2] ?? null;
    account = m[3] ?? null;
    name = m[5] ?? '';
    if (!cfg.rdsDbUserPrefixes.some((p) => name.startsWith(p))) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `database user '${name}' does not start with one of this integration's rdsDbUserPrefixes (${cfg.rdsDbUserPrefixes.join(', ')}); only users the connector manages may be granted rds-db:connect`,
      );
    }
  } else {
    region = m[2] ?? null;
    account = m[3] ?? null;
    name = m[4] ?? '';
  }
  if (account !== null && account !== cfg.accountId) {
    throw new LatchkeyError('E_INVALID', `${ref.id} is not in account ${cfg.accountId}`);
  }
  if (region !== null && !cfg.regions.includes(region)) {
    throw new LatchkeyError(
      'E_INVALID',
      `${ref.id} is in region ${region}, not one of this integration's regions (${cfg.regions.join(', ')})`,
    );
  }
  return { type, scope: 'named', arn: ref.id, region, name };
}

function parseScope(type: IamResourceType, id: string, cfg: AwsIamConfig): ParsedResource {
  if (type === 'iam-role') {
    throw new LatchkeyError(
      'E_GUARDRAIL',
      'iam-role cannot be granted as "any role" (that is every role of the account, the connector’s own included); name the roles or use a tag scope',
    );
  }
  if (type === 'rds-db-user') {
    throw new LatchkeyError(
      'E_GUARDRAIL',
      'rds-db-user cannot be granted as a scope (that would allow logging in as any database user); name the user',
    );
  }
  if (id === '*') return { type, scope: 'all', arn: id, region: null, name: id };
  const region = id.slice('region:'.length);
  if (GLOBAL_TYPES.includes(type)) {
    throw new LatchkeyError(
      'E_INVALID',
      `${type} ARNs carry no region, so a region scope cannot be expressed; use "*" or a tag scope`,
    );
  }
  if (!cfg.regions.includes(region)) {
    throw new LatchkeyError(
      'E_INVALID',
      `${id}: not one of this integration's regions (${cfg.regions.join(', ')})`,
    );
  }
  return { type, scope: 'region', arn: id, region, name: id };
}

/** The ARNs a statement needs for one named resource (objects, indexes, …). */
export function resourceArns(r: ParsedResource, permission: IamPermission): string[] {
  switch (r.type) {
    case 's3-bucket':
      return [r.arn, `${r.arn}/*`];
    case 'dynamodb-table':
      return permission === 'admin' ? [r.arn, `${r.arn}/*`] : [r.arn, `${r.arn}/index/*`];
    default:
      return [r.arn];
  }
}

/**
 * Wildcard ARNs of all resources of a type in the account, in the given regions (default:
 * the integration's), for tag and region scopes.
 */
export function wildcardArns(
  type: IamResourceType,
  cfg: AwsIamConfig,
  regions: readonly string[] = cfg.regions,
): string[] {
  const p = cfg.partition;
  const a = cfg.accountId;
  const perRegion = (f: (region: string) => string) => regions.map(f);
  switch (type) {
    case 's3-bucket':
      return [`arn:${p}:s3:::*`, `arn:${p}:s3:::*/*`];
    case 'dynamodb-table':
      return perRegion((r) => `arn:${p}:dynamodb:${r}:${a}:table/*`);
    case 'sns-topic':
      return perRegion((r) => `arn:${p}:sns:${r}:${a}:*`);
    case 'sqs-queue':
      return perRegion((r) => `arn:${p}:sqs:${r}:${a}:*`);
    case 'secretsmanager-secret':
      return perRegion((r) => `arn:${p}:secretsmanager:${r}:${a}:secret:*`);
    case 'iam-role':
      return [`arn:${p}:iam::${a}:role/*`];
    case 'ec2-instance':
      return perRegion((r) => `arn:${p}:ec2:${r}:${a}:instance/*`);
    case 'rds-db-user':
      return perRegion((r) => `arn:${p}:rds-db:${r}:${a}:dbuser:*/*`);
  }
}

function oneOrMany(list: string[]): string | string[] {
  return list.length === 1 && list[0] !== undefined ? list[0] : list;
}

/** S3 bucket ARNs name no account: wildcard S3 statements are held to the integration's. */
function s3AccountCondition(cfg: AwsIamConfig): Condition {
  return { StringEquals: { 'aws:ResourceAccount': cfg.accountId } };
}

export interface TagScope {
  resourceType: string;
  key: string;
  value: string;
}

export interface GrantPolicyInput {
  resources: ParsedResource[];
  permission: string;
  kmsKeyArns: string[];
  tagScope?: TagScope | undefined;
  /**
   * S3 tag scope: the buckets of the integration that carry the tag (found at grant time).
   * Their objects are granted by name; bucket-level actions go through the tag condition.
   */
  tagScopeBuckets?: ParsedResource[] | undefined;
  expiresAt?: string | undefined;
  cfg: AwsIamConfig;
}

/** A tag scope checked against the integration (type served, valid key and a type that has tags). */
export function parseTagScope(ts: TagScope, cfg: AwsIamConfig): IamResourceType {
  const type = servedType(ts.resourceType, cfg, 'tagScope.resourceType');
  if (!/^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u.test(ts.key)) {
    throw new LatchkeyError('E_INVALID', 'tagScope.key is not a valid AWS tag key');
  }
  if (type === 'rds-db-user') {
    throw new LatchkeyError(
      'E_INVALID',
      'rds-db-user has no tags (rds-db:connect evaluates no resource tag); name the user',
    );
  }
  return type;
}

/**
 * Build the grant's policy document.
 * @throws LatchkeyError E_INVALID (permission, tag scope)
 */
export function buildGrantPolicy(input: GrantPolicyInput): PolicyDocument {
  const { cfg } = input;
  const expiry = expiryCondition(input.expiresAt);
  const statements: Statement[] = [];
  let kmsPermission: IamPermission | null = null;
  const ec2Regions = new Set<string>();
  let s3AllScope = false;
  for (const type of IAM_RESOURCE_TYPES) {
    const ofType = input.resources.filter((r) => r.type === type);
    if (ofType.length === 0) continue;
    const perm = parsePermission(type, input.permission);
    if (type === 's3-bucket') kmsPermission = perm;
    const named = ofType.filter((r) => r.scope === 'named');
    if (named.length > 0) {
      statements.push(
        statement(
          actionsOf(type, perm),
          named.flatMap((r) => resourceArns(r, perm)),
          expiry,
        ),
      );
    }
    const all = ofType.some((r) => r.scope === 'all');
    const regions = all
      ? cfg.regions
      : ofType.flatMap((r) => (r.scope === 'region' && r.region !== null ? [r.region] : []));
    if (regions.length > 0) {
      if (type === 's3-bucket') s3AllScope = true;
      statements.push(
        statement(
          actionsOf(type, perm),
          wildcardArns(type, cfg, regions),
          type === 's3-bucket' ? mergeConditions(s3AccountCondition(cfg), expiry) : expiry,
        ),
      );
    }
    if (type === 'ec2-instance') {
      for (const r of named) if (r.region !== null) ec2Regions.add(r.region);
      for (const r of regions) ec2Regions.add(r);
    }
  }

  let tagType: IamResourceType | null = null;
  let tagPerm: IamPermission | null = null;
  if (input.tagScope) {
    tagType = parseTagScope(input.tagScope, cfg);
    tagPerm = parsePermission(tagType, input.permission);
    if (tagType === 's3-bucket') kmsPermission = tagPerm;
    if (tagType === 'ec2-instance') for (const r of cfg.regions) ec2Regions.add(r);
  }

  if (ec2Regions.size > 0) {
    // Describe* allow no resource-level permission: "*" in the granted regions only.
    statements.push(
      statement(
        EC2_DESCRIBE_ACTIONS,
        ['*'],
        mergeConditions(
          { StringEquals: { 'aws:RequestedRegion': oneOrMany([...ec2Regions].sort()) } },
          expiry,
        ),
      ),
    );
  }
  if (input.kmsKeyArns.length > 0 && kmsPermission !== null) {
    statements.push(statement(KMS_ACTIONS[kmsPermission] ?? [], input.kmsKeyArns, expiry));
  }
  if (s3AllScope && kmsPermission !== null) {
    // Every bucket of the account: their customer keys, used through S3 only.
    statements.push(
      statement(
        KMS_ACTIONS[kmsPermission] ?? [],
        cfg.regions.map((r) => `arn:${cfg.partition}:kms:${r}:${cfg.accountId}:key/*`),
        mergeConditions(
          {
            StringEquals: {
              'kms:ViaService': oneOrMany(cfg.regions.map((r) => `s3.${r}.amazonaws.com`)),
            },
          },
          expiry,
        ),
      ),
    );
  }
  if (input.tagScope && tagType !== null && tagPerm !== null) {
    const ts = input.tagScope;
    const tag = { StringEquals: { [`aws:ResourceTag/${ts.key}`]: ts.value } };
    if (tagType === 's3-bucket') {
      // Bucket-level actions through the bucket's tag (S3 ABAC); object-level actions on the
      // objects of the buckets that carry the tag now (object requests evaluate no bucket tag).
      statements.push(
        statement(
          S3_BUCKET_ACTIONS[tagPerm] ?? [],
          [`arn:${cfg.partition}:s3:::*`],
          mergeConditions(tag, s3AccountCondition(cfg), expiry),
        ),
      );
      const buckets = input.tagScopeBuckets ?? [];
      if (buckets.length > 0) {
        statements.push(
          statement(
            S3_OBJECT_ACTIONS[tagPerm] ?? [],
            buckets.map((b) => `${b.arn}/*`),
            expiry,
          ),
        );
      }
    } else {
      statements.push(
        statement(
          actionsOf(tagType, tagPerm),
          wildcardArns(tagType, cfg),
          mergeConditions(tag, expiry),
        ),
      );
      if (tagType === 'iam-role' && cfg.assumeRoleArn !== undefined) {
        // Whatever its tags, the connector's own role is never assumable through a grant.
        statements.push({
          ...statement(actionsOf(tagType, tagPerm), [cfg.assumeRoleArn], expiry),
          Effect: 'Deny',
        });
      }
    }
  }
  if (statements.length === 0) {
    throw new LatchkeyError('E_INVALID', 'a grant needs at least one resource or a tagScope');
  }
  return policyDocument(statements);
}
