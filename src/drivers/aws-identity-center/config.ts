/**
 * Integration config of `aws-identity-center` (the `integration.config` object of a command).
 *
 * | field | type | default | meaning |
 * |---|---|---|---|
 * | `accountId` | 12 digits | required | the management or delegated-administrator account where Identity Center is administered |
 * | `region` | region | required | the region Identity Center lives in (SSO region) |
 * | `instanceArn` | `arn:aws:sso:::instance/ssoins-…` | discovered | the Identity Center instance; with `identityStoreId` omitted both come from `ListInstances` (which must then return exactly one) |
 * | `identityStoreId` | `d-…` | discovered | the instance's identity store |
 * | `assumeRoleArn` | role ARN | none | role assumed in `accountId`; must match the agent's allowed role pattern |
 * | `externalId` | string | none | external id sent with AssumeRole |
 * | `portalUrl` | https URL | none | the AWS access portal sign-in URL handed back with each grant |
 * | `allowedAccountIds` | 12-digit ids | all | only these accounts may receive assignments |
 * | `deniedAccountIds` | 12-digit ids | none | these accounts never receive assignments (and are not discovered) |
 * | `excludedOuIds` | `ou-…` / `r-…` ids | none | OUs (with everything under them) whose accounts never receive assignments |
 * | `allowManagementAccount` | boolean | `false` | allow assignments in the organization's management account |
 * | `allowAdministratorAccess` | boolean | `false` | allow permission sets with `AdministratorAccess`-like policies |
 * | `maxSessionDurationSeconds` | 3600..43200 | `3600` | session duration of permission sets the driver builds (Identity Center allows 1 to 12 hours); existing permission sets keep theirs, reported with each grant |
 * | `partition` | `aws` \| `aws-us-gov` \| `aws-cn` | `aws` | ARN partition |
 * | `isolation` | `group` \| `permission-set` | `group` | how grants are kept apart (decision 0004): a per-grant Identity Store group, or, where the identity source owns groups through SCIM, a per-grant permission set assigned directly to the user |
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

export const InstanceArnSchema = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:sso:::instance\/(sso)?ins-[a-zA-Z0-9-.]{16}$/,
    'an Identity Center instance ARN',
  );
export const IdentityStoreIdSchema = z
  .string()
  .regex(
    /^(d-[0-9a-f]{10}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/,
    'an identity store id (d-xxxxxxxxxx)',
  );
export const OuIdSchema = z
  .string()
  .regex(
    /^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$/,
    'an OU id (ou-xxxx-yyyyyyyy) or root id (r-xxxx)',
  );

export const AwsIdentityCenterConfigSchema = z.strictObject({
  accountId: AccountIdSchema,
  region: AwsRegionSchema,
  instanceArn: InstanceArnSchema.optional(),
  identityStoreId: IdentityStoreIdSchema.optional(),
  assumeRoleArn: RoleArnSchema.optional(),
  externalId: ExternalIdSchema.optional(),
  portalUrl: z
    .url({ protocol: /^https$/ })
    .max(2048)
    .optional(),
  allowedAccountIds: z.array(AccountIdSchema).min(1).max(10_000).optional(),
  deniedAccountIds: z.array(AccountIdSchema).max(10_000).optional(),
  excludedOuIds: z.array(OuIdSchema).max(1000).optional(),
  allowManagementAccount: z.boolean().default(false),
  allowAdministratorAccess: z.boolean().default(false),
  maxSessionDurationSeconds: z.number().int().min(3600).max(43200).default(3600),
  partition: PartitionSchema.default('aws'),
  isolation: z.enum(['group', 'permission-set']).default('group'),
});
export type AwsIdentityCenterConfig = z.infer<typeof AwsIdentityCenterConfigSchema>;

/** @throws LatchkeyError E_INVALID listing every problem */
export function parseIdentityCenterConfig(raw: unknown): AwsIdentityCenterConfig {
  return parseConfig(AwsIdentityCenterConfigSchema, raw, 'aws-identity-center');
}
