import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  AssociateAccessPolicyCommand,
  CreateAccessEntryCommand,
  DeleteAccessEntryCommand,
  DescribeAccessEntryCommand,
  DescribeClusterCommand,
  DisassociateAccessPolicyCommand,
  EKSClient,
  ListAccessEntriesCommand,
  ListAssociatedAccessPoliciesCommand,
  ListClustersCommand,
  ResourceNotFoundException,
  TagResourceCommand,
  UntagResourceCommand,
  type AccessScope,
} from '@aws-sdk/client-eks';
import { GetRoleCommand, IAMClient } from '@aws-sdk/client-iam';
import { AwsEksDriver } from '../../../../src/drivers/aws-eks/index.js';
import { NOW, makeCtx, makeServices, rejection } from '../../aws/helpers.js';
import {
  A,
  B,
  C,
  HOME,
  MEMBER_ROLE,
  OU_SANDBOX,
  REGIONS,
  ROOT,
  ec2,
  memberRoleArnOf,
  orgs,
  serveOrganization,
  sts,
  whereOf,
} from '../../aws/org-world.js';

const VIEW = 'arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy';

const eks = mockClient(EKSClient);
const iam = mockClient(IAMClient);
const all = [eks, iam, ec2, sts, orgs];

const tree = {
  ous: { [ROOT]: [OU_SANDBOX] },
  accounts: { [ROOT]: [HOME, A, B], [OU_SANDBOX]: [C] },
};
const config = {
  accountId: HOME,
  regions: REGIONS,
  listNamespaces: false,
  organization: { memberRoleName: MEMBER_ROLE },
};

const clusterOf = (account: string, region: string) =>
  `arn:aws:eks:${region}:${account}:cluster/k-${account.slice(0, 3)}`;
const notFound = () =>
  new ResourceNotFoundException({ message: 'not found', $metadata: { httpStatusCode: 404 } });

interface Entry {
  tags: Record<string, string>;
  associations: Map<string, AccessScope>;
}

/**
 * One cluster `k-<account prefix>` per (account, region), in API_AND_CONFIG_MAP mode.
 * Entries are kept per (account, region, cluster, principal) as the call's credentials say,
 * so a call sent with the wrong account's role finds nothing there.
 */
