import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  AccessDeniedException,
  AssociateAccessPolicyCommand,
  CreateAccessEntryCommand,
  DeleteAccessEntryCommand,
  DescribeClusterCommand,
  DisassociateAccessPolicyCommand,
  ListAssociatedAccessPoliciesCommand,
  ListClustersCommand,
  ServerException,
  TagResourceCommand,
  ThrottlingException,
  UntagResourceCommand,
} from '@aws-sdk/client-eks';
import { SimulatePrincipalPolicyCommand } from '@aws-sdk/client-iam';
import { AwsEksDriver } from '../../../../src/drivers/aws-eks/index.js';
import {
  mapKubernetesError,
  type NamespaceLister,
} from '../../../../src/drivers/aws-eks/kubernetes.js';
import { makeCtx, makeServices, rejection } from '../../aws/helpers.js';
import { ACCOUNT, CONNECTOR_ROLE, EksWorld, eks, iam, resetMocks, restoreMocks } from './world.js';

const ROLE = `arn:aws:iam::${ACCOUNT}:role/data-analyst`;
const PROD = `arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/prod`;
const STAGE = `arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/stage`;
const VIEW = 'arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy';
const EDIT = 'arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy';
const EXPIRES = '2026-11-26T08:00:00.000Z';
const EXP_S = String(Date.parse(EXPIRES) / 1000);
const config = { accountId: ACCOUNT, regions: ['eu-west-1'] };

const ns = (cluster: string, name: string) => ({
  type: 'eks-namespace',
  id: `${cluster}/namespace/${name}`,
});
const whole = (cluster: string) => ({ type: 'eks-cluster', id: cluster });

function grant(over: Record<string, unknown> = {}) {
  return {
    grantId: 'g1',
    grantee: { email: 'jane@example.com', awsPrincipalArn: ROLE },
    resources: [whole(PROD)],
    permission: 'view',
    expiresAt: EXPIRES,
    ...over,
  };
}
function revoke(over: Record<string, unknown> = {}) {
  const { expiresAt: _e, ...g } = grant(over);
  return g;
}

function expectNoWrites(): void {
  expect(eks).not.toHaveReceivedCommand(CreateAccessEntryCommand);
  expect(eks).not.toHaveReceivedCommand(TagResourceCommand);
  expect(eks).not.toHaveReceivedCommand(AssociateAccessPolicyCommand);
}

const listed: string[][] = [];
const lister: NamespaceLister = {
  listNamespaces: (cluster) => {
    listed.push([cluster.endpoint, cluster.token]);
    return Promise.resolve(['default', 'dev', 'kube-system']);
  },
};

