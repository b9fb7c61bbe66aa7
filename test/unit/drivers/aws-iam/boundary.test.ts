/**
 * aws-iam permissions boundaries (issue 14, item 5): `attach` records the principal's
 * boundary, attaches the configured one for as long as a grant lives, and puts the old one
 * back on revoke and on expiry; `require` grants only to principals already bounded.
 * IAM is a small stateful fake at the SDK command level, so that a crash between any two
 * steps can be injected and the re-run checked against the principal's final state.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DeleteRolePermissionsBoundaryCommand,
  GetPolicyCommand,
  DeleteRolePolicyCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  GetUserCommand,
  IAMClient,
  IAMServiceException,
  ListRolePoliciesCommand,
  ListRolesCommand,
  ListUsersCommand,
  NoSuchEntityException,
  PutRolePermissionsBoundaryCommand,
  PutRolePolicyCommand,
  PutUserPermissionsBoundaryCommand,
  PutUserPolicyCommand,
  GetUserPolicyCommand,
  ListUserPoliciesCommand,
  TagRoleCommand,
  TagUserCommand,
  UntagRoleCommand,
} from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { driverFactory } from '../../../../src/drivers/aws-iam/index.js';
import { NOW, makeCtx, makeServices, rejection } from '../../aws/helpers.js';

const ACCOUNT = '123456789012';
const ROLE = 'data-analyst';
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/${ROLE}`;
const USER_ARN = `arn:aws:iam::${ACCOUNT}:user/jane`;
const OURS = `arn:aws:iam::${ACCOUNT}:policy/latchkey-jit-boundary`;
const THEIRS = `arn:aws:iam::${ACCOUNT}:policy/team-boundary`;
const TABLE = `arn:aws:dynamodb:eu-west-1:${ACCOUNT}:table/orders`;
const LATER = '2026-11-26T08:00:00.000Z';

const iam = mockClient(IAMClient);
const sts = mockClient(STSClient);

/** The principal as IAM holds it. */
interface FakePrincipal {
  boundary: string | null;
  tags: Map<string, string>;
  policies: Map<string, string>;
}
let role: FakePrincipal;
let user: FakePrincipal;
/** Operation names, in order; and a one-shot failure to inject. */
let calls: string[];
let failNext: string | null;

function notFound(): NoSuchEntityException {
  return new NoSuchEntityException({ message: 'not found', $metadata: { httpStatusCode: 404 } });
}
function crash(op: string): void {
  if (failNext === op) {
    failNext = null;
    throw new IAMServiceException({
      name: 'ServiceFailure',
      message: 'injected failure',
      $fault: 'server',
      $metadata: { httpStatusCode: 500 },
    });
  }
}

