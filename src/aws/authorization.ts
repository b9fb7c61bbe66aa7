/**
 * Who can reach what in one AWS account, from its identity policies (issue 13), shared by
 * the `aws-iam` and `aws-ssm` inventories.
 *
 * Glossary
 * - **authorization details**: one paginated `GetAccountAuthorizationDetails` (users,
 *   roles, groups, customer-managed policies with every version); AWS-managed policies
 *   attached to someone are read once each with `GetPolicy` + `GetPolicyVersion` of the
 *   default version.
 * - **sourced policy**: one identity policy of a principal with the path it comes
 *   through: `policy` (the principal's own inline policy, `source` = its name, or
 *   attached managed policy, `source` = its ARN) or `group` (`chain` = [group name]).
 * - **agent policy**: an inline policy Latchkey put for a grant
 *   (`<tagPrefix>-[<kind>]grant-<grantId>`); its entries are `managedByAgent` with the grant id.
 *
 * Evaluation is `policy-eval.ts`'s (identity policies only; conditions reported).
 */
import {
  GetAccountAuthorizationDetailsCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  type EntityType,
  type GetAccountAuthorizationDetailsCommandOutput,
  type IAMClient,
} from '@aws-sdk/client-iam';
import { LatchkeyError, toWireError } from '../errors.js';
import type {
  DiscoverOutput,
  Inventory,
  InventoryEntry,
  InventoryPrincipal,
} from '../protocol/messages.js';
import { awsSend } from './call.js';
import {
  grantsOnResource,
  parsePolicyDocument,
  decide,
  type EvalStatement,
  type IdentityPolicy,
  type LevelSpec,
} from './policy-eval.js';

type Warning = DiscoverOutput['warnings'][number];

export interface SourcedPolicy extends IdentityPolicy {
  via: 'policy' | 'group';
  /** For `group`: the group name. */
  chain?: string[];
  /** Inline policy name, or managed policy ARN. */
  source: string;
  /** Inline policy name (agent policies are inline). */
  inlineName?: string;
}

export interface IamPrincipalPolicies {
  kind: 'iam-user' | 'iam-role';
  name: string;
  arn: string;
  path: string;
  tags: Record<string, string>;
  /** A permissions boundary is set (not evaluated: flagged). */
  boundary: boolean;
  policies: SourcedPolicy[];
}

export interface AuthorizationOptions {
  signal: AbortSignal;
  /** Runs one IAM call through the driver's limiter. */
  run: <T>(fn: () => Promise<T>) => Promise<T>;
}

/** The entity types asked for (AWS-managed policies are read one by one, when attached). */
export const AUTHORIZATION_FILTER: EntityType[] = ['User', 'Role', 'Group', 'LocalManagedPolicy'];

interface RawPolicyRef {
  PolicyName?: string | undefined;
  PolicyArn?: string | undefined;
}
interface RawInline {
  PolicyName?: string | undefined;
  PolicyDocument?: string | undefined;
}

function tagRecord(tags: { Key?: string; Value?: string }[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) if (t.Key !== undefined) out[t.Key] = t.Value ?? '';
  return out;
}

/**
 * Reads every user and role of the account with its policies. Throttling and AccessDenied
 * of the whole read throw (the caller turns them into a warning); one unreadable policy
 * becomes a warning and is left out.
 */
