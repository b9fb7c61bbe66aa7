/**
 * `aws-identity-center`: just-in-time permission-set access across an AWS Organization
 * through IAM Identity Center. See docs/drivers/aws-identity-center.md and
 * docs/decisions/0004-identity-center-isolation.md.
 *
 * Glossary
 * - **grant group**: the per-grant Identity Store group holding the grantee; every account
 *   assignment of the grant is made to it (`identity.ts`).
 * - **existing permission set** / **built permission set**: see `permission-sets.ts`.
 * - **target accounts**: the accounts a grant names, plus the accounts under the OUs it
 *   names (resolved at grant time), after the allow/deny lists, OU exclusions and the
 *   management-account guardrail.
 *
 * - **isolation** (config): `group` (default) assigns to the grant group; `permission-set`
 *   (identity sources whose groups an external IdP owns through SCIM) builds a per-grant
 *   permission set, a copy of the named one, and assigns it directly to the user.
 *
 * Grant order (each step checks what exists first, so a re-run after a crash continues
 * where the last run stopped): validate → user → accounts → permission set (read, or build
 * spec) → group → membership → built permission set + provisioning → assignments.
 * Revoke order: assignments of the group → built permission set (with every assignment
 * of it) → memberships → group. Revoke does not depend on the configured isolation.
 */
import {
  DescribeOrganizationCommand,
  ListAccountsCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { IAMClient } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import {
  IdentitystoreClient,
  ListGroupsCommand,
  ListUsersCommand,
} from '@aws-sdk/client-identitystore';
import {
  ListAccountAssignmentsCommand,
  ListAccountAssignmentsForPrincipalCommand,
  ListAccountsForProvisionedPermissionSetCommand,
  ListInstancesCommand,
  ListPermissionSetsCommand,
  SSOAdminClient,
  DescribePermissionSetCommand,
} from '@aws-sdk/client-sso-admin';
import { awsSend } from '../../aws/call.js';
import { targetOf } from '../../aws/config.js';
import { ServiceLimiters } from '../../aws/limiter.js';
import { listOrganizationAccounts, paginate } from '../../aws/organization.js';
import { MAX_NAMED_RESOURCES, grantPolicyName } from '../../aws/policy.js';
import { LatchkeyError, toWireError } from '../../errors.js';
import type {
  CheckOutput,
  CleanupOutput,
  DiscoverOutput,
  DiscoverParams,
  GrantOutput,
  GrantParams,
  RevokeOutput,
  RevokeParams,
  StandingCleanupParams,
} from '../../protocol/messages.js';
import { probe } from '../probe.js';
import { buildIcInventory, readAssignments, removeIcStanding } from './inventory.js';
import type { CallContext, Driver, DriverServices, SweepReport } from '../driver.js';
import { OuIdSchema, parseIdentityCenterConfig, type AwsIdentityCenterConfig } from './config.js';
import {
  deleteGroup,
  ensureGroup,
  ensureMembership,
  findGroupWithMarker,
  findUserId,
  notOurs,
  parseGroupMarker,
  type GroupMarker,
  type StoreRef,
} from './identity.js';
import {
  AWS_MANAGED_POLICY_ARN,
  MAX_ATTACHED_POLICIES,
  adminLikeReason,
  buildInlinePolicy,
  builtPermissionSetName,
  copySpec,
  deleteBuiltPermissionSet,
  durationSeconds,
  ensureBuiltPermissionSet,
  findPermissionSet,
  listPermissionSetArns,
  parseInlinePolicy,
  permissionSetPolicies,
  type BuiltSpec,
  type InlineStatement,
  type SsoRef,
} from './permission-sets.js';
import { createAssignment, deleteAssignment, provisionPermissionSet } from './provisioning.js';
import { SIMULATIONS, principalOfCaller, simulate, type ResourceKind } from './simulate.js';

const principalOfCallerOrNull = (arn: string): string | null => {
  try {
    return principalOfCaller(arn);
  } catch {
    return null;
  }
};

type Resource = DiscoverOutput['resources'][number];
type Principal = { type: 'GROUP' | 'USER'; id: string };

/**
 * Age after which a permission set built for a user-assigned grant that holds no
 * assignment is taken for the leftover of a grant that crashed before assigning: longer
 * than any command's deadline, so a grant still running is never swept.
 */
export const ORPHAN_AGE_MS = 60 * 60 * 1000;
type Warning = DiscoverOutput['warnings'][number];

/** What a grant asks for, parsed before any AWS call. */
interface GrantPlan {
  accountIds: string[];
  ouIds: string[];
  /** `permission-set:<name or arn>`: assign an existing permission set. */
  existing: string | undefined;
  /** `policies`: build a permission set from these. */
  managed: string[];
  customerManaged: { name: string; path: string }[];
  inline: InlineStatement[];
}

const strip = (id: string, prefix: string): string =>
  id.startsWith(`${prefix}:`) ? id.slice(prefix.length + 1) : id;

/** @throws LatchkeyError E_INVALID, E_GUARDRAIL */
export function parseGrant(resources: GrantParams['resources'], permission: string): GrantPlan {
  if (resources.length > MAX_NAMED_RESOURCES) {
    throw new LatchkeyError(
      'E_GUARDRAIL',
      `a grant may name at most ${MAX_NAMED_RESOURCES} resources (got ${resources.length})`,
    );
  }
  const plan: GrantPlan = {
    accountIds: [],
    ouIds: [],
    existing: undefined,
    managed: [],
    customerManaged: [],
    inline: [],
  };
  for (const r of resources) {
    switch (r.type) {
      case 'account': {
        const id = strip(r.id, 'account');
        if (!/^\d{12}$/.test(id))
          throw new LatchkeyError('E_INVALID', `account ${r.id} is not a 12-digit account id`);
        plan.accountIds.push(id);
        break;
      }
      case 'ou': {
        const id = strip(r.id, 'ou');
        if (!OuIdSchema.safeParse(id).success)
          throw new LatchkeyError('E_INVALID', `ou ${r.id} is not an OU or root id`);
        plan.ouIds.push(id);
        break;
      }
      case 'aws-managed-policy':
        if (!AWS_MANAGED_POLICY_ARN.test(r.id)) {
          throw new LatchkeyError(
            'E_INVALID',
            `aws-managed-policy ${r.id} is not an AWS-managed policy ARN`,
          );
        }
        plan.managed.push(r.id);
        break;
      case 'customer-managed-policy': {
        const m = /^(\/(?:[\w+=,.@-]+\/)*)?([\w+=,.@-]{1,128})$/.exec(r.id);
        if (!m?.[2])
          throw new LatchkeyError(
            'E_INVALID',
            `customer-managed-policy ${r.id} is not [/path/]name`,
          );
        plan.customerManaged.push({ name: m[2], path: m[1] ?? '/' });
        break;
      }
      case 'inline-policy':
        plan.inline.push(...parseInlinePolicy(r.id));
        break;
      default:
        throw new LatchkeyError(
          'E_INVALID',
          `resource type ${r.type} is not served by aws-identity-center (account, ou, aws-managed-policy, customer-managed-policy, inline-policy)`,
        );
    }
  }
  const hasPolicies = plan.managed.length + plan.customerManaged.length + plan.inline.length > 0;
  if (permission.startsWith('permission-set:')) {
    plan.existing = permission.slice('permission-set:'.length);
    if (plan.existing === '' || hasPolicies) {
      throw new LatchkeyError(
        'E_INVALID',
        'permission permission-set:<name or arn> takes accounts and OUs only, no policies',
      );
    }
  } else if (permission === 'policies') {
    if (!hasPolicies)
      throw new LatchkeyError(
        'E_INVALID',
        'permission "policies" needs at least one policy resource',
      );
    if (plan.managed.length + plan.customerManaged.length > MAX_ATTACHED_POLICIES) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `a built permission set carries at most ${MAX_ATTACHED_POLICIES} managed policies`,
      );
    }
  } else {
    throw new LatchkeyError(
      'E_INVALID',
      `permission ${permission} is not permission-set:<name or arn> or policies`,
    );
  }
  if (plan.accountIds.length + plan.ouIds.length === 0) {
    throw new LatchkeyError('E_INVALID', 'a grant names at least one account or ou resource');
  }
  return plan;
}

