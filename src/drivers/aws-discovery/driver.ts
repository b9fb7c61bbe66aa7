/**
 * `aws-discovery`: finds the RDS (PostgreSQL, MySQL, MariaDB, Aurora) and Redshift
 * databases tagged for this connector, in one account or across an AWS Organization,
 * in many regions, and answers them as sub-integrations (`DiscoverOutput.integrations`)
 * that the control plane then commands through the `postgres`, `mysql` and `redshift`
 * drivers. Kinds: `discover`, `check`. See docs/drivers/aws-discovery.md.
 */
import { probe, type ProbeOptions } from '../probe.js';
import {
  ListAccountsCommand,
  ListRootsCommand,
  OrganizationsClient,
  type Account,
} from '@aws-sdk/client-organizations';
import { DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { DescribeClustersCommand, RedshiftClient } from '@aws-sdk/client-redshift';
import { ListIndexesCommand, ResourceExplorer2Client } from '@aws-sdk/client-resource-explorer-2';
import { awsSend } from '../../aws/call.js';
import { targetOf } from '../../aws/config.js';
import { ServiceLimiters, type LimiterOptions } from '../../aws/limiter.js';
import { mapBounded } from '../../aws/org-scope.js';
import { LatchkeyError } from '../../errors.js';
import { bindingPolicyOf } from '../../secrets/binding.js';
import { describeTtl, type DiscoveredPairings } from '../../secrets/discovered.js';
import type { CheckOutput, DiscoverOutput, Integration } from '../../protocol/messages.js';
import type { CallContext, Driver, DriverServices } from '../driver.js';
import { parseDiscoveryConfig, type AwsDiscoveryConfig } from './config.js';
import {
  AccountUnreachable,
  accountResourceId,
  discoverAccount,
  homeIdentity,
  listAccounts,
  toSubIntegration,
  type AccountRef,
  type AccountResult,
  type DiscoveryEnv,
  type HomeIdentity,
  type Resource,
  type Warning,
} from './discover.js';

export interface AwsDiscoveryDriverOptions {
  /** Rate limits of the bulk listings (per AWS service). */
  limiter?: LimiterOptions;
}

type AccountOutcome = { ok: true; result: AccountResult } | { ok: false; error: LatchkeyError };

export class AwsDiscoveryDriver implements Driver {
  readonly type = 'aws-discovery';
  readonly kinds = ['discover', 'check'] as const;
  private readonly limiters: ServiceLimiters;

  constructor(
    private readonly services: DriverServices,
    options: AwsDiscoveryDriverOptions = {},
  ) {
    this.limiters = new ServiceLimiters(options.limiter ?? {});
  }

  private env(ctx: CallContext, cfg: AwsDiscoveryConfig): DiscoveryEnv {
    return {
      aws: this.services.aws,
      limiters: this.limiters,
      signal: ctx.signal,
      cfg,
      tagPrefix: this.services.tagPrefix,
    };
  }

  async discover(ctx: CallContext): Promise<DiscoverOutput> {
    const cfg = parseDiscoveryConfig(ctx.integration.config);
    const env = this.env(ctx, cfg);
    const home = await homeIdentity(env);
    const accounts = await listAccounts(env, home);
    const logger = ctx.logger;

    const outcomes = await mapBounded<AccountRef, AccountOutcome>(
      accounts,
      cfg.concurrency,
      async (acct) => {
        try {
          return { ok: true, result: await discoverAccount(env, acct, home.partition, logger) };
        } catch (err) {
          if (err instanceof AccountUnreachable) return { ok: false, error: err.error };
          throw err;
        }
      },
    );

    const resources: Resource[] = [];
    const warnings: Warning[] = [];
    const integrations: Integration[] = [];
    const seen = new Set<string>();
    // Secret ↔ database pairings read from AWS here, for the secret binding (docs/secrets.md).
    const pairings = bindingPolicyOf(this.services.secrets).discovered;
    accounts.forEach((acct, i) => {
      const outcome = outcomes[i];
      if (!outcome) return;
      resources.push({
        id: accountResourceId(acct.accountId),
        name: acct.name ?? acct.accountId,
        type: 'aws-account',
        metadata: {
          accountId: acct.accountId,
          roleArn: acct.roleArn ?? null,
          reachable: outcome.ok,
          via: outcome.ok ? outcome.result.via : null,
        },
      });
      if (!outcome.ok) {
        const w = outcome.error.toWire();
        warnings.push({
          resourceId: accountResourceId(acct.accountId),
          code: w.code,
          message: `account ${acct.accountId}${acct.name ? ` (${acct.name})` : ''} skipped, its databases are not in this result: ${w.message}`,
        });
        return;
      }
      warnings.push(...outcome.result.warnings);
      for (const db of outcome.result.databases) {
        const v = toSubIntegration(
          db,
          env,
          acct.roleArn !== undefined
            ? { roleArn: acct.roleArn, externalId: acct.externalId }
            : undefined,
        );
        if (v.kind === 'skip') {
          pairings?.forget(db.arn);
          continue;
        }
        if (v.kind === 'warning') {
          pairings?.forget(db.arn);
          warnings.push(v.warning);
          continue;
        }
        if (seen.has(v.integration.id)) continue;
        seen.add(v.integration.id);
        integrations.push(v.integration);
        recordPairing(pairings, db.arn, v.integration);
        resources.push({
          ...v.resource,
          metadata: { ...v.resource.metadata, memberRoleArn: acct.roleArn ?? null },
        });
      }
    });
    logger.info(
      {
        accounts: accounts.length,
        integrations: integrations.length,
        warnings: warnings.length,
      },
      'aws discovery finished',
    );
    return { resources, permissions: [], warnings, integrations };
  }

  async check(ctx: CallContext): Promise<CheckOutput> {
    const cfg = parseDiscoveryConfig(ctx.integration.config);
    const env = this.env(ctx, cfg);
    const signal = ctx.signal;
    const checks: CheckOutput['checks'] = [];
    // An aborted check stops, even when the probe saw another error first.
    const step = (
      name: string,
      fn: () => Promise<string>,
      onError?: ProbeOptions['onError'],
    ): Promise<boolean> => probe(checks, name, fn, { signal, ...(onError ? { onError } : {}) });
    let home: HomeIdentity | undefined;
    await step('identity', async () => {
      home = await homeIdentity(env);
      return `connected to AWS as ${home.arn} (account ${home.accountId})`;
    });

    const org = cfg.organization;
    if (org?.enabled) {
      const orgs = this.services.aws.client(OrganizationsClient, targetOf(cfg));
      const walk = (org.excludedOuIds ?? []).length > 0;
      let sample: Account[] = [];
      await step(
        'organization',
        async () => {
          let roots = '';
          if (walk) {
            const out = await awsSend(
              { service: 'organizations', operation: 'ListRoots', signal },
              (o) => orgs.send(new ListRootsCommand({}), o),
            );
            roots = ` and walk its tree (${out.Roots?.length ?? 0} root(s))`;
          }
          const page = await awsSend(
            { service: 'organizations', operation: 'ListAccounts', signal },
            (o) => orgs.send(new ListAccountsCommand({ MaxResults: 20 }), o),
          );
          sample = page.Accounts ?? [];
          return `can list the organization's accounts${roots}; member accounts are reached through role ${org.memberRoleName}`;
        },
        (m) => ({
          ok: false,
          detail: `cannot list the organization's accounts (run the connector in the management account or a delegated administrator, and allow organizations:ListAccounts${walk ? ', ListRoots, ListAccountsForParent and ListOrganizationalUnitsForParent' : ''}): ${m}`,
        }),
      );
      // Try the member role in one member account: the most common setup mistake.
      const excluded = new Set(org.excludedAccountIds ?? []);
      const member = sample.find(
        (a) =>
          a.Id !== undefined &&
          a.Id !== home?.accountId &&
          !excluded.has(a.Id) &&
          (a.State ?? a.Status ?? 'ACTIVE') === 'ACTIVE',
      );
      if (member?.Id !== undefined && home !== undefined) {
        const roleArn = `arn:${home.partition}:iam::${member.Id}:role/${org.memberRoleName}`;
        const label = `account ${member.Id}${member.Name ? ` (${member.Name})` : ''}`;
        await step(
          'member-role',
          async () => {
            const target = {
              region: cfg.regions[0] ?? 'us-east-1',
              assumeRoleArn: roleArn,
              ...(org.externalId !== undefined ? { externalId: org.externalId } : {}),
            };
            await awsSend({ service: 'sts', operation: 'GetCallerIdentity', signal }, (o) =>
              this.services.aws.client(STSClient, target).send(new GetCallerIdentityCommand({}), o),
            );
            return `assumed ${org.memberRoleName} in ${label}`;
          },
          (m) => ({
            ok: false,
            detail: `cannot assume ${roleArn} in ${label}: ${m}. Deploy the role to every member account (for example with a CloudFormation StackSet) trusting the connector's role`,
          }),
        );
      }
    }

    if (cfg.useResourceExplorer) {
      const first = cfg.regions[0] ?? 'us-east-1';
      await step(
        'resource-explorer',
        async () => {
          const re = this.services.aws.client(ResourceExplorer2Client, targetOf(cfg, first));
          const out = await awsSend(
            { service: 'resource-explorer-2', operation: 'ListIndexes', signal },
            (o) => re.send(new ListIndexesCommand({ Type: 'AGGREGATOR' }), o),
          );
          const agg = (out.Indexes ?? []).find((i) => i.Type === 'AGGREGATOR');
          return agg?.Region
            ? `Resource Explorer aggregator index in ${agg.Region}: regions are searched through it`
            : 'no Resource Explorer aggregator index: every configured region is listed one by one';
        },
        (m) => ({
          ok: true,
          detail: `Resource Explorer cannot be used (${m}); every configured region is listed one by one`,
        }),
      );
    }

    for (const region of cfg.regions) {
      const target = targetOf(cfg, region);
      await step(`rds ${region}`, async () => {
        await awsSend(
          { service: 'rds', operation: 'DescribeDBInstances', resource: region, signal },
          (o) =>
            this.services.aws
              .client(RDSClient, target)
              .send(new DescribeDBInstancesCommand({ MaxRecords: 20 }), o),
        );
        return `can list RDS databases in ${region}`;
      });
      await step(`redshift ${region}`, async () => {
        await awsSend(
          { service: 'redshift', operation: 'DescribeClusters', resource: region, signal },
          (o) =>
            this.services.aws
              .client(RedshiftClient, target)
              .send(new DescribeClustersCommand({ MaxRecords: 20 }), o),
        );
        return `can list Redshift clusters in ${region}`;
      });
    }
    const pairings = bindingPolicyOf(this.services.secrets).discovered;
    if (pairings !== undefined) {
      checks.push({ name: 'discovered-secrets', ok: true, detail: pairingsDetail(pairings) });
    }
    return { ok: checks.every((c) => c.ok), checks };
  }

  grant(): Promise<never> {
    return unsupported('grant');
  }

  revoke(): Promise<never> {
    return unsupported('revoke');
  }

  rotate(): Promise<never> {
    return unsupported('rotate');
  }

  cleanup(): Promise<never> {
    return unsupported('cleanup');
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Records, for the secret binding, that the database `databaseArn` names (through its
 * `<prefix>-secret` tag, as AWS reported it to this agent) the secret of its
 * sub-integration; drops the database's former pairing when it names none now.
 */
function recordPairing(
  pairings: DiscoveredPairings | undefined,
  databaseArn: string,
  integration: Integration,
): void {
  if (pairings === undefined) return;
  const { host, port } = integration.config;
  if (
    integration.secret?.store !== 'aws-secrets-manager' ||
    typeof host !== 'string' ||
    typeof port !== 'number'
  ) {
    pairings.forget(databaseArn);
    return;
  }
  pairings.record({ databaseArn, secretArn: integration.secret.secretId, host, port });
}

/** Names shown by `check` (ARNs and endpoints only, never a value of a secret). */
const PAIRINGS_SHOWN = 10;

/** What `check` says about the secrets accepted through pairings this agent discovered. */
export function pairingsDetail(pairings: DiscoveredPairings): string {
  const live = pairings.list();
  const ttl = describeTtl(pairings.ttlMs);
  if (live.length === 0) {
    return (
      'no secret is accepted through a discovered pairing: none was found by this agent ' +
      `within ${ttl} (a database tagged <prefix>-secret=<secret ARN> makes its secret usable ` +
      'for that database only, once discover has run)'
    );
  }
  const shown = live
    .slice(0, PAIRINGS_SHOWN)
    .map((p) => `${p.secretArn} for ${p.host}:${p.port} (tag on ${p.databaseArn})`);
  const more = live.length > PAIRINGS_SHOWN ? `; and ${live.length - PAIRINGS_SHOWN} more` : '';
  return (
    `${live.length} secret pairing(s) found by this agent's discovery within ${ttl}; each ` +
    `secret is accepted for its database's endpoint only: ${shown.join('; ')}${more}`
  );
}

function unsupported(kind: string): Promise<never> {
  return Promise.reject(
    new LatchkeyError(
      'E_UNSUPPORTED',
      `aws-discovery only discovers databases; ${kind} goes to the sub-integration's own driver (postgres, mysql, redshift)`,
    ),
  );
}
