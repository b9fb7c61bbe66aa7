/**
 * Organization scope: the one layer every AWS driver uses to work across the member
 * accounts of an AWS Organization (`aws-iam`, `aws-ssm`, `aws-lambda`, `aws-eks`).
 *
 * Glossary
 * - **home account**: the account of the integration's own identity (the base credentials,
 *   or `assumeRoleArn`). Organizations is called from there (management or delegated
 *   administrator account), and its resources are reached with that identity, never with
 *   a member role.
 * - **member role**: `arn:<partition>:iam::<account>:role/<memberRoleName>`, assumed in
 *   every other account. The name must match the agent's allowed role pattern (the client
 *   factory refuses anything else, `E_GUARDRAIL`); the factory caches its credentials per
 *   account until shortly before they expire and refreshes them on `ExpiredToken`.
 * - **in scope**: an ACTIVE account of the organization that is neither excluded nor under
 *   an excluded OU. Grants are refused (`E_GUARDRAIL`) for an account out of scope.
 * - **unit**: one (account, region) of a fan-out. `regions: 'configured'` uses the
 *   integration's `regions`; `'all-enabled'` asks each account which regions it has enabled
 *   (`ec2:DescribeRegions`, opted-in and default regions only).
 * - **unreachable**: an account whose member role cannot be assumed (or whose regions cannot
 *   be listed) is one warning naming the reason; a failing region is one warning for that
 *   region. Neither fails the whole fan-out; only the organization listing itself does.
 *
 * Limits: at most `concurrency` accounts at once, at most `regionConcurrency` regions of one
 * account at once, and every AWS call of a unit goes through a per-(account, service)
 * limiter (`src/aws/limiter.ts`: AWS throttles per account, so one busy account does not
 * slow the others). Limiters of an account are dropped when it is done, so memory is
 * bounded by `concurrency`, not by the size of the organization.
 */
import { DescribeRegionsCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  ListAccountsCommand,
  ListParentsCommand,
  OrganizationsClient,
  type Account,
} from '@aws-sdk/client-organizations';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { z } from 'zod';
import { LatchkeyError, toWireError } from '../errors.js';
import { probe } from '../drivers/probe.js';
import type { CheckOutput, DiscoverOutput } from '../protocol/messages.js';
import { awsSend } from './call.js';
import { AccountIdSchema, ExternalIdSchema, OuIdSchema, RoleNameSchema } from './config.js';
import { ServiceLimiters, type LimiterOptions } from './limiter.js';
import {
  listOrganizationAccounts,
  memberRoleArn,
  type OrganizationAccount,
} from './organization.js';
import type { AwsClientFactory, AwsTarget } from './types.js';

type Warning = DiscoverOutput['warnings'][number];

/** The `organization` block of an AWS driver's config. */
export const OrgScopeConfigSchema = z.strictObject({
  /** Role assumed in each member account; must match the agent's allowed role pattern. */
  memberRoleName: RoleNameSchema,
  /** External id sent when assuming the member role. */
  externalId: ExternalIdSchema.optional(),
  /** OUs (or roots) not walked, with every OU and account under them. */
  excludedOuIds: z.array(OuIdSchema).max(1000).optional(),
  /** Accounts not walked and never granted on. */
  excludedAccountIds: z.array(AccountIdSchema).max(10_000).optional(),
  /** `configured`: the integration's `regions`; `all-enabled`: each account's enabled regions. */
  regions: z.enum(['configured', 'all-enabled']).default('configured'),
  /** Accounts worked on at once. */
  concurrency: z.number().int().min(1).max(64).default(8),
  /** Regions of one account worked on at once. */
  regionConcurrency: z.number().int().min(1).max(16).default(4),
});
export type OrgScopeConfig = z.infer<typeof OrgScopeConfigSchema>;
export type OrgScopeConfigInput = z.input<typeof OrgScopeConfigSchema>;

