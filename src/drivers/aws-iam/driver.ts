/**
 * `aws-iam`: access to S3 buckets (and their KMS keys), DynamoDB tables, SNS topics, SQS
 * queues, Secrets Manager secrets and IAM roles through one inline policy per grant on
 * the grantee principal. See docs/drivers/aws-iam.md.
 */
import { probe } from '../probe.js';
import {
  DynamoDBClient,
  ListTablesCommand,
  ListTagsOfResourceCommand,
} from '@aws-sdk/client-dynamodb';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  GetPolicyCommand,
  GetRoleCommand,
  IAMClient,
  ListRolesCommand,
  ListRoleTagsCommand,
} from '@aws-sdk/client-iam';
import { DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import {
  GetBucketEncryptionCommand,
  GetBucketLocationCommand,
  GetBucketTaggingCommand,
  ListBucketsCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { ListSecretsCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ListTagsForResourceCommand, ListTopicsCommand, SNSClient } from '@aws-sdk/client-sns';
import { ListQueuesCommand, ListQueueTagsCommand, SQSClient } from '@aws-sdk/client-sqs';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { LatchkeyError, toWireError } from '../../errors.js';
import { awsSend } from '../../aws/call.js';
import { ServiceLimiters } from '../../aws/limiter.js';
import {
  OrgScopeCache,
  accountConfigFor,
  isAccountLevelError,
  orgScopeOf,
  type OrgScope,
} from '../../aws/org-scope.js';
import {
  MAX_NAMED_RESOURCES,
  assertPolicyFits,
  deleteGrantPolicy,
  grantPolicyName,
  putGrantPolicy,
  serializePolicy,
  sweepExpiredPolicies,
  granteeInAccount,
  parsePrincipal,
} from '../../aws/policy.js';
import { targetOf } from '../../aws/config.js';
import { roleNameOf } from '../../aws/index.js';
import type {
  CheckOutput,
  CleanupOutput,
  DiscoverOutput,
  DiscoverParams,
  GrantOutput,
  GrantParams,
  Phase,
  RevokeOutput,
  RevokeParams,
  StandingCleanupParams,
} from '../../protocol/messages.js';
import type { CallContext, Driver, DriverServices, SweepReport } from '../driver.js';
import { addIamInventory, removeIamStanding, type IamInventoryDeps } from './inventory.js';
import { applyBoundary, restoreBoundary } from './boundary.js';
import { parseIamConfig, servedTypes, type AwsIamConfig, type IamResourceType } from './config.js';
import {
  buildGrantPolicy,
  iamPermissions,
  parseResource,
  parseTagScope,
  type ParsedResource,
  type TagScope,
} from './policy.js';
import { discoverOrganization, sweepOrganization } from './organization.js';

type Resource = DiscoverOutput['resources'][number];
type Warning = DiscoverOutput['warnings'][number];

/** Region where global S3 calls (ListBuckets, GetBucketLocation) go. */
function globalS3Region(cfg: AwsIamConfig): string {
  return cfg.partition === 'aws' ? 'us-east-1' : (cfg.regions[0] ?? 'us-east-1');
}

function bucketRegionFromLocation(loc: string | undefined): string {
  if (!loc) return 'us-east-1';
  if (loc === 'EU') return 'eu-west-1';
  return loc;
}

function tagsToRecord(
  tags: { Key?: string | undefined; Value?: string | undefined }[] | undefined,
) {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) if (t.Key !== undefined) out[t.Key] = t.Value ?? '';
  return out;
}

export const IAM_GRANT_POLICY_KIND = '';

export class AwsIamDriver implements Driver {
  readonly type = 'aws-iam';
  readonly kinds = ['discover', 'grant', 'revoke', 'cleanup', 'check'] as const;
  readonly limiters = new ServiceLimiters();
  private readonly orgCache = new OrgScopeCache();

  constructor(readonly services: DriverServices) {}

  policyName(grantId: string): string {
    return grantPolicyName(this.services.tagPrefix, grantId, IAM_GRANT_POLICY_KIND);
  }

  /** The organization scope in organization mode, else null (src/aws/org-scope.ts). */
  orgScope(cfg: AwsIamConfig): OrgScope | null {
    return orgScopeOf(this.services, cfg, this.orgCache);
  }

  /**
   * The config of the grantee's account: in organization mode the grantee's account (its
   * member role and regions), which every resource of the grant must be in.
   */
  private async configFor(
    ctx: CallContext,
    principalArn: string | undefined,
    grant: boolean,
  ): Promise<AwsIamConfig> {
    const cfg = parseIamConfig(ctx.integration.config);
    const scope = this.orgScope(cfg);
    if (scope === null) return cfg;
    const account = parsePrincipal(principalArn).accountId;
    return accountConfigFor(scope, cfg, account, ctx.signal, { grant });
  }

  private iam(cfg: AwsIamConfig): IAMClient {
    return this.services.aws.client(IAMClient, targetOf(cfg));
  }

  /**
   * The connector's own role is never a role to assume through a grant: that would hand
   * the connector's privileges to someone (`granteeInAccount` refuses it as a grantee).
   */
  private refuseConnectorRole(cfg: AwsIamConfig, resources: ParsedResource[]): void {
    const own = cfg.assumeRoleArn !== undefined ? roleNameOf(cfg.assumeRoleArn) : null;
    if (own === null) return;
    const r = resources.find((x) => x.type === 'iam-role' && x.name === own);
    if (r) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `${r.arn} is the connector's own role; it cannot be granted for assumption`,
      );
    }
  }

  // -------------------------------------------------------------------------------------
  // grant

  async grant(ctx: CallContext, params: GrantParams): Promise<GrantOutput> {
    const cfg = await this.configFor(ctx, params.grantee.awsPrincipalArn, true);
    const signal = ctx.signal;
    // 1. Everything that needs no AWS call: principal, guardrail, resources, permission.
    const principal = granteeInAccount(cfg, params.grantee.awsPrincipalArn);
    if (params.resources.length > MAX_NAMED_RESOURCES) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `a grant may name at most ${MAX_NAMED_RESOURCES} resources one by one (got ${params.resources.length}); use a tag scope (params.tagScope)`,
      );
    }
    const resources = params.resources.map((r) => parseResource(r, cfg));
    this.refuseConnectorRole(cfg, resources);
    if (params.expiresAt !== undefined && new Date(params.expiresAt) <= this.services.now()) {
      throw new LatchkeyError('E_INVALID', `expiresAt ${params.expiresAt} is in the past`);
    }
    const policyName = this.policyName(params.grantId);
    const base = {
      resources,
      permission: params.permission,
      tagScope: params.tagScope,
      expiresAt: params.expiresAt,
      cfg,
    };
    // Lower bound (no KMS keys yet): refuse before any AWS call when it cannot fit.
    assertPolicyFits(principal, serializePolicy(buildGrantPolicy({ ...base, kmsKeyArns: [] })));

    // 2. Read-only lookups: KMS keys of buckets, session bounds of roles.
    const tagScopeBuckets =
      params.tagScope !== undefined && parseTagScope(params.tagScope, cfg) === 's3-bucket'
        ? await this.bucketsWithTag(cfg, params.tagScope, signal)
        : [];
    const buckets = [
      ...resources.filter((r) => r.type === 's3-bucket' && r.scope === 'named'),
      ...tagScopeBuckets,
    ];
    const kmsKeyArns: string[] = [];
    for (const b of buckets) {
      const key = await this.bucketKmsKey(cfg, b, signal);
      if (key !== null) kmsKeyArns.push(key);
    }
    const roleSessions: {
      roleArn: string;
      maxSessionDurationSeconds: number;
      sessionMayOutliveRevokeSeconds: number;
    }[] = [];
    for (const r of resources.filter((x) => x.type === 'iam-role')) {
      const out = await awsSend(
        { service: 'iam', operation: 'GetRole', resource: r.arn, signal },
        (o) => this.iam(cfg).send(new GetRoleCommand({ RoleName: r.name }), o),
      );
      const max = out.Role?.MaxSessionDuration ?? 3600;
      if (cfg.maxRoleSessionSeconds !== undefined && max > cfg.maxRoleSessionSeconds) {
        throw new LatchkeyError(
          'E_GUARDRAIL',
          `role ${r.name} allows sessions of ${max}s, longer than maxRoleSessionSeconds (${cfg.maxRoleSessionSeconds}s); lower its MaxSessionDuration`,
        );
      }
      // A role assuming a role is role chaining: AWS caps those sessions at one hour.
      const bound = principal.kind === 'role' ? Math.min(max, 3600) : max;
      roleSessions.push({
        roleArn: r.arn,
        maxSessionDurationSeconds: max,
        sessionMayOutliveRevokeSeconds: bound,
      });
    }

    // 3. The full document, measured with the principal's other inline policies, then one Put.
    const doc = buildGrantPolicy({ ...base, kmsKeyArns, tagScopeBuckets });
    const json = serializePolicy(doc);
    // Permissions boundary (config): checked, or recorded and attached, before the policy.
    const bcfg = cfg.permissionsBoundary;
    const boundary =
      bcfg === undefined
        ? undefined
        : await applyBoundary(this.iam(cfg), principal, bcfg, this.services.tagPrefix, signal);
    let applied;
    try {
      applied = await putGrantPolicy(this.iam(cfg), principal, policyName, json, { signal });
    } catch (err) {
      // Never half-applied: a boundary this grant attached goes back when no grant holds it.
      if (boundary?.mode === 'attach') {
        await restoreBoundary(
          this.iam(cfg),
          principal,
          this.services.tagPrefix,
          this.policyName(''),
          this.services.now(),
          signal,
        ).catch((e: unknown) =>
          ctx.logger.warn(
            { grantId: params.grantId, principal: principal.arn, err: toWireError(e) },
            'aws-iam: boundary not restored after a failed grant; the next revoke or sweep restores it',
          ),
        );
      }
      throw err;
    }
    ctx.logger.info(
      {
        grantId: params.grantId,
        principal: principal.arn,
        policyName,
        alreadyGranted: applied.alreadyGranted,
        size: applied.size,
      },
      'aws-iam grant policy applied',
    );
    return {
      username: principal.arn,
      access: {
        accountId: cfg.accountId,
        principalArn: principal.arn,
        policyName,
        policySize: applied.size,
        policyLimit: applied.limit,
        statements: doc.Statement.length,
        kmsKeys: [...new Set(kmsKeyArns)].sort(),
        ...(roleSessions.length > 0 ? { roleSessions } : {}),
        ...(boundary !== undefined
          ? {
              permissionsBoundary: {
                policyArn: boundary.policyArn,
                mode: boundary.mode,
                ...(boundary.previous !== undefined ? { previous: boundary.previous } : {}),
              },
            }
          : {}),
      },
      alreadyGranted: applied.alreadyGranted,
      ...(params.expiresAt !== undefined ? { expiresAt: params.expiresAt } : {}),
    };
  }

  /**
   * The buckets of the integration (its regions) that carry the tag of an S3 tag scope, at
   * most 100 (the named-resource guardrail: their objects are granted by name). A bucket
   * whose region or tags cannot be read fails the grant: whether it matches is unknown.
   */
  private async bucketsWithTag(
    cfg: AwsIamConfig,
    ts: TagScope,
    signal: AbortSignal,
  ): Promise<ParsedResource[]> {
    const matched: ParsedResource[] = [];
    const failures: LatchkeyError[] = [];
    await this.discoverBuckets(
      cfg,
      signal,
      (service, fn) => this.limiters.run(service, fn, signal),
      (_type, arn, name, region, tags) => {
        if (tags[ts.key] !== ts.value) return;
        matched.push({ type: 's3-bucket', scope: 'named', arn, name, region });
        if (matched.length > MAX_NAMED_RESOURCES) {
          throw new LatchkeyError(
            'E_GUARDRAIL',
            `more than ${MAX_NAMED_RESOURCES} buckets carry ${ts.key}=${ts.value}; an S3 tag scope grants the objects of at most ${MAX_NAMED_RESOURCES} buckets by name`,
          );
        }
      },
      (_id, err) => {
        failures.push(
          err instanceof LatchkeyError
            ? err
            : new LatchkeyError('E_INTERNAL', 'bucket tags not read', { cause: err }),
        );
      },
    );
    if (failures[0] !== undefined) throw failures[0];
    return matched;
  }

  /** The customer-managed KMS key ARN of an SSE-KMS bucket, or null (SSE-S3, AWS-managed key). */
  private async bucketKmsKey(
    cfg: AwsIamConfig,
    b: ParsedResource,
    signal: AbortSignal,
  ): Promise<string | null> {
    const loc = await awsSend(
      { service: 's3', operation: 'GetBucketLocation', resource: b.arn, signal },
      (o) =>
        this.services.aws
          .client(S3Client, targetOf(cfg, globalS3Region(cfg)))
          .send(new GetBucketLocationCommand({ Bucket: b.name }), o),
    );
    const region = bucketRegionFromLocation(loc.LocationConstraint);
    let rules;
    try {
      const enc = await awsSend(
        {
          service: 's3',
          operation: 'GetBucketEncryption',
          action: 's3:GetEncryptionConfiguration',
          resource: b.arn,
          signal,
        },
        (o) =>
          this.services.aws
            .client(S3Client, targetOf(cfg, region))
            .send(new GetBucketEncryptionCommand({ Bucket: b.name }), o),
      );
      rules = enc.ServerSideEncryptionConfiguration?.Rules ?? [];
    } catch (err) {
      if (
        err instanceof LatchkeyError &&
        err.details?.awsError === 'ServerSideEncryptionConfigurationNotFoundError'
      ) {
        return null;
      }
      throw err;
    }
    for (const rule of rules) {
      const d = rule.ApplyServerSideEncryptionByDefault;
      if (!d?.SSEAlgorithm?.startsWith('aws:kms')) continue;
      const keyId = d.KMSMasterKeyID;
      if (!keyId) return null; // AWS-managed aws/s3 key: its key policy already allows S3 use.
      if (/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\//.test(keyId)) return keyId;
      if (/^[0-9a-f-]{36}$/i.test(keyId) || /^mrk-[0-9a-f]{32}$/i.test(keyId)) {
        return `arn:${cfg.partition}:kms:${region}:${cfg.accountId}:key/${keyId}`;
      }
      // An alias: resolve to the key ARN (policies on aliases do not cover kms:Decrypt).
      const key = await awsSend(
        { service: 'kms', operation: 'DescribeKey', resource: keyId, signal },
        (o) =>
          this.services.aws
            .client(KMSClient, targetOf(cfg, region))
            .send(new DescribeKeyCommand({ KeyId: keyId }), o),
      );
      const arn = key.KeyMetadata?.Arn;
      if (!arn)
        throw new LatchkeyError('E_INTERNAL', `KMS DescribeKey of ${keyId} returned no ARN`);
      return arn;
    }
    return null;
  }

  // -------------------------------------------------------------------------------------
  // revoke

  async revoke(ctx: CallContext, params: RevokeParams): Promise<RevokeOutput> {
    const cfg = await this.configFor(ctx, params.grantee.awsPrincipalArn, false);
    const principal = granteeInAccount(cfg, params.grantee.awsPrincipalArn);
    const policyName = this.policyName(params.grantId);
    const deleted = await deleteGrantPolicy(this.iam(cfg), principal, policyName, {
      signal: ctx.signal,
    });
    const phases: Phase[] = [
      {
        phase: 'delete-policy',
        status: deleted ? 'done' : 'skipped',
        detail: deleted ? `deleted ${policyName}` : `${policyName} was already absent`,
      },
    ];
    let restored = false;
    if (cfg.permissionsBoundary?.mode === 'attach') {
      // After the policy is gone; a crash in between is finished by the re-delivered revoke.
      const r = await restoreBoundary(
        this.iam(cfg),
        principal,
        this.services.tagPrefix,
        this.policyName(''),
        this.services.now(),
        ctx.signal,
      );
      restored = r.status === 'restored';
      phases.push({
        phase: 'restore-boundary',
        status: r.status === 'restored' ? 'done' : 'skipped',
        detail:
          r.status === 'restored'
            ? `permissions boundary restored to ${r.to}`
            : r.status === 'kept'
              ? r.reason
              : 'no boundary recorded',
      });
    }
    return {
      username: principal.arn,
      revoked: deleted ? [policyName] : [],
      phases,
      sessionsTerminated: 0,
      alreadyRevoked: !deleted && !restored,
    };
  }

  // -------------------------------------------------------------------------------------
  // sweep

  async sweep(ctx: CallContext): Promise<SweepReport> {
    const cfg = parseIamConfig(ctx.integration.config);
    const scope = this.orgScope(cfg);
    if (scope) return sweepOrganization(this, cfg, scope, ctx.signal);
    const prefix = grantPolicyName(this.services.tagPrefix, '', IAM_GRANT_POLICY_KIND);
    const res = await sweepExpiredPolicies(
      this.iam(cfg),
      prefix,
      this.services.now(),
      this.limiters.for('iam'),
      {
        signal: ctx.signal,
        // Attach mode: the boundary goes back before the expired policy is deleted, so a
        // crash in between leaves the expired policy for the next sweep to find again.
        ...(cfg.permissionsBoundary?.mode === 'attach'
          ? {
              beforeDelete: async (p) => {
                await restoreBoundary(
                  this.iam(cfg),
                  p,
                  this.services.tagPrefix,
                  prefix,
                  this.services.now(),
                  ctx.signal,
                );
              },
            }
          : {}),
      },
    );
    return {
      revoked: res.deleted.map((d) => `${d.principal.arn}#${d.policyName}`),
      errors: res.errors,
    };
  }

  // -------------------------------------------------------------------------------------
  // discover

  private inventoryDeps(ctx: CallContext, cfg: AwsIamConfig): IamInventoryDeps {
    return {
      iam: this.iam(cfg),
      cfg,
      tagPrefix: this.services.tagPrefix,
      signal: ctx.signal,
      run: (fn) => this.limiters.run('iam', fn, ctx.signal),
    };
  }

  /** `cleanup` with `standing`: remove standing policy access (inventory.ts). */
  removeStanding(ctx: CallContext, params: StandingCleanupParams): Promise<CleanupOutput> {
    const cfg = parseIamConfig(ctx.integration.config);
    return removeIamStanding(params, this.inventoryDeps(ctx, cfg));
  }

  async discover(ctx: CallContext, params?: DiscoverParams): Promise<DiscoverOutput> {
    const cfg = parseIamConfig(ctx.integration.config);
    const scope = this.orgScope(cfg);
    if (scope) return discoverOrganization(this, cfg, scope, ctx.signal);
    const signal = ctx.signal;
    const { resources, warnings } = await this.discoverAccount(
      cfg,
      signal,
      (service, fn) => this.limiters.run(service, fn, signal),
      { global: true, regions: cfg.regions },
    );
    const out: DiscoverOutput = { resources, permissions: iamPermissions(cfg), warnings };
    if (params?.include?.includes('privileges') === true) {
      await addIamInventory(out, this.inventoryDeps(ctx, cfg));
    }
    return out;
  }

  /**
   * The resources of one account: its global ones (S3 buckets, IAM roles) when `part.global`,
   * and the regional ones of `part.regions`. A failing listing is a warning, except (under
   * `part.strict`, the organization fan-out) one about reaching the account at all, which
   * is thrown so that the account is reported once as unreachable.
   */
  async discoverAccount(
    cfg: AwsIamConfig,
    signal: AbortSignal,
    run: <T>(service: string, fn: () => Promise<T>) => Promise<T>,
    part: { global: boolean; regions: readonly string[]; strict?: boolean },
  ): Promise<{ resources: Resource[]; warnings: Warning[] }> {
    const types = servedTypes(cfg);
    const resources: Resource[] = [];
    const warnings: Warning[] = [];
    const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        if (err instanceof LatchkeyError && err.code === 'E_CANCELLED') throw err;
        if (signal.aborted)
          throw new LatchkeyError('E_CANCELLED', 'discover aborted', { cause: err });
        if (part.strict === true && isAccountLevelError(err)) throw err;
        const w = toWireError(err);
        warnings.push({ code: w.code, message: `${what}: ${w.message}` });
      }
    };
    const tagWarning = (id: string, err: unknown) => {
      const w = toWireError(err);
      warnings.push({ resourceId: id, code: w.code, message: `tags not read: ${w.message}` });
    };
    const push = (
      type: IamResourceType,
      arn: string,
      name: string,
      region: string | null,
      tags: Record<string, string>,
      extra: Record<string, unknown> = {},
    ) =>
      resources.push({
        id: arn,
        name,
        type,
        metadata: { arn, region, accountId: cfg.accountId, tags, ...extra },
      });

    if (part.global && types.includes('s3-bucket'))
      await attempt('s3 ListBuckets', () =>
        this.discoverBuckets(cfg, signal, run, push, tagWarning),
      );
    for (const region of part.regions) {
      const t = targetOf(cfg, region);
      if (types.includes('dynamodb-table')) {
        await attempt(`dynamodb ListTables in ${region}`, async () => {
          const ddb = this.services.aws.client(DynamoDBClient, t);
          let start: string | undefined;
          do {
            const page = await run('dynamodb', () =>
              awsSend({ service: 'dynamodb', operation: 'ListTables', signal }, (o) =>
                ddb.send(new ListTablesCommand(start ? { ExclusiveStartTableName: start } : {}), o),
              ),
            );
            for (const name of page.TableNames ?? []) {
              const arn = `arn:${cfg.partition}:dynamodb:${region}:${cfg.accountId}:table/${name}`;
              let tags: Record<string, string> = {};
              try {
                const tg = await run('dynamodb', () =>
                  awsSend(
                    { service: 'dynamodb', operation: 'ListTagsOfResource', resource: arn, signal },
                    (o) => ddb.send(new ListTagsOfResourceCommand({ ResourceArn: arn }), o),
                  ),
                );
                tags = tagsToRecord(tg.Tags);
              } catch (err) {
                tagWarning(arn, err);
              }
              push('dynamodb-table', arn, name, region, tags);
            }
            start = page.LastEvaluatedTableName;
          } while (start);
        });
      }
      if (types.includes('sns-topic')) {
        await attempt(`sns ListTopics in ${region}`, async () => {
          const sns = this.services.aws.client(SNSClient, t);
          let token: string | undefined;
          do {
            const page = await run('sns', () =>
              awsSend({ service: 'sns', operation: 'ListTopics', signal }, (o) =>
                sns.send(new ListTopicsCommand(token ? { NextToken: token } : {}), o),
              ),
            );
            for (const topic of page.Topics ?? []) {
              const arn = topic.TopicArn;
              if (!arn) continue;
              let tags: Record<string, string> = {};
              try {
                const tg = await run('sns', () =>
                  awsSend(
                    { service: 'sns', operation: 'ListTagsForResource', resource: arn, signal },
                    (o) => sns.send(new ListTagsForResourceCommand({ ResourceArn: arn }), o),
                  ),
                );
                tags = tagsToRecord(tg.Tags);
              } catch (err) {
                tagWarning(arn, err);
              }
              push('sns-topic', arn, arn.split(':').pop() ?? arn, region, tags);
            }
            token = page.NextToken;
          } while (token);
        });
      }
      if (types.includes('sqs-queue')) {
        await attempt(`sqs ListQueues in ${region}`, async () => {
          const sqs = this.services.aws.client(SQSClient, t);
          let token: string | undefined;
          do {
            const page = await run('sqs', () =>
              awsSend({ service: 'sqs', operation: 'ListQueues', signal }, (o) =>
                sqs.send(
                  new ListQueuesCommand({
                    MaxResults: 1000,
                    ...(token ? { NextToken: token } : {}),
                  }),
                  o,
                ),
              ),
            );
            for (const url of page.QueueUrls ?? []) {
              const name = url.split('/').pop() ?? url;
              const arn = `arn:${cfg.partition}:sqs:${region}:${cfg.accountId}:${name}`;
              let tags: Record<string, string> = {};
              try {
                const tg = await run('sqs', () =>
                  awsSend(
                    { service: 'sqs', operation: 'ListQueueTags', resource: arn, signal },
                    (o) => sqs.send(new ListQueueTagsCommand({ QueueUrl: url }), o),
                  ),
                );
                tags = { ...(tg.Tags ?? {}) };
              } catch (err) {
                tagWarning(arn, err);
              }
              push('sqs-queue', arn, name, region, tags, { queueUrl: url });
            }
            token = page.NextToken;
          } while (token);
        });
      }
      if (types.includes('secretsmanager-secret')) {
        await attempt(`secretsmanager ListSecrets in ${region}`, async () => {
          const sm = this.services.aws.client(SecretsManagerClient, t);
          let token: string | undefined;
          do {
            const page = await run('secretsmanager', () =>
              awsSend({ service: 'secretsmanager', operation: 'ListSecrets', signal }, (o) =>
                sm.send(
                  new ListSecretsCommand({
                    MaxResults: 100,
                    ...(token ? { NextToken: token } : {}),
                  }),
                  o,
                ),
              ),
            );
            for (const s of page.SecretList ?? []) {
              if (!s.ARN) continue;
              push('secretsmanager-secret', s.ARN, s.Name ?? s.ARN, region, tagsToRecord(s.Tags), {
                ...(s.KmsKeyId ? { kmsKeyId: s.KmsKeyId } : {}),
              });
            }
            token = page.NextToken;
          } while (token);
        });
      }
      if (types.includes('ec2-instance')) {
        await attempt(`ec2 DescribeInstances in ${region}`, async () => {
          const ec2 = this.services.aws.client(EC2Client, t);
          let token: string | undefined;
          do {
            const page = await run('ec2', () =>
              awsSend({ service: 'ec2', operation: 'DescribeInstances', signal }, (o) =>
                ec2.send(
                  new DescribeInstancesCommand({
                    MaxResults: 1000,
                    ...(token ? { NextToken: token } : {}),
                  }),
                  o,
                ),
              ),
            );
            for (const r of page.Reservations ?? []) {
              for (const inst of r.Instances ?? []) {
                const id = inst.InstanceId;
                if (!id || inst.State?.Name === 'terminated') continue;
                const arn = `arn:${cfg.partition}:ec2:${region}:${cfg.accountId}:instance/${id}`;
                const tags = tagsToRecord(inst.Tags);
                push('ec2-instance', arn, tags.Name ?? id, region, tags, {
                  instanceId: id,
                  ...(inst.State?.Name ? { state: inst.State.Name } : {}),
                  ...(inst.InstanceType ? { instanceType: inst.InstanceType } : {}),
                });
              }
            }
            token = page.NextToken;
          } while (token);
        });
      }
    }
    if (part.global && types.includes('iam-role')) {
      await attempt('iam ListRoles', async () => {
        const iam = this.iam(cfg);
        let marker: string | undefined;
        for (;;) {
          const page = await run('iam', () =>
            awsSend({ service: 'iam', operation: 'ListRoles', signal }, (o) =>
              iam.send(new ListRolesCommand(marker ? { Marker: marker } : {}), o),
            ),
          );
          for (const role of page.Roles ?? []) {
            if (!role.Arn || !role.RoleName) continue;
            if ((role.Path ?? '').startsWith('/aws-service-role/')) continue;
            let tags: Record<string, string> = {};
            try {
              const name = role.RoleName;
              const tg = await run('iam', () =>
                awsSend(
                  { service: 'iam', operation: 'ListRoleTags', resource: role.Arn, signal },
                  (o) => iam.send(new ListRoleTagsCommand({ RoleName: name }), o),
                ),
              );
              tags = tagsToRecord(tg.Tags);
            } catch (err) {
              tagWarning(role.Arn, err);
            }
            push('iam-role', role.Arn, role.RoleName, null, tags, {
              maxSessionDurationSeconds: role.MaxSessionDuration ?? 3600,
            });
          }
          if (!page.IsTruncated || !page.Marker) break;
          marker = page.Marker;
        }
      });
    }
    return { resources, warnings };
  }

  private async discoverBuckets(
    cfg: AwsIamConfig,
    signal: AbortSignal,
    run: <T>(service: string, fn: () => Promise<T>) => Promise<T>,
    push: (
      type: IamResourceType,
      arn: string,
      name: string,
      region: string | null,
      tags: Record<string, string>,
    ) => void,
    tagWarning: (id: string, err: unknown) => void,
  ): Promise<void> {
    const s3Global = this.services.aws.client(S3Client, targetOf(cfg, globalS3Region(cfg)));
    let token: string | undefined;
    do {
      const page = await run('s3', () =>
        awsSend(
          { service: 's3', operation: 'ListBuckets', action: 's3:ListAllMyBuckets', signal },
          (o) =>
            s3Global.send(
              new ListBucketsCommand({
                MaxBuckets: 1000,
                ...(token ? { ContinuationToken: token } : {}),
              }),
              o,
            ),
        ),
      );
      for (const b of page.Buckets ?? []) {
        const name = b.Name;
        if (!name) continue;
        const arn = `arn:${cfg.partition}:s3:::${name}`;
        let region = b.BucketRegion;
        if (!region) {
          try {
            const loc = await run('s3', () =>
              awsSend(
                { service: 's3', operation: 'GetBucketLocation', resource: arn, signal },
                (o) => s3Global.send(new GetBucketLocationCommand({ Bucket: name }), o),
              ),
            );
            region = bucketRegionFromLocation(loc.LocationConstraint);
          } catch (err) {
            tagWarning(arn, err);
            continue;
          }
        }
        if (!cfg.regions.includes(region)) continue;
        let tags: Record<string, string> = {};
        try {
          const s3 = this.services.aws.client(S3Client, targetOf(cfg, region));
          const tg = await run('s3', () =>
            awsSend(
              {
                service: 's3',
                operation: 'GetBucketTagging',
                action: 's3:GetBucketTagging',
                resource: arn,
                signal,
              },
              (o) => s3.send(new GetBucketTaggingCommand({ Bucket: name }), o),
            ),
          );
          tags = tagsToRecord(tg.TagSet);
        } catch (err) {
          if (!(err instanceof LatchkeyError && err.details?.awsError === 'NoSuchTagSet'))
            tagWarning(arn, err);
        }
        push('s3-bucket', arn, name, region, tags);
      }
      token = page.ContinuationToken;
    } while (token);
  }

  // -------------------------------------------------------------------------------------
  // check

  async check(ctx: CallContext): Promise<CheckOutput> {
    const cfg = parseIamConfig(ctx.integration.config);
    const checks: CheckOutput['checks'] = [];
    const signal = ctx.signal;
    await probe(checks, 'identity', async () => {
      const id = await awsSend({ service: 'sts', operation: 'GetCallerIdentity', signal }, (o) =>
        this.services.aws
          .client(STSClient, targetOf(cfg))
          .send(new GetCallerIdentityCommand({}), o),
      );
      if (id.Account !== cfg.accountId) {
        throw new LatchkeyError(
          'E_INVALID',
          `credentials belong to account ${id.Account ?? 'unknown'}, not ${cfg.accountId}`,
        );
      }
      return `connected as ${id.Arn ?? 'unknown'}`;
    });
    await probe(checks, 'iam:ListRoles', async () => {
      await awsSend({ service: 'iam', operation: 'ListRoles', signal }, (o) =>
        this.iam(cfg).send(new ListRolesCommand({ MaxItems: 1 }), o),
      );
      return 'allowed';
    });
    const boundary = cfg.permissionsBoundary;
    if (boundary !== undefined) {
      await probe(checks, 'permissionsBoundary', async () => {
        await awsSend(
          { service: 'iam', operation: 'GetPolicy', resource: boundary.policyArn, signal },
          (o) => this.iam(cfg).send(new GetPolicyCommand({ PolicyArn: boundary.policyArn }), o),
        );
        return boundary.mode === 'attach'
          ? `${boundary.policyArn} exists; grantees carry it while a grant lasts, then get their own back. It must deny them iam:TagRole/UntagRole/TagUser/UntagUser and boundary changes on themselves (docs/drivers/aws-iam.md)`
          : `${boundary.policyArn} exists; only principals bounded by it receive grants`;
      });
    }
    await this.orgScope(cfg)?.check(checks, signal);
    return { ok: checks.every((c) => c.ok), checks };
  }

  rotate(): Promise<never> {
    return Promise.reject(
      new LatchkeyError('E_UNSUPPORTED', 'aws-iam has no credentials to rotate'),
    );
  }

  cleanup(): Promise<never> {
    return Promise.reject(
      new LatchkeyError('E_UNSUPPORTED', 'aws-iam creates no users to clean up'),
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
