/**
 * A fake IAM Identity Center for the aws-identity-center tests: an identity store (users,
 * groups, memberships), permission sets with their policies, account assignments with
 * asynchronous requests (IN_PROGRESS on the first describe, then SUCCEEDED), and an
 * organization, served through `aws-sdk-client-mock` with paging (page size 2), so that
 * tests assert the real requests and what access a user effectively has afterwards. STS
 * answers the caller identity and IAM simulates the role's policy from `denied`.
 */
import { mockClient } from 'aws-sdk-client-mock';
import {
  AttachCustomerManagedPolicyReferenceToPermissionSetCommand,
  AttachManagedPolicyToPermissionSetCommand,
  ConflictException,
  CreateAccountAssignmentCommand,
  CreatePermissionSetCommand,
  DeleteAccountAssignmentCommand,
  DeletePermissionSetCommand,
  DescribeAccountAssignmentCreationStatusCommand,
  DescribeAccountAssignmentDeletionStatusCommand,
  DescribePermissionSetCommand,
  DescribePermissionSetProvisioningStatusCommand,
  GetInlinePolicyForPermissionSetCommand,
  GetPermissionsBoundaryForPermissionSetCommand,
  ListAccountAssignmentsCommand,
  ListAccountAssignmentsForPrincipalCommand,
  ListAccountsForProvisionedPermissionSetCommand,
  ListCustomerManagedPolicyReferencesInPermissionSetCommand,
  ListInstancesCommand,
  ListManagedPoliciesInPermissionSetCommand,
  ListPermissionSetsCommand,
  ProvisionPermissionSetCommand,
  PutInlinePolicyToPermissionSetCommand,
  PutPermissionsBoundaryToPermissionSetCommand,
  ResourceNotFoundException,
  type PermissionsBoundary,
  SSOAdminClient,
} from '@aws-sdk/client-sso-admin';
import {
  ConflictException as IdsConflictException,
  CreateGroupCommand,
  CreateGroupMembershipCommand,
  DeleteGroupCommand,
  DeleteGroupMembershipCommand,
  DescribeGroupCommand,
  GetGroupIdCommand,
  GetGroupMembershipIdCommand,
  GetUserIdCommand,
  IdentitystoreClient,
  ListGroupMembershipsCommand,
  ListGroupsCommand,
  ListUsersCommand,
  ResourceNotFoundException as IdsNotFound,
} from '@aws-sdk/client-identitystore';
import {
  DescribeOrganizationCommand,
  ListAccountsCommand,
  ListAccountsForParentCommand,
  ListOrganizationalUnitsForParentCommand,
  ListRootsCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { IAMClient, SimulatePrincipalPolicyCommand } from '@aws-sdk/client-iam';

export const INSTANCE = 'arn:aws:sso:::instance/ssoins-1234567890abcdef';
export const STORE = 'd-1234567890';
export const MGMT = '111111111111';
export const PROD = '222222222222';
export const DEV = '333333333333';
export const SANDBOX = '444444444444';

const meta = { $metadata: { httpStatusCode: 400 } };
const notFound = (m: string) => new ResourceNotFoundException({ message: m, ...meta });
const idsNotFound = (m: string) => new IdsNotFound({ message: m, ...meta });

export interface FakePermissionSet {
  arn: string;
  name: string;
  description?: string;
  sessionDuration: string;
  managed: string[];
  customerManaged: { Name: string; Path: string }[];
  inline: string;
  boundary?: PermissionsBoundary;
  provisionedTo: Set<string>;
  created: Date;
}

export interface FakeAssignment {
  permissionSetArn: string;
  accountId: string;
  principalType: 'USER' | 'GROUP';
  principalId: string;
}

const PAGE = 2;
function page<T>(items: T[], token: string | undefined): { items: T[]; next?: string } {
  const start = token ? Number(token) : 0;
  const slice = items.slice(start, start + PAGE);
  return start + PAGE < items.length
    ? { items: slice, next: String(start + PAGE) }
    : { items: slice };
}

export class World {
  readonly sso = mockClient(SSOAdminClient);
  readonly ids = mockClient(IdentitystoreClient);
  readonly orgs = mockClient(OrganizationsClient);
  readonly sts = mockClient(STSClient);
  readonly iam = mockClient(IAMClient);

  /** Actions the simulated role policy denies (`action` or `action@resource`). */
  denied = new Set<string>();
  users = new Map<string, { userName: string; email: string }>();
  groups = new Map<string, { displayName: string; description?: string }>();
  memberships = new Map<string, { groupId: string; userId: string }>();
  permissionSets = new Map<string, FakePermissionSet>();
  assignments: FakeAssignment[] = [];
  /** request id → remaining IN_PROGRESS answers, final status, reason */
  requests = new Map<
    string,
    { pending: number; status: 'SUCCEEDED' | 'FAILED'; reason?: string }
  >();
  /** Status the next request ends with (tests set FAILED). */
  nextOutcome: { status: 'SUCCEEDED' | 'FAILED'; reason?: string } = { status: 'SUCCEEDED' };
  ous: Record<string, { accounts: string[]; children: string[] }> = {
    'r-ab12': { accounts: [MGMT], children: ['ou-ab12-workload1', 'ou-ab12-sandbox1'] },
    'ou-ab12-workload1': { accounts: [PROD, DEV], children: [] },
    'ou-ab12-sandbox1': { accounts: [SANDBOX], children: [] },
  };
  /** Operation name → error its next call throws (a crash or a dropped connection). */
  crashOnce = new Map<string, Error>();
  private seq = 0;

  private crash(operation: string): void {
    const err = this.crashOnce.get(operation);
    if (err) {
      this.crashOnce.delete(operation);
      throw err;
    }
  }

  private id(prefix: string): string {
    this.seq++;
    return `${prefix}${String(this.seq).padStart(8, '0')}`;
  }

  addUser(userName: string, email: string): string {
    const id = `u-${userName}`;
    this.users.set(id, { userName, email });
    return id;
  }

  addPermissionSet(name: string, over: Partial<FakePermissionSet> = {}): FakePermissionSet {
    const hex = (++this.seq).toString(16).padStart(16, '0');
    const ps: FakePermissionSet = {
      arn: `arn:aws:sso:::permissionSet/ssoins-1234567890abcdef/ps-${hex}`,
      name,
      sessionDuration: 'PT1H',
      managed: [],
      customerManaged: [],
      inline: '',
      provisionedTo: new Set(),
      created: new Date(),
      ...over,
    };
    this.permissionSets.set(ps.arn, ps);
    return ps;
  }

  /** Can the user use the permission set in the account (directly or through a group)? */
  hasAccess(userId: string, psArn: string, accountId: string): boolean {
    const groups = [...this.memberships.values()]
      .filter((m) => m.userId === userId)
      .map((m) => m.groupId);
    return this.assignments.some(
      (a) =>
        a.permissionSetArn === psArn &&
        a.accountId === accountId &&
        ((a.principalType === 'USER' && a.principalId === userId) ||
          (a.principalType === 'GROUP' && groups.includes(a.principalId))),
    );
  }

  private request(): { RequestId: string; Status: 'IN_PROGRESS' } {
    const id = this.id('req-');
    this.requests.set(id, { pending: 1, ...this.nextOutcome });
    return { RequestId: id, Status: 'IN_PROGRESS' };
  }

  private describe(id: string | undefined) {
    const r = this.requests.get(id ?? '');
    if (!r) throw notFound(`request ${id ?? ''}`);
    if (r.pending > 0) {
      r.pending--;
      return { RequestId: id, Status: 'IN_PROGRESS' as const };
    }
    return { RequestId: id, Status: r.status, ...(r.reason ? { FailureReason: r.reason } : {}) };
  }

  private ps(arn: string | undefined): FakePermissionSet {
    const ps = this.permissionSets.get(arn ?? '');
    if (!ps) throw notFound(`permission set ${arn ?? ''}`);
    return ps;
  }

  install(): this {
    this.installSso();
    this.installIds();
    this.installOrgs();
    this.installIam();
    return this;
  }

  /** Empty estate, fresh handlers (call in beforeEach). */
  fresh(): this {
    for (const m of [this.sso, this.ids, this.orgs, this.sts, this.iam]) m.reset();
    this.denied = new Set();
    this.users = new Map();
    this.groups = new Map();
    this.memberships = new Map();
    this.permissionSets = new Map();
    this.assignments = [];
    this.requests = new Map();
    this.nextOutcome = { status: 'SUCCEEDED' };
    this.crashOnce = new Map();
    return this.install();
  }

  restore(): void {
    for (const m of [this.sso, this.ids, this.orgs, this.sts, this.iam]) m.restore();
  }

  private installSso(): void {
    const s = this.sso;
    s.on(ListInstancesCommand).resolves({
      Instances: [
        { InstanceArn: INSTANCE, IdentityStoreId: STORE, Status: 'ACTIVE', OwnerAccountId: MGMT },
      ],
    });
    s.on(ListPermissionSetsCommand).callsFake((i: { NextToken?: string }) => {
      const p = page([...this.permissionSets.keys()], i.NextToken);
      return { PermissionSets: p.items, ...(p.next ? { NextToken: p.next } : {}) };
    });
    s.on(DescribePermissionSetCommand).callsFake((i: { PermissionSetArn?: string }) => {
      const ps = this.ps(i.PermissionSetArn);
      return {
        PermissionSet: {
          PermissionSetArn: ps.arn,
          Name: ps.name,
          SessionDuration: ps.sessionDuration,
          CreatedDate: ps.created,
          ...(ps.description !== undefined ? { Description: ps.description } : {}),
        },
      };
    });
    s.on(ListManagedPoliciesInPermissionSetCommand).callsFake(
      (i: { PermissionSetArn?: string }) => ({
        AttachedManagedPolicies: this.ps(i.PermissionSetArn).managed.map((Arn) => ({
          Arn,
          Name: Arn.split('/').pop(),
        })),
      }),
    );
    s.on(ListCustomerManagedPolicyReferencesInPermissionSetCommand).callsFake(
      (i: { PermissionSetArn?: string }) => ({
        CustomerManagedPolicyReferences: this.ps(i.PermissionSetArn).customerManaged,
      }),
    );
    s.on(GetInlinePolicyForPermissionSetCommand).callsFake((i: { PermissionSetArn?: string }) => ({
      InlinePolicy: this.ps(i.PermissionSetArn).inline,
    }));
    s.on(CreatePermissionSetCommand).callsFake(
      (i: { Name?: string; Description?: string; SessionDuration?: string }) => {
        if ([...this.permissionSets.values()].some((p) => p.name === i.Name)) {
          throw new ConflictException({ message: 'exists', ...meta });
        }
        const ps = this.addPermissionSet(i.Name ?? '', {
          ...(i.Description !== undefined ? { description: i.Description } : {}),
          sessionDuration: i.SessionDuration ?? 'PT1H',
        });
        return {
          PermissionSet: { PermissionSetArn: ps.arn, Name: ps.name, Description: ps.description },
        };
      },
    );
    s.on(GetPermissionsBoundaryForPermissionSetCommand).callsFake(
      (i: { PermissionSetArn?: string }) => {
        const b = this.ps(i.PermissionSetArn).boundary;
        if (b === undefined) throw notFound('no permissions boundary');
        return { PermissionsBoundary: b };
      },
    );
    s.on(PutPermissionsBoundaryToPermissionSetCommand).callsFake(
      (i: { PermissionSetArn?: string; PermissionsBoundary?: PermissionsBoundary }) => {
        const ps = this.ps(i.PermissionSetArn);
        if (i.PermissionsBoundary !== undefined) ps.boundary = i.PermissionsBoundary;
        return {};
      },
    );
    s.on(PutInlinePolicyToPermissionSetCommand).callsFake(
      (i: { PermissionSetArn?: string; InlinePolicy?: string }) => {
        this.ps(i.PermissionSetArn).inline = i.InlinePolicy ?? '';
        return {};
      },
    );
    s.on(AttachManagedPolicyToPermissionSetCommand).callsFake(
      (i: { PermissionSetArn?: string; ManagedPolicyArn?: string }) => {
        const ps = this.ps(i.PermissionSetArn);
        if (ps.managed.includes(i.ManagedPolicyArn ?? ''))
          throw new ConflictException({ message: 'attached', ...meta });
        ps.managed.push(i.ManagedPolicyArn ?? '');
        return {};
      },
    );
    s.on(AttachCustomerManagedPolicyReferenceToPermissionSetCommand).callsFake(
      (i: {
        PermissionSetArn?: string;
        CustomerManagedPolicyReference?: { Name?: string; Path?: string };
      }) => {
        this.ps(i.PermissionSetArn).customerManaged.push({
          Name: i.CustomerManagedPolicyReference?.Name ?? '',
          Path: i.CustomerManagedPolicyReference?.Path ?? '/',
        });
        return {};
      },
    );
    s.on(DeletePermissionSetCommand).callsFake((i: { PermissionSetArn?: string }) => {
      const ps = this.ps(i.PermissionSetArn);
      if (this.assignments.some((a) => a.permissionSetArn === ps.arn)) {
        throw new ConflictException({ message: 'still assigned', ...meta });
      }
      this.permissionSets.delete(ps.arn);
      return {};
    });
    s.on(ProvisionPermissionSetCommand).callsFake(
      (i: { PermissionSetArn?: string; TargetId?: string }) => {
        this.ps(i.PermissionSetArn).provisionedTo.add(i.TargetId ?? '');
        return { PermissionSetProvisioningStatus: this.request() };
      },
    );
    s.on(DescribePermissionSetProvisioningStatusCommand).callsFake(
      (i: { ProvisionPermissionSetRequestId?: string }) => ({
        PermissionSetProvisioningStatus: this.describe(i.ProvisionPermissionSetRequestId),
      }),
    );
    s.on(CreateAccountAssignmentCommand).callsFake(
      (i: {
        PermissionSetArn?: string;
        TargetId?: string;
        PrincipalType?: string;
        PrincipalId?: string;
      }) => {
        this.crash('CreateAccountAssignment');
        const ps = this.ps(i.PermissionSetArn);
        const a: FakeAssignment = {
          permissionSetArn: ps.arn,
          accountId: i.TargetId ?? '',
          principalType: i.PrincipalType === 'USER' ? 'USER' : 'GROUP',
          principalId: i.PrincipalId ?? '',
        };
        const req = this.request();
        if (this.nextOutcome.status === 'SUCCEEDED') {
          if (!this.assignments.some((x) => JSON.stringify(x) === JSON.stringify(a)))
            this.assignments.push(a);
          ps.provisionedTo.add(a.accountId);
        }
        return { AccountAssignmentCreationStatus: req };
      },
    );
    s.on(DescribeAccountAssignmentCreationStatusCommand).callsFake(
      (i: { AccountAssignmentCreationRequestId?: string }) => ({
        AccountAssignmentCreationStatus: this.describe(i.AccountAssignmentCreationRequestId),
      }),
    );
    s.on(DeleteAccountAssignmentCommand).callsFake(
      (i: {
        PermissionSetArn?: string;
        TargetId?: string;
        PrincipalType?: string;
        PrincipalId?: string;
      }) => {
        const before = this.assignments.length;
        this.assignments = this.assignments.filter(
          (a) =>
            !(
              a.permissionSetArn === i.PermissionSetArn &&
              a.accountId === i.TargetId &&
              a.principalType === i.PrincipalType &&
              a.principalId === i.PrincipalId
            ),
        );
        if (before === this.assignments.length) throw notFound('assignment');
        return { AccountAssignmentDeletionStatus: this.request() };
      },
    );
    s.on(DescribeAccountAssignmentDeletionStatusCommand).callsFake(
      (i: { AccountAssignmentDeletionRequestId?: string }) => ({
        AccountAssignmentDeletionStatus: this.describe(i.AccountAssignmentDeletionRequestId),
      }),
    );
    s.on(ListAccountAssignmentsForPrincipalCommand).callsFake(
      (i: { PrincipalId?: string; PrincipalType?: string; NextToken?: string }) => {
        const p = page(
          this.assignments.filter(
            (a) => a.principalId === i.PrincipalId && a.principalType === i.PrincipalType,
          ),
          i.NextToken,
        );
        return {
          AccountAssignments: p.items.map((a) => ({
            AccountId: a.accountId,
            PermissionSetArn: a.permissionSetArn,
            PrincipalId: a.principalId,
            PrincipalType: a.principalType,
          })),
          ...(p.next ? { NextToken: p.next } : {}),
        };
      },
    );
    s.on(ListAccountsForProvisionedPermissionSetCommand).callsFake(
      (i: { PermissionSetArn?: string }) => ({
        AccountIds: [...this.ps(i.PermissionSetArn).provisionedTo],
      }),
    );
    s.on(ListAccountAssignmentsCommand).callsFake(
      (i: { PermissionSetArn?: string; AccountId?: string }) => ({
        AccountAssignments: this.assignments
          .filter((a) => a.permissionSetArn === i.PermissionSetArn && a.accountId === i.AccountId)
          .map((a) => ({
            AccountId: a.accountId,
            PermissionSetArn: a.permissionSetArn,
            PrincipalId: a.principalId,
            PrincipalType: a.principalType,
          })),
      }),
    );
  }

  private installIds(): void {
    const d = this.ids;
    d.on(GetUserIdCommand).callsFake(
      (i: {
        AlternateIdentifier?: {
          UniqueAttribute?: { AttributePath?: string; AttributeValue?: unknown };
        };
      }) => {
        const u = i.AlternateIdentifier?.UniqueAttribute;
        for (const [id, user] of this.users) {
          if (u?.AttributePath === 'emails.value' && user.email === u.AttributeValue)
            return { UserId: id, IdentityStoreId: STORE };
          if (u?.AttributePath === 'userName' && user.userName === u.AttributeValue)
            return { UserId: id, IdentityStoreId: STORE };
        }
        throw idsNotFound('user');
      },
    );
    d.on(ListUsersCommand).callsFake(
      (i: { Filters?: { AttributeValue?: string }[]; NextToken?: string }) => {
        const v = i.Filters?.[0]?.AttributeValue;
        const p = page(
          [...this.users.entries()].filter(([, u]) => v === undefined || u.userName === v),
          i.NextToken,
        );
        return {
          Users: p.items.map(([UserId, u]) => ({
            UserId,
            UserName: u.userName,
            IdentityStoreId: STORE,
          })),
          ...(p.next ? { NextToken: p.next } : {}),
        };
      },
    );
    d.on(GetGroupIdCommand).callsFake(
      (i: { AlternateIdentifier?: { UniqueAttribute?: { AttributeValue?: unknown } } }) => {
        for (const [id, g] of this.groups) {
          if (g.displayName === i.AlternateIdentifier?.UniqueAttribute?.AttributeValue)
            return { GroupId: id, IdentityStoreId: STORE };
        }
        throw idsNotFound('group');
      },
    );
    d.on(DescribeGroupCommand).callsFake((i: { GroupId?: string }) => {
      const g = this.groups.get(i.GroupId ?? '');
      if (!g) throw idsNotFound('group');
      return {
        GroupId: i.GroupId,
        DisplayName: g.displayName,
        Description: g.description,
        IdentityStoreId: STORE,
      };
    });
    d.on(CreateGroupCommand).callsFake((i: { DisplayName?: string; Description?: string }) => {
      if ([...this.groups.values()].some((g) => g.displayName === i.DisplayName)) {
        throw new IdsConflictException({ message: 'duplicate', ...meta });
      }
      const id = this.id('grp-');
      this.groups.set(id, {
        displayName: i.DisplayName ?? '',
        ...(i.Description !== undefined ? { description: i.Description } : {}),
      });
      return { GroupId: id, IdentityStoreId: STORE };
    });
    d.on(ListGroupsCommand).callsFake((i: { NextToken?: string }) => {
      const p = page([...this.groups.entries()], i.NextToken);
      return {
        Groups: p.items.map(([GroupId, g]) => ({
          GroupId,
          DisplayName: g.displayName,
          Description: g.description,
          IdentityStoreId: STORE,
        })),
        ...(p.next ? { NextToken: p.next } : {}),
      };
    });
    d.on(GetGroupMembershipIdCommand).callsFake(
      (i: { GroupId?: string; MemberId?: { UserId?: string } }) => {
        for (const [id, m] of this.memberships) {
          if (m.groupId === i.GroupId && m.userId === i.MemberId?.UserId)
            return { MembershipId: id, IdentityStoreId: STORE };
        }
        throw idsNotFound('membership');
      },
    );
    d.on(CreateGroupMembershipCommand).callsFake(
      (i: { GroupId?: string; MemberId?: { UserId?: string } }) => {
        const id = this.id('mem-');
        this.memberships.set(id, { groupId: i.GroupId ?? '', userId: i.MemberId?.UserId ?? '' });
        return { MembershipId: id, IdentityStoreId: STORE };
      },
    );
    d.on(ListGroupMembershipsCommand).callsFake((i: { GroupId?: string }) => {
      if (!this.groups.has(i.GroupId ?? '')) throw idsNotFound('group');
      return {
        GroupMemberships: [...this.memberships.entries()]
          .filter(([, m]) => m.groupId === i.GroupId)
          .map(([MembershipId, m]) => ({
            MembershipId,
            GroupId: m.groupId,
            MemberId: { UserId: m.userId },
          })),
      };
    });
    d.on(DeleteGroupMembershipCommand).callsFake((i: { MembershipId?: string }) => {
      if (!this.memberships.delete(i.MembershipId ?? '')) throw idsNotFound('membership');
      return {};
    });
    d.on(DeleteGroupCommand).callsFake((i: { GroupId?: string }) => {
      if (!this.groups.delete(i.GroupId ?? '')) throw idsNotFound('group');
      return {};
    });
  }

  private installIam(): void {
    this.sts.on(GetCallerIdentityCommand).resolves({
      Account: MGMT,
      Arn: `arn:aws:sts::${MGMT}:assumed-role/latchkey-identity-center/latchkey`,
    });
    // One result per action, one resource-specific result per resource; pages of 3.
    this.iam
      .on(SimulatePrincipalPolicyCommand)
      .callsFake((i: { ActionNames?: string[]; ResourceArns?: string[]; Marker?: string }) => {
        const start = i.Marker ? Number(i.Marker) : 0;
        const names = (i.ActionNames ?? []).slice(start, start + 3);
        const decide = (a: string, r: string) =>
          this.denied.has(a) || this.denied.has(`${a}@${r}`) ? 'implicitDeny' : 'allowed';
        return {
          EvaluationResults: names.map((a) => {
            const per = (i.ResourceArns ?? []).map((r) => ({
              EvalResourceName: r,
              EvalResourceDecision: decide(a, r),
            }));
            return {
              EvalActionName: a,
              EvalResourceName: '*',
              EvalDecision: per.every((x) => x.EvalResourceDecision === 'allowed')
                ? 'allowed'
                : 'implicitDeny',
              ResourceSpecificResults: per,
            };
          }),
          ...(start + 3 < (i.ActionNames ?? []).length
            ? { IsTruncated: true, Marker: String(start + 3) }
            : { IsTruncated: false }),
        };
      });
  }

  private installOrgs(): void {
    const o = this.orgs;
    o.on(DescribeOrganizationCommand).resolves({ Organization: { MasterAccountId: MGMT } });
    const all = () => Object.values(this.ous).flatMap((n) => n.accounts);
    o.on(ListAccountsCommand).callsFake((i: { NextToken?: string }) => {
      const p = page(all(), i.NextToken);
      return {
        Accounts: p.items.map((Id) => ({ Id, Name: `acct-${Id}`, State: 'ACTIVE' as const })),
        ...(p.next ? { NextToken: p.next } : {}),
      };
    });
    o.on(ListRootsCommand).resolves({ Roots: [{ Id: 'r-ab12' }] });
    o.on(ListAccountsForParentCommand).callsFake((i: { ParentId?: string }) => ({
      Accounts: (this.ous[i.ParentId ?? '']?.accounts ?? []).map((Id) => ({
        Id,
        Name: `acct-${Id}`,
        State: 'ACTIVE' as const,
      })),
    }));
    o.on(ListOrganizationalUnitsForParentCommand).callsFake((i: { ParentId?: string }) => ({
      OrganizationalUnits: (this.ous[i.ParentId ?? '']?.children ?? []).map((Id) => ({ Id })),
    }));
  }
}
