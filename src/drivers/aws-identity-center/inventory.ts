/**
 * `aws-identity-center` access inventory and standing cleanup (issue 13): the existing
 * account assignments (who holds which permission set in which account), with group
 * assignments expanded to the group's members (`via: group`, the group as the chain), and
 * the agent's own assignments (to its per-grant groups, or of the permission sets it built)
 * matched to their grant ids. See docs/drivers/aws-identity-center.md, "Access inventory".
 *
 * Entry shape: `resourceId` = the account id (as discover lists accounts), `permission` =
 * `permission-set:<name>` (as grants name it), `source` = the permission set ARN,
 * `privileges` = [the permission set name].
 */
import {
  DescribeGroupCommand,
  DescribeUserCommand,
  ListGroupMembershipsCommand,
  type IdentitystoreClient,
} from '@aws-sdk/client-identitystore';
import {
  DescribePermissionSetCommand,
  ListAccountAssignmentsCommand,
  ListAccountsForProvisionedPermissionSetCommand,
  type SSOAdminClient,
} from '@aws-sdk/client-sso-admin';
import { awsSend } from '../../aws/call.js';
import { paginate } from '../../aws/organization.js';
import { toWireError } from '../../errors.js';
import type {
  CleanupOutput,
  DiscoverOutput,
  Inventory,
  InventoryEntry,
  InventoryPrincipal,
  StandingCleanupParams,
  StandingOutcome,
} from '../../protocol/messages.js';
import { parseGroupMarker } from './identity.js';
import { deleteAssignment } from './provisioning.js';

type Warning = DiscoverOutput['warnings'][number];

export interface IcInventoryDeps {
  sso: SSOAdminClient;
  ids: IdentitystoreClient;
  instanceArn: string;
  identityStoreId: string;
  tagPrefix: string;
  signal: AbortSignal;
  run: <T>(fn: () => Promise<T>) => Promise<T>;
}

/** One account assignment, with what the inventory needs to name it. */
export interface IcAssignment {
  accountId: string;
  permissionSetArn: string;
  permissionSetName: string;
  principalType: 'USER' | 'GROUP';
  principalId: string;
  /** Grant id when the agent made it (its group, or its built permission set). */
  grantId: string | undefined;
  managedByAgent: boolean;
}

interface Named {
  name: string;
  grantId: string | undefined;
}

/** Every assignment of every permission set, with names; unreadable parts become warnings. */
export async function readAssignments(
  deps: IcInventoryDeps,
  permissionSetArns: readonly string[],
  warnings: Warning[],
): Promise<{ assignments: IcAssignment[]; groups: Map<string, Named>; users: Map<string, Named> }> {
  const { sso, ids, signal, run } = deps;
  const assignments: IcAssignment[] = [];
  const groups = new Map<string, Named>();
  const users = new Map<string, Named>();
  for (const psArn of permissionSetArns) {
    try {
      const d = await run(() =>
        awsSend(
          { service: 'sso', operation: 'DescribePermissionSet', resource: psArn, signal },
          (o) =>
            sso.send(
              new DescribePermissionSetCommand({
                InstanceArn: deps.instanceArn,
                PermissionSetArn: psArn,
              }),
              o,
            ),
        ),
      );
      const psName = d.PermissionSet?.Name ?? psArn;
      const built = parseGroupMarker(deps.tagPrefix, d.PermissionSet?.Description);
      const accounts: string[] = [];
      await paginate(
        (token) =>
          run(() =>
            awsSend(
              {
                service: 'sso',
                operation: 'ListAccountsForProvisionedPermissionSet',
                resource: psArn,
                signal,
              },
              (o) =>
                sso.send(
                  new ListAccountsForProvisionedPermissionSetCommand({
                    InstanceArn: deps.instanceArn,
                    PermissionSetArn: psArn,
                    ...(token ? { NextToken: token } : {}),
                  }),
                  o,
                ),
            ),
          ),
        (p) => p.NextToken,
        (p) => accounts.push(...(p.AccountIds ?? [])),
      );
      for (const accountId of accounts) {
        await paginate(
          (token) =>
            run(() =>
              awsSend(
                { service: 'sso', operation: 'ListAccountAssignments', resource: psArn, signal },
                (o) =>
                  sso.send(
                    new ListAccountAssignmentsCommand({
                      InstanceArn: deps.instanceArn,
                      AccountId: accountId,
                      PermissionSetArn: psArn,
                      ...(token ? { NextToken: token } : {}),
                    }),
                    o,
                  ),
              ),
            ),
          (p) => p.NextToken,
          (p) => {
            for (const a of p.AccountAssignments ?? []) {
              if (!a.PrincipalId || (a.PrincipalType !== 'USER' && a.PrincipalType !== 'GROUP'))
                continue;
              assignments.push({
                accountId,
                permissionSetArn: psArn,
                permissionSetName: psName,
                principalType: a.PrincipalType,
                principalId: a.PrincipalId,
                grantId: built?.grantId,
                managedByAgent: built !== null,
              });
            }
          },
        );
      }
    } catch (err) {
      if (signal.aborted) throw err;
      const w = toWireError(err);
      warnings.push({
        resourceId: psArn,
        code: w.code,
        message: `assignments not read: ${w.message}`,
      });
    }
  }
  // Names, and the agent's grant groups (their description carries the grant id).
  for (const a of assignments) {
    if (a.principalType === 'GROUP' && !groups.has(a.principalId)) {
      const g = await describe(warnings, a.principalId, () =>
        run(() =>
          awsSend({ service: 'identitystore', operation: 'DescribeGroup', signal }, (o) =>
            ids.send(
              new DescribeGroupCommand({
                IdentityStoreId: deps.identityStoreId,
                GroupId: a.principalId,
              }),
              o,
            ),
          ),
        ),
      );
      const marker = parseGroupMarker(deps.tagPrefix, g?.Description);
      groups.set(a.principalId, {
        name: g?.DisplayName ?? a.principalId,
        grantId: marker?.grantId,
      });
    }
    const group = a.principalType === 'GROUP' ? groups.get(a.principalId) : undefined;
    if (group?.grantId !== undefined) {
      a.managedByAgent = true;
      a.grantId ??= group.grantId;
    }
  }
  return { assignments, groups, users };
}

