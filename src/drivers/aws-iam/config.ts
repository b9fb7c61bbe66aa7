/**
 * Integration config of `aws-iam` (the `integration.config` object of a command).
 *
 * | field | type | default | meaning |
 * |---|---|---|---|
 * | `accountId` | 12 digits | required | the AWS account whose principals and resources are managed |
 * | `regions` | string[] (1..30) | required | regions discovered and allowed in grants (S3 and IAM are global) |
 * | `assumeRoleArn` | role ARN | none | role to assume in that account; must match the agent's allowed role pattern |
 * | `externalId` | string | none | external id sent with AssumeRole |
 * | `resourceTypes` | string[] | all | resource types served: `s3-bucket`, `dynamodb-table`, `sns-topic`, `sqs-queue`, `secretsmanager-secret`, `iam-role` |
 * | `partition` | `aws` \| `aws-us-gov` \| `aws-cn` | `aws` | ARN partition |
 * | `maxRoleSessionSeconds` | 900..43200 | none | refuse `iam-role` grants when the role's MaxSessionDuration is longer |
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
] as const;
export type IamResourceType = (typeof IAM_RESOURCE_TYPES)[number];

export const AwsIamConfigSchema = z.strictObject({
  accountId: AccountIdSchema,
  regions: z.array(AwsRegionSchema).min(1).max(30),
  assumeRoleArn: RoleArnSchema.optional(),
  externalId: ExternalIdSchema.optional(),
  resourceTypes: z.array(z.enum(IAM_RESOURCE_TYPES)).min(1).optional(),
  partition: PartitionSchema.default('aws'),
  maxRoleSessionSeconds: z.number().int().min(900).max(43200).optional(),
  organization: OrgScopeConfigSchema.optional(),
});
export type AwsIamConfig = z.infer<typeof AwsIamConfigSchema>;

export function parseIamConfig(raw: unknown): AwsIamConfig {
  return parseConfig(AwsIamConfigSchema, raw, 'aws-iam');
}