export async function readAuthorization(
  iam: IAMClient,
  opts: AuthorizationOptions,
): Promise<{ principals: IamPrincipalPolicies[]; warnings: Warning[] }> {
  const { signal } = opts;
  const warnings: Warning[] = [];
  async function fetchPage(
    marker: string | undefined,
  ): Promise<GetAccountAuthorizationDetailsCommandOutput> {
    return opts.run(() =>
      awsSend({ service: 'iam', operation: 'GetAccountAuthorizationDetails', signal }, (o) =>
        iam.send(
          new GetAccountAuthorizationDetailsCommand({
            Filter: AUTHORIZATION_FILTER,
            ...(marker ? { Marker: marker } : {}),
          }),
          o,
        ),
      ),
    );
  }
  const pages: GetAccountAuthorizationDetailsCommandOutput[] = [];
  let marker: string | undefined;
  for (;;) {
    const page = await fetchPage(marker);
    pages.push(page);
    if (!page.IsTruncated || !page.Marker) break;
    marker = page.Marker;
  }

  const managed = new Map<string, EvalStatement[] | null>();
  for (const page of pages) {
    for (const p of page.Policies ?? []) {
      if (!p.Arn) continue;
      const def = (p.PolicyVersionList ?? []).find((v) => v.IsDefaultVersion === true);
      if (!def?.Document) continue;
      managed.set(p.Arn, parseOrWarn(def.Document, p.Arn, warnings));
    }
  }
  const managedPolicy = async (arn: string): Promise<EvalStatement[] | null> => {
    const known = managed.get(arn);
    if (known !== undefined) return known;
    let statements: EvalStatement[] | null = null;
    try {
      const policy = await opts.run(() =>
        awsSend({ service: 'iam', operation: 'GetPolicy', resource: arn, signal }, (o) =>
          iam.send(new GetPolicyCommand({ PolicyArn: arn }), o),
        ),
      );
      const version = policy.Policy?.DefaultVersionId;
      if (!version) throw new LatchkeyError('E_INTERNAL', 'GetPolicy returned no default version');
      const v = await opts.run(() =>
        awsSend({ service: 'iam', operation: 'GetPolicyVersion', resource: arn, signal }, (o) =>
          iam.send(new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: version }), o),
        ),
      );
      statements = parseOrWarn(v.PolicyVersion?.Document ?? '', arn, warnings);
    } catch (err) {
      if (signal.aborted) throw err;
      const w = toWireError(err);
      warnings.push({
        resourceId: arn,
        code: w.code,
        message: `managed policy not read, left out of the inventory: ${w.message}`,
      });
    }
    managed.set(arn, statements);
    return statements;
  };

  const inline = (list: RawInline[] | undefined, owner: string): SourcedPolicy[] => {
    const out: SourcedPolicy[] = [];
    for (const p of list ?? []) {
      if (!p.PolicyName || p.PolicyDocument === undefined) continue;
      const statements = parseOrWarn(p.PolicyDocument, `${owner}#${p.PolicyName}`, warnings);
      if (statements === null) continue;
      out.push({ via: 'policy', source: p.PolicyName, inlineName: p.PolicyName, statements });
    }
    return out;
  };
  const attached = async (list: RawPolicyRef[] | undefined): Promise<SourcedPolicy[]> => {
    const out: SourcedPolicy[] = [];
    for (const p of list ?? []) {
      if (!p.PolicyArn) continue;
      const statements = await managedPolicy(p.PolicyArn);
      if (statements !== null) out.push({ via: 'policy', source: p.PolicyArn, statements });
    }
    return out;
  };

  const groups = new Map<string, SourcedPolicy[]>();
  for (const page of pages) {
    for (const g of page.GroupDetailList ?? []) {
      if (!g.GroupName) continue;
      const own = [
        ...inline(g.GroupPolicyList, g.Arn ?? g.GroupName),
        ...(await attached(g.AttachedManagedPolicies)),
      ];
      groups.set(
        g.GroupName,
        own.map((p) => ({ ...p, via: 'group' as const, chain: [g.GroupName ?? ''] })),
      );
    }
  }

  const principals: IamPrincipalPolicies[] = [];
  for (const page of pages) {
    for (const u of page.UserDetailList ?? []) {
      if (!u.UserName || !u.Arn) continue;
      const policies = [
        ...inline(u.UserPolicyList, u.Arn),
        ...(await attached(u.AttachedManagedPolicies)),
      ];
      for (const g of [...(u.GroupList ?? [])].sort()) policies.push(...(groups.get(g) ?? []));
      principals.push({
        kind: 'iam-user',
        name: u.UserName,
        arn: u.Arn,
        path: u.Path ?? '/',
        tags: tagRecord(u.Tags),
        boundary: u.PermissionsBoundary !== undefined,
        policies,
      });
    }
    for (const r of page.RoleDetailList ?? []) {
      if (!r.RoleName || !r.Arn) continue;
      // Service-linked roles belong to AWS services: never a person's standing access.
      if ((r.Path ?? '').startsWith('/aws-service-role/')) continue;
      principals.push({
        kind: 'iam-role',
        name: r.RoleName,
        arn: r.Arn,
        path: r.Path ?? '/',
        tags: tagRecord(r.Tags),
        boundary: r.PermissionsBoundary !== undefined,
        policies: [
          ...inline(r.RolePolicyList, r.Arn),
          ...(await attached(r.AttachedManagedPolicies)),
        ],
      });
    }
  }
  return { principals, warnings };
}