/** How long an account's parents (OU check) and enabled regions are reused. */
export const ORG_SCOPE_CACHE_TTL_MS = 10 * 60_000;

/** Whatever the fan-out callback may call AWS through: limited per (account, service). */
export type RunLimited = <T>(service: string, fn: () => Promise<T>) => Promise<T>;

export interface ScopeAccount {
  accountId: string;
  name: string | undefined;
  /** The member role assumed there; undefined for the home account. */
  roleArn: string | undefined;
}

/** One (account, region) of a fan-out, handed to the callback. */
export interface ScopeUnit {
  account: ScopeAccount;
  region: string;
  /** The client-factory target of this account in this region. */
  target: AwsTarget;
  run: RunLimited;
  signal: AbortSignal;
}

export interface FanOutResult<R> {
  /** Every account walked (reachable or not), in listing order. */
  accounts: ScopeAccount[];
  /** Values of the units that succeeded, in (account, region) order. */
  results: { account: ScopeAccount; region: string; value: R }[];
  /** One per unreachable account or failed region, with the reason. */
  warnings: Warning[];
  /** Account ids whose member role (or region list) could not be used. */
  unreachable: string[];
}

/** What a fan-out does per account and per (account, region); either may be left out. */
export interface FanOutWork<R> {
  perRegion?: (unit: ScopeUnit) => Promise<R>;
  perAccount?: (account: ScopeAccount, run: RunLimited, regions: string[]) => Promise<R>;
}

export interface OrgScopeOptions {
  aws: AwsClientFactory;
  org: OrgScopeConfig;
  /** The integration's own account, partition and identity. */
  home: {
    accountId: string;
    partition: string;
    assumeRoleArn?: string | undefined;
    externalId?: string | undefined;
  };
  /** The integration's configured regions; the first is where global calls go. */
  regions: readonly string[];
  /** Shared across commands of one driver (OU checks, enabled regions); optional. */
  cache?: OrgScopeCache;
  now?: () => Date;
  /** Per-(account, service) limits; default `createServiceLimiter`'s. */
  limiter?: LimiterOptions;
}

/** A small TTL cache of per-account answers, kept by the driver between commands. */
export class OrgScopeCache {
  private readonly entries = new Map<string, { until: number; value: unknown }>();
  constructor(private readonly maxEntries = 20_000) {}

  get<T>(key: string, now: number): T | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.until <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value as T;
  }

  set(key: string, value: unknown, until: number): void {
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, { until, value });
  }

  clear(): void {
    this.entries.clear();
  }
}

/** Run `fn` over `items` with at most `limit` at once; results in input order. */
export async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) {
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** True for errors about reaching the account at all (its member role). */
export function isAccountLevelError(err: unknown): boolean {
  return (
    err instanceof LatchkeyError &&
    (err.code === 'E_GUARDRAIL' ||
      (err.details !== undefined && err.details.operation === 'AssumeRole'))
  );
}

function rethrowIfCancelled(err: unknown, signal: AbortSignal): void {
  if (err instanceof LatchkeyError && err.code === 'E_CANCELLED') throw err;
  if (signal.aborted) throw new LatchkeyError('E_CANCELLED', 'aborted', { cause: err });
}

/** The account id of an ARN (`arn:<partition>:<service>:<region>:<account>:…`), or null. */
export function accountOfArn(arn: string): string | null {
  const m = /^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):/.exec(arn);
  return m?.[1] ?? null;
}

export class OrgScope {
  readonly org: OrgScopeConfig;
  readonly homeAccountId: string;
  readonly partition: string;
  private readonly cache: OrgScopeCache;
  private readonly now: () => Date;

  constructor(private readonly opts: OrgScopeOptions) {
    this.org = opts.org;
    this.homeAccountId = opts.home.accountId;
    this.partition = opts.home.partition;
    this.cache = opts.cache ?? new OrgScopeCache();
    this.now = opts.now ?? (() => new Date());
  }

