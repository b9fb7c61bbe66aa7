/**
 * Integration config of `aws-discovery` (the `integration.config` object of a command).
 *
 * | field | type | default | meaning |
 * |---|---|---|---|
 * | `connectorId` | id | required | this connector's id; only databases whose `<tagPrefix>-connector-id` tag equals it are discovered |
 * | `regions` | string[] (1..40) | required | regions searched in every account (Resource Explorer results outside them are ignored) |
 * | `organization.enabled` | boolean | required in `organization` | walk the AWS Organization's member accounts |
 * | `organization.memberRoleName` | role name | required in `organization` | role assumed in each member account (`arn:<partition>:iam::<account>:role/<name>`); must match the agent's allowed role pattern |
 * | `organization.excludedOuIds` | `ou-…` / `r-…` ids | none | OUs (with every OU and account under them) that are not walked |
 * | `organization.excludedAccountIds` | 12-digit ids | none | accounts that are not walked |
 * | `organization.externalId` | string | none | external id sent when assuming the member role |
 * | `useResourceExplorer` | boolean | `true` | use an account's Resource Explorer aggregator index to find databases across regions; per-region listing when absent |
 * | `assumeRoleArn` | role ARN | none | role assumed for the home account (and Organizations calls) |
 * | `externalId` | string | none | external id sent with `assumeRoleArn` |
 * | `caBundleFile` | path | none | PEM CA bundle file (e.g. the RDS global bundle) put as `caBundleFile` into discovered `postgres` and `redshift` configs |
 * | `concurrency` | 1..16 | `4` | accounts discovered at once |
 */
import { z } from 'zod';
import {
  AccountIdSchema,
  AwsRegionSchema,
  ExternalIdSchema,
  OuIdSchema,
  RoleArnSchema,
  RoleNameSchema,
  parseConfig,
} from '../../aws/config.js';

export const ConnectorIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:-]+$/, 'only letters, digits and . _ : -');

/** Shared with the organization mode of the other AWS drivers (`src/aws/config.ts`). */
export { OuIdSchema, RoleNameSchema } from '../../aws/config.js';

export const OrganizationConfigSchema = z.strictObject({
  enabled: z.boolean(),
  memberRoleName: RoleNameSchema,
  excludedOuIds: z.array(OuIdSchema).max(1000).optional(),
  excludedAccountIds: z.array(AccountIdSchema).max(10_000).optional(),
  externalId: ExternalIdSchema.optional(),
});

export const AwsDiscoveryConfigSchema = z.strictObject({
  connectorId: ConnectorIdSchema,
  regions: z.array(AwsRegionSchema).min(1).max(40),
  organization: OrganizationConfigSchema.optional(),
  useResourceExplorer: z.boolean().default(true),
  assumeRoleArn: RoleArnSchema.optional(),
  externalId: ExternalIdSchema.optional(),
  caBundleFile: z.string().min(1).max(4096).optional(),
  concurrency: z.number().int().min(1).max(16).default(4),
});
export type AwsDiscoveryConfig = z.infer<typeof AwsDiscoveryConfigSchema>;
export type AwsDiscoveryConfigInput = z.input<typeof AwsDiscoveryConfigSchema>;

/** @throws LatchkeyError E_INVALID listing every problem */
export function parseDiscoveryConfig(raw: unknown): AwsDiscoveryConfig {
  const cfg = parseConfig(AwsDiscoveryConfigSchema, raw, 'aws-discovery');
  return Object.freeze({
    ...cfg,
    regions: [...new Set(cfg.regions)],
  });
}
