import 'aws-sdk-client-mock-vitest/extend';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EC2Client } from '@aws-sdk/client-ec2';
import {
  ListAccountsCommand,
  ListParentsCommand,
  ListRootsCommand,
  OrganizationsServiceException,
} from '@aws-sdk/client-organizations';
import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { LatchkeyError } from '../../../src/errors.js';
import {
  OrgScope,
  OrgScopeCache,
  OrgScopeConfigSchema,
  accountOfArn,
  type OrgScopeConfigInput,
} from '../../../src/aws/org-scope.js';
import { makeServices, rejection } from './helpers.js';
import {
  A,
  B,
  C,
  D,
  HOME,
  MEMBER_ROLE,
  OU_PROD,
  OU_SANDBOX,
  ROOT,
  ec2,
  memberRoleArnOf,
  orgs,
  serveOrganization,
  sts,
  whereOf,
} from './org-world.js';

const tree = {
  ous: { [ROOT]: [OU_PROD, OU_SANDBOX] },
  accounts: { [ROOT]: [HOME, A], [OU_PROD]: [B, C], [OU_SANDBOX]: [D] },
};

let services = makeServices();

function scopeOf(org: Partial<OrgScopeConfigInput> = {}, cache = new OrgScopeCache()) {
  return new OrgScope({
    aws: services.aws,
    org: OrgScopeConfigSchema.parse({ memberRoleName: MEMBER_ROLE, ...org }),
    home: { accountId: HOME, partition: 'aws' },
    regions: ['eu-west-1', 'us-east-1'],
    cache,
    now: services.now,
  });
}

const signal = new AbortController().signal;

