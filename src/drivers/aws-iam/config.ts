/**
 * Integration config of `aws-iam` (the `integration.config` object of a command).
 *
 * | field | type | default | meaning |
 * |---|---|---|---|
 * | `accountId` | 12 digits | required | the AWS account whose principals and resources are managed |
 * | `regions` | string[] (1..30) | required | regions discovered and allowed in grants (S3 and IAM are global) |
 * | `assumeRoleArn` | role ARN | none | role to assume in that account; must match the agent's allowed role pattern |
 * | `externalId` | string | none | external id sent with AssumeRole |
 * | `resourceTypes` | string[] | the first six | resource types served: `s3-bucket`, `dynamodb-table`, `sns-topic`, `sqs-queue`, `secretsmanager-secret`, `iam-role`, and (only when listed) `ec2-instance`, `rds-db-user` |
 * | `partition` | `aws` \| `aws-us-gov` \| `aws-cn` | `aws` | ARN partition |
 * | `maxRoleSessionSeconds` | 900..43200 | none | refuse `iam-role` grants when the role's MaxSessionDuration is longer |
 * | `rdsDbUserPrefixes` | string[] | `["lk_"]` | `rds-db-user` grants name only database users starting with one of these (the users the SQL drivers create) |
 * | `permissionsBoundary` | `{policyArn, mode}` | none | `attach`: the grantee carries this boundary while a grant lasts; `require`: grant only to principals that already carry it |
 * | `organization` | object | none | organization mode (`OrgScopeConfigSchema`, src/aws/org-scope.ts): every member account through `memberRoleName`; `accountId` is then the home (management or delegated-administrator) account |
 */
import { z } from 'zod';
import {
  AccountIdSchema,
  AwsRegionSchema,
  ExternalIdSchema,
  PartitionSchema,
  RoleArnSchema,
  parseConfig,
} from '../../aws/config.js';
import { OrgScopeConfigSchema } from '../../aws/org-scope.js';

export const IAM_RESOURCE_TYPES = [
  's3-bucket',
  'dynamodb-table',
  'sns-topic',
  'sqs-queue',
  'secretsmanager-secret',
  'iam-role',
  'ec2-instance',
  'rds-db-user',
] as const;
export type IamResourceType = (typeof IAM_RESOURCE_TYPES)[number];

/** Served when `resourceTypes` is not set (the newer types are opt-in: they need more connector permissions). */
export const DEFAULT_IAM_RESOURCE_TYPES: readonly IamResourceType[] = [
  's3-bucket',
  'dynamodb-table',
  'sns-topic',
  'sqs-queue',
  'secretsmanager-secret',
  'iam-role',
];

export const ManagedPolicyArnSchema = z
  .string()
  .regex(/^arn:aws[a-z-]*:iam::(\d{12}|aws):policy\/[\w+=,.@/-]{1,512}$/, 'a managed policy ARN')
  .max(256);

/**
 * Permissions boundary of grants (see docs/drivers/aws-iam.md, "Permissions boundary"):
 * `attach` puts `policyArn` on the grantee as its boundary while a grant lasts and restores
 * the one it had before; `require` grants only to principals whose boundary is already
 * `policyArn`, so nothing a grant allows reaches beyond it.
 */
export const PermissionsBoundarySchema = z.strictObject({
  policyArn: ManagedPolicyArnSchema,
  mode: z.enum(['attach', 'require']),
});
export type PermissionsBoundaryConfig = z.infer<typeof PermissionsBoundarySchema>;

export const AwsIamConfigSchema = z.strictObject({
  accountId: AccountIdSchema,
  regions: z.array(AwsRegionSchema).min(1).max(30),
  assumeRoleArn: RoleArnSchema.optional(),
  externalId: ExternalIdSchema.optional(),
  resourceTypes: z.array(z.enum(IAM_RESOURCE_TYPES)).min(1).optional(),
  partition: PartitionSchema.default('aws'),
  maxRoleSessionSeconds: z.number().int().min(900).max(43200).optional(),
  rdsDbUserPrefixes: z
    .array(z.string().regex(/^[a-z][a-z0-9_]{0,15}$/, 'a user prefix such as lk_'))
    .min(1)
    .max(10)
    .default(['lk_']),
  permissionsBoundary: PermissionsBoundarySchema.optional(),
  organization: OrgScopeConfigSchema.optional(),
});
export type AwsIamConfig = z.infer<typeof AwsIamConfigSchema>;

/** The resource types an integration serves. */
export function servedTypes(cfg: AwsIamConfig): readonly IamResourceType[] {
  return cfg.resourceTypes ?? DEFAULT_IAM_RESOURCE_TYPES;
}

export function parseIamConfig(raw: unknown): AwsIamConfig {
  return parseConfig(AwsIamConfigSchema, raw, 'aws-iam');
}