function parseOrWarn(doc: string, where: string, warnings: Warning[]): EvalStatement[] | null {
  try {
    return parsePolicyDocument(doc);
  } catch (err) {
    const w = toWireError(err);
    warnings.push({
      resourceId: where,
      code: w.code,
      message: `policy not evaluated: ${w.message}`,
    });
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// Building the inventory

export interface InventoryResource {
  id: string;
  /** Lowest first. */
  levels: readonly LevelSpec[];
}

export interface AwsInventoryOptions {
  tagPrefix: string;
  /** Name of the connector's own role in this account (never changed; flagged). */
  ownRoleName: string | null;
  /** The agent's grant policies: their grant id (undefined when hashed), or null when not ours. */
  agentPolicy(inlineName: string): { grantId: string | undefined } | null;
}

/** `<prefix>-protected` tag present with any value but `false`. */
export function isProtectedPrincipal(p: IamPrincipalPolicies, tagPrefix: string): boolean {
  const v = p.tags[`${tagPrefix}-protected`];
  return v !== undefined && v.toLowerCase() !== 'false';
}

export function principalIdOf(p: { kind: string; arn: string }): string {
  return `${p.kind}:${p.arn}`;
}

/** The agent's grant id of an inline policy named `<prefix>-<kind>grant-<id>`, or null. */
export function agentPolicyMatcher(
  tagPrefix: string,
): (name: string) => { grantId: string | undefined } | null {
  return (name) => {
    const m = /^([a-z0-9-]*?)grant-(.+)$/.exec(name.slice(tagPrefix.length + 1));
    if (!name.startsWith(`${tagPrefix}-`) || !m) return null;
    const id = m[2] ?? '';
    return { grantId: /^h-[0-9a-f]{40}$/.test(id) ? undefined : id };
  };
}

/** Inventory of principals × resources (pure). */
export function buildAwsInventory(
  principals: readonly IamPrincipalPolicies[],
  resources: readonly InventoryResource[],
  opts: AwsInventoryOptions,
): Inventory {
  const out: Inventory = { principals: [], entries: [] };
  for (const p of principals) {
    const id = principalIdOf(p);
    const flags = new Set<string>();
    if (p.kind === 'iam-role' && p.name === opts.ownRoleName) flags.add('service-account');
    if (isProtectedPrincipal(p, opts.tagPrefix)) flags.add('protected');
    if (p.boundary) flags.add('permissions-boundary');
    const all = decide(p.policies, '*', ['*']);
    if (!all.denied && all.allowedBy.length > 0) flags.add('admin');
    const principal: InventoryPrincipal = {
      id,
      kind: p.kind,
      name: p.name,
      managedByAgent: false,
      flags: [...flags].sort(),
    };
    out.principals.push(principal);
    for (const r of resources) {
      for (const g of grantsOnResource(p.policies, r.levels)) {
        const policy = p.policies[g.policy];
        if (!policy) continue;
        const agent =
          policy.via === 'policy' && policy.inlineName !== undefined
            ? opts.agentPolicy(policy.inlineName)
            : null;
        const entry: InventoryEntry = {
          principalId: id,
          resourceId: r.id,
          permission: g.permission,
          privileges: g.privileges,
          via: policy.via,
          source: policy.source,
          managedByAgent: agent !== null,
        };
        if (policy.chain) entry.chain = policy.chain;
        if (g.conditions.length > 0) entry.conditions = g.conditions;
        if (agent?.grantId !== undefined) entry.grantId = agent.grantId;
        out.entries.push(entry);
      }
    }
  }
  out.principals.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return out;
}

/** Runs `fn`; a failure (throttled, denied, …) becomes a warning and `undefined`. */
export async function inventoryOrWarning<T>(
  warnings: Warning[],
  signal: AbortSignal,
  fn: () => Promise<T>,
): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (signal.aborted || (err instanceof LatchkeyError && err.code === 'E_CANCELLED')) throw err;
    const w = toWireError(err);
    warnings.push({ code: w.code, message: `access inventory not read: ${w.message}` });
    return undefined;
  }
}
