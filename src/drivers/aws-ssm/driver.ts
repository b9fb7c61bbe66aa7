/**
 * `aws-ssm`: EC2 (and hybrid managed-instance) access through Session Manager, by one
 * inline policy per grant on the grantee principal. Revoke deletes it and ends the
 * grantee's open sessions on those instances. See docs/drivers/aws-ssm.md.
 */
import { probe } from '../probe.js';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  DescribeInstanceInformationCommand,
  DescribeSessionsCommand,
  SSMClient,
  TerminateSessionCommand,
  type SessionFilter,
} from '@aws-sdk/client-ssm';
import { IAMClient } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { LatchkeyError, toWireError } from '../../errors.js';
import { awsSend } from '../../aws/call.js';
import { targetOf } from '../../aws/config.js';
import { ServiceLimiters } from '../../aws/limiter.js';
import {
  OrgScopeCache,
  accountConfigFor,
  isAccountLevelError,
  orgScopeOf,
  type OrgScope,
  type RunLimited,
} from '../../aws/org-scope.js';
import {
  MAX_NAMED_RESOURCES,
  assertPolicyFits,
  deleteGrantPolicy,
  getInlinePolicy,
  grantPolicyName,
  parsePrincipal,
  putGrantPolicy,
  serializePolicy,
  sweepExpiredPolicies,
  type Principal,
  granteeInAccount,
} from '../../aws/policy.js';
import type PQueue from 'p-queue';
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
import { parseSsmConfig, type AwsSsmConfig } from './config.js';
import { addSsmInventory, removeSsmStanding, type SsmInventoryDeps } from './inventory.js';
import { discoverOrganization, sweepOrganization } from './organization.js';
import {
  SESSION_DOCUMENTS,
  SSM_PERMISSIONS,
  buildSessionPolicy,
  instanceArn,
  instancesInPolicy,
  parseInstance,
  parseSsmPermission,
  parseSsmTagScope,
  tagScopeInPolicy,
  type ParsedInstance,
  type SsmTagScope,
} from './policy.js';

type Resource = DiscoverOutput['resources'][number];
type Warning = DiscoverOutput['warnings'][number];

export const SSM_GRANT_POLICY_KIND = 'ssm-';

/** True when a session owner ARN belongs to the principal (a user, or any session of a role). */
export function ownedBy(owner: string | undefined, p: Principal): boolean {
  if (!owner) return false;
  if (p.kind === 'user')
    return owner === `arn:${p.partition}:iam::${p.accountId}:user/${p.name}` || owner === p.arn;
  return owner.startsWith(`arn:${p.partition}:sts::${p.accountId}:assumed-role/${p.name}/`);
}

export class AwsSsmDriver implements Driver {
  readonly type = 'aws-ssm';
  readonly kinds = ['discover', 'grant', 'revoke', 'cleanup', 'check'] as const;
  private readonly limiters = new ServiceLimiters();
  private readonly orgCache = new OrgScopeCache();

  constructor(readonly services: DriverServices) {}

  policyName(grantId: string): string {
    return grantPolicyName(this.services.tagPrefix, grantId, SSM_GRANT_POLICY_KIND);
  }

  /** The organization scope in organization mode, else null (src/aws/org-scope.ts). */
  orgScope(cfg: AwsSsmConfig): OrgScope | null {
    return orgScopeOf(this.services, cfg, this.orgCache);
  }

  /** In organization mode: the config of the grantee's account (member role, regions). */
  private async configFor(
    ctx: CallContext,
    principalArn: string | undefined,
    grant: boolean,
  ): Promise<AwsSsmConfig> {
    const cfg = parseSsmConfig(ctx.integration.config);
    const scope = this.orgScope(cfg);
    if (scope === null) return cfg;
    const account = parsePrincipal(principalArn).accountId;
    return accountConfigFor(scope, cfg, account, ctx.signal, { grant });
  }

  private iam(cfg: AwsSsmConfig): IAMClient {
    return this.services.aws.client(IAMClient, targetOf(cfg));
  }