export class AwsIdentityCenterDriver implements Driver {
  readonly type = 'aws-identity-center';
  readonly kinds = ['discover', 'grant', 'revoke', 'cleanup', 'check'] as const;
  private readonly limiters = new ServiceLimiters();

  constructor(private readonly services: DriverServices) {}

  private get prefix(): string {
    return this.services.tagPrefix;
  }

  private clients(cfg: AwsIdentityCenterConfig) {
    const t = targetOf(cfg);
    return {
      sso: this.services.aws.client(SSOAdminClient, t),
      ids: this.services.aws.client(IdentitystoreClient, t),
      orgs: this.services.aws.client(OrganizationsClient, t),
    };
  }

  /** Instance ARN and identity store id: from config, or the only instance `ListInstances` returns. */
  private async instance(
    cfg: AwsIdentityCenterConfig,
    signal: AbortSignal,
  ): Promise<{ instanceArn: string; identityStoreId: string }> {
    if (cfg.instanceArn !== undefined && cfg.identityStoreId !== undefined) {
      return { instanceArn: cfg.instanceArn, identityStoreId: cfg.identityStoreId };
    }
    const only = await this.listedInstance(cfg, signal);
    return { instanceArn: only.arn, identityStoreId: only.store };
  }

  /**
   * The configured instance (or the only one) as `ListInstances` returns it, with its
   * status and owner account.
   * @throws LatchkeyError E_NOT_FOUND none matches, E_INVALID several match
   */
  private async listedInstance(
    cfg: AwsIdentityCenterConfig,
    signal: AbortSignal,
  ): Promise<{ arn: string; store: string; status?: string; owner?: string }> {
    const { sso } = this.clients(cfg);
    const found: { arn: string; store: string; status?: string; owner?: string }[] = [];
    await paginate(
      (token) =>
        awsSend({ service: 'sso', operation: 'ListInstances', signal }, (o) =>
          sso.send(new ListInstancesCommand(token ? { NextToken: token } : {}), o),
        ),
      (p) => p.NextToken,
      (p) => {
        for (const i of p.Instances ?? []) {
          if (i.InstanceArn && i.IdentityStoreId)
            found.push({
              arn: i.InstanceArn,
              store: i.IdentityStoreId,
              ...(i.Status !== undefined ? { status: i.Status } : {}),
              ...(i.OwnerAccountId !== undefined ? { owner: i.OwnerAccountId } : {}),
            });
        }
      },
    );
    const match = found.filter(
      (i) =>
        (cfg.instanceArn === undefined || i.arn === cfg.instanceArn) &&
        (cfg.identityStoreId === undefined || i.store === cfg.identityStoreId),
    );
    const [only, ...more] = match;
    if (only === undefined || more.length > 0) {
      throw new LatchkeyError(
        only === undefined ? 'E_NOT_FOUND' : 'E_INVALID',
        `ListInstances in ${cfg.region} returned ${match.length} matching Identity Center instances; set instanceArn and identityStoreId`,
      );
    }
    return only;
  }