function serveEks(): { calls: { op: string; account: string; region: string }[] } {
  const calls: { op: string; account: string; region: string }[] = [];
  const entries = new Map<string, Entry>();
  const where = async (op: string, getClient: () => unknown) => {
    const w = await whereOf(getClient);
    calls.push({ op, ...w });
    return w;
  };
  const key = (w: { account: string; region: string }, cluster?: string, p?: string) =>
    `${w.account}|${w.region}|${cluster ?? ''}|${p ?? ''}`;
  const own = (w: { account: string }, cluster?: string) => {
    if (cluster !== `k-${w.account.slice(0, 3)}`) throw notFound();
  };
  eks.on(ListClustersCommand).callsFake(async (_i: unknown, gc) => {
    const w = await where('ListClusters', gc);
    return { clusters: [`k-${w.account.slice(0, 3)}`] };
  });
  eks.on(DescribeClusterCommand).callsFake(async (i: { name: string }, gc) => {
    const w = await where('DescribeCluster', gc);
    own(w, i.name);
    return {
      cluster: {
        name: i.name,
        arn: clusterOf(w.account, w.region),
        status: 'ACTIVE',
        accessConfig: { authenticationMode: 'API_AND_CONFIG_MAP' },
        tags: {},
      },
    };
  });
  eks
    .on(DescribeAccessEntryCommand)
    .callsFake(async (i: { clusterName: string; principalArn: string }, gc) => {
      const w = await where('DescribeAccessEntry', gc);
      const e = entries.get(key(w, i.clusterName, i.principalArn));
      if (!e) throw notFound();
      return {
        accessEntry: {
          clusterName: i.clusterName,
          principalArn: i.principalArn,
          accessEntryArn: `arn:aws:eks:${w.region}:${w.account}:access-entry/${i.clusterName}/role/x/y/z`,
          type: 'STANDARD',
          tags: { ...e.tags },
        },
      };
    });
  eks
    .on(CreateAccessEntryCommand)
    .callsFake(
      async (
        i: { clusterName: string; principalArn: string; tags?: Record<string, string> },
        gc,
      ) => {
        const w = await where('CreateAccessEntry', gc);
        own(w, i.clusterName);
        entries.set(key(w, i.clusterName, i.principalArn), {
          tags: { ...(i.tags ?? {}) },
          associations: new Map(),
        });
        return {
          accessEntry: {
            clusterName: i.clusterName,
            principalArn: i.principalArn,
            accessEntryArn: `arn:aws:eks:${w.region}:${w.account}:access-entry/${i.clusterName}/role/x/y/z`,
            type: 'STANDARD',
            tags: { ...(i.tags ?? {}) },
          },
        };
      },
    );
  eks
    .on(ListAssociatedAccessPoliciesCommand)
    .callsFake(async (i: { clusterName: string; principalArn: string }, gc) => {
      const w = await where('ListAssociatedAccessPolicies', gc);
      const e = entries.get(key(w, i.clusterName, i.principalArn));
      if (!e) throw notFound();
      return {
        associatedAccessPolicies: [...e.associations].map(([policyArn, accessScope]) => ({
          policyArn,
          accessScope,
        })),
      };
    });
  eks.on(AssociateAccessPolicyCommand).callsFake(
    async (
      i: {
        clusterName: string;
        principalArn: string;
        policyArn: string;
        accessScope: AccessScope;
      },
      gc,
    ) => {
      const w = await where('AssociateAccessPolicy', gc);
      const e = entries.get(key(w, i.clusterName, i.principalArn));
      if (!e) throw notFound();
      e.associations.set(i.policyArn, i.accessScope);
      return {};
    },
  );
  eks
    .on(DisassociateAccessPolicyCommand)
    .callsFake(async (i: { clusterName: string; principalArn: string; policyArn: string }, gc) => {
      const w = await where('DisassociateAccessPolicy', gc);
      const e = entries.get(key(w, i.clusterName, i.principalArn));
      if (!e?.associations.delete(i.policyArn)) throw notFound();
      return {};
    });
  eks
    .on(DeleteAccessEntryCommand)
    .callsFake(async (i: { clusterName: string; principalArn: string }, gc) => {
      const w = await where('DeleteAccessEntry', gc);
      if (!entries.delete(key(w, i.clusterName, i.principalArn))) throw notFound();
      return {};
    });
  eks.on(ListAccessEntriesCommand).callsFake(async (i: { clusterName: string }, gc) => {
    const w = await where('ListAccessEntries', gc);
    const prefix = key(w, i.clusterName);
    return {
      accessEntries: [...entries.keys()]
        .filter((k) => k.startsWith(prefix))
        .map((k) => k.slice(prefix.length)),
    };
  });
  eks.on(TagResourceCommand).rejects(new Error('TagResource not expected in these tests'));
  eks.on(UntagResourceCommand).rejects(new Error('UntagResource not expected in these tests'));
  iam.on(GetRoleCommand).callsFake(async (i: { RoleName: string }, gc) => {
    const w = await whereOf(gc);
    calls.push({ op: 'GetRole', ...w });
    return { Role: { RoleName: i.RoleName, Tags: [] } };
  });
  return { calls };
}