  /** Where global calls (IAM, Organizations, STS) go. */
  get homeRegion(): string {
    return this.opts.regions[0] ?? 'us-east-1';
  }

  /** The member role of an account; undefined for the home account. */
  roleArnOf(accountId: string): string | undefined {
    if (accountId === this.homeAccountId) return undefined;
    return memberRoleArn(this.partition, accountId, this.org.memberRoleName);
  }

  /** The client-factory target of an account in a region (home: the integration's identity). */
  target(accountId: string, region: string = this.homeRegion): AwsTarget {
    const roleArn = this.roleArnOf(accountId);
    if (roleArn === undefined) {
      const h = this.opts.home;
      return {
        region,
        ...(h.assumeRoleArn !== undefined ? { assumeRoleArn: h.assumeRoleArn } : {}),
        ...(h.externalId !== undefined ? { externalId: h.externalId } : {}),
      };
    }
    return {
      region,
      assumeRoleArn: roleArn,
      ...(this.org.externalId !== undefined ? { externalId: this.org.externalId } : {}),
    };
  }

  /**
   * A single-account driver config for one account: the same config with that account's id,
   * its identity (member role, or the home identity) and its regions. Lets a driver run its
   * single-account code unchanged for each account.
   */
  accountConfig<
    C extends {
      accountId: string;
      assumeRoleArn?: string | undefined;
      externalId?: string | undefined;
      regions: string[];
    },
  >(cfg: C, accountId: string, regions?: readonly string[]): C {
    const t = this.target(accountId);
    const out: C = { ...cfg, accountId, regions: [...(regions ?? cfg.regions)] };
    delete out.assumeRoleArn;
    delete out.externalId;
    if (t.assumeRoleArn !== undefined) out.assumeRoleArn = t.assumeRoleArn;
    if (t.externalId !== undefined) out.externalId = t.externalId;
    return out;
  }

  private get orgs(): OrganizationsClient {
    return this.opts.aws.client(OrganizationsClient, this.target(this.homeAccountId));
  }

  /**
   * The accounts in scope (`listOrganizationAccounts`, the walk aws-discovery uses).
   * @throws LatchkeyError when the organization cannot be listed
   */
  async listAccounts(signal: AbortSignal, run?: RunLimited): Promise<ScopeAccount[]> {
    const accounts: OrganizationAccount[] = await listOrganizationAccounts({
      orgs: this.orgs,
      signal,
      ...(run ? { run: <T>(fn: () => Promise<T>) => run('organizations', fn) } : {}),
      excludedOuIds: this.org.excludedOuIds,
      excludedAccountIds: this.org.excludedAccountIds,
    });
    return accounts.map((a) => ({
      accountId: a.accountId,
      name: a.name,
      roleArn: this.roleArnOf(a.accountId),
    }));
  }

  /**
   * The regions worked on in an account: the configured ones, or (`all-enabled`) the
   * regions enabled in that account, asked once per `ORG_SCOPE_CACHE_TTL_MS`.
   * @throws LatchkeyError when the account's regions cannot be listed (its member role)
   */
  async regionsOf(accountId: string, signal: AbortSignal, run?: RunLimited): Promise<string[]> {
    if (this.org.regions === 'configured') return [...this.opts.regions];
    const key = `regions|${this.partition}|${accountId}|${this.org.memberRoleName}`;
    const now = this.now().getTime();
    const hit = this.cache.get<string[]>(key, now);
    if (hit !== undefined) return [...hit];
    const ec2 = this.opts.aws.client(EC2Client, this.target(accountId));
    const call = () =>
      awsSend({ service: 'ec2', operation: 'DescribeRegions', resource: accountId, signal }, (o) =>
        ec2.send(new DescribeRegionsCommand({ AllRegions: false }), o),
      );
    const out = await (run ? run('ec2', call) : call());
    const regions = (out.Regions ?? [])
      .filter((r) => r.OptInStatus === undefined || r.OptInStatus !== 'not-opted-in')
      .map((r) => r.RegionName)
      .filter((r): r is string => typeof r === 'string' && r.length > 0)
      .sort();
    this.cache.set(key, regions, now + ORG_SCOPE_CACHE_TTL_MS);
    return [...regions];
  }