  private groupName(grantId: string): string {
    return grantPolicyName(this.prefix, grantId);
  }

  /** The grant's marker; a permission set built in `permission-set` isolation says so. */
  private marker(
    cfg: AwsIdentityCenterConfig,
    params: GrantParams,
  ): { group: GroupMarker; builtSet: GroupMarker } {
    const group: GroupMarker = { grantId: params.grantId, expiresAt: params.expiresAt };
    return {
      group,
      builtSet: cfg.isolation === 'permission-set' ? { ...group, assign: 'user' } : group,
    };
  }

  /**
   * The target accounts of a grant: named accounts plus accounts under named OUs, checked
   * against the allow/deny lists, the OU exclusions and the management account.
   */
  private async targetAccounts(
    cfg: AwsIdentityCenterConfig,
    plan: GrantPlan,
    signal: AbortSignal,
  ): Promise<string[]> {
    const { orgs } = this.clients(cfg);
    const run = <T>(fn: () => Promise<T>) => this.limiters.run('organizations', fn, signal);
    let management: string | undefined;
    if (!cfg.allowManagementAccount) {
      const org = await awsSend(
        { service: 'organizations', operation: 'DescribeOrganization', signal },
        (o) => orgs.send(new DescribeOrganizationCommand({}), o),
      );
      management = org.Organization?.MasterAccountId;
      if (management === undefined) {
        throw new LatchkeyError(
          'E_INTERNAL',
          'DescribeOrganization returned no management account',
        );
      }
    }
    for (const id of plan.accountIds) {
      if (id === management) {
        throw new LatchkeyError(
          'E_GUARDRAIL',
          `account ${id} is the organization's management account; assignments there need allowManagementAccount`,
        );
      }
      if (cfg.deniedAccountIds?.includes(id)) {
        throw new LatchkeyError('E_GUARDRAIL', `account ${id} is on the integration's deny list`);
      }
      if (cfg.allowedAccountIds !== undefined && !cfg.allowedAccountIds.includes(id)) {
        throw new LatchkeyError(
          'E_GUARDRAIL',
          `account ${id} is not on the integration's allow list`,
        );
      }
    }
    if ((cfg.excludedOuIds ?? []).length > 0 && plan.accountIds.length > 0) {
      const allowed = new Set(
        (
          await listOrganizationAccounts({ orgs, signal, run, excludedOuIds: cfg.excludedOuIds })
        ).map((a) => a.accountId),
      );
      for (const id of plan.accountIds) {
        if (!allowed.has(id)) {
          throw new LatchkeyError(
            'E_GUARDRAIL',
            `account ${id} is under an excluded OU (or not in the organization)`,
          );
        }
      }
    }
    const accounts = new Set(plan.accountIds);
    if (plan.ouIds.length > 0) {
      // Accounts under a named OU that the integration may not use are left out.
      const under = await listOrganizationAccounts({
        orgs,
        signal,
        run,
        startIds: plan.ouIds,
        excludedOuIds: cfg.excludedOuIds,
        excludedAccountIds: cfg.deniedAccountIds,
      });
      for (const a of under) {
        if (a.accountId === management) continue;
        if (cfg.allowedAccountIds === undefined || cfg.allowedAccountIds.includes(a.accountId)) {
          accounts.add(a.accountId);
        }
      }
    }
    if (accounts.size === 0)
      throw new LatchkeyError(
        'E_INVALID',
        'the named OUs hold no account this integration may use',
      );
    if (accounts.size > MAX_NAMED_RESOURCES) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `the grant resolves to ${accounts.size} accounts; at most ${MAX_NAMED_RESOURCES} assignments per grant`,
      );
    }
    return [...accounts].sort();
  }

  // -------------------------------------------------------------------------------------
  // grant

  async grant(ctx: CallContext, params: GrantParams): Promise<GrantOutput> {
    const cfg = parseIdentityCenterConfig(ctx.integration.config);
    const signal = ctx.signal;
    const plan = parseGrant(params.resources, params.permission);
    if (params.expiresAt !== undefined && new Date(params.expiresAt) <= this.services.now()) {
      throw new LatchkeyError('E_INVALID', `expiresAt ${params.expiresAt} is in the past`);
    }
    const markers = this.marker(cfg, params);
    const byUser = cfg.isolation === 'permission-set';
    // Built inline policy measured before any AWS call.
    const inline =
      plan.existing === undefined ? buildInlinePolicy(plan.inline, params.expiresAt) : undefined;
    const { sso, ids } = this.clients(cfg);
    const inst = await this.instance(cfg, signal);
    const store: StoreRef = { ids, identityStoreId: inst.identityStoreId, signal };
    const ssoRef: SsoRef = { sso, instanceArn: inst.instanceArn, signal };

    // Read-only: user, accounts, permission set.
    const userId = await findUserId(store, params.grantee.email);
    const accounts = await this.targetAccounts(cfg, plan, signal);
    let builtSpec: BuiltSpec | undefined;
    let existingArn: string | undefined;
    let copiedFrom: string | undefined;
    let sessionSeconds: number;
    let psName: string;
    if (plan.existing !== undefined) {
      const ps = await findPermissionSet(ssoRef, plan.existing);
      if (!ps?.PermissionSetArn) {
        throw new LatchkeyError(
          'E_NOT_FOUND',
          `no permission set ${plan.existing} in ${inst.instanceArn}`,
        );
      }
      if (parseGroupMarker(this.prefix, ps.Description) !== null) {
        throw new LatchkeyError(
          'E_GUARDRAIL',
          `permission set ${ps.Name ?? ''} was built by Latchkey for another grant`,
        );
      }
      const policies =
        !cfg.allowAdministratorAccess || byUser
          ? await permissionSetPolicies(ssoRef, ps.PermissionSetArn)
          : undefined;
      if (!cfg.allowAdministratorAccess && policies !== undefined) {
        const why = adminLikeReason(policies);
        if (why !== null) {
          throw new LatchkeyError(
            'E_GUARDRAIL',
            `permission set ${ps.Name ?? ps.PermissionSetArn} grants administrator-like access (${why}); allowAdministratorAccess is off`,
          );
        }
      }
      if (byUser && policies !== undefined) {
        // A per-grant copy, assigned to the user: the original is only read.
        psName = builtPermissionSetName(this.prefix, params.grantId);
        copiedFrom = ps.Name ?? ps.PermissionSetArn;
        builtSpec = await copySpec(
          ssoRef,
          { ...ps, PermissionSetArn: ps.PermissionSetArn },
          policies,
          {
            name: psName,
            marker: markers.builtSet,
            maxSessionSeconds: cfg.maxSessionDurationSeconds,
          },
        );
        sessionSeconds = builtSpec.sessionDurationSeconds;
      } else {
        existingArn = ps.PermissionSetArn;
        sessionSeconds = durationSeconds(ps.SessionDuration);
        psName = ps.Name ?? existingArn;
      }
    } else {
      if (!cfg.allowAdministratorAccess) {
        const why = adminLikeReason({
          managed: plan.managed,
          customerManaged: [],
          inline: inline,
        });
        if (why !== null) {
          throw new LatchkeyError(
            'E_GUARDRAIL',
            `the grant asks for administrator-like access (${why}); allowAdministratorAccess is off`,
          );
        }
      }
      sessionSeconds = cfg.maxSessionDurationSeconds;
      psName = builtPermissionSetName(this.prefix, params.grantId);
      builtSpec = {
        name: psName,
        marker: markers.builtSet,
        sessionDurationSeconds: sessionSeconds,
        managed: plan.managed,
        customerManaged: plan.customerManaged,
        inline,
      };
    }

    // Writes: group, membership (group isolation), built permission set, assignments.
    const groupName = this.groupName(params.grantId);
    let group: { groupId: string; created: boolean } | undefined;
    let joined = false;
    let principal: Principal;
    if (byUser) {
      principal = { type: 'USER', id: userId };
    } else {
      group = await ensureGroup(store, this.prefix, groupName, markers.group);
      joined = await ensureMembership(store, group.groupId, userId);
      principal = { type: 'GROUP', id: group.groupId };
    }
    let psArn: string;
    let psChanged = false;
    if (builtSpec !== undefined) {
      const built = await ensureBuiltPermissionSet(ssoRef, this.prefix, builtSpec);
      psArn = built.arn;
      psChanged = built.changed;
    } else {
      psArn = existingArn ?? '';
    }
    const held = await this.assignmentsOf(ssoRef, principal);
    let assigned = 0;
    for (const accountId of accounts) {
      if (held.some((h) => h.accountId === accountId && h.permissionSetArn === psArn)) continue;
      if (builtSpec !== undefined) {
        await provisionPermissionSet(sso, inst.instanceArn, psArn, accountId, signal);
      }
      await createAssignment(
        sso,
        {
          instanceArn: inst.instanceArn,
          permissionSetArn: psArn,
          accountId,
          principalType: principal.type,
          principalId: principal.id,
        },
        signal,
      );
      assigned++;
    }
    const alreadyGranted = group?.created !== true && !joined && !psChanged && assigned === 0;
    ctx.logger.info(
      {
        grantId: params.grantId,
        isolation: cfg.isolation,
        principalType: principal.type,
        principalId: principal.id,
        permissionSetArn: psArn,
        accounts: accounts.length,
        alreadyGranted,
      },
      'aws-identity-center grant applied',
    );
    return {
      username: params.grantee.email,
      access: {
        ...(cfg.portalUrl !== undefined ? { portalUrl: cfg.portalUrl } : {}),
        instanceArn: inst.instanceArn,
        identityStoreId: inst.identityStoreId,
        userId,
        isolation: cfg.isolation,
        ...(group !== undefined ? { groupName, groupId: group.groupId } : {}),
        permissionSet: {
          name: psName,
          arn: psArn,
          built: builtSpec !== undefined,
          ...(copiedFrom !== undefined ? { copiedFrom } : {}),
          sessionDurationSeconds: sessionSeconds,
          // A role session issued before revoke keeps working until it ends.
          sessionMayOutliveRevokeSeconds: sessionSeconds,
        },
        accounts,
      },
      alreadyGranted,
      ...(params.expiresAt !== undefined ? { expiresAt: params.expiresAt } : {}),
    };
  }

  /** Every account assignment of a principal (the grant group, or the user). */
  private async assignmentsOf(
    s: SsoRef,
    principal: Principal,
  ): Promise<{ accountId: string; permissionSetArn: string }[]> {
    const out: { accountId: string; permissionSetArn: string }[] = [];
    await paginate(
      (token) =>
        awsSend(
          { service: 'sso', operation: 'ListAccountAssignmentsForPrincipal', signal: s.signal },
          (o) =>
            s.sso.send(
              new ListAccountAssignmentsForPrincipalCommand({
                InstanceArn: s.instanceArn,
                PrincipalId: principal.id,
                PrincipalType: principal.type,
                ...(token ? { NextToken: token } : {}),
              }),
              o,
            ),
        ),
      (p) => p.NextToken,
      (p) => {
        for (const a of p.AccountAssignments ?? []) {
          if (a.AccountId && a.PermissionSetArn)
            out.push({ accountId: a.AccountId, permissionSetArn: a.PermissionSetArn });
        }
      },
    );
    return out;
  }

  // -------------------------------------------------------------------------------------
  // revoke

  async revoke(ctx: CallContext, params: RevokeParams): Promise<RevokeOutput> {
    const cfg = parseIdentityCenterConfig(ctx.integration.config);
    const out = await this.revokeGrant(cfg, params.grantId, ctx.signal);
    return { username: params.grantee.email, ...out };
  }

  private async revokeGrant(
    cfg: AwsIdentityCenterConfig,
    grantId: string,
    signal: AbortSignal,
  ): Promise<Omit<RevokeOutput, 'username'>> {
    const { sso, ids } = this.clients(cfg);
    const inst = await this.instance(cfg, signal);
    const store: StoreRef = { ids, identityStoreId: inst.identityStoreId, signal };
    const ssoRef: SsoRef = { sso, instanceArn: inst.instanceArn, signal };
    const groupName = this.groupName(grantId);
    const phases: RevokeOutput['phases'] = [];
    const revoked: string[] = [];
    const group = await findGroupWithMarker(store, this.prefix, groupName);
    if (group !== null && group.marker?.grantId !== grantId)
      throw notOurs(groupName, inst.identityStoreId);

    // 1. Assignments of this grant's group, and only those.
    let longest = 0;
    if (group !== null) {
      const held = await this.assignmentsOf(ssoRef, { type: 'GROUP', id: group.groupId });
      const sessions = new Map<string, number>();
      for (const h of held) {
        if (
          await deleteAssignment(
            sso,
            {
              instanceArn: inst.instanceArn,
              ...h,
              principalType: 'GROUP',
              principalId: group.groupId,
            },
            signal,
          )
        ) {
          revoked.push(`${h.permissionSetArn}@${h.accountId}`);
        }
        if (!sessions.has(h.permissionSetArn)) {
          const arn = h.permissionSetArn;
          const d = await awsSend(
            { service: 'sso', operation: 'DescribePermissionSet', resource: arn, signal },
            (o) =>
              sso.send(
                new DescribePermissionSetCommand({
                  InstanceArn: inst.instanceArn,
                  PermissionSetArn: arn,
                }),
                o,
              ),
          );
          sessions.set(arn, durationSeconds(d.PermissionSet?.SessionDuration));
        }
      }
      longest = Math.max(0, ...sessions.values());
      phases.push({
        phase: 'delete-assignments',
        status: held.length > 0 ? 'done' : 'skipped',
        detail: `${held.length} account assignment(s) of ${groupName}`,
      });
    } else {
      phases.push({
        phase: 'delete-assignments',
        status: 'skipped',
        detail: `${groupName} was already absent`,
      });
    }
    // 2. The built permission set, if this grant had one.
    // Assignments of it left by anyone (a group lost in a crash) go first: a permission
    // set still assigned cannot be deleted.
    const psName = builtPermissionSetName(this.prefix, grantId);
    const built = await findPermissionSet(ssoRef, psName);
    if (
      built?.PermissionSetArn &&
      parseGroupMarker(this.prefix, built.Description)?.grantId === grantId
    ) {
      // In permission-set isolation these are the grant's own (user) assignments.
      revoked.push(...(await this.removeAllAssignments(ssoRef, built.PermissionSetArn)));
      longest = Math.max(longest, durationSeconds(built.SessionDuration));
    }
    const psDeleted = await deleteBuiltPermissionSet(ssoRef, this.prefix, psName, grantId);
    if (psDeleted) revoked.push(psName);
    phases.push({ phase: 'delete-permission-set', status: psDeleted ? 'done' : 'skipped' });
    // 3. Memberships and the group.
    const groupDeleted = group !== null && (await deleteGroup(store, group.groupId));
    if (groupDeleted) revoked.push(groupName);
    phases.push({
      phase: 'delete-group',
      status: groupDeleted ? 'done' : 'skipped',
      detail: `an already-issued role session may outlive the revoke by up to ${longest}s (the permission set's session duration)`,
    });
    return {
      revoked,
      phases,
      sessionsTerminated: 0,
      alreadyRevoked: revoked.length === 0,
    };
  }

  // -------------------------------------------------------------------------------------
  // sweep: expired grant groups, and built permission sets whose group is gone

  async sweep(ctx: CallContext): Promise<SweepReport> {
    const cfg = parseIdentityCenterConfig(ctx.integration.config);
    const signal = ctx.signal;
    const { sso, ids } = this.clients(cfg);
    const inst = await this.instance(cfg, signal);
    const report: SweepReport = { revoked: [], errors: [] };
    const now = this.services.now();
    const groupPrefix = this.groupName('');
    const live = new Set<string>();
    const expired: string[] = [];
    await paginate(
      (token) =>
        awsSend({ service: 'identitystore', operation: 'ListGroups', signal }, (o) =>
          ids.send(
            new ListGroupsCommand({
              IdentityStoreId: inst.identityStoreId,
              ...(token ? { NextToken: token } : {}),
            }),
            o,
          ),
        ),
      (p) => p.NextToken,
      (p) => {
        for (const g of p.Groups ?? []) {
          if (!g.DisplayName?.startsWith(groupPrefix)) continue;
          const m = parseGroupMarker(this.prefix, g.Description);
          if (m === null || g.DisplayName !== this.groupName(m.grantId)) continue;
          live.add(m.grantId);
          if (m.expiresAt !== undefined && new Date(m.expiresAt) <= now) expired.push(m.grantId);
        }
      },
    );
    for (const grantId of expired) {
      try {
        await this.revokeGrant(cfg, grantId, signal);
        report.revoked.push(grantId);
      } catch (err) {
        if (err instanceof LatchkeyError && err.code === 'E_CANCELLED') throw err;
        const w = toWireError(err);
        report.errors.push({ item: grantId, code: w.code, message: w.message });
      }
    }
    // Built permission sets. Assigned to a grant group: an orphan when that group does not
    // exist (a crash between the two, or a revoke cut short). Assigned to the user
    // (permission-set isolation): revoked when expired; an orphan when it holds no
    // assignment and is older than ORPHAN_AGE_MS (a grant that crashed before assigning
    // and was never re-run). An orphan's assignments are removed, then the set.
    const ssoRef: SsoRef = { sso, instanceArn: inst.instanceArn, signal };
    for (const arn of await listPermissionSetArns(ssoRef)) {
      const d = await awsSend(
        { service: 'sso', operation: 'DescribePermissionSet', resource: arn, signal },
        (o) =>
          sso.send(
            new DescribePermissionSetCommand({
              InstanceArn: inst.instanceArn,
              PermissionSetArn: arn,
            }),
            o,
          ),
      );
      const m = parseGroupMarker(this.prefix, d.PermissionSet?.Description);
      if (m === null || d.PermissionSet?.Name !== builtPermissionSetName(this.prefix, m.grantId))
        continue;
      if (m.assign === 'user') {
        if (m.expiresAt !== undefined && new Date(m.expiresAt) <= now) {
          try {
            await this.revokeGrant(cfg, m.grantId, signal);
            report.revoked.push(m.grantId);
          } catch (err) {
            if (err instanceof LatchkeyError && err.code === 'E_CANCELLED') throw err;
            const w = toWireError(err);
            report.errors.push({ item: m.grantId, code: w.code, message: w.message });
          }
          continue;
        }
        const created = d.PermissionSet.CreatedDate?.getTime();
        if (created === undefined || now.getTime() - created < ORPHAN_AGE_MS) continue;
        const held = await this.assignmentsOfPermissionSet(ssoRef, arn);
        if (held.some((h) => h.principals.length > 0)) continue;
      } else if (live.has(m.grantId)) {
        continue;
      }
      try {
        await this.removeAllAssignments(ssoRef, arn);
        await deleteBuiltPermissionSet(ssoRef, this.prefix, d.PermissionSet.Name, m.grantId);
        report.revoked.push(m.grantId);
      } catch (err) {
        if (err instanceof LatchkeyError && err.code === 'E_CANCELLED') throw err;
        const w = toWireError(err);
        report.errors.push({ item: arn, code: w.code, message: w.message });
      }
    }
    return report;
  }

  /**
   * Remove every assignment of a built permission set (all are this driver's).
   * @returns `<permission set arn>@<account>` of each assignment removed
   */
  private async removeAllAssignments(s: SsoRef, arn: string): Promise<string[]> {
    const removed: string[] = [];
    for (const { accountId, principals } of await this.assignmentsOfPermissionSet(s, arn)) {
      for (const p of principals) {
        const gone = await deleteAssignment(
          s.sso,
          {
            instanceArn: s.instanceArn,
            permissionSetArn: arn,
            accountId,
            principalType: p.type,
            principalId: p.id,
          },
          s.signal,
        );
        if (gone) removed.push(`${arn}@${accountId}`);
      }
    }
    return removed;
  }

  /** Accounts a permission set is provisioned to, with the principals assigned there. */
  private async assignmentsOfPermissionSet(
    s: SsoRef,
    arn: string,
  ): Promise<{ accountId: string; principals: { type: 'USER' | 'GROUP'; id: string }[] }[]> {
    const accounts: string[] = [];
    await paginate(
      (token) =>
        awsSend(
          {
            service: 'sso',
            operation: 'ListAccountsForProvisionedPermissionSet',
            resource: arn,
            signal: s.signal,
          },
          (o) =>
            s.sso.send(
              new ListAccountsForProvisionedPermissionSetCommand({
                InstanceArn: s.instanceArn,
                PermissionSetArn: arn,
                ...(token ? { NextToken: token } : {}),
              }),
              o,
            ),
        ),
      (p) => p.NextToken,
      (p) => accounts.push(...(p.AccountIds ?? [])),
    );
    const out: { accountId: string; principals: { type: 'USER' | 'GROUP'; id: string }[] }[] = [];
    for (const accountId of accounts) {
      const principals: { type: 'USER' | 'GROUP'; id: string }[] = [];
      await paginate(
        (token) =>
          this.limiters.run(
            'sso',
            () =>
              awsSend(
                {
                  service: 'sso',
                  operation: 'ListAccountAssignments',
                  resource: arn,
                  signal: s.signal,
                },
                (o) =>
                  s.sso.send(
                    new ListAccountAssignmentsCommand({
                      InstanceArn: s.instanceArn,
                      AccountId: accountId,
                      PermissionSetArn: arn,
                      ...(token ? { NextToken: token } : {}),
                    }),
                    o,
                  ),
              ),
            s.signal,
          ),
        (p) => p.NextToken,
        (p) => {
          for (const a of p.AccountAssignments ?? []) {
            if (a.PrincipalId && (a.PrincipalType === 'USER' || a.PrincipalType === 'GROUP')) {
              principals.push({ type: a.PrincipalType, id: a.PrincipalId });
            }
          }
        },
      );
      out.push({ accountId, principals });
    }
    return out;
  }

  // -------------------------------------------------------------------------------------
  // discover

  /** Access inventory and standing cleanup (inventory.ts): what they need. */
  private async inventoryDeps(ctx: CallContext, cfg: AwsIdentityCenterConfig) {
    const { sso, ids } = this.clients(cfg);
    const inst = await this.instance(cfg, ctx.signal);
    return {
      deps: {
        sso,
        ids,
        ...inst,
        tagPrefix: this.prefix,
        signal: ctx.signal,
        run: <T>(fn: () => Promise<T>) => this.limiters.run('sso', fn, ctx.signal),
      },
      permissionSetArns: await listPermissionSetArns({
        sso,
        instanceArn: inst.instanceArn,
        signal: ctx.signal,
      }),
    };
  }

  /** `cleanup` with `standing`: delete account assignments the agent did not make. */
  async removeStanding(ctx: CallContext, params: StandingCleanupParams): Promise<CleanupOutput> {
    const cfg = parseIdentityCenterConfig(ctx.integration.config);
    const { deps, permissionSetArns } = await this.inventoryDeps(ctx, cfg);
    return removeIcStanding(deps, permissionSetArns, params);
  }

  async discover(ctx: CallContext, params?: DiscoverParams): Promise<DiscoverOutput> {
    const cfg = parseIdentityCenterConfig(ctx.integration.config);
    const signal = ctx.signal;
    const { sso, orgs } = this.clients(cfg);
    const inst = await this.instance(cfg, signal);
    const ssoRef: SsoRef = { sso, instanceArn: inst.instanceArn, signal };
    const resources: Resource[] = [];
    const warnings: Warning[] = [];
    const permissions: { id: string; name: string }[] = [];

    const accounts = await listOrganizationAccounts({
      orgs,
      signal,
      run: (fn) => this.limiters.run('organizations', fn, signal),
      excludedOuIds: cfg.excludedOuIds,
      excludedAccountIds: cfg.deniedAccountIds,
    });
    for (const a of accounts) {
      if (cfg.allowedAccountIds !== undefined && !cfg.allowedAccountIds.includes(a.accountId))
        continue;
      resources.push({
        id: a.accountId,
        name: a.name ?? a.accountId,
        type: 'account',
        ...(a.parentId !== undefined ? { parentId: a.parentId } : {}),
        metadata: { accountId: a.accountId },
      });
    }
    for (const arn of await listPermissionSetArns(ssoRef)) {
      try {
        const d = await this.limiters.run(
          'sso',
          () =>
            awsSend(
              { service: 'sso', operation: 'DescribePermissionSet', resource: arn, signal },
              (o) =>
                sso.send(
                  new DescribePermissionSetCommand({
                    InstanceArn: inst.instanceArn,
                    PermissionSetArn: arn,
                  }),
                  o,
                ),
            ),
          signal,
        );
        const ps = d.PermissionSet;
        if (ps === undefined) continue;
        if (parseGroupMarker(this.prefix, ps.Description) !== null) continue; // built per grant
        const policies = await permissionSetPolicies(ssoRef, arn);
        const held = await this.assignmentsOfPermissionSet(ssoRef, arn);
        const name = ps.Name ?? arn;
        resources.push({
          id: arn,
          name,
          type: 'permission-set',
          metadata: {
            arn,
            sessionDurationSeconds: durationSeconds(ps.SessionDuration),
            managedPolicies: policies.managed,
            customerManagedPolicies: policies.customerManaged,
            hasInlinePolicy: policies.inline !== undefined,
            administratorLike: adminLikeReason(policies) !== null,
            assignments: held.flatMap((h) =>
              h.principals.map((p) => ({
                accountId: h.accountId,
                principalType: p.type,
                principalId: p.id,
              })),
            ),
          },
        });
        permissions.push({ id: `permission-set:${name}`, name });
      } catch (err) {
        if (err instanceof LatchkeyError && err.code === 'E_CANCELLED') throw err;
        const w = toWireError(err);
        warnings.push({ resourceId: arn, code: w.code, message: w.message });
      }
    }
    permissions.push({ id: 'policies', name: 'Policies (a permission set built for the grant)' });
    const out: DiscoverOutput = { resources, permissions, warnings };
    if (params?.include?.includes('privileges') === true) {
      const { deps, permissionSetArns } = await this.inventoryDeps(ctx, cfg);
      const read = await readAssignments(deps, permissionSetArns, warnings);
      out.inventory = await buildIcInventory(deps, read, warnings);
    }
    return out;
  }

  // -------------------------------------------------------------------------------------
  // check

  /**
   * Named sub-checks: `identity` (the credentials reach the configured account),
   * `sso:ListInstances` (the instance is listed and ACTIVE), `sso:ListPermissionSets`,
   * `identitystore:ListUsers`, then the writes a grant and its revoke make, proven by
   * `iam:SimulatePrincipalPolicy` (see simulate.ts for what that proves and what not):
   * `simulate:assignments`, `simulate:grant-groups` (group isolation only) and
   * `simulate:built-permission-sets`.
   */
  async check(ctx: CallContext): Promise<CheckOutput> {
    const cfg = parseIdentityCenterConfig(ctx.integration.config);
    const signal = ctx.signal;
    const t = targetOf(cfg);
    const { sso, ids, orgs } = this.clients(cfg);
    const checks: CheckOutput['checks'] = [];
    let caller: string | undefined;
    await probe(
      checks,
      'identity',
      async () => {
        const id = await awsSend({ service: 'sts', operation: 'GetCallerIdentity', signal }, (o) =>
          this.services.aws.client(STSClient, t).send(new GetCallerIdentityCommand({}), o),
        );
        if (id.Account !== cfg.accountId) {
          throw new LatchkeyError(
            'E_INVALID',
            `credentials belong to account ${id.Account ?? 'unknown'}, not ${cfg.accountId}`,
          );
        }
        caller = id.Arn;
        return `connected as ${id.Arn ?? 'unknown'}`;
      },
      { signal },
    );
    let inst: { arn: string; store: string; owner?: string } | undefined;
    await probe(
      checks,
      'sso:ListInstances',
      async () => {
        const found = await this.listedInstance(cfg, signal);
        if (found.status !== undefined && found.status !== 'ACTIVE') {
          throw new LatchkeyError(
            'E_INVALID',
            `instance ${found.arn} is ${found.status}, not ACTIVE`,
          );
        }
        inst = found;
        return `instance ${found.arn}, identity store ${found.store}${found.owner !== undefined ? `, owned by account ${found.owner}` : ''}`;
      },
      { signal },
    );
    if (inst === undefined) return { ok: false, checks };
    const i = inst;
    let samplePermissionSet: string | undefined;
    await probe(
      checks,
      'sso:ListPermissionSets',
      async () => {
        const out = await awsSend(
          { service: 'sso', operation: 'ListPermissionSets', signal },
          (o) => sso.send(new ListPermissionSetsCommand({ InstanceArn: i.arn, MaxResults: 1 }), o),
        );
        samplePermissionSet = out.PermissionSets?.[0];
        return 'allowed';
      },
      { signal },
    );
    await probe(
      checks,
      'identitystore:ListUsers',
      async () => {
        await awsSend({ service: 'identitystore', operation: 'ListUsers', signal }, (o) =>
          ids.send(new ListUsersCommand({ IdentityStoreId: i.store, MaxResults: 1 }), o),
        );
        return 'allowed';
      },
      { signal },
    );

    // Writes, simulated for the principal the driver runs as.
    const principal =
      cfg.assumeRoleArn ?? (caller !== undefined ? principalOfCallerOrNull(caller) : null);
    const names: (keyof typeof SIMULATIONS)[] =
      cfg.isolation === 'group'
        ? ['simulate:assignments', 'simulate:grant-groups', 'simulate:built-permission-sets']
        : ['simulate:assignments', 'simulate:built-permission-sets'];
    if (principal === null) {
      for (const name of names) {
        checks.push({
          name,
          ok: false,
          detail: `no IAM principal to simulate (${caller ?? 'caller identity unknown'}); set assumeRoleArn`,
        });
      }
      return { ok: false, checks };
    }
    const instanceId = i.arn.split('/').pop() ?? '';
    const p = cfg.partition;
    const account = await this.sampleAccount(cfg, orgs, signal);
    const resources: Record<ResourceKind, string> = {
      instance: i.arn,
      permissionSet: samplePermissionSet ?? `arn:${p}:sso:::permissionSet/${instanceId}/*`,
      account: `arn:${p}:sso:::account/${account}`,
      identitystore: `arn:${p}:identitystore::${i.owner ?? cfg.accountId}:identitystore/${i.store}`,
      group: `arn:${p}:identitystore:::group/*`,
      user: `arn:${p}:identitystore:::user/*`,
      membership: `arn:${p}:identitystore:::membership/*`,
    };
    const iam = this.services.aws.client(IAMClient, t);
    for (const name of names) {
      // Built permission sets do not exist yet: simulated on any permission set.
      const r =
        name === 'simulate:built-permission-sets'
          ? { ...resources, permissionSet: `arn:${p}:sso:::permissionSet/${instanceId}/*` }
          : resources;
      await probe(
        checks,
        name,
        () => simulate({ iam, principal, resources: r, signal }, SIMULATIONS[name]),
        {
          signal,
        },
      );
    }
    return { ok: checks.every((c) => c.ok), checks };
  }

  /** An account a grant could target, for the simulation: allow list, else the organization's first. */
  private async sampleAccount(
    cfg: AwsIdentityCenterConfig,
    orgs: OrganizationsClient,
    signal: AbortSignal,
  ): Promise<string> {
    const allowed = cfg.allowedAccountIds?.[0];
    if (allowed !== undefined) return allowed;
    try {
      const out = await awsSend(
        { service: 'organizations', operation: 'ListAccounts', signal },
        (o) => orgs.send(new ListAccountsCommand({ MaxResults: 20 }), o),
      );
      const a = (out.Accounts ?? []).find(
        (x) => x.Id !== undefined && !(cfg.deniedAccountIds ?? []).includes(x.Id),
      );
      return a?.Id ?? cfg.accountId;
    } catch (err) {
      if (err instanceof LatchkeyError && err.code === 'E_CANCELLED') throw err;
      return cfg.accountId;
    }
  }

  rotate(): Promise<never> {
    return Promise.reject(
      new LatchkeyError('E_UNSUPPORTED', 'aws-identity-center has no credentials to rotate'),
    );
  }

  cleanup(): Promise<never> {
    return Promise.reject(
      new LatchkeyError('E_UNSUPPORTED', 'aws-identity-center creates no users to clean up'),
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
