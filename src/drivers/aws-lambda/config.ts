/**
 * Integration config of `aws-lambda` (custom integrations backed by a customer function).
 *
 * | field | type | default | meaning |
 * |---|---|---|---|
 * | `functionArn` | Lambda function ARN (optionally with `:alias` or `:version`) | one of `functionArn`, `functionName` | the function invoked |
 * | `functionName` | function name (optionally `name:alias` or `name:version`) | one of `functionArn`, `functionName` | the function of that name in `region`, in the account of the connector's credentials (or of `assumeRoleArn`) |
 * | `region` | region | required | the function's region (must match the ARN) |
 * | `resourceType` | string | `custom` | sent as `resource_type` with `list-resources` (and `reset-credentials`); the type of resources that come back without one |
 * | `assumeRoleArn` | role ARN | none | role to assume (another account); must match the allowed role pattern |
 * | `externalId` | string | none | external id sent with AssumeRole |
 * | `customParameters` | object | `{}` | passed as `custom_parameters` with every event |
 * | `maxResponseBytes` | 1..6291456 | 1048576 | larger answers are refused (`E_REMOTE`) |
 * | `tagCacheSeconds` | 0..3600 | 300 | how long a positive `<prefix>-connector-access=true` check is trusted |
 * | `organization` | object | none | organization mode (`OrgScopeConfigSchema`, src/aws/org-scope.ts): the function of the same name in every member account and region, invoked with that account's member role; `functionArn` names it in the home account |
 * | `regions` | string[] (1..30) | `[region]` | organization mode: regions the function is looked for in |
 */
import { z } from 'zod';
import { AwsRegionSchema, ExternalIdSchema, RoleArnSchema, parseConfig } from '../../aws/config.js';
import { OrgScopeConfigSchema } from '../../aws/org-scope.js';

export const FUNCTION_ARN =
  /^arn:aws[a-z-]*:lambda:([a-z0-9-]+):(\d{12}):function:([A-Za-z0-9_-]{1,64})(?::([A-Za-z0-9_$-]{1,128}))?$/;
/** A bare function name with an optional `:alias` or `:version` qualifier. */
export const FUNCTION_NAME = /^([A-Za-z0-9_-]{1,64})(?::([A-Za-z0-9_$-]{1,128}))?$/;

export const AwsLambdaConfigSchema = z
  .strictObject({
    functionArn: z.string().regex(FUNCTION_ARN, 'a Lambda function ARN').optional(),
    functionName: z
      .string()
      .regex(FUNCTION_NAME, 'a Lambda function name, optionally with :alias or :version')
      .optional(),
    region: AwsRegionSchema,
    resourceType: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[\w.:/-]+$/, 'letters, digits and _.:/-')
      .default('custom'),
    assumeRoleArn: RoleArnSchema.optional(),
    externalId: ExternalIdSchema.optional(),
    customParameters: z.record(z.string(), z.unknown()).default({}),
    maxResponseBytes: z
      .number()
      .int()
      .min(1)
      .max(6 * 1024 * 1024)
      .default(1024 * 1024),
    tagCacheSeconds: z.number().int().min(0).max(3600).default(300),
    organization: OrgScopeConfigSchema.optional(),
    regions: z.array(AwsRegionSchema).min(1).max(30).optional(),
  })
  .refine((c) => (c.functionArn === undefined) !== (c.functionName === undefined), {
    message: 'give exactly one of functionArn and functionName (with region)',
    path: ['functionArn'],
  })
  .refine(
    (c) => c.functionArn === undefined || FUNCTION_ARN.exec(c.functionArn)?.[1] === c.region,
    {
      message: 'region must be the region of functionArn',
      path: ['region'],
    },
  )
  .refine((c) => c.organization === undefined || c.functionArn !== undefined, {
    message: 'organization mode names the function by functionArn (in the home account)',
    path: ['functionArn'],
  });
export type AwsLambdaConfig = z.infer<typeof AwsLambdaConfigSchema>;

export function parseLambdaConfig(raw: unknown): AwsLambdaConfig {
  return parseConfig(AwsLambdaConfigSchema, raw, 'aws-lambda');
}

/** The ARN of a function named in `region` of `account` (with its qualifier, if any). */
export function functionArnOf(
  partition: string,
  region: string,
  account: string,
  functionName: string,
): string {
  return `arn:${partition}:lambda:${region}:${account}:function:${functionName}`;
}

/** The function ARN without alias or version (what ListTags accepts). */
export function unqualifiedArn(functionArn: string): string {
  const m = FUNCTION_ARN.exec(functionArn);
  if (!m) return functionArn;
  return functionArn.slice(0, functionArn.length - (m[4] !== undefined ? m[4].length + 1 : 0));
}