describe('aws-eks organization mode', () => {
  let services = makeServices();
  let driver = new AwsEksDriver(services);
  const ctx = (cfg: Record<string, unknown> = config) => makeCtx({ type: 'aws-eks', config: cfg });

  beforeEach(() => {
    for (const m of all) m.reset();
    services = makeServices();
    driver = new AwsEksDriver(services);
  });
  afterAll(() => {
    for (const m of [eks, iam]) m.restore();
  });

  it('discovers the clusters of every account and region with that account’s member role; an unreachable account is a warning', async () => {
    const { assumed } = serveOrganization({ ...tree, denyAssume: [B] });
    const { calls } = serveEks();
    const out = await driver.discover(ctx());

    expect(
      out.resources
        .filter((r) => r.type === 'aws-account')
        .map((r) => [r.id, r.metadata.reachable]),
    ).toEqual([
      [`aws-account:${HOME}`, true],
      [`aws-account:${A}`, true],
      [`aws-account:${B}`, false],
      [`aws-account:${C}`, true],
    ]);
    const clusters = out.resources.filter((r) => r.type === 'eks-cluster');
    expect(clusters.map((r) => [r.id, r.parentId]).sort()).toEqual(
      [HOME, A, C].flatMap((a) => REGIONS.map((r) => [clusterOf(a, r), `aws-account:${a}`])).sort(),
    );
    // Exactly one member role per member account, never one for the home account.
    expect([...new Set(assumed)].sort()).toEqual([A, B, C].map(memberRoleArnOf));
    // Every EKS call went to the account and region of the cluster it was about.
    for (const r of clusters) {
      expect(r.metadata.accountId).toBe(r.id.split(':')[4]);
    }
    expect(calls.filter((c) => c.account === B)).toEqual([]);
    expect(
      calls
        .filter((c) => c.op === 'ListClusters')
        .map((c) => `${c.account}/${c.region}`)
        .sort(),
    ).toEqual([HOME, A, C].flatMap((a) => REGIONS.map((r) => `${a}/${r}`)).sort());
    expect(out.warnings).toHaveLength(1);
    expect(out.warnings[0]).toMatchObject({ resourceId: `aws-account:${B}` });
    expect(out.warnings[0]?.message).toMatch(/not authorized to perform: sts:AssumeRole/);
  });

  it('leaves excluded accounts and OUs alone: no role assumed, no call, grants refused', async () => {
    const { assumed } = serveOrganization(tree);
    const { calls } = serveEks();
    const cfg = {
      ...config,
      organization: {
        memberRoleName: MEMBER_ROLE,
        excludedOuIds: [OU_SANDBOX],
        excludedAccountIds: [A],
      },
    };
    const out = await driver.discover(ctx(cfg));
    expect(out.resources.filter((r) => r.type === 'aws-account').map((r) => r.id)).toEqual([
      `aws-account:${HOME}`,
      `aws-account:${B}`,
    ]);
    expect([...new Set(assumed)]).toEqual([memberRoleArnOf(B)]);
    expect(calls.filter((c) => c.account === A || c.account === C)).toEqual([]);

    for (const account of [A, C]) {
      const err = await rejection(
        driver.grant(ctx(cfg), {
          grantId: 'g1',
          grantee: {
            email: 'jane@example.com',
            awsPrincipalArn: `arn:aws:iam::${B}:role/data-analyst`,
          },
          resources: [{ type: 'eks-cluster', id: clusterOf(account, 'eu-west-1') }],
          permission: 'view',
        }),
      );
      expect(err.code).toBe('E_GUARDRAIL');
    }
    expect(eks).not.toHaveReceivedCommand(CreateAccessEntryCommand);
    expect(eks).not.toHaveReceivedCommand(AssociateAccessPolicyCommand);
    expect(assumed).not.toContain(memberRoleArnOf(A));
    expect(assumed).not.toContain(memberRoleArnOf(C));
  });

  it('grants and revokes on a member account’s cluster with that account’s member role only', async () => {
    const { assumed } = serveOrganization(tree);
    const { calls } = serveEks();
    const grantee = `arn:aws:iam::${A}:role/data-analyst`;
    const cluster = clusterOf(A, 'us-east-1');
    const params = {
      grantId: 'g1',
      grantee: { email: 'jane@example.com', awsPrincipalArn: grantee },
      resources: [{ type: 'eks-cluster', id: cluster }],
      permission: 'view',
      expiresAt: new Date(NOW.getTime() + 3600_000).toISOString(),
    };
    const out = await driver.grant(ctx(), params);
    expect(out.alreadyGranted).toBe(false);
    expect([...new Set(assumed)]).toEqual([memberRoleArnOf(A)]);
    const writes = calls.filter((c) => /^(Create|Associate)/.test(c.op));
    expect(writes).toEqual([
      { op: 'CreateAccessEntry', account: A, region: 'us-east-1' },
      { op: 'AssociateAccessPolicy', account: A, region: 'us-east-1' },
    ]);
    expect(eks).toHaveReceivedCommandWith(CreateAccessEntryCommand, {
      clusterName: `k-${A.slice(0, 3)}`,
      principalArn: grantee,
    });
    expect(eks).toHaveReceivedCommandWith(AssociateAccessPolicyCommand, {
      clusterName: `k-${A.slice(0, 3)}`,
      principalArn: grantee,
      policyArn: VIEW,
      accessScope: { type: 'cluster' },
    });
    // The grantee's protection tag is read in its own account.
    expect(calls.filter((c) => c.op === 'GetRole')).toEqual([
      { op: 'GetRole', account: A, region: expect.any(String) as string },
    ]);

    const { expiresAt: _e, ...rv } = params;
    const res = await driver.revoke(ctx(), rv);
    expect(res.revoked).toHaveLength(1);
    expect(calls.filter((c) => c.op === 'DeleteAccessEntry')).toEqual([
      { op: 'DeleteAccessEntry', account: A, region: 'us-east-1' },
    ]);
    expect([...new Set(assumed)]).toEqual([memberRoleArnOf(A)]);
  });

  it('a revoke without resources finds the grant in any account, and changes nothing when an account cannot be listed', async () => {
    serveOrganization(tree);
    const { calls } = serveEks();
    const grantee = `arn:aws:iam::${A}:role/data-analyst`;
    const base = {
      grantId: 'g2',
      grantee: { email: 'jane@example.com', awsPrincipalArn: grantee },
      permission: 'view',
    };
    await driver.grant(ctx(), {
      ...base,
      resources: [{ type: 'eks-cluster', id: clusterOf(C, 'us-east-1') }],
    });

    // B's member role now refuses: the organization cannot be listed whole.
    serveOrganization({ ...tree, denyAssume: [B] });
    const fresh = new AwsEksDriver(makeServices());
    const err = await rejection(fresh.revoke(ctx(), { ...base, resources: [] }));
    expect(err.code).toBe('E_CONNECT');
    expect(err.message).toMatch(new RegExp(B));
    expect(calls.filter((c) => /^(Delete|Disassociate)/.test(c.op))).toEqual([]);

    serveOrganization(tree);
    const res = await new AwsEksDriver(makeServices()).revoke(ctx(), { ...base, resources: [] });
    expect(res.revoked).toEqual([`${clusterOf(C, 'us-east-1')}#latchkey-g.g2`]);
    expect(calls.filter((c) => c.op === 'DeleteAccessEntry')).toEqual([
      { op: 'DeleteAccessEntry', account: C, region: 'us-east-1' },
    ]);
  });

  it('check: the home account, the organization listing and one member role', async () => {
    serveOrganization({ ...tree, denyAssume: [A] });
    serveEks();
    const out = await driver.check(ctx());
    const byName = new Map(out.checks.map((c) => [c.name, c.ok]));
    expect(byName.get(`identity ${HOME}`)).toBe(true);
    expect(byName.get(`eks:ListClusters ${HOME} eu-west-1`)).toBe(true);
    expect(byName.get('organization')).toBe(true);
    // A, the first member account listed, refuses its member role.
    expect(byName.get('member-role')).toBe(false);
    expect(out.ok).toBe(false);
  });

  it('sweeps expired grants in every account; an unreachable account is one error item', async () => {
    serveOrganization({ ...tree, denyAssume: [B] });
    const { calls } = serveEks();
    const grantee = `arn:aws:iam::${C}:role/data-analyst`;
    await driver.grant(ctx(), {
      grantId: 'g9',
      grantee: { email: 'jane@example.com', awsPrincipalArn: grantee },
      resources: [{ type: 'eks-cluster', id: clusterOf(C, 'eu-west-1') }],
      permission: 'view',
      expiresAt: new Date(NOW.getTime() + 60_000).toISOString(),
    });
    const later = { ...makeServices(), now: () => new Date(NOW.getTime() + 120_000) };
    const sweeper = new AwsEksDriver(later);
    const report = await sweeper.sweep(ctx());
    expect(report.revoked).toEqual([`${clusterOf(C, 'eu-west-1')}#${grantee}#latchkey-g.g9`]);
    expect(calls.filter((c) => c.op === 'DeleteAccessEntry')).toEqual([
      { op: 'DeleteAccessEntry', account: C, region: 'eu-west-1' },
    ]);
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0]?.item).toBe(`aws-account:${B}`);
  });
});