function installFake(): void {
  const rec =
    <I, O>(op: string, fn: (input: I) => O) =>
    (input: I): O => {
      calls.push(op);
      crash(op);
      return fn(input);
    };
  const pr = (p: FakePrincipal) => ({
    ...(p.boundary !== null
      ? {
          PermissionsBoundary: {
            PermissionsBoundaryArn: p.boundary,
            PermissionsBoundaryType: 'Policy' as const,
          },
        }
      : {}),
    Tags: [...p.tags].map(([Key, Value]) => ({ Key, Value })),
  });
  iam.on(GetRoleCommand).callsFake(
    rec('GetRole', () => ({
      Role: {
        RoleName: ROLE,
        Arn: ROLE_ARN,
        Path: '/',
        RoleId: 'AROA1',
        CreateDate: new Date(),
        ...pr(role),
      },
    })),
  );
  iam.on(GetUserCommand).callsFake(
    rec('GetUser', () => ({
      User: {
        UserName: 'jane',
        Arn: USER_ARN,
        Path: '/',
        UserId: 'AIDA1',
        CreateDate: new Date(),
        ...pr(user),
      },
    })),
  );
  iam.on(TagRoleCommand).callsFake(
    rec('TagRole', (i: { Tags?: { Key?: string; Value?: string }[] }) => {
      for (const t of i.Tags ?? []) role.tags.set(t.Key ?? '', t.Value ?? '');
      return {};
    }),
  );
  iam.on(TagUserCommand).callsFake(
    rec('TagUser', (i: { Tags?: { Key?: string; Value?: string }[] }) => {
      for (const t of i.Tags ?? []) user.tags.set(t.Key ?? '', t.Value ?? '');
      return {};
    }),
  );
  iam.on(UntagRoleCommand).callsFake(
    rec('UntagRole', (i: { TagKeys?: string[] }) => {
      for (const k of i.TagKeys ?? []) role.tags.delete(k);
      return {};
    }),
  );
  iam.on(PutRolePermissionsBoundaryCommand).callsFake(
    rec('PutRolePermissionsBoundary', (i: { PermissionsBoundary?: string }) => {
      role.boundary = i.PermissionsBoundary ?? null;
      return {};
    }),
  );
  iam.on(PutUserPermissionsBoundaryCommand).callsFake(
    rec('PutUserPermissionsBoundary', (i: { PermissionsBoundary?: string }) => {
      user.boundary = i.PermissionsBoundary ?? null;
      return {};
    }),
  );
  iam.on(DeleteRolePermissionsBoundaryCommand).callsFake(
    rec('DeleteRolePermissionsBoundary', () => {
      if (role.boundary === null) throw notFound();
      role.boundary = null;
      return {};
    }),
  );
  const getPolicy = (p: FakePrincipal, kind: string) =>
    rec(`Get${kind}Policy`, (i: { PolicyName?: string }) => {
      const doc = p.policies.get(i.PolicyName ?? '');
      if (doc === undefined) throw notFound();
      return { PolicyName: i.PolicyName, PolicyDocument: encodeURIComponent(doc) };
    });
  const listPolicies = (p: FakePrincipal, kind: string) =>
    rec(`List${kind}Policies`, () => ({ PolicyNames: [...p.policies.keys()], IsTruncated: false }));
  const putPolicy = (p: FakePrincipal, kind: string) =>
    rec(`Put${kind}Policy`, (i: { PolicyName?: string; PolicyDocument?: string }) => {
      p.policies.set(i.PolicyName ?? '', i.PolicyDocument ?? '');
      return {};
    });
  iam.on(GetRolePolicyCommand).callsFake(getPolicy(role, 'Role'));
  iam.on(GetUserPolicyCommand).callsFake(getPolicy(user, 'User'));
  iam.on(ListRolePoliciesCommand).callsFake(listPolicies(role, 'Role'));
  iam.on(ListUserPoliciesCommand).callsFake(listPolicies(user, 'User'));
  iam.on(PutRolePolicyCommand).callsFake(putPolicy(role, 'Role'));
  iam.on(PutUserPolicyCommand).callsFake(putPolicy(user, 'User'));
  iam.on(DeleteRolePolicyCommand).callsFake(
    rec('DeleteRolePolicy', (i: { PolicyName?: string }) => {
      if (!role.policies.delete(i.PolicyName ?? '')) throw notFound();
      return {};
    }),
  );
  iam.on(ListRolesCommand).callsFake(
    rec('ListRoles', () => ({
      Roles: [
        { RoleName: ROLE, Arn: ROLE_ARN, Path: '/', RoleId: 'AROA1', CreateDate: new Date() },
      ],
      IsTruncated: false,
    })),
  );
  iam.on(ListUsersCommand).callsFake(rec('ListUsers', () => ({ Users: [], IsTruncated: false })));
}

function grant(id: string, expiresAt = LATER, principal = ROLE_ARN) {
  return {
    grantId: id,
    grantee: { email: 'jane@example.com', awsPrincipalArn: principal },
    resources: [{ type: 'dynamodb-table', id: TABLE }],
    permission: 'read',
    expiresAt,
  };
}
function revoke(id: string) {
  return {
    grantId: id,
    grantee: { email: 'jane@example.com', awsPrincipalArn: ROLE_ARN },
    resources: [],
    permission: 'read',
  };
}

