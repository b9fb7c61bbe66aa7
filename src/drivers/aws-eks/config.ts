/**
 * Integration config of `aws-eks` (EKS cluster access through access entries).
 *
 * | field | type | default | meaning |
 * |---|---|---|---|
 * | `accountId` | 12 digits | required | the AWS account of the clusters |
 * | `regions` | string[] (1..30) | required | regions whose clusters are discovered and granted |
 * | `assumeRoleArn` | role ARN | none | role to assume in that account; must match the agent's allowed role pattern |
 * | `externalId` | string | none | external id sent with AssumeRole |
 * | `partition` | `aws` \| `aws-us-gov` \| `aws-cn` | `aws` | ARN partition |
 * | `allowClusterAdmin` | boolean | `false` | allow the `cluster-admin` permission (`AmazonEKSClusterAdminPolicy`) |
 * | `clusters` | cluster names | all | only these clusters are discovered and granted |
 * | `listNamespaces` | boolean | `true` | discover namespaces through the Kubernetes API (the connector's identity needs `list namespaces` on the cluster) |
 * | `namespaces` | cluster name → namespace names | none | namespaces reported for a cluster when they are not listed through the API (off, or failed) |
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

/** EKS cluster names: 1..100 characters, a letter or digit first. */
export const ClusterNameSchema = z
  .string()
  .regex(/^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/, 'an EKS cluster name');

/** A Kubernetes namespace name (DNS-1123 label). */
export const NamespaceSchema = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'a Kubernetes namespace name (DNS-1123 label)');

export const AwsEksConfigSchema = z.strictObject({
  accountId: AccountIdSchema,
  regions: z.array(AwsRegionSchema).min(1).max(30),
  assumeRoleArn: RoleArnSchema.optional(),
  externalId: ExternalIdSchema.optional(),
  partition: PartitionSchema.default('aws'),
  allowClusterAdmin: z.boolean().default(false),
  clusters: z.array(ClusterNameSchema).min(1).max(1000).optional(),
  listNamespaces: z.boolean().default(true),
  namespaces: z.record(ClusterNameSchema, z.array(NamespaceSchema).max(1000)).optional(),
  organization: OrgScopeConfigSchema.optional(),
});
export type AwsEksConfig = z.infer<typeof AwsEksConfigSchema>;

/** @throws LatchkeyError E_INVALID listing every problem */
export function parseEksConfig(raw: unknown): AwsEksConfig {
  return parseConfig(AwsEksConfigSchema, raw, 'aws-eks');
}
