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
  expiryCondition,
  mergeConditions,
  policyDocument,
  statement,
  type PolicyDocument,
  type Statement,
} from '../../aws/policy.js';
import type { AwsIamConfig, IamResourceType } from './config.js';
import { IAM_RESOURCE_TYPES } from './config.js';

export const IAM_PERMISSIONS = ['read', 'write', 'admin'] as const;
export type IamPermission = (typeof IAM_PERMISSIONS)[number] | 'assume';

/** The action lists (documented in docs/drivers/aws-iam.md). */
export const ACTIONS: Record<IamResourceType, Record<IamPermission, readonly string[]>> = {
  's3-bucket': {
    read: ['s3:GetBucketLocation', 's3:ListBucket', 's3:GetObject', 's3:GetObjectVersion'],
    write: [
      's3:GetBucketLocation',
      's3:ListBucket',
      's3:GetObject',
      's3:GetObjectVersion',
      's3:PutObject',
      's3:DeleteObject',
      's3:AbortMultipartUpload',
      's3:ListMultipartUploadParts',
      's3:ListBucketMultipartUploads',
    ],
    admin: ['s3:*'],
    assume: [],
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
    assume: [],
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
    assume: [],
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
    assume: [],
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
    assume: [],
  },
  'iam-role': {
    assume: ['sts:AssumeRole'],
    read: ['sts:AssumeRole'],
    write: ['sts:AssumeRole'],
    admin: ['sts:AssumeRole', 'sts:TagSession', 'sts:SetSourceIdentity'],
  },
};

/** KMS actions for the customer-managed key of an SSE-KMS bucket. */
export const KMS_ACTIONS: Record<IamPermission, readonly string[]> = {
  read: ['kms:Decrypt'],
  assume: ['kms:Decrypt'],
  write: ['kms:Decrypt', 'kms:GenerateDataKey'],
  admin: ['kms:Decrypt', 'kms:GenerateDataKey'],
};

/** The permissions `discover` offers. */
export function iamPermissions(cfg: AwsIamConfig): { id: string; name: string }[] {
  const permissions: { id: string; name: string }[] = IAM_PERMISSIONS.map((p) => ({
    id: p,
    name: `${p.charAt(0).toUpperCase()}${p.slice(1)}`,
  }));
  if ((cfg.resourceTypes ?? IAM_RESOURCE_TYPES).includes('iam-role'))
    permissions.push({ id: 'assume', name: 'Assume (iam-role only)' });
  return permissions;
}

export function parsePermission(type: IamResourceType, permission: string): IamPermission {
  const ok =
    (IAM_PERMISSIONS as readonly string[]).includes(permission) ||
    (permission === 'assume' && type === 'iam-role');
  if (!ok) {
    throw new LatchkeyError(
      'E_INVALID',
      `unknown permission '${permission}' for ${type}; use ${type === 'iam-role' ? 'assume, ' : ''}read, write or admin`,
    );
  }
  return permission as IamPermission;
}

export interface ParsedResource {
  type: IamResourceType;
  arn: string;
  /** Region of regional resources; null for S3 buckets and IAM roles (global). */
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
};

export function isIamResourceType(t: string): t is IamResourceType {
  return (IAM_RESOURCE_TYPES as readonly string[]).includes(t);
}

/**
 * Validate one resource of a grant: a known type, a well-formed ARN of the integration's
 * partition, account and regions.
 * @throws LatchkeyError E_INVALID
 */
export function parseResource(ref: ResourceRef, cfg: AwsIamConfig): ParsedResource {
  const allowed = cfg.resourceTypes ?? IAM_RESOURCE_TYPES;
  if (!isIamResourceType(ref.type) || !allowed.includes(ref.type)) {
    throw new LatchkeyError(
      'E_INVALID',
      `resource type '${ref.type}' is not served by this integration (${allowed.join(', ')})`,
    );
  }
  const type = ref.type;
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
  return { type, arn: ref.id, region, name };
}

/** The ARNs a statement needs for one resource (objects, indexes, …). */
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

/** Wildcard ARNs of all resources of a type in the account (for tag scopes). */
export function wildcardArns(type: IamResourceType, cfg: AwsIamConfig): string[] {
  const p = cfg.partition;
  const a = cfg.accountId;
  const perRegion = (f: (region: string) => string) => cfg.regions.map(f);
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
  }
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
  expiresAt?: string | undefined;
  cfg: AwsIamConfig;
}

/**
 * Build the grant's policy document.
 * @throws LatchkeyError E_INVALID (permission, tag scope)
 */
export function buildGrantPolicy(input: GrantPolicyInput): PolicyDocument {
  const expiry = expiryCondition(input.expiresAt);
  const statements: Statement[] = [];
  let kmsPermission: IamPermission | null = null;
  for (const type of IAM_RESOURCE_TYPES) {
    const ofType = input.resources.filter((r) => r.type === type);
    if (ofType.length === 0) continue;
    const perm = parsePermission(type, input.permission);
    if (type === 's3-bucket') kmsPermission = perm;
    statements.push(
      statement(
        ACTIONS[type][perm],
        ofType.flatMap((r) => resourceArns(r, perm)),
        expiry,
      ),
    );
  }
  if (input.kmsKeyArns.length > 0 && kmsPermission !== null) {
    statements.push(statement(KMS_ACTIONS[kmsPermission], input.kmsKeyArns, expiry));
  }
  if (input.tagScope) {
    const ts = input.tagScope;
    const allowed = input.cfg.resourceTypes ?? IAM_RESOURCE_TYPES;
    if (!isIamResourceType(ts.resourceType) || !allowed.includes(ts.resourceType)) {
      throw new LatchkeyError(
        'E_INVALID',
        `tagScope.resourceType '${ts.resourceType}' is not served by this integration (${allowed.join(', ')})`,
      );
    }
    if (!/^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u.test(ts.key)) {
      throw new LatchkeyError('E_INVALID', 'tagScope.key is not a valid AWS tag key');
    }
    const perm = parsePermission(ts.resourceType, input.permission);
    statements.push(
      statement(
        ACTIONS[ts.resourceType][perm],
        wildcardArns(ts.resourceType, input.cfg),
        mergeConditions({ StringEquals: { [`aws:ResourceTag/${ts.key}`]: ts.value } }, expiry),
      ),
    );
  }
  if (statements.length === 0) {
    throw new LatchkeyError('E_INVALID', 'a grant needs at least one resource or a tagScope');
  }
  return policyDocument(statements);
}
