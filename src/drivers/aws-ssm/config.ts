/**
 * Integration config of `aws-ssm` (EC2 access through Session Manager).
 *
 * | field | type | default | meaning |
 * |---|---|---|---|
 * | `accountId` | 12 digits | required | the AWS account of the instances and grantee principals |
 * | `regions` | string[] (1..30) | required | regions whose managed instances are discovered and granted |
 * | `assumeRoleArn` | role ARN | none | role to assume in that account; must match the agent's allowed role pattern |
 * | `externalId` | string | none | external id sent with AssumeRole |
 * | `partition` | `aws` \| `aws-us-gov` \| `aws-cn` | `aws` | ARN partition |
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

export const AwsSsmConfigSchema = z.strictObject({
  accountId: AccountIdSchema,
  regions: z.array(AwsRegionSchema).min(1).max(30),
  assumeRoleArn: RoleArnSchema.optional(),
  externalId: ExternalIdSchema.optional(),
  partition: PartitionSchema.default('aws'),
  organization: OrgScopeConfigSchema.optional(),
});
export type AwsSsmConfig = z.infer<typeof AwsSsmConfigSchema>;

export function parseSsmConfig(raw: unknown): AwsSsmConfig {
  return parseConfig(AwsSsmConfigSchema, raw, 'aws-ssm');
}