  /**
   * Refuse (E_GUARDRAIL) an account that is excluded, under an excluded OU, or not a member
   * of the organization. Walks `ListParents` up to the root (cached per account).
   */
  async assertInScope(accountId: string, signal: AbortSignal): Promise<void> {
    if ((this.org.excludedAccountIds ?? []).includes(accountId)) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `account ${accountId} is excluded from this organization integration`,
        { details: { accountId } },
      );
    }
    if (accountId === this.homeAccountId) return;
    const key = `parents|${accountId}`;
    const now = this.now().getTime();
    let chain = this.cache.get<string[]>(key, now);
    if (chain === undefined) {
      chain = [];
      let child = accountId;
      for (let depth = 0; depth < 10; depth++) {
        const childId = child;
        let out;
        try {
          out = await awsSend(
            { service: 'organizations', operation: 'ListParents', resource: childId, signal },
            (o) => this.orgs.send(new ListParentsCommand({ ChildId: childId }), o),
          );
        } catch (err) {
          if (
            err instanceof LatchkeyError &&
            (err.details?.awsError === 'ChildNotFoundException' ||
              err.details?.awsError === 'AccountNotFoundException')
          ) {
            throw new LatchkeyError(
              'E_GUARDRAIL',
              `account ${accountId} is not a member of the organization; the connector works only in its member accounts`,
              { details: { accountId } },
            );
          }
          throw err;
        }
        const parent = out.Parents?.[0];
        if (!parent?.Id) break;
        chain.push(parent.Id);
        if (parent.Type === 'ROOT') break;
        child = parent.Id;
      }
      this.cache.set(key, chain, now + ORG_SCOPE_CACHE_TTL_MS);
    }
    const excluded = new Set(this.org.excludedOuIds ?? []);
    const hit = chain.find((p) => excluded.has(p));
    if (hit !== undefined) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `account ${accountId} is under ${hit}, which is excluded from this organization integration`,
        { details: { accountId, ou: hit } },
      );
    }
  }

  /**
   * Run `work.perRegion` for every (account, region) in scope, bounded as the glossary says.
   * An account that cannot be reached, or a region that fails, becomes a warning; the others
   * go on. `work.perAccount` runs once per account before its regions (global listings such
   * as IAM roles or S3 buckets, or the sweep); its failure is a warning for the account.
   * Without `perRegion` no regions are listed.
   * @throws LatchkeyError when the organization cannot be listed, or on cancellation
   */
  async fanOut<R>(signal: AbortSignal, work: FanOutWork<R>): Promise<FanOutResult<R>> {
    const fn = work.perRegion;
    const perAccount = work.perAccount;
    const orgLimiters = new ServiceLimiters(this.opts.limiter ?? {});
    const accounts = await this.listAccounts(signal, (service, f) => orgLimiters.run(service, f));
    const warnings: Warning[] = [];
    const unreachable: string[] = [];
    type Done = { account: ScopeAccount; region: string; value: R };
    const perAccountResults = await mapBounded(accounts, this.org.concurrency, async (account) => {
      const limiters = new ServiceLimiters(this.opts.limiter ?? {});
      // No signal to the limiter: awsSend checks it before each call (one abort listener per
      // queued task would pile up on the command's signal).
      const run: RunLimited = (service, f) => limiters.run(service, f);
      const done: Done[] = [];
      const local: Warning[] = [];
      const label = `account ${account.accountId}${account.name ? ` (${account.name})` : ''}`;
      const skipAccount = (err: unknown): void => {
        const w = toWireError(err);
        unreachable.push(account.accountId);
        local.push({
          resourceId: `aws-account:${account.accountId}`,
          code: w.code,
          message: `${label} skipped, its resources are not in this result: ${w.message}`,
        });
      };
      let regions: string[] = [];
      try {
        if (fn) regions = await this.regionsOf(account.accountId, signal, run);
      } catch (err) {
        rethrowIfCancelled(err, signal);
        skipAccount(err);
        return { done, local };
      }
      if (perAccount) {
        try {
          done.push({
            account,
            region: this.homeRegion,
            value: await perAccount(account, run, regions),
          });
        } catch (err) {
          rethrowIfCancelled(err, signal);
          if (isAccountLevelError(err)) {
            skipAccount(err);
            return { done, local };
          }
          const w = toWireError(err);
          local.push({
            resourceId: `aws-account:${account.accountId}`,
            code: w.code,
            message: `${label}: global listing failed, some of its resources may be missing: ${w.message}`,
          });
        }
      }
      let dead: unknown;
      const regionWarnings: Warning[] = [];
      const byRegion = await mapBounded(regions, this.org.regionConcurrency, async (region) => {
        if (dead !== undefined || !fn) return null;
        try {
          const value = await fn({
            account,
            region,
            target: this.target(account.accountId, region),
            run,
            signal,
          });
          return { account, region, value };
        } catch (err) {
          rethrowIfCancelled(err, signal);
          if (isAccountLevelError(err)) {
            dead ??= err;
            return null;
          }
          const w = toWireError(err);
          regionWarnings.push({
            resourceId: `aws-account:${account.accountId}`,
            code: w.code,
            message: `${label} region ${region}: ${w.message}; resources there may be missing from this result`,
          });
          return null;
        }
      });
      if (dead !== undefined) {
        // The member role failed: one warning for the account, nothing half-listed from it.
        skipAccount(dead);
        return { done: [], local };
      }
      local.push(...regionWarnings);
      for (const r of byRegion) if (r !== null) done.push(r);
      return { done, local };
    });
    const results: Done[] = [];
    for (const r of perAccountResults) {
      results.push(...r.done);
      warnings.push(...r.local);
    }
    return { accounts, results, warnings, unreachable };
  }

  /**
   * The organization part of a `check`: Organizations can be listed, and the member role
   * can be assumed in one member account (the most common setup mistake).
   */
  async check(checks: CheckOutput['checks'], signal: AbortSignal): Promise<void> {
    const step = (name: string, fn: () => Promise<string>, fail: (m: string) => string) =>
      probe(checks, name, fn, { signal, onError: (m) => ({ ok: false, detail: fail(m) }) });
    let sample: Account[] = [];
    await step(
      'organization',
      async () => {
        const page = await awsSend(
          { service: 'organizations', operation: 'ListAccounts', signal },
          (o) => this.orgs.send(new ListAccountsCommand({ MaxResults: 20 }), o),
        );
        sample = page.Accounts ?? [];
        return `can list the organization's accounts; member accounts are reached through role ${this.org.memberRoleName}`;
      },
      (m) =>
        `cannot list the organization's accounts (run the connector in the management account or a delegated administrator, and allow organizations:ListAccounts, ListRoots, ListAccountsForParent, ListOrganizationalUnitsForParent and ListParents): ${m}`,
    );
    const excluded = new Set(this.org.excludedAccountIds ?? []);
    const member = sample.find(
      (a) =>
        a.Id !== undefined &&
        a.Id !== this.homeAccountId &&
        !excluded.has(a.Id) &&
        (a.State ?? a.Status ?? 'ACTIVE') === 'ACTIVE',
    );
    if (member?.Id === undefined) return;
    const id = member.Id;
    const roleArn = this.roleArnOf(id) ?? '';
    const label = `account ${id}${member.Name ? ` (${member.Name})` : ''}`;
    await step(
      'member-role',
      async () => {
        await awsSend({ service: 'sts', operation: 'GetCallerIdentity', signal }, (o) =>
          this.opts.aws
            .client(STSClient, this.target(id))
            .send(new GetCallerIdentityCommand({}), o),
        );
        return `assumed ${this.org.memberRoleName} in ${label}`;
      },
      (m) =>
        `cannot assume ${roleArn} in ${label}: ${m}. Deploy the member role to every member account (deploy/member-role/: a CloudFormation StackSet or the Terraform module) trusting the connector's role`,
    );
  }
}

