/**
 * The Identity Store side: who the grantee is, and the per-grant group that carries a
 * grant's account assignments (see docs/decisions/0004-identity-center-isolation.md).
 *
 * Glossary
 * - **grant group**: an Identity Store group named `<prefix>-grant-<grantId>` whose
 *   description carries the marker `managed-by=<prefix>; grant=<grantId>; expires=<iso|never>`.
 *   It holds the grantee and nothing else; revoke deletes it. A group with our name but
 *   without our marker is someone else's: never used, never deleted (`E_NOT_MANAGED`).
 */
import {
  CreateGroupCommand,
  CreateGroupMembershipCommand,
  DeleteGroupCommand,
  DeleteGroupMembershipCommand,
  DescribeGroupCommand,
  GetGroupIdCommand,
  GetGroupMembershipIdCommand,
  GetUserIdCommand,
  type IdentitystoreClient,
  ListGroupMembershipsCommand,
  ListUsersCommand,
} from '@aws-sdk/client-identitystore';
import { awsSend } from '../../aws/call.js';
import { paginate } from '../../aws/organization.js';
import { LatchkeyError } from '../../errors.js';
import { withConflictRetry } from './provisioning.js';

export interface StoreRef {
  ids: IdentitystoreClient;
  identityStoreId: string;
  signal: AbortSignal;
}

const isCode = (err: unknown, ...codes: string[]): boolean =>
  err instanceof LatchkeyError && codes.includes(err.code);

/**
 * The Identity Store user of a requester: `GetUserId` on `emails.value`, then on
 * `userName`, then `ListUsers` filtered by user name. Nothing is created.
 * @throws LatchkeyError E_NOT_FOUND when the requester is not in the store
 */
export async function findUserId(s: StoreRef, email: string): Promise<string> {
  for (const path of ['emails.value', 'userName']) {
    try {
      const out = await awsSend(
        { service: 'identitystore', operation: 'GetUserId', signal: s.signal },
        (o) =>
          s.ids.send(
            new GetUserIdCommand({
              IdentityStoreId: s.identityStoreId,
              AlternateIdentifier: {
                UniqueAttribute: { AttributePath: path, AttributeValue: email },
              },
            }),
            o,
          ),
      );
      if (out.UserId) return out.UserId;
    } catch (err) {
      // Not found, or a store that refuses this attribute path: try the next way.
      if (!isCode(err, 'E_NOT_FOUND', 'E_INVALID')) throw err;
    }
  }
  const found: string[] = [];
  await paginate(
    (token) =>
      awsSend({ service: 'identitystore', operation: 'ListUsers', signal: s.signal }, (o) =>
        s.ids.send(
          new ListUsersCommand({
            IdentityStoreId: s.identityStoreId,
            Filters: [{ AttributePath: 'UserName', AttributeValue: email }],
            ...(token ? { NextToken: token } : {}),
          }),
          o,
        ),
      ),
    (p) => p.NextToken,
    (p) => {
      for (const u of p.Users ?? []) if (u.UserId) found.push(u.UserId);
    },
  );
  const [only, ...more] = found;
  if (only === undefined) {
    throw new LatchkeyError(
      'E_NOT_FOUND',
      `no user with email or user name ${email} in identity store ${s.identityStoreId}; nothing was created (provision the user through the identity source first)`,
    );
  }
  if (more.length > 0) {
    throw new LatchkeyError(
      'E_INVALID',
      `${found.length} users of identity store ${s.identityStoreId} have the user name ${email}; refusing to guess`,
    );
  }
  return only;
}

// ---------------------------------------------------------------------------------------
// Grant groups

export interface GroupMarker {
  grantId: string;
  expiresAt: string | undefined;
  /**
   * `user`: a permission set built for a grant in `permission-set` isolation, assigned
   * directly to the grantee (no grant group exists, so the sweep must not take it for an
   * orphan). Absent on grant groups and on permission sets assigned to a grant group.
   */
  assign?: 'user' | undefined;
}

export function groupMarker(prefix: string, m: GroupMarker): string {
  return `managed-by=${prefix}; grant=${m.grantId}; expires=${m.expiresAt ?? 'never'}${m.assign === 'user' ? '; assign=user' : ''}`;
}

/** The marker of a group description, or null when the group is not ours. */
export function parseGroupMarker(
  prefix: string,
  description: string | undefined,
): GroupMarker | null {
  if (description === undefined) return null;
  const m = /^managed-by=([^;]+); grant=([^;]+); expires=([^;\s]+)(?:; assign=(user))?$/.exec(
    description,
  );
  if (!m || m[1] !== prefix || m[2] === undefined || m[3] === undefined) return null;
  const expires = m[3];
  if (expires !== 'never' && Number.isNaN(new Date(expires).getTime())) return null;
  return {
    grantId: m[2],
    expiresAt: expires === 'never' ? undefined : expires,
    ...(m[4] === 'user' ? { assign: 'user' as const } : {}),
  };
}

export interface FoundGroup {
  groupId: string;
  marker: GroupMarker | null;
}