  async grant(ctx: CallContext, params: GrantParams): Promise<GrantOutput> {
    const cfg = await this.configFor(ctx, params.grantee.awsPrincipalArn, true);
    const principal = granteeInAccount(cfg, params.grantee.awsPrincipalArn);
    if (params.resources.length > MAX_NAMED_RESOURCES) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `a grant may name at most ${MAX_NAMED_RESOURCES} instances (got ${params.resources.length})`,
      );
    }
    const tagScope = params.tagScope !== undefined ? parseSsmTagScope(params.tagScope) : undefined;
    const permission = parseSsmPermission(params.permission);
    const instances = params.resources.map((r) => parseInstance(r, cfg));
    if (params.expiresAt !== undefined && new Date(params.expiresAt) <= this.services.now()) {
      throw new LatchkeyError('E_INVALID', `expiresAt ${params.expiresAt} is in the past`);
    }
    const doc = buildSessionPolicy({
      cfg,
      principal,
      instances,
      permission,
      tagScope,
      expiresAt: params.expiresAt,
    });
    const json = serializePolicy(doc);
    assertPolicyFits(principal, json);
    const policyName = this.policyName(params.grantId);
    const applied = await putGrantPolicy(this.iam(cfg), principal, policyName, json, {
      signal: ctx.signal,
    });
    return {
      username: principal.arn,
      access: {
        accountId: cfg.accountId,
        principalArn: principal.arn,
        policyName,
        policySize: applied.size,
        policyLimit: applied.limit,
        documents: [...SESSION_DOCUMENTS[permission]],
        instances: instances.map((i) => ({ instanceId: i.instanceId, region: i.region })),
        ...(tagScope !== undefined ? { tagScope } : {}),
        howTo: 'aws ssm start-session --target <instanceId> --region <region>',
      },
      alreadyGranted: applied.alreadyGranted,
      ...(params.expiresAt !== undefined ? { expiresAt: params.expiresAt } : {}),
    };
  }

  async revoke(ctx: CallContext, params: RevokeParams): Promise<RevokeOutput> {
    const cfg = await this.configFor(ctx, params.grantee.awsPrincipalArn, false);
    const principal = granteeInAccount(cfg, params.grantee.awsPrincipalArn);
    const named = params.resources.map((r) => parseInstance(r, cfg));
    const policyName = this.policyName(params.grantId);
    const iam = this.iam(cfg);
    const o = { signal: ctx.signal };
    // The stored policy names the instances too (a revoke may come without resources).
    const stored = await getInlinePolicy(iam, principal, policyName, o);
    const deleted =
      stored === null ? false : await deleteGrantPolicy(iam, principal, policyName, o);
    const phases: Phase[] = [
      {
        phase: 'delete-policy',
        status: deleted ? 'done' : 'skipped',
        detail: deleted ? `deleted ${policyName}` : `${policyName} was already absent`,
      },
    ];
    const instances = this.mergeInstances(
      cfg,
      named,
      stored === null ? [] : instancesInPolicy(stored),
    );
    // A tag-scoped grant names no instance: its sessions are on the instances with the tag.
    const tag =
      (stored === null ? null : tagScopeInPolicy(stored)) ??
      (params.tagScope !== undefined ? parseSsmTagScope(params.tagScope) : null);
    let terminated = 0;
    if (params.terminateSessions === false) {
      phases.push({
        phase: 'terminate-sessions',
        status: 'skipped',
        detail: 'terminateSessions=false',
      });
    } else {
      if (tag !== null) {
        instances.push(...(await this.instancesWithTag(cfg, tag, ctx.signal, instances)));
      }
      terminated = await this.terminateSessions(cfg, principal, instances, ctx.signal);
      phases.push({
        phase: 'terminate-sessions',
        status: 'done',
        detail: `${terminated} session(s) terminated on ${instances.length} instance(s)`,
      });
    }
    return {
      username: principal.arn,
      revoked: deleted ? [policyName] : [],
      phases,
      sessionsTerminated: terminated,
      alreadyRevoked: !deleted && terminated === 0,
    };
  }

  private mergeInstances(
    cfg: AwsSsmConfig,
    named: ParsedInstance[],
    fromPolicy: string[],
  ): ParsedInstance[] {
    const byArn = new Map(named.map((i) => [i.arn, i]));
    for (const arn of fromPolicy) {
      if (byArn.has(arn)) continue;
      try {
        const type = arn.includes(':managed-instance/') ? 'managed-instance' : 'ec2-instance';
        byArn.set(arn, parseInstance({ type, id: arn }, cfg));
      } catch {
        // an instance outside the integration's regions: its sessions are not ours to end
      }
    }
    return [...byArn.values()];
  }

  /**
   * EC2 instances of the integration's regions that carry the tag (DescribeInstances with a
   * `tag:<key>` filter, paginated), leaving out those already in `known`.
   */
  private async instancesWithTag(
    cfg: AwsSsmConfig,
    tag: SsmTagScope,
    signal: AbortSignal,
    known: ParsedInstance[],
  ): Promise<ParsedInstance[]> {
    const seen = new Set(known.map((i) => i.arn));
    const out: ParsedInstance[] = [];
    for (const region of cfg.regions) {
      const ec2 = this.services.aws.client(EC2Client, targetOf(cfg, region));
      let next: string | undefined;
      do {
        const page = await this.limiters.run(
          'ec2',
          () =>
            awsSend({ service: 'ec2', operation: 'DescribeInstances', signal }, (o) =>
              ec2.send(
                new DescribeInstancesCommand({
                  Filters: [{ Name: `tag:${tag.key}`, Values: [tag.value] }],
                  MaxResults: 1000,
                  ...(next ? { NextToken: next } : {}),
                }),
                o,
              ),
            ),
          signal,
        );
        for (const r of page.Reservations ?? []) {
          for (const inst of r.Instances ?? []) {
            if (!inst.InstanceId) continue;
            const arn = instanceArn(cfg, region, inst.InstanceId);
            if (seen.has(arn)) continue;
            seen.add(arn);
            out.push({ type: 'ec2-instance', arn, region, instanceId: inst.InstanceId });
          }
        }
        next = page.NextToken;
      } while (next);
    }
    return out;
  }

  /** DescribeSessions (Active, by target and owner) → TerminateSession for each; returns the count. */
  private async terminateSessions(
    cfg: AwsSsmConfig,
    principal: Principal,
    instances: ParsedInstance[],
    signal: AbortSignal,
  ): Promise<number> {
    let count = 0;
    for (const inst of instances) {
      const ssm = this.services.aws.client(SSMClient, targetOf(cfg, inst.region));
      const filters: SessionFilter[] = [{ key: 'Target', value: inst.instanceId }];
      // A user's sessions carry its exact ARN; a role's carry assumed-role/<role>/<session>.
      if (principal.kind === 'user') filters.push({ key: 'Owner', value: principal.arn });
      let token: string | undefined;
      const ids: string[] = [];
      do {
        const page = await awsSend(
          { service: 'ssm', operation: 'DescribeSessions', resource: inst.arn, signal },
          (o) =>
            ssm.send(
              new DescribeSessionsCommand({
                State: 'Active',
                Filters: filters,
                MaxResults: 200,
                ...(token ? { NextToken: token } : {}),
              }),
              o,
            ),
        );
        for (const s of page.Sessions ?? []) {
          if (s.SessionId && s.Target === inst.instanceId && ownedBy(s.Owner, principal))
            ids.push(s.SessionId);
        }
        token = page.NextToken;
      } while (token);
      for (const id of ids) {
        try {
          await awsSend(
            { service: 'ssm', operation: 'TerminateSession', resource: id, signal },
            (o) => ssm.send(new TerminateSessionCommand({ SessionId: id }), o),
          );
          count++;
        } catch (err) {
          if (err instanceof LatchkeyError && err.code === 'E_NOT_FOUND') continue;
          throw err;
        }
      }
    }
    return count;
  }

  async sweep(ctx: CallContext): Promise<SweepReport> {
    const cfg = parseSsmConfig(ctx.integration.config);
    const scope = this.orgScope(cfg);
    if (scope) return sweepOrganization(this, cfg, scope, ctx.signal);
    return this.sweepAccount(cfg, this.limiters.for('iam'), ctx.signal);
  }

  /** The expiry sweep of one account: expired grant policies, then their sessions. */
  async sweepAccount(
    cfg: AwsSsmConfig,
    iamLimiter: PQueue,
    signal: AbortSignal,
  ): Promise<SweepReport> {
    const prefix = grantPolicyName(this.services.tagPrefix, '', SSM_GRANT_POLICY_KIND);
    const res = await sweepExpiredPolicies(this.iam(cfg), prefix, this.services.now(), iamLimiter, {
      signal,
    });
    const errors = [...res.errors];
    for (const d of res.deleted) {
      try {
        const principal = parsePrincipal(d.principal.arn);
        const instances = this.mergeInstances(cfg, [], instancesInPolicy(d.document));
        const tag = tagScopeInPolicy(d.document);
        if (tag !== null) {
          instances.push(...(await this.instancesWithTag(cfg, tag, signal, instances)));
        }
        await this.terminateSessions(cfg, principal, instances, signal);
      } catch (err) {
        if (err instanceof LatchkeyError && err.code === 'E_CANCELLED') throw err;
        const w = toWireError(err);
        errors.push({
          item: `${d.principal.arn}#${d.policyName}`,
          code: w.code,
          message: w.message,
        });
      }
    }
    return { revoked: res.deleted.map((d) => `${d.principal.arn}#${d.policyName}`), errors };
  }

  async discover(ctx: CallContext, params?: DiscoverParams): Promise<DiscoverOutput> {
    const cfg = parseSsmConfig(ctx.integration.config);
    const scope = this.orgScope(cfg);
    if (scope) return discoverOrganization(this, cfg, scope, ctx.signal);
    const resources: Resource[] = [];
    const warnings: Warning[] = [];
    const signal = ctx.signal;
    const run: RunLimited = (service, fn) => this.limiters.run(service, fn, signal);
    for (const region of cfg.regions) {
      try {
        resources.push(...(await this.discoverRegion(cfg, region, signal, warnings, run)));
      } catch (err) {
        if ((err instanceof LatchkeyError && err.code === 'E_CANCELLED') || signal.aborted)
          throw err;
        const w = toWireError(err);
        warnings.push({
          code: w.code,
          message: `ssm DescribeInstanceInformation in ${region}: ${w.message}`,
        });
      }
    }
    const out: DiscoverOutput = {
      resources,
      permissions: SSM_PERMISSIONS.map((p) => ({ id: p, name: `Session Manager: ${p}` })),
      warnings,
    };
    if (params?.include?.includes('privileges') === true) {
      await addSsmInventory(out, this.inventoryDeps(cfg, signal));
    }
    return out;
  }

  private inventoryDeps(cfg: AwsSsmConfig, signal: AbortSignal): SsmInventoryDeps {
    return {
      iam: this.iam(cfg),
      cfg,
      tagPrefix: this.services.tagPrefix,
      signal,
      run: (fn) => this.limiters.run('iam', fn, signal),
    };
  }

  /** `cleanup` with `standing`: remove standing StartSession access (inventory.ts). */
  removeStanding(ctx: CallContext, params: StandingCleanupParams): Promise<CleanupOutput> {
    const cfg = parseSsmConfig(ctx.integration.config);
    return removeSsmStanding(params, this.inventoryDeps(cfg, ctx.signal));
  }

  /** The managed instances of one account in one region (EC2 names and tags best effort). */
  async discoverRegion(
    cfg: AwsSsmConfig,
    region: string,
    signal: AbortSignal,
    warnings: Warning[],
    run: RunLimited,
  ): Promise<Resource[]> {
    const t = targetOf(cfg, region);
    const ssm = this.services.aws.client(SSMClient, t);
    const infos: {
      InstanceId: string;
      PlatformType?: string | undefined;
      PlatformName?: string | undefined;
      PingStatus?: string | undefined;
      AgentVersion?: string | undefined;
      ComputerName?: string | undefined;
      IPAddress?: string | undefined;
      ResourceType?: string | undefined;
    }[] = [];
    let token: string | undefined;
    do {
      const page = await run('ssm', () =>
        awsSend({ service: 'ssm', operation: 'DescribeInstanceInformation', signal }, (o) =>
          ssm.send(
            new DescribeInstanceInformationCommand({
              MaxResults: 50,
              ...(token ? { NextToken: token } : {}),
            }),
            o,
          ),
        ),
      );
      for (const i of page.InstanceInformationList ?? []) {
        if (i.InstanceId) infos.push({ ...i, InstanceId: i.InstanceId });
      }
      token = page.NextToken;
    } while (token);

    // EC2 Name and tags, in chunks of instance ids.
    const ec2Tags = new Map<string, Record<string, string>>();
    const ec2Ids = infos.map((i) => i.InstanceId).filter((id) => id.startsWith('i-'));
    if (ec2Ids.length > 0) {
      const ec2 = this.services.aws.client(EC2Client, t);
      try {
        for (let k = 0; k < ec2Ids.length; k += 200) {
          const chunk = ec2Ids.slice(k, k + 200);
          let next: string | undefined;
          do {
            const page = await run('ec2', () =>
              awsSend({ service: 'ec2', operation: 'DescribeInstances', signal }, (o) =>
                ec2.send(
                  new DescribeInstancesCommand({
                    InstanceIds: chunk,
                    ...(next ? { NextToken: next } : {}),
                  }),
                  o,
                ),
              ),
            );
            for (const r of page.Reservations ?? []) {
              for (const inst of r.Instances ?? []) {
                if (!inst.InstanceId) continue;
                const tags: Record<string, string> = {};
                for (const tg of inst.Tags ?? [])
                  if (tg.Key !== undefined) tags[tg.Key] = tg.Value ?? '';
                ec2Tags.set(inst.InstanceId, tags);
              }
            }
            next = page.NextToken;
          } while (next);
        }
      } catch (err) {
        if ((err instanceof LatchkeyError && err.code === 'E_CANCELLED') || signal.aborted)
          throw err;
        if (isAccountLevelError(err)) throw err;
        const w = toWireError(err);
        warnings.push({
          code: w.code,
          message: `ec2 DescribeInstances in ${region} (names and tags): ${w.message}`,
        });
      }
    }

    return infos.map((i) => {
      const tags = ec2Tags.get(i.InstanceId) ?? {};
      const arn = instanceArn(cfg, region, i.InstanceId);
      return {
        id: arn,
        name: tags.Name ?? i.ComputerName ?? i.InstanceId,
        type: i.InstanceId.startsWith('mi-') ? 'managed-instance' : 'ec2-instance',
        metadata: {
          arn,
          instanceId: i.InstanceId,
          region,
          accountId: cfg.accountId,
          tags,
          ...(i.PlatformType ? { platformType: i.PlatformType } : {}),
          ...(i.PlatformName ? { platformName: i.PlatformName } : {}),
          ...(i.PingStatus ? { pingStatus: i.PingStatus } : {}),
          ...(i.AgentVersion ? { agentVersion: i.AgentVersion } : {}),
          ...(i.ComputerName ? { computerName: i.ComputerName } : {}),
          ...(i.IPAddress ? { ipAddress: i.IPAddress } : {}),
        },
      };
    });
  }

  async check(ctx: CallContext): Promise<CheckOutput> {
    const cfg = parseSsmConfig(ctx.integration.config);
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
    for (const region of cfg.regions) {
      await probe(checks, `ssm:DescribeInstanceInformation ${region}`, async () => {
        const out = await awsSend(
          { service: 'ssm', operation: 'DescribeInstanceInformation', signal },
          (o) =>
            this.services.aws
              .client(SSMClient, targetOf(cfg, region))
              .send(new DescribeInstanceInformationCommand({ MaxResults: 5 }), o),
        );
        return `${out.InstanceInformationList?.length ?? 0} managed instance(s) on the first page`;
      });
    }
    await this.orgScope(cfg)?.check(checks, signal);
    return { ok: checks.every((c) => c.ok), checks };
  }

  rotate(): Promise<never> {
    return Promise.reject(
      new LatchkeyError('E_UNSUPPORTED', 'aws-ssm has no credentials to rotate'),
    );
  }

  cleanup(): Promise<never> {
    return Promise.reject(
      new LatchkeyError('E_UNSUPPORTED', 'aws-ssm creates no users to clean up'),
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