describe('aws-eks driver', () => {
  const services = makeServices();
  const driver = new AwsEksDriver(services, { namespaces: lister });
  const ctx = makeCtx({ type: 'aws-eks', config });
  let world: EksWorld;

  beforeEach(() => {
    resetMocks();
    world = new EksWorld();
    world.addCluster('prod');
    world.roleTags.set('data-analyst', []);
    listed.length = 0;
  });
  afterAll(() => restoreMocks());

  describe('grant', () => {
    it('creates the entry with the grant recorded in its tags, then associates the policy', async () => {
      const out = await driver.grant(ctx, grant());
      expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 1);
      expect(eks).toHaveReceivedCommandWith(CreateAccessEntryCommand, {
        clusterName: 'prod',
        principalArn: ROLE,
        type: 'STANDARD',
        tags: { 'latchkey-managed': 'true', 'latchkey-g.g1': `view/${EXP_S}/cluster/.` },
      });
      expect(eks).toHaveReceivedCommandTimes(AssociateAccessPolicyCommand, 1);
      expect(eks).toHaveReceivedCommandWith(AssociateAccessPolicyCommand, {
        clusterName: 'prod',
        principalArn: ROLE,
        policyArn: VIEW,
        accessScope: { type: 'cluster' },
      });
      expect(eks).not.toHaveReceivedCommand(TagResourceCommand);
      expect(out).toMatchObject({
        username: ROLE,
        alreadyGranted: false,
        expiresAt: EXPIRES,
        access: { permission: 'view', accessPolicyArn: VIEW, expiryEnforcedBy: 'sweep' },
      });
    });

    it('scopes to the named namespaces, sorted', async () => {
      await driver.grant(
        ctx,
        grant({ permission: 'edit', resources: [ns(PROD, 'staging'), ns(PROD, 'dev')] }),
      );
      expect(eks).toHaveReceivedCommandWith(AssociateAccessPolicyCommand, {
        policyArn: EDIT,
        accessScope: { type: 'namespace', namespaces: ['dev', 'staging'] },
      });
      expect(world.entry('prod', ROLE)?.tags['latchkey-g.g1']).toBe(
        `edit/${EXP_S}/ns:dev+staging/.`,
      );
    });

    it('a second run is alreadyGranted and writes nothing', async () => {
      await driver.grant(ctx, grant());
      eks.resetHistory();
      const out = await driver.grant(ctx, grant());
      expect(out.alreadyGranted).toBe(true);
      expectNoWrites();
    });

    it('an Identity Center role is granted by its ARN without the path; a session by its role', async () => {
      const sso = `arn:aws:iam::${ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-2/AWSReservedSSO_Dev_0123456789abcdef`;
      world.roleTags.set('AWSReservedSSO_Dev_0123456789abcdef', []);
      const out = await driver.grant(
        ctx,
        grant({ grantee: { email: 'a@b.c', awsPrincipalArn: sso } }),
      );
      const plain = `arn:aws:iam::${ACCOUNT}:role/AWSReservedSSO_Dev_0123456789abcdef`;
      expect(eks).toHaveReceivedCommandWith(CreateAccessEntryCommand, { principalArn: plain });
      expect(out.username).toBe(plain);
      const session = `arn:aws:sts::${ACCOUNT}:assumed-role/data-analyst/jane@example.com`;
      await driver.grant(
        ctx,
        grant({ grantId: 'g2', grantee: { email: 'a@b.c', awsPrincipalArn: session } }),
      );
      expect(world.entry('prod', ROLE)?.tags['latchkey-g.g2']).toBe(`view/${EXP_S}/cluster/.`);
    });

    it('grants several clusters at once, each with its own scope', async () => {
      world.addCluster('stage');
      const out = await driver.grant(
        ctx,
        grant({ resources: [ns(STAGE, 'dev'), whole(PROD)], permission: 'admin' }),
      );
      const admin = 'arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminPolicy';
      expect(world.entry('prod', ROLE)?.associations.get(admin)).toEqual({ type: 'cluster' });
      expect(world.entry('stage', ROLE)?.associations.get(admin)).toEqual({
        type: 'namespace',
        namespaces: ['dev'],
      });
      expect(out.access['clusters']).toMatchObject([
        { clusterArn: STAGE, entryCreated: true },
        { clusterArn: PROD, entryCreated: true },
      ]);
      const both = await driver.revoke(ctx, revoke({ resources: [ns(STAGE, 'dev'), whole(PROD)] }));
      expect(both.revoked).toHaveLength(2);
      expect(world.entries.size).toBe(0);
    });

    it('refuses a cluster whose authentication mode has no access entries, before any change', async () => {
      world.addCluster('stage', { authenticationMode: 'CONFIG_MAP' });
      const err = await rejection(
        driver.grant(ctx, grant({ resources: [whole(PROD), whole(STAGE)] })),
      );
      expect(err.code).toBe('E_UNSUPPORTED');
      expect(err.message).toContain('CONFIG_MAP');
      expect(world.entries.size).toBe(0);
      expectNoWrites();
    });

    it('an unknown cluster is E_NOT_FOUND (ResourceNotFoundException), nothing written', async () => {
      const err = await rejection(driver.grant(ctx, grant({ resources: [whole(STAGE)] })));
      expect(err.code).toBe('E_NOT_FOUND');
      expect(eks).not.toHaveReceivedCommand(CreateAccessEntryCommand);
    });

    it('throttling is E_THROTTLED (retryable) and a re-run completes', async () => {
      world.fail(
        'CreateAccessEntry',
        new ThrottlingException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 429 } }),
      );
      const err = await rejection(driver.grant(ctx, grant()));
      expect(err.code).toBe('E_THROTTLED');
      expect(err.retryable).toBe(true);
      expect(world.entries.size).toBe(0);
      await driver.grant(ctx, grant());
      expect(world.entry('prod', ROLE)?.associations.get(VIEW)).toEqual({ type: 'cluster' });
    });

    it('AccessDenied is E_PRIVILEGE naming the EKS action', async () => {
      world.fail(
        'AssociateAccessPolicy',
        new AccessDeniedException({
          message: 'not authorized',
          $metadata: { httpStatusCode: 403 },
        }),
      );
      const err = await rejection(driver.grant(ctx, grant()));
      expect(err.code).toBe('E_PRIVILEGE');
      expect(err.message).toContain('eks:AssociateAccessPolicy');
    });

    it('a crash between CreateAccessEntry and AssociateAccessPolicy converges on re-run', async () => {
      world.fail(
        'AssociateAccessPolicy',
        new ServerException({ message: 'boom', $metadata: { httpStatusCode: 500 } }),
      );
      expect((await rejection(driver.grant(ctx, grant()))).code).toBe('E_CONNECT');
      expect(world.entry('prod', ROLE)?.tags['latchkey-g.g1']).toBeDefined();
      expect(world.entry('prod', ROLE)?.associations.size).toBe(0);
      eks.resetHistory();
      const out = await driver.grant(ctx, grant());
      expect(eks).not.toHaveReceivedCommand(CreateAccessEntryCommand);
      expect(eks).not.toHaveReceivedCommand(TagResourceCommand);
      expect(eks).toHaveReceivedCommandTimes(AssociateAccessPolicyCommand, 1);
      expect(out.alreadyGranted).toBe(false);
      expect(world.entry('prod', ROLE)?.associations.get(VIEW)).toEqual({ type: 'cluster' });
    });

    it('a crashed grant that is revoked instead leaves nothing behind', async () => {
      world.fail(
        'AssociateAccessPolicy',
        new ServerException({ message: 'boom', $metadata: { httpStatusCode: 500 } }),
      );
      await rejection(driver.grant(ctx, grant()));
      const out = await driver.revoke(ctx, revoke());
      expect(out.revoked).toEqual([`${PROD}#latchkey-g.g1`]);
      expect(world.entries.size).toBe(0);
      expect(eks).not.toHaveReceivedCommand(DisassociateAccessPolicyCommand);
    });

    it('an entry created meanwhile (ResourceInUseException) is used, and never deleted', async () => {
      world.onCreate = () => {
        world.onCreate = undefined;
        world.addEntry('prod', ROLE);
      };
      await driver.grant(ctx, grant());
      expect(eks).toHaveReceivedCommandWith(TagResourceCommand, {
        tags: { 'latchkey-g.g1': `view/${EXP_S}/cluster/.` },
      });
      expect(world.entry('prod', ROLE)?.associations.get(VIEW)).toEqual({ type: 'cluster' });
      await driver.revoke(ctx, revoke());
      expect(eks).not.toHaveReceivedCommand(DeleteAccessEntryCommand);
      expect(world.entry('prod', ROLE)?.tags).toEqual({});
      expect(world.entry('prod', ROLE)?.associations.size).toBe(0);
    });
  });

  describe('guardrails', () => {
    it('more than 100 resources is E_GUARDRAIL before any AWS call', async () => {
      const resources = Array.from({ length: 101 }, (_, i) => ns(PROD, `n${i}`));
      expect((await rejection(driver.grant(ctx, grant({ resources })))).code).toBe('E_GUARDRAIL');
      expect(eks.calls()).toHaveLength(0);
    });

    it("never the connector's own role", async () => {
      world.roleTags.set('latchkey-connector', []);
      const err = await rejection(
        driver.grant(ctx, grant({ grantee: { email: 'x@y.z', awsPrincipalArn: CONNECTOR_ROLE } })),
      );
      expect(err.code).toBe('E_GUARDRAIL');
      expect(eks).not.toHaveReceivedCommand(CreateAccessEntryCommand);
    });

    it('never a principal tagged latchkey-protected, nor an entry or cluster so tagged', async () => {
      world.roleTags.set('data-analyst', [{ Key: 'latchkey-protected', Value: 'true' }]);
      expect((await rejection(driver.grant(ctx, grant()))).code).toBe('E_GUARDRAIL');
      expect((await rejection(driver.revoke(ctx, revoke()))).code).toBe('E_GUARDRAIL');
      world.roleTags.set('data-analyst', []);
      world.addEntry('prod', ROLE, { tags: { 'latchkey-protected': 'true' } });
      expect((await rejection(driver.grant(ctx, grant()))).code).toBe('E_GUARDRAIL');
      world.entries.clear();
      world.addCluster('prod', { tags: { 'latchkey-protected': 'true' } });
      expect((await rejection(driver.grant(ctx, grant()))).code).toBe('E_GUARDRAIL');
      expectNoWrites();
    });

    it('cluster-admin only when the integration allows it', async () => {
      const err = await rejection(driver.grant(ctx, grant({ permission: 'cluster-admin' })));
      expect(err.code).toBe('E_GUARDRAIL');
      const allowed = makeCtx({ type: 'aws-eks', config: { ...config, allowClusterAdmin: true } });
      await driver.grant(allowed, grant({ permission: 'cluster-admin' }));
      expect(eks).toHaveReceivedCommandWith(AssociateAccessPolicyCommand, {
        policyArn: 'arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy',
      });
    });

    it('a node entry (type EC2_LINUX) is never touched', async () => {
      world.addEntry('prod', ROLE, { type: 'EC2_LINUX' });
      expect((await rejection(driver.grant(ctx, grant()))).code).toBe('E_GUARDRAIL');
    });

    it("AWS's 50-tag limit is checked before any change", async () => {
      const tags = Object.fromEntries(Array.from({ length: 49 }, (_, i) => [`t${i}`, 'x']));
      world.addEntry('prod', ROLE, { tags });
      const err = await rejection(driver.grant(ctx, grant()));
      expect(err.code).toBe('E_GUARDRAIL');
      expect(err.message).toContain('50-tag');
      expect(eks).not.toHaveReceivedCommand(TagResourceCommand);
    });

    it('a resource outside the integration (account, region, type) is E_INVALID', async () => {
      for (const r of [
        whole(`arn:aws:eks:eu-west-1:999999999999:cluster/prod`),
        whole(`arn:aws:eks:us-east-1:${ACCOUNT}:cluster/prod`),
        { type: 'ec2-instance', id: PROD },
        { type: 'eks-namespace', id: `${PROD}/namespace/Bad_Name` },
      ]) {
        expect((await rejection(driver.grant(ctx, grant({ resources: [r] })))).code).toBe(
          'E_INVALID',
        );
      }
      expect(eks.calls()).toHaveLength(0);
    });
  });

  describe('overlapping grants', () => {
    it('two grants of one level on different namespaces: union, then each revoke takes its own', async () => {
      await driver.grant(ctx, grant({ grantId: 'g1', resources: [ns(PROD, 'dev')] }));
      await driver.grant(ctx, grant({ grantId: 'g2', resources: [ns(PROD, 'staging')] }));
      expect(eks).toHaveReceivedCommandTimes(CreateAccessEntryCommand, 1);
      expect(eks).toHaveReceivedCommandWith(TagResourceCommand, {
        tags: { 'latchkey-g.g2': `view/${EXP_S}/ns:staging/.` },
      });
      expect(eks).toHaveReceivedNthCommandWith(AssociateAccessPolicyCommand, 2, {
        policyArn: VIEW,
        accessScope: { type: 'namespace', namespaces: ['dev', 'staging'] },
      });

      eks.resetHistory();
      const r1 = await driver.revoke(ctx, revoke({ grantId: 'g1', resources: [ns(PROD, 'dev')] }));
      expect(eks).toHaveReceivedCommandExactlyOnceWith(AssociateAccessPolicyCommand, {
        clusterName: 'prod',
        principalArn: ROLE,
        policyArn: VIEW,
        accessScope: { type: 'namespace', namespaces: ['staging'] },
      });
      expect(eks).toHaveReceivedCommandWith(UntagResourceCommand, { tagKeys: ['latchkey-g.g1'] });
      expect(eks).not.toHaveReceivedCommand(DeleteAccessEntryCommand);
      expect(r1).toMatchObject({ revoked: [`${PROD}#latchkey-g.g1`], alreadyRevoked: false });

      eks.resetHistory();
      await driver.revoke(ctx, revoke({ grantId: 'g2', resources: [ns(PROD, 'staging')] }));
      expect(eks).toHaveReceivedCommandExactlyOnceWith(DisassociateAccessPolicyCommand, {
        clusterName: 'prod',
        principalArn: ROLE,
        policyArn: VIEW,
      });
      expect(eks).toHaveReceivedCommandExactlyOnceWith(DeleteAccessEntryCommand, {
        clusterName: 'prod',
        principalArn: ROLE,
      });
      expect(world.entries.size).toBe(0);
    });

    it('a cluster-wide grant and a namespace grant of the same level: the cluster scope stays until it goes', async () => {
      await driver.grant(ctx, grant({ grantId: 'g1' }));
      await driver.grant(ctx, grant({ grantId: 'g2', resources: [ns(PROD, 'dev')] }));
      expect(world.entry('prod', ROLE)?.associations.get(VIEW)).toEqual({ type: 'cluster' });
      await driver.revoke(ctx, revoke({ grantId: 'g1' }));
      expect(world.entry('prod', ROLE)?.associations.get(VIEW)).toEqual({
        type: 'namespace',
        namespaces: ['dev'],
      });
    });

    it('grants of different levels are independent', async () => {
      await driver.grant(ctx, grant({ grantId: 'g1' }));
      await driver.grant(
        ctx,
        grant({ grantId: 'g2', permission: 'edit', resources: [ns(PROD, 'dev')] }),
      );
      await driver.revoke(ctx, revoke({ grantId: 'g1' }));
      const e = world.entry('prod', ROLE);
      expect([...(e?.associations.keys() ?? [])]).toEqual([EDIT]);
      expect(Object.keys(e?.tags ?? {}).sort()).toEqual(['latchkey-g.g2', 'latchkey-managed']);
    });

    it('a policy associated before the agent is restored as it was, and the entry is never deleted', async () => {
      world.addEntry('prod', ROLE, {
        associations: { [VIEW]: { type: 'namespace', namespaces: ['ops'] } },
      });
      await driver.grant(ctx, grant({ resources: [ns(PROD, 'dev')] }));
      expect(eks).toHaveReceivedCommandWith(TagResourceCommand, {
        tags: { 'latchkey-g.g1': `view/${EXP_S}/ns:dev/.`, 'latchkey-b.view': 'ns:ops/.' },
      });
      expect(world.entry('prod', ROLE)?.associations.get(VIEW)).toEqual({
        type: 'namespace',
        namespaces: ['dev', 'ops'],
      });
      eks.resetHistory();
      await driver.revoke(ctx, revoke({ resources: [ns(PROD, 'dev')] }));
      expect(eks).toHaveReceivedCommandExactlyOnceWith(AssociateAccessPolicyCommand, {
        clusterName: 'prod',
        principalArn: ROLE,
        policyArn: VIEW,
        accessScope: { type: 'namespace', namespaces: ['ops'] },
      });
      expect(eks).not.toHaveReceivedCommand(DisassociateAccessPolicyCommand);
      expect(eks).not.toHaveReceivedCommand(DeleteAccessEntryCommand);
      expect(world.entry('prod', ROLE)?.tags).toEqual({});
    });

    it('an entry the agent created keeps living when someone else associated a policy on it', async () => {
      await driver.grant(ctx, grant());
      world.entry('prod', ROLE)?.associations.set(EDIT, { type: 'cluster' });
      await driver.revoke(ctx, revoke());
      expect(eks).not.toHaveReceivedCommand(DeleteAccessEntryCommand);
      expect([...(world.entry('prod', ROLE)?.associations.keys() ?? [])]).toEqual([EDIT]);
    });

    it('the same grant id with another scope is refused', async () => {
      await driver.grant(ctx, grant());
      const err = await rejection(driver.grant(ctx, grant({ resources: [ns(PROD, 'dev')] })));
      expect(err.code).toBe('E_INVALID');
    });
  });

  describe('revoke', () => {
    it('is idempotent: nothing recorded is alreadyRevoked', async () => {
      const out = await driver.revoke(ctx, revoke());
      expect(out).toMatchObject({ revoked: [], alreadyRevoked: true, sessionsTerminated: 0 });
      await driver.grant(ctx, grant());
      await driver.revoke(ctx, revoke());
      expect((await driver.revoke(ctx, revoke())).alreadyRevoked).toBe(true);
    });

    it('a crash between DisassociateAccessPolicy and DeleteAccessEntry converges on re-run', async () => {
      await driver.grant(ctx, grant());
      world.fail(
        'DeleteAccessEntry',
        new ServerException({ message: 'boom', $metadata: { httpStatusCode: 500 } }),
      );
      expect((await rejection(driver.revoke(ctx, revoke()))).code).toBe('E_CONNECT');
      expect(world.entry('prod', ROLE)?.associations.size).toBe(0);
      eks.resetHistory();
      const out = await driver.revoke(ctx, revoke());
      expect(eks).not.toHaveReceivedCommand(DisassociateAccessPolicyCommand);
      expect(eks).toHaveReceivedCommandTimes(DeleteAccessEntryCommand, 1);
      expect(out.revoked).toHaveLength(1);
      expect(world.entries.size).toBe(0);
    });

    it('an association already gone (ResourceNotFoundException) is not an error', async () => {
      await driver.grant(ctx, grant());
      world.entry('prod', ROLE)?.associations.clear();
      world.entry('prod', ROLE)?.associations.set(VIEW, { type: 'cluster' });
      // Someone removes the association between our listing and our call.
      const real = world.entry('prod', ROLE);
      eks.on(DisassociateAccessPolicyCommand).callsFakeOnce(() => {
        real?.associations.clear();
        throw Object.assign(new Error('no association'), {
          name: 'ResourceNotFoundException',
          $metadata: { httpStatusCode: 404 },
        });
      });
      const out = await driver.revoke(ctx, revoke());
      expect(out.revoked).toHaveLength(1);
      expect(world.entries.size).toBe(0);
    });

    it('works for a principal since deleted from IAM (a grant to it is refused)', async () => {
      await driver.grant(ctx, grant());
      world.roleTags.delete('data-analyst');
      expect((await rejection(driver.grant(ctx, grant({ grantId: 'g2' })))).code).toBe(
        'E_NOT_FOUND',
      );
      const out = await driver.revoke(ctx, revoke());
      expect(out.revoked).toHaveLength(1);
      expect(world.entries.size).toBe(0);
    });

    it('without resources, finds the grant on the clusters of the integration', async () => {
      world.addCluster('stage');
      await driver.grant(ctx, grant({ resources: [whole(STAGE)] }));
      const out = await driver.revoke(ctx, revoke({ resources: [] }));
      expect(out.revoked).toEqual([`${STAGE}#latchkey-g.g1`]);
      expect(world.entries.size).toBe(0);
    });

    it('reads associations across pages', async () => {
      world.pageSize = 1;
      world.addEntry('prod', ROLE, {
        associations: {
          'arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminPolicy': { type: 'cluster' },
          [EDIT]: { type: 'cluster' },
          [VIEW]: { type: 'namespace', namespaces: ['ops'] },
        },
      });
      await driver.grant(ctx, grant({ resources: [ns(PROD, 'dev')] }));
      expect(eks).toHaveReceivedCommandWith(ListAssociatedAccessPoliciesCommand, {
        nextToken: '2',
      });
      expect(world.entry('prod', ROLE)?.tags['latchkey-b.view']).toBe('ns:ops/.');
      await driver.revoke(ctx, revoke({ resources: [ns(PROD, 'dev')] }));
      expect(world.entry('prod', ROLE)?.associations.get(VIEW)).toEqual({
        type: 'namespace',
        namespaces: ['ops'],
      });
      expect(world.entry('prod', ROLE)?.associations.size).toBe(3);
    });
  });

  describe('sweep', () => {
    it('removes expired grants only, across paginated clusters and entries; protected entries are left', async () => {
      world.addCluster('stage');
      world.pageSize = 1;
      await driver.grant(ctx, grant({ grantId: 'old', resources: [ns(PROD, 'dev')] }));
      await driver.grant(
        ctx,
        grant({
          grantId: 'new',
          resources: [ns(PROD, 'staging')],
          expiresAt: '2026-12-01T00:00:00.000Z',
        }),
      );
      await driver.grant(
        ctx,
        grant({ grantId: 'forever', resources: [whole(STAGE)], expiresAt: undefined }),
      );
      const other = `arn:aws:iam::${ACCOUNT}:role/other`;
      world.addEntry('prod', other, {
        tags: { 'latchkey-protected': 'true', 'latchkey-g.x': `view/${EXP_S}/cluster/.` },
        associations: { [VIEW]: { type: 'cluster' } },
      });
      const later = makeServices();
      const sweeper = new AwsEksDriver(
        { ...later, now: () => new Date('2026-11-27T00:00:00.000Z') },
        { namespaces: lister },
      );
      const report = await sweeper.sweep(ctx);
      expect(report.errors).toEqual([]);
      expect(report.revoked).toEqual([`${PROD}#${ROLE}#latchkey-g.old`]);
      expect(world.entry('prod', ROLE)?.associations.get(VIEW)).toEqual({
        type: 'namespace',
        namespaces: ['staging'],
      });
      expect(world.entry('stage', ROLE)?.associations.get(VIEW)).toEqual({ type: 'cluster' });
      expect(world.entry('prod', other)?.associations.size).toBe(1);
      expect(eks).toHaveReceivedCommandWith(ListClustersCommand, { nextToken: '1' });
    });

    it('repairs an association that lost a live grant (a race between replicas), and only that', async () => {
      await driver.grant(ctx, grant({ grantId: 'g1', resources: [ns(PROD, 'dev')] }));
      await driver.grant(ctx, grant({ grantId: 'g2', resources: [ns(PROD, 'staging')] }));
      // The other replica's association (its own union) was written last.
      world.entry('prod', ROLE)?.associations.set(VIEW, { type: 'namespace', namespaces: ['dev'] });
      eks.resetHistory();
      const report = await driver.sweep(ctx);
      expect(report).toEqual({ revoked: [], errors: [] });
      expect(eks).toHaveReceivedCommandExactlyOnceWith(AssociateAccessPolicyCommand, {
        clusterName: 'prod',
        principalArn: ROLE,
        policyArn: VIEW,
        accessScope: { type: 'namespace', namespaces: ['dev', 'staging'] },
      });
      eks.resetHistory();
      await driver.sweep(ctx);
      expect(eks).not.toHaveReceivedCommand(AssociateAccessPolicyCommand);
    });

    it('a cluster that fails is reported and the sweep goes on', async () => {
      world.addCluster('stage');
      await driver.grant(ctx, grant({ resources: [whole(STAGE)] }));
      world.fail(
        'DescribeCluster',
        new AccessDeniedException({ message: 'denied', $metadata: { httpStatusCode: 403 } }),
      );
      const sweeper = new AwsEksDriver(
        { ...services, now: () => new Date('2026-11-27T00:00:00.000Z') },
        { namespaces: lister },
      );
      const report = await sweeper.sweep(ctx);
      expect(report.errors).toMatchObject([{ item: PROD, code: 'E_PRIVILEGE' }]);
      expect(report.revoked).toEqual([`${STAGE}#${ROLE}#latchkey-g.g1`]);
    });
  });

  describe('discover', () => {
    it('lists clusters (paginated) and their namespaces through the Kubernetes API', async () => {
      world.pageSize = 1;
      world.addCluster('legacy', { authenticationMode: 'CONFIG_MAP' });
      const out = await driver.discover(ctx);
      expect(eks).toHaveReceivedCommandWith(ListClustersCommand, { nextToken: '1' });
      const clusters = out.resources.filter((r) => r.type === 'eks-cluster');
      expect(clusters.map((c) => c.name)).toEqual(['prod', 'legacy']);
      expect(clusters[0]?.metadata).toMatchObject({ accessEntries: true, region: 'eu-west-1' });
      expect(out.resources.filter((r) => r.parentId === PROD).map((r) => r.id)).toEqual([
        `${PROD}/namespace/default`,
        `${PROD}/namespace/dev`,
        `${PROD}/namespace/kube-system`,
      ]);
      expect(out.warnings.map((w) => [w.code, w.resourceId])).toEqual([
        ['E_UNSUPPORTED', `arn:aws:eks:eu-west-1:${ACCOUNT}:cluster/legacy`],
      ]);
      expect(listed[0]?.[0]).toBe('https://prod.gr7.eu-west-1.eks.amazonaws.com');
      expect(listed[0]?.[1]).toMatch(/^k8s-aws-v1\.[A-Za-z0-9_-]+$/);
      expect(out.permissions.map((p) => p.id)).toEqual(['view', 'edit', 'admin']);
    });

    it('falls back to the namespaces of the config, with a warning, when the API refuses', async () => {
      const refusing = new AwsEksDriver(services, {
        namespaces: {
          listNamespaces: () => Promise.reject(mapKubernetesError({ code: 403 })),
        },
      });
      const out = await refusing.discover(
        makeCtx({ type: 'aws-eks', config: { ...config, namespaces: { prod: ['payments'] } } }),
      );
      expect(out.resources.filter((r) => r.type === 'eks-namespace')).toMatchObject([
        { id: `${PROD}/namespace/payments`, metadata: { source: 'config' } },
      ]);
      expect(out.warnings).toContainEqual(
        expect.objectContaining({ resourceId: PROD, code: 'E_PRIVILEGE' }),
      );
    });

    it('a region that cannot be listed is a warning', async () => {
      world.fail(
        'ListClusters',
        new AccessDeniedException({ message: 'denied', $metadata: { httpStatusCode: 403 } }),
      );
      const out = await driver.discover(ctx);
      expect(out.resources).toEqual([]);
      expect(out.warnings[0]).toMatchObject({ code: 'E_PRIVILEGE' });
    });
  });

  describe('check', () => {
    it('names each sub-check and fails a CONFIG_MAP cluster and missing write permissions', async () => {
      world.addCluster('legacy', { authenticationMode: 'CONFIG_MAP' });
      iam.on(SimulatePrincipalPolicyCommand).callsFake((input: { ActionNames?: string[] }) => ({
        EvaluationResults: (input.ActionNames ?? []).map((a) => ({
          EvalActionName: a,
          EvalDecision: a === 'eks:DeleteAccessEntry' ? 'implicitDeny' : 'allowed',
        })),
      }));
      const out = await driver.check(ctx);
      expect(out.ok).toBe(false);
      expect(out.checks.map((c) => [c.name, c.ok])).toEqual([
        [`identity ${ACCOUNT}`, true],
        [`eks:ListClusters ${ACCOUNT} eu-west-1`, true],
        ['access entries prod', true],
        ['eks:ListAccessEntries prod', true],
        ['may manage access entries prod', false],
        ['access entries legacy', false],
      ]);
      expect(out.checks[4]?.detail).toContain('eks:DeleteAccessEntry');
      expect(iam).toHaveReceivedCommandWith(SimulatePrincipalPolicyCommand, {
        PolicySourceArn: CONNECTOR_ROLE,
        ActionNames: ['eks:CreateAccessEntry'],
        ResourceArns: [PROD],
      });
      expect(eks).toHaveReceivedCommandWith(DescribeClusterCommand, { name: 'legacy' });
    });
  });
});