/** The group with this display name (id and description), or null. */
async function findGroup(
  s: StoreRef,
  displayName: string,
): Promise<{ groupId: string; description: string | undefined } | null> {
  let groupId: string | undefined;
  try {
    const out = await awsSend(
      {
        service: 'identitystore',
        operation: 'GetGroupId',
        resource: displayName,
        signal: s.signal,
      },
      (o) =>
        s.ids.send(
          new GetGroupIdCommand({
            IdentityStoreId: s.identityStoreId,
            AlternateIdentifier: {
              UniqueAttribute: { AttributePath: 'displayName', AttributeValue: displayName },
            },
          }),
          o,
        ),
    );
    groupId = out.GroupId;
  } catch (err) {
    if (isCode(err, 'E_NOT_FOUND')) return null;
    throw err;
  }
  if (groupId === undefined) return null;
  const id = groupId;
  const desc = await awsSend(
    {
      service: 'identitystore',
      operation: 'DescribeGroup',
      resource: displayName,
      signal: s.signal,
    },
    (o) =>
      s.ids.send(new DescribeGroupCommand({ IdentityStoreId: s.identityStoreId, GroupId: id }), o),
  );
  return { groupId: id, description: desc.Description };
}

export function notOurs(displayName: string, store: string): LatchkeyError {
  return new LatchkeyError(
    'E_NOT_MANAGED',
    `group ${displayName} of identity store ${store} exists without Latchkey's marker; it is not used or changed`,
  );
}

/**
 * Find or create the grant group. An existing group must carry our marker for this grant.
 * @returns the group id and whether it had to be created
 */
export async function ensureGroup(
  s: StoreRef,
  prefix: string,
  displayName: string,
  marker: GroupMarker,
): Promise<{ groupId: string; created: boolean }> {
  return withConflictRetry(s.signal, `create group ${displayName}`, async () => {
    const existing = await findGroupWithMarker(s, prefix, displayName);
    if (existing) {
      if (existing.marker?.grantId !== marker.grantId)
        throw notOurs(displayName, s.identityStoreId);
      return { groupId: existing.groupId, created: false };
    }
    const out = await awsSend(
      {
        service: 'identitystore',
        operation: 'CreateGroup',
        resource: displayName,
        signal: s.signal,
      },
      (o) =>
        s.ids.send(
          new CreateGroupCommand({
            IdentityStoreId: s.identityStoreId,
            DisplayName: displayName,
            Description: groupMarker(prefix, marker),
          }),
          o,
        ),
    );
    if (!out.GroupId) throw new LatchkeyError('E_INTERNAL', `CreateGroup returned no group id`);
    return { groupId: out.GroupId, created: true };
  });
}

/** `findGroup` with the marker parsed. */
export async function findGroupWithMarker(
  s: StoreRef,
  prefix: string,
  displayName: string,
): Promise<FoundGroup | null> {
  const g = await findGroup(s, displayName);
  if (g === null) return null;
  return { groupId: g.groupId, marker: parseGroupMarker(prefix, g.description) };
}

/** Put the user in the group; `false` when already a member. */
export async function ensureMembership(
  s: StoreRef,
  groupId: string,
  userId: string,
): Promise<boolean> {
  return withConflictRetry(s.signal, `add the user to group ${groupId}`, async () => {
    try {
      await awsSend(
        { service: 'identitystore', operation: 'GetGroupMembershipId', signal: s.signal },
        (o) =>
          s.ids.send(
            new GetGroupMembershipIdCommand({
              IdentityStoreId: s.identityStoreId,
              GroupId: groupId,
              MemberId: { UserId: userId },
            }),
            o,
          ),
      );
      return false;
    } catch (err) {
      if (!isCode(err, 'E_NOT_FOUND')) throw err;
    }
    await awsSend(
      { service: 'identitystore', operation: 'CreateGroupMembership', signal: s.signal },
      (o) =>
        s.ids.send(
          new CreateGroupMembershipCommand({
            IdentityStoreId: s.identityStoreId,
            GroupId: groupId,
            MemberId: { UserId: userId },
          }),
          o,
        ),
    );
    return true;
  });
}

/** Remove every membership of the group, then the group. `false` when it was already gone. */
export async function deleteGroup(s: StoreRef, groupId: string): Promise<boolean> {
  const memberships: string[] = [];
  try {
    await paginate(
      (token) =>
        awsSend(
          { service: 'identitystore', operation: 'ListGroupMemberships', signal: s.signal },
          (o) =>
            s.ids.send(
              new ListGroupMembershipsCommand({
                IdentityStoreId: s.identityStoreId,
                GroupId: groupId,
                ...(token ? { NextToken: token } : {}),
              }),
              o,
            ),
        ),
      (p) => p.NextToken,
      (p) => {
        for (const m of p.GroupMemberships ?? [])
          if (m.MembershipId) memberships.push(m.MembershipId);
      },
    );
  } catch (err) {
    if (isCode(err, 'E_NOT_FOUND')) return false;
    throw err;
  }
  for (const membershipId of memberships) {
    try {
      await awsSend(
        { service: 'identitystore', operation: 'DeleteGroupMembership', signal: s.signal },
        (o) =>
          s.ids.send(
            new DeleteGroupMembershipCommand({
              IdentityStoreId: s.identityStoreId,
              MembershipId: membershipId,
            }),
            o,
          ),
      );
    } catch (err) {
      if (!isCode(err, 'E_NOT_FOUND')) throw err;
    }
  }
  try {
    await awsSend(
      { service: 'identitystore', operation: 'DeleteGroup', resource: groupId, signal: s.signal },
      (o) =>
        s.ids.send(
          new DeleteGroupCommand({ IdentityStoreId: s.identityStoreId, GroupId: groupId }),
          o,
        ),
    );
    return true;
  } catch (err) {
    if (isCode(err, 'E_NOT_FOUND')) return false;
    throw err;
  }
}