/** The driver config fields the organization mode reads. */
export interface OrgCapableConfig {
  accountId: string;
  partition: string;
  regions: string[];
  assumeRoleArn?: string | undefined;
  externalId?: string | undefined;
  organization?: OrgScopeConfig | undefined;
}

/** The scope of an integration in organization mode, or null for a single account. */
export function orgScopeOf(
  services: { aws: AwsClientFactory; now: () => Date },
  cfg: OrgCapableConfig,
  cache: OrgScopeCache,
): OrgScope | null {
  if (cfg.organization === undefined) return null;
  return new OrgScope({
    aws: services.aws,
    org: cfg.organization,
    home: {
      accountId: cfg.accountId,
      partition: cfg.partition,
      assumeRoleArn: cfg.assumeRoleArn,
      externalId: cfg.externalId,
    },
    regions: cfg.regions,
    cache,
    now: services.now,
  });
}

/**
 * The single-account config a command on `accountId` runs with: the integration's own in
 * single-account mode; in organization mode the account's (its member role, its regions),
 * after refusing an account out of scope when `opts.grant` (a revoke always runs: taking
 * access away is never refused).
 * @throws LatchkeyError E_GUARDRAIL (account out of scope), E_INVALID (another account in
 *   single-account mode is left to the driver's own checks)
 */