describe('OrgScope', () => {
  beforeEach(() => {
    for (const m of [orgs, sts, ec2]) m.reset();
    services = makeServices(); // no credentials cached from another test
  });
  afterEach(() => {
    for (const m of [orgs, sts, ec2]) m.reset();
  });

  it('fans out over every account and region in scope, each with its own member role', async () => {
    const { assumed } = serveOrganization(tree);
    const scope = scopeOf({ excludedOuIds: [OU_SANDBOX], externalId: 'ext-org-1' });
    const seen: string[] = [];
    const out = await scope.fanOut(signal, {
      perRegion: async (u) => {
        // The unit's target is what the client factory uses: check it really is that account.
        const where = await whereOf(() => services.aws.client(EC2Client, u.target));
        seen.push(`${where.account}/${where.region}`);
        return u.account.accountId;
      },
    });
    expect(out.accounts.map((a) => a.accountId)).toEqual([HOME, A, B, C]);
    expect(seen.sort()).toEqual(
      [HOME, A, B, C].flatMap((a) => [`${a}/eu-west-1`, `${a}/us-east-1`]).sort(),
    );
    // Exactly the member role of each member account, once each (cached per account), with
    // the organization's external id; the home account is never assumed into.
    expect([...assumed].sort()).toEqual([A, B, C].map(memberRoleArnOf));
    for (const a of [A, B, C]) {
      expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, {
        RoleArn: memberRoleArnOf(a),
        ExternalId: 'ext-org-1',
      });
    }
    expect(out.warnings).toEqual([]);
    expect(out.results).toHaveLength(8);
    // The excluded OU is never entered.
    expect(orgs).toHaveReceivedCommandWith(ListRootsCommand, {});
    expect(orgs.commandCalls(ListParentsCommand).map((c) => c.args[0].input.ChildId)).not.toContain(
      D,
    );
  });

  it('reports an unreachable account once with the reason, and a failed region as a warning, and goes on', async () => {
    serveOrganization({ ...tree, denyAssume: [B] });
    const scope = scopeOf();
    const out = await scope.fanOut(signal, {
      perRegion: async (u) => {
        // Reaching the account goes through its member role (AssumeRole) first.
        await services.aws.client(EC2Client, u.target).config.credentials();
        if (u.account.accountId === C && u.region === 'us-east-1') {
          throw new LatchkeyError('E_PRIVILEGE', 'not allowed to list things in us-east-1');
        }
        return 1;
      },
    });
    expect(out.unreachable).toEqual([B]);
    const byAccount = out.warnings.map((w) => [w.resourceId, w.code]);
    expect(byAccount).toEqual([
      [`aws-account:${B}`, 'E_PRIVILEGE'],
      [`aws-account:${C}`, 'E_PRIVILEGE'],
    ]);
    expect(out.warnings[0]?.message).toContain(`account ${B}`);
    expect(out.warnings[0]?.message).toContain('sts:AssumeRole');
    expect(out.warnings[1]?.message).toContain('region us-east-1');
    // Every other unit ran: 5 accounts × 2 regions, minus B's two and C's failed one.
    expect(out.results).toHaveLength(7);
  });

  it('uses each account’s enabled regions with regions: all-enabled, asked once per account', async () => {
    const { describeRegions } = serveOrganization({
      ...tree,
      regions: { [A]: ['ap-southeast-2'], [B]: ['eu-central-1', 'eu-west-1', 'us-east-1'] },
    });
    const cache = new OrgScopeCache();
    const scope = scopeOf({ regions: 'all-enabled', excludedAccountIds: [C, D, HOME] }, cache);
    const run = async () =>
      scope.fanOut(signal, {
        perRegion: (u) => Promise.resolve(`${u.account.accountId}/${u.region}`),
      });
    const out = await run();
    expect(out.results.map((r) => r.value)).toEqual([
      `${A}/ap-southeast-2`,
      `${B}/eu-central-1`,
      `${B}/eu-west-1`,
      `${B}/us-east-1`,
    ]);
    expect(describeRegions.sort()).toEqual([A, B]);
    await run();
    expect(describeRegions).toHaveLength(2); // cached
    // The flat listing suffices without excluded OUs.
    expect(orgs).toHaveReceivedCommand(ListAccountsCommand);
    expect(orgs).not.toHaveReceivedCommand(ListRootsCommand);
  });

  it('keeps at most `concurrency` accounts and `regionConcurrency` regions of one account in flight', async () => {
    const many = Array.from({ length: 30 }, (_, i) => String(600000000000 + i));
    serveOrganization({ ous: {}, accounts: { [ROOT]: many }, page: 7 });
    const scope = scopeOf({ concurrency: 3, regionConcurrency: 1 });
    let inFlight = 0;
    let peak = 0;
    const out = await scope.fanOut(signal, {
      perRegion: async () => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((r) => setTimeout(r, 2));
        inFlight--;
        return 1;
      },
    });
    expect(out.results).toHaveLength(60);
    expect(peak).toBe(3);
  });

  it('refuses grants in an excluded account, under an excluded OU, or outside the organization', async () => {
    serveOrganization(tree);
    const scope = scopeOf({ excludedOuIds: [OU_PROD], excludedAccountIds: [D] });
    expect((await rejection(scope.assertInScope(D, signal))).code).toBe('E_GUARDRAIL');
    expect(orgs).not.toHaveReceivedCommand(ListParentsCommand);
    const underOu = await rejection(scope.assertInScope(C, signal));
    expect(underOu.code).toBe('E_GUARDRAIL');
    expect(underOu.message).toContain(OU_PROD);
    const stranger = await rejection(scope.assertInScope('999999999999', signal));
    expect(stranger.code).toBe('E_GUARDRAIL');
    expect(stranger.message).toContain('not a member');
    await expect(scope.assertInScope(A, signal)).resolves.toBeUndefined();
    await expect(scope.assertInScope(HOME, signal)).resolves.toBeUndefined();
    // C's chain (C → OU_PROD → root) was walked once and is cached.
    const before = orgs.commandCalls(ListParentsCommand).length;
    await rejection(scope.assertInScope(C, signal));
    expect(orgs.commandCalls(ListParentsCommand)).toHaveLength(before);
  });

  it('fails the whole fan-out only when the organization cannot be listed', async () => {
    orgs.on(ListAccountsCommand).rejects(accessDeniedOrgs());
    const scope = scopeOf();
    const err = await rejection(scope.fanOut(signal, { perRegion: () => Promise.resolve(1) }));
    expect(err.code).toBe('E_PRIVILEGE');
    expect(err.message).toContain('organizations:ListAccounts');
  });

  it('builds per-account configs and targets from the member role name', () => {
    const scope = scopeOf({ externalId: 'ext-9' });
    const base = {
      accountId: HOME,
      regions: ['eu-west-1'],
      assumeRoleArn: `arn:aws:iam::${HOME}:role/latchkey-home`,
      partition: 'aws',
    };
    expect(scope.accountConfig(base, A, ['us-east-1'])).toEqual({
      accountId: A,
      regions: ['us-east-1'],
      assumeRoleArn: memberRoleArnOf(A),
      externalId: 'ext-9',
      partition: 'aws',
    });
    expect(scope.target(HOME, 'us-east-1')).toEqual({ region: 'us-east-1' });
    expect(accountOfArn(`arn:aws:ec2:eu-west-1:${A}:instance/i-1`)).toBe(A);
    expect(accountOfArn('arn:aws:s3:::bucket')).toBeNull();
  });
});

function accessDeniedOrgs(): OrganizationsServiceException {
  return new OrganizationsServiceException({
    name: 'AccessDeniedException',
    message: 'You don’t have permissions to access this resource.',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
  });
}