async function describe<T>(
  warnings: Warning[],
  id: string,
  fn: () => Promise<T>,
): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const w = toWireError(err);
    warnings.push({ resourceId: id, code: w.code, message: `not described: ${w.message}` });
    return undefined;
  }
}

async function userName(
  deps: IcInventoryDeps,
  users: Map<string, Named>,
  userId: string,
  warnings: Warning[],
): Promise<string> {
  const known = users.get(userId);
  if (known) return known.name;
  const u = await describe(warnings, userId, () =>
    deps.run(() =>
      awsSend({ service: 'identitystore', operation: 'DescribeUser', signal: deps.signal }, (o) =>
        deps.ids.send(
          new DescribeUserCommand({ IdentityStoreId: deps.identityStoreId, UserId: userId }),
          o,
        ),
      ),
    ),
  );
  const name = u?.UserName ?? userId;
  users.set(userId, { name, grantId: undefined });
  return name;
}

async function membersOf(deps: IcInventoryDeps, groupId: string): Promise<string[]> {
  const members: string[] = [];
  await paginate(
    (token) =>
      deps.run(() =>
        awsSend(
          { service: 'identitystore', operation: 'ListGroupMemberships', signal: deps.signal },
          (o) =>
            deps.ids.send(
              new ListGroupMembershipsCommand({
                IdentityStoreId: deps.identityStoreId,
                GroupId: groupId,
                ...(token ? { NextToken: token } : {}),
              }),
              o,
            ),
        ),
      ),
    (p) => p.NextToken,
    (p) => {
      for (const m of p.GroupMemberships ?? []) {
        if (m.MemberId && 'UserId' in m.MemberId && m.MemberId.UserId)
          members.push(m.MemberId.UserId);
      }
    },
  );
  return members;
}