export async function accountConfigFor<C extends OrgCapableConfig>(
  scope: OrgScope | null,
  cfg: C,
  accountId: string,
  signal: AbortSignal,
  opts: { grant: boolean },
): Promise<C> {
  if (scope === null) return cfg;
  if (opts.grant) await scope.assertInScope(accountId, signal);
  const regions = await scope.regionsOf(accountId, signal);
  return scope.accountConfig(cfg, accountId, regions);
}

type DiscoveredResource = DiscoverOutput['resources'][number];

/**
 * One `aws-account:<id>` resource per account walked, `reachable: false` for those whose
 * member role (or region list) could not be used: the parents of each driver's resources
 * in organization mode.
 */
export function accountResources<R>(out: FanOutResult<R>): DiscoveredResource[] {
  const unreachable = new Set(out.unreachable);
  return out.accounts.map((a) => ({
    id: `aws-account:${a.accountId}`,
    name: a.name ?? a.accountId,
    type: 'aws-account',
    metadata: {
      accountId: a.accountId,
      roleArn: a.roleArn ?? null,
      reachable: !unreachable.has(a.accountId),
    },
  }));
}

/**
 * A fan-out of per-region discoveries merged into one output: the account resources, then
 * each unit's resources under its account (a resource's own parent kept when
 * `keepParents`), and each unit's warnings prefixed with its account.
 */
export function mergeOrgDiscovery(
  out: FanOutResult<{ resources: DiscoveredResource[]; warnings: Warning[] }>,
  opts: { keepParents?: boolean } = {},
): { resources: DiscoveredResource[]; warnings: Warning[] } {
  const resources = accountResources(out);
  const warnings = [...out.warnings];
  for (const r of out.results) {
    const parentId = `aws-account:${r.account.accountId}`;
    for (const res of r.value.resources) {
      resources.push(opts.keepParents && res.parentId !== undefined ? res : { ...res, parentId });
    }
    for (const w of r.value.warnings) {
      warnings.push({ ...w, message: `account ${r.account.accountId}: ${w.message}` });
    }
  }
  return { resources, warnings };
}