describe('aws-iam permissions boundary', () => {
  const driver = driverFactory(makeServices());
  const attach = makeCtx({
    type: 'aws-iam',
    config: {
      accountId: ACCOUNT,
      regions: ['eu-west-1'],
      permissionsBoundary: { policyArn: OURS, mode: 'attach' },
    },
  });
  const require_ = makeCtx({
    type: 'aws-iam',
    config: {
      accountId: ACCOUNT,
      regions: ['eu-west-1'],
      permissionsBoundary: { policyArn: OURS, mode: 'require' },
    },
  });

  beforeEach(() => {
    iam.reset();
    role = { boundary: null, tags: new Map([['team', 'data']]), policies: new Map() };
    user = { boundary: null, tags: new Map(), policies: new Map() };
    calls = [];
    failNext = null;
    installFake();
  });
  afterAll(() => {
    iam.restore();
    sts.restore();
  });

  describe('attach', () => {
    it('records "none", attaches the boundary before the policy, and removes it on revoke', async () => {
      const out = await driver.grant(attach, grant('g-1'));
      expect(calls.filter((c) => !c.startsWith('Get') && !c.startsWith('List'))).toEqual([
        'TagRole',
        'PutRolePermissionsBoundary',
        'PutRolePolicy',
      ]);
      expect(role.boundary).toBe(OURS);
      expect(Object.fromEntries(role.tags)).toEqual({
        team: 'data',
        'latchkey-boundary-previous': 'none',
        'latchkey-boundary-attached': OURS,
      });
      expect(out.access).toMatchObject({
        permissionsBoundary: { policyArn: OURS, mode: 'attach', previous: 'none' },
      });

      const r = await driver.revoke(attach, revoke('g-1'));
      expect(role.boundary).toBeNull();
      expect(Object.fromEntries(role.tags)).toEqual({ team: 'data' });
      expect(role.policies.size).toBe(0);
      expect(r.phases).toEqual([
        { phase: 'delete-policy', status: 'done', detail: 'deleted latchkey-grant-g-1' },
        {
          phase: 'restore-boundary',
          status: 'done',
          detail: 'permissions boundary restored to none',
        },
      ]);
      // Policy first, boundary after: the grant is never live without its boundary.
      expect(calls.indexOf('DeleteRolePolicy')).toBeLessThan(
        calls.indexOf('DeleteRolePermissionsBoundary'),
      );
    });

    it('puts back the boundary the role had, only when its last grant ends', async () => {
      role.boundary = THEIRS;
      await driver.grant(attach, grant('g-1'));
      await driver.grant(attach, grant('g-2'));
      expect(role.tags.get('latchkey-boundary-previous')).toBe(THEIRS);
      expect(role.boundary).toBe(OURS);

      const first = await driver.revoke(attach, revoke('g-1'));
      expect(first.phases[1]?.status).toBe('skipped');
      expect(first.phases[1]?.detail).toContain('1 live grant');
      expect(role.boundary).toBe(OURS);

      await driver.revoke(attach, revoke('g-2'));
      expect(role.boundary).toBe(THEIRS);
      expect([...role.tags.keys()]).toEqual(['team']);
      // Idempotent: a second revoke changes nothing.
      const again = await driver.revoke(attach, revoke('g-2'));
      expect(again.alreadyRevoked).toBe(true);
      expect(role.boundary).toBe(THEIRS);
    });

    it('a record the principal wrote itself is not believed', async () => {
      role.boundary = THEIRS;
      role.tags.set('latchkey-boundary-previous', 'none'); // forged, to have THEIRS removed later
      await driver.grant(attach, grant('g-1'));
      expect(role.tags.get('latchkey-boundary-previous')).toBe(THEIRS);
      await driver.revoke(attach, revoke('g-1'));
      expect(role.boundary).toBe(THEIRS);
    });

    it('converges after a crash at each step of grant and of revoke', async () => {
      role.boundary = THEIRS;
      for (const step of ['TagRole', 'PutRolePermissionsBoundary', 'PutRolePolicy']) {
        failNext = step;
        const err = await rejection(driver.grant(attach, grant('g-1')));
        expect(err.code, step).toBe('E_CONNECT'); // a 5xx of IAM
      }
      await driver.grant(attach, grant('g-1'));
      expect(role.boundary).toBe(OURS);
      expect(role.tags.get('latchkey-boundary-previous')).toBe(THEIRS);
      expect(role.policies.has('latchkey-grant-g-1')).toBe(true);

      for (const step of ['PutRolePermissionsBoundary', 'UntagRole']) {
        failNext = step;
        await rejection(driver.revoke(attach, revoke('g-1')));
      }
      await driver.revoke(attach, revoke('g-1'));
      expect(role.boundary).toBe(THEIRS);
      expect([...role.tags.keys()]).toEqual(['team']);
      expect(role.policies.size).toBe(0);
    });

    it('a grant that fails after attaching (policy too large) leaves the principal as it was', async () => {
      role.boundary = THEIRS;
      role.policies.set('big', JSON.stringify({ Version: '2012-10-17', x: 'y'.repeat(10200) }));
      const err = await rejection(driver.grant(attach, grant('g-1')));
      expect(err.code).toBe('E_POLICY_TOO_LARGE');
      expect(role.boundary).toBe(THEIRS);
      expect([...role.tags.keys()]).toEqual(['team']);
    });

    it('expiry: the sweep restores the boundary before deleting the expired policy, and converges after a crash', async () => {
      role.boundary = THEIRS;
      await driver.grant(attach, grant('g-1'));
      // The grant's expiry passes (documents are compared by content only, so rewrite it).
      const doc = role.policies.get('latchkey-grant-g-1') ?? '';
      role.policies.set('latchkey-grant-g-1', doc.replace(LATER, '2026-11-25T19:00:00.000Z'));
      expect(new Date('2026-11-25T19:00:00.000Z') < NOW).toBe(true);

      failNext = 'PutRolePermissionsBoundary';
      const first = await driver.sweep!(attach);
      expect(first.errors).toHaveLength(1);
      expect(role.policies.has('latchkey-grant-g-1')).toBe(true); // kept for the next sweep

      const second = await driver.sweep!(attach);
      expect(second.errors).toEqual([]);
      expect(second.revoked).toEqual([`${ROLE_ARN}#latchkey-grant-g-1`]);
      expect(role.boundary).toBe(THEIRS);
      expect([...role.tags.keys()]).toEqual(['team']);
      expect(calls.lastIndexOf('PutRolePermissionsBoundary')).toBeLessThan(
        calls.lastIndexOf('DeleteRolePolicy'),
      );
    });

    it('works on IAM users too', async () => {
      await driver.grant(attach, grant('g-1', LATER, USER_ARN));
      expect(user.boundary).toBe(OURS);
      expect(user.tags.get('latchkey-boundary-previous')).toBe('none');
      expect(calls).toContain('TagUser');
    });

    it('refuses a principal that carries another integration’s boundary for its grants', async () => {
      role.boundary = THEIRS;
      role.tags.set('latchkey-boundary-attached', THEIRS);
      role.tags.set('latchkey-boundary-previous', 'none');
      const err = await rejection(driver.grant(attach, grant('g-1')));
      expect(err.code).toBe('E_GUARDRAIL');
      expect(role.boundary).toBe(THEIRS);
      expect(role.policies.size).toBe(0);
    });
  });

  describe('check', () => {
    it('reports the boundary policy and what the mode needs of it, or that it cannot be read', async () => {
      sts.on(GetCallerIdentityCommand).resolves({ Account: ACCOUNT, Arn: 'arn:aws:sts::1:x' });
      iam.on(GetPolicyCommand, { PolicyArn: OURS }).resolves({
        Policy: { Arn: OURS, PolicyName: 'latchkey-jit-boundary' },
      });
      const out = await driver.check(attach);
      const line = out.checks.find((c) => c.name === 'permissionsBoundary');
      expect(line?.ok).toBe(true);
      expect(line?.detail).toContain('must deny them iam:TagRole');
      expect(iam).toHaveReceivedCommandWith(GetPolicyCommand, { PolicyArn: OURS });

      iam.on(GetPolicyCommand).rejects(notFound());
      const missing = await driver.check(require_);
      expect(missing.ok).toBe(false);
      expect(missing.checks.find((c) => c.name === 'permissionsBoundary')?.ok).toBe(false);
    });
  });

  describe('require', () => {
    it('grants only to a principal already bounded by the policy, and changes no boundary', async () => {
      role.boundary = THEIRS;
      const err = await rejection(driver.grant(require_, grant('g-1')));
      expect(err.code).toBe('E_GUARDRAIL');
      expect(err.message).toContain(OURS);
      expect(role.policies.size).toBe(0);

      role.boundary = OURS;
      const out = await driver.grant(require_, grant('g-1'));
      expect(out.access).toMatchObject({
        permissionsBoundary: { policyArn: OURS, mode: 'require' },
      });
      expect(calls).not.toContain('PutRolePermissionsBoundary');
      expect(calls).not.toContain('TagRole');
      const r = await driver.revoke(require_, revoke('g-1'));
      expect(r.phases.map((p) => p.phase)).toEqual(['delete-policy']);
      expect(role.boundary).toBe(OURS);
    });
  });
});