/** The inventory of the assignments (members of assigned groups read from the store). */
export async function buildIcInventory(
  deps: IcInventoryDeps,
  read: Awaited<ReturnType<typeof readAssignments>>,
  warnings: Warning[],
): Promise<Inventory> {
  const principals = new Map<string, InventoryPrincipal>();
  const entries: InventoryEntry[] = [];
  const members = new Map<string, string[]>();
  const addPrincipal = (
    id: string,
    kind: 'user' | 'group',
    name: string,
    agent: Named | undefined,
  ) => {
    if (principals.has(id)) return;
    const p: InventoryPrincipal = {
      id,
      kind,
      name,
      managedByAgent: agent?.grantId !== undefined,
      flags: [],
    };
    if (agent?.grantId !== undefined) p.grantId = agent.grantId;
    principals.set(id, p);
  };
  for (const a of read.assignments) {
    const base = {
      resourceId: a.accountId,
      permission: `permission-set:${a.permissionSetName}`,
      privileges: [a.permissionSetName],
      source: a.permissionSetArn,
      managedByAgent: a.managedByAgent,
      ...(a.grantId !== undefined ? { grantId: a.grantId } : {}),
    };
    if (a.principalType === 'USER') {
      const id = `user:${a.principalId}`;
      addPrincipal(
        id,
        'user',
        await userName(deps, read.users, a.principalId, warnings),
        undefined,
      );
      entries.push({ principalId: id, ...base, via: 'assignment' });
      continue;
    }
    const group = read.groups.get(a.principalId);
    const groupName = group?.name ?? a.principalId;
    const gid = `group:${a.principalId}`;
    addPrincipal(gid, 'group', groupName, group);
    entries.push({ principalId: gid, ...base, via: 'assignment' });
    let list = members.get(a.principalId);
    if (list === undefined) {
      list = (await describe(warnings, a.principalId, () => membersOf(deps, a.principalId))) ?? [];
      members.set(a.principalId, list);
    }
    for (const userId of list) {
      const id = `user:${userId}`;
      addPrincipal(id, 'user', await userName(deps, read.users, userId, warnings), undefined);
      entries.push({ principalId: id, ...base, via: 'group', chain: [groupName] });
    }
  }
  return {
    principals: [...principals.values()].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)),
    entries,
  };
}

/**
 * Standing cleanup: `DeleteAccountAssignment` of a listed assignment (`via: assignment`,
 * a user's or a group's own), only with `apply`. Refused: assignments the agent made
 * (`E_NOT_MANAGED`: revoke the grant), and `via: group` entries (`E_GUARDRAIL`: remove the
 * group's assignment, or the membership in the identity provider, which owns groups).
 */
export async function removeIcStanding(
  deps: IcInventoryDeps,
  permissionSetArns: readonly string[],
  params: StandingCleanupParams,
): Promise<CleanupOutput> {
  const warnings: Warning[] = [];
  const read = await readAssignments(deps, permissionSetArns, warnings);
  const plans: { outcome: StandingOutcome; assignment: IcAssignment | undefined }[] =
    params.standing.map((target) => {
      if (target.via === 'group') {
        return {
          outcome: {
            target,
            status: 'refused',
            actions: [],
            code: 'E_GUARDRAIL',
            reason:
              "held through a group: remove the group's own assignment (its principal), or the membership in the identity provider",
          },
          assignment: undefined,
        };
      }
      const [kind, id] = [
        target.principalId.split(':')[0],
        target.principalId.slice(target.principalId.indexOf(':') + 1),
      ];
      const a = read.assignments.find(
        (x) =>
          x.principalId === id &&
          ((kind === 'user' && x.principalType === 'USER') ||
            (kind === 'group' && x.principalType === 'GROUP')) &&
          x.accountId === target.resourceId &&
          `permission-set:${x.permissionSetName}` === target.permission &&
          (target.source === undefined || target.source === x.permissionSetArn),
      );
      if (target.via !== 'assignment' || a === undefined) {
        return {
          outcome: { target, status: 'absent', actions: [], reason: 'not in the inventory' },
          assignment: undefined,
        };
      }
      if (a.managedByAgent) {
        return {
          outcome: {
            target,
            status: 'refused',
            actions: [],
            code: 'E_NOT_MANAGED',
            reason: `made by Latchkey${a.grantId !== undefined ? ` for grant ${a.grantId}` : ''}: revoke the grant instead`,
          },
          assignment: undefined,
        };
      }
      return {
        outcome: {
          target,
          status: 'planned',
          actions: [
            `sso:DeleteAccountAssignment InstanceArn=${deps.instanceArn} TargetType=AWS_ACCOUNT TargetId=${a.accountId} ` +
              `PermissionSetArn=${a.permissionSetArn} PrincipalType=${a.principalType} PrincipalId=${a.principalId}`,
          ],
        },
        assignment: a,
      };
    });
  const apply = params.apply === true && plans.every((p) => p.outcome.status !== 'refused');
  if (apply) {
    for (const p of plans) {
      if (!p.assignment) continue;
      await deleteAssignment(
        deps.sso,
        {
          instanceArn: deps.instanceArn,
          permissionSetArn: p.assignment.permissionSetArn,
          accountId: p.assignment.accountId,
          principalType: p.assignment.principalType,
          principalId: p.assignment.principalId,
        },
        deps.signal,
      );
      p.outcome.status = 'removed';
    }
  }
  return { dropped: [], kept: [], standing: plans.map((p) => p.outcome), dryRun: !apply };
}
