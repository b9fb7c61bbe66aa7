/**
 * Config pieces shared by the AWS drivers: zod schemas of AWS identifiers, strict parsing
 * of an integration's config into `E_INVALID`, and the `AwsTarget` of an integration.
 */
import { z } from 'zod';
import { LatchkeyError } from '../errors.js';
import type { AwsTarget } from './types.js';

export const AwsRegionSchema = z
  .string()
  .regex(/^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$/, 'an AWS region such as eu-west-1');
export const AccountIdSchema = z.string().regex(/^\d{12}$/, '12 digits');
export const RoleArnSchema = z
  .string()
  .regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/, 'an IAM role ARN');
export const ExternalIdSchema = z
  .string()
  .min(2)
  .max(1224)
  .regex(/^[\w+=,.@:/-]+$/, 'letters, digits and +=,.@:/-');
export const PartitionSchema = z.enum(['aws', 'aws-us-gov', 'aws-cn']);

/** An IAM role name (no path). */
export const RoleNameSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[\w+=,.@-]+$/, 'an IAM role name (letters, digits and +=,.@_-)');

/** An organization root (`r-…`) or organizational unit (`ou-…-…`) id. */
export const OuIdSchema = z
  .string()
  .regex(
    /^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$/,
    'an OU id (ou-xxxx-yyyyyyyy) or root id (r-xxxx)',
  );

/** Describe zod issues without echoing values. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/** @throws LatchkeyError E_INVALID listing every problem */
export function parseConfig<S extends z.ZodType>(
  schema: S,
  raw: unknown,
  type: string,
): z.infer<S> {
  const r = schema.safeParse(raw);
  if (!r.success) {
    throw new LatchkeyError(
      'E_INVALID',
      `invalid ${type} integration config: ${describeIssues(r.error)}`,
    );
  }
  return r.data;
}

/** The factory target of an integration in one region (default: its first region). */
export function targetOf(
  cfg: {
    regions?: string[];
    region?: string;
    assumeRoleArn?: string | undefined;
    externalId?: string | undefined;
  },
  region?: string,
): AwsTarget {
  const r = region ?? cfg.region ?? cfg.regions?.[0] ?? 'us-east-1';
  return {
    region: r,
    ...(cfg.assumeRoleArn !== undefined ? { assumeRoleArn: cfg.assumeRoleArn } : {}),
    ...(cfg.externalId !== undefined ? { externalId: cfg.externalId } : {}),
  };
}
