/**
 * Permission sets: finding an existing one (by name or ARN), reading its policies for the
 * guardrails, and building the per-grant permission set of a policy grant.
 *
 * Glossary
 * - **existing permission set**: made by someone else; a grant may only assign it, never
 *   change it. Refused when it carries `AdministratorAccess`-like policies (unless allowed).
 * - **built permission set**: made by the driver for one grant, named
 *   `<prefix>-g-<hash of grantId>` (Identity Center allows 32 characters), its description
 *   carrying the same marker as the grant group. Its inline policy ends at `expiresAt`:
 *   every Allow statement has `DateLessThan aws:CurrentTime`, and one Deny of everything
 *   with `DateGreaterThan aws:CurrentTime` also stops the attached managed policies.
 * - **copy**: in `permission-set` isolation, a grant of an existing permission set builds
 *   a per-grant copy of it (same managed and customer-managed policies, permissions
 *   boundary and inline policy, plus the expiry conditions; session duration lowered to
 *   the configured maximum). The original is only read.
 */
import { createHash } from 'node:crypto';
import {
  AttachCustomerManagedPolicyReferenceToPermissionSetCommand,
  AttachManagedPolicyToPermissionSetCommand,
  CreatePermissionSetCommand,
  DeletePermissionSetCommand,
  DescribePermissionSetCommand,
  GetInlinePolicyForPermissionSetCommand,
  GetPermissionsBoundaryForPermissionSetCommand,
  ListCustomerManagedPolicyReferencesInPermissionSetCommand,
  ListManagedPoliciesInPermissionSetCommand,
  ListPermissionSetsCommand,
  PutInlinePolicyToPermissionSetCommand,
  PutPermissionsBoundaryToPermissionSetCommand,
  type PermissionSet,
  type PermissionsBoundary,
  type SSOAdminClient,
} from '@aws-sdk/client-sso-admin';
import { z } from 'zod';
import { awsSend } from '../../aws/call.js';
import { paginate } from '../../aws/organization.js';
import { INLINE_POLICY_LIMITS, policySize } from '../../aws/policy.js';
import { LatchkeyError } from '../../errors.js';
import { groupMarker, parseGroupMarker, type GroupMarker } from './identity.js';
import { withConflictRetry } from './provisioning.js';

export interface SsoRef {
  sso: SSOAdminClient;
  instanceArn: string;
  signal: AbortSignal;
}

/** AWS-managed policies that amount to administrator access (refused unless allowed). */
export const ADMIN_LIKE_POLICIES: ReadonlySet<string> = new Set([
  'AdministratorAccess',
  'PowerUserAccess',
  'IAMFullAccess',
  'AWSOrganizationsFullAccess',
  'AWSSSOMasterAccountAdministrator',
  'AWSSSODirectoryAdministrator',
]);
/** Managed + customer-managed policies one built permission set may carry. */
export const MAX_ATTACHED_POLICIES = 20;

export const PERMISSION_SET_ARN = /^arn:aws[a-z-]*:sso:::permissionSet\/[\w-]+\/ps-[a-f0-9]{16}$/;
export const AWS_MANAGED_POLICY_ARN =
  /^arn:aws[a-z-]*:iam::aws:policy\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,128})$/;

/** Seconds of an ISO-8601 duration such as `PT1H`, `PT8H30M`, `PT3600S` (default 1 h). */
export function durationSeconds(iso: string | undefined): number {
  const m = /^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$/.exec(iso ?? '');
  if (!m) return 3600;
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

export function isoDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const rest = seconds % 3600;
  return `PT${h > 0 ? `${h}H` : ''}${rest > 0 || h === 0 ? `${Math.ceil(rest / 60)}M` : ''}`;
}

/** The name of a grant's built permission set (≤ 32 characters, deterministic). */
export function builtPermissionSetName(prefix: string, grantId: string): string {
  const head = `${prefix.replace(/[^\w+=,.@-]/g, '').slice(0, 10)}-g-`;
  const hash = createHash('sha256').update(grantId).digest('hex');
  return `${head}${hash.slice(0, 32 - head.length)}`;
}

async function describe(s: SsoRef, arn: string): Promise<PermissionSet> {
  const out = await awsSend(
    { service: 'sso', operation: 'DescribePermissionSet', resource: arn, signal: s.signal },
    (o) =>
      s.sso.send(
        new DescribePermissionSetCommand({ InstanceArn: s.instanceArn, PermissionSetArn: arn }),
        o,
      ),
  );
  if (!out.PermissionSet?.PermissionSetArn) {
    throw new LatchkeyError('E_INTERNAL', `DescribePermissionSet of ${arn} returned nothing`);
  }
  return out.PermissionSet;
}

/** Every permission set ARN of the instance (paginated). */
export async function listPermissionSetArns(s: SsoRef): Promise<string[]> {
  const arns: string[] = [];
  await paginate(
    (token) =>
      awsSend({ service: 'sso', operation: 'ListPermissionSets', signal: s.signal }, (o) =>
        s.sso.send(
          new ListPermissionSetsCommand({
            InstanceArn: s.instanceArn,
            MaxResults: 100,
            ...(token ? { NextToken: token } : {}),
          }),
          o,
        ),
      ),
    (p) => p.NextToken,
    (p) => arns.push(...(p.PermissionSets ?? [])),
  );
  return arns;
}

/** The permission set named `name` (ARN given: described directly), or null. */
export async function findPermissionSet(
  s: SsoRef,
  nameOrArn: string,
): Promise<PermissionSet | null> {
  if (PERMISSION_SET_ARN.test(nameOrArn)) {
    try {
      return await describe(s, nameOrArn);
    } catch (err) {
      if (err instanceof LatchkeyError && err.code === 'E_NOT_FOUND') return null;
      throw err;
    }
  }
  for (const arn of await listPermissionSetArns(s)) {
    const ps = await describe(s, arn);
    if (ps.Name === nameOrArn) return ps;
  }
  return null;
}

export interface PolicySummary {
  managed: string[];
  customerManaged: string[];
  inline: string | undefined;
}

/** Managed, customer-managed and inline policies of a permission set. */
export async function permissionSetPolicies(s: SsoRef, arn: string): Promise<PolicySummary> {
  const managed: string[] = [];
  await paginate(
    (token) =>
      awsSend(
        {
          service: 'sso',
          operation: 'ListManagedPoliciesInPermissionSet',
          resource: arn,
          signal: s.signal,
        },
        (o) =>
          s.sso.send(
            new ListManagedPoliciesInPermissionSetCommand({
              InstanceArn: s.instanceArn,
              PermissionSetArn: arn,
              ...(token ? { NextToken: token } : {}),
            }),
            o,
          ),
      ),
    (p) => p.NextToken,
    (p) => {
      for (const m of p.AttachedManagedPolicies ?? []) if (m.Arn) managed.push(m.Arn);
    },
  );
  const customerManaged: string[] = [];
  await paginate(
    (token) =>
      awsSend(
        {
          service: 'sso',
          operation: 'ListCustomerManagedPolicyReferencesInPermissionSet',
          resource: arn,
          signal: s.signal,
        },
        (o) =>
          s.sso.send(
            new ListCustomerManagedPolicyReferencesInPermissionSetCommand({
              InstanceArn: s.instanceArn,
              PermissionSetArn: arn,
              ...(token ? { NextToken: token } : {}),
            }),
            o,
          ),
      ),
    (p) => p.NextToken,
    (p) => {
      for (const r of p.CustomerManagedPolicyReferences ?? [])
        if (r.Name) customerManaged.push(`${r.Path ?? '/'}${r.Name}`);
    },
  );
  const inline = await awsSend(
    {
      service: 'sso',
      operation: 'GetInlinePolicyForPermissionSet',
      resource: arn,
      signal: s.signal,
    },
    (o) =>
      s.sso.send(
        new GetInlinePolicyForPermissionSetCommand({
          InstanceArn: s.instanceArn,
          PermissionSetArn: arn,
        }),
        o,
      ),
  );
  return { managed, customerManaged, inline: inline.InlinePolicy || undefined };
}

// ---------------------------------------------------------------------------------------
// Guardrail: administrator-like access

const InlineStatementSchema = z
  .object({
    Effect: z.enum(['Allow', 'Deny']),
    Action: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    NotAction: z.union([z.string(), z.array(z.string())]).optional(),
    Resource: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    NotResource: z.union([z.string(), z.array(z.string())]).optional(),
    Condition: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
    Sid: z.string().optional(),
  })
  .strict();
const InlineDocumentSchema = z
  .object({
    Version: z.literal('2012-10-17'),
    Statement: z.union([InlineStatementSchema, z.array(InlineStatementSchema).min(1)]),
  })
  .strict();
export type InlineStatement = z.infer<typeof InlineStatementSchema>;

/** Parse an inline policy document given in a grant. @throws E_INVALID */
export function parseInlinePolicy(json: string): InlineStatement[] {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new LatchkeyError('E_INVALID', 'the inline-policy resource is not JSON');
  }
  const r = InlineDocumentSchema.safeParse(raw);
  if (!r.success) {
    throw new LatchkeyError(
      'E_INVALID',
      `the inline-policy resource is not an IAM policy document (Version 2012-10-17, Statement with Effect/Action/Resource): ${r.error.issues[0]?.message ?? ''}`,
    );
  }
  return Array.isArray(r.data.Statement) ? r.data.Statement : [r.data.Statement];
}

const list = (v: string | string[] | undefined): string[] =>
  v === undefined ? [] : Array.isArray(v) ? v : [v];

/** True when a statement allows every action on every resource (or uses NotAction/NotResource). */
export function isAdminLikeStatement(st: InlineStatement): boolean {
  if (st.Effect !== 'Allow') return false;
  if (st.NotAction !== undefined || st.NotResource !== undefined) return true;
  const wildAction = list(st.Action).some((a) => a === '*' || a === '*:*' || /^iam:\*$/i.test(a));
  return wildAction && list(st.Resource).includes('*');
}

/** Why a set of policies is administrator-like, or null. */
export function adminLikeReason(p: PolicySummary): string | null {
  for (const arn of p.managed) {
    const name = AWS_MANAGED_POLICY_ARN.exec(arn)?.[1];
    if (name !== undefined && ADMIN_LIKE_POLICIES.has(name)) return `it attaches ${name}`;
  }
  if (p.inline !== undefined) {
    let statements: InlineStatement[] = [];
    try {
      statements = parseInlinePolicy(p.inline);
    } catch {
      return 'its inline policy cannot be read';
    }
    if (statements.some(isAdminLikeStatement)) {
      return 'its inline policy allows every action on every resource (or uses NotAction/NotResource)';
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// Built permission sets

export interface BuiltSpec {
  name: string;
  marker: GroupMarker;
  sessionDurationSeconds: number;
  managed: string[];
  customerManaged: { name: string; path: string }[];
  /** Compact JSON of the inline policy with the expiry conditions, or undefined. */
  inline: string | undefined;
  /** Permissions boundary (copies of a permission set that has one). */
  boundary?: PermissionsBoundary | undefined;
}

/** `/path/name` of a customer-managed policy reference, split back into its parts. */
export function splitCustomerManaged(ref: string): { name: string; path: string } {
  const i = ref.lastIndexOf('/');
  return { path: ref.slice(0, i + 1) || '/', name: ref.slice(i + 1) };
}

const boundaryKey = (b: PermissionsBoundary): string =>
  b.ManagedPolicyArn ??
  `${b.CustomerManagedPolicyReference?.Path ?? '/'}${b.CustomerManagedPolicyReference?.Name ?? ''}`;

/** The permissions boundary of a permission set, or undefined when it has none. */
export async function permissionsBoundary(
  s: SsoRef,
  arn: string,
): Promise<PermissionsBoundary | undefined> {
  try {
    const out = await awsSend(
      {
        service: 'sso',
        operation: 'GetPermissionsBoundaryForPermissionSet',
        resource: arn,
        signal: s.signal,
      },
      (o) =>
        s.sso.send(
          new GetPermissionsBoundaryForPermissionSetCommand({
            InstanceArn: s.instanceArn,
            PermissionSetArn: arn,
          }),
          o,
        ),
    );
    const b = out.PermissionsBoundary;
    return b?.ManagedPolicyArn !== undefined || b?.CustomerManagedPolicyReference !== undefined
      ? b
      : undefined;
  } catch (err) {
    // Identity Center answers ResourceNotFound for a permission set without a boundary.
    if (err instanceof LatchkeyError && err.code === 'E_NOT_FOUND') return undefined;
    throw err;
  }
}

/**
 * The spec of a per-grant copy of an existing permission set (`permission-set` isolation):
 * its policies and boundary as they are now, the expiry conditions added to its inline
 * policy, its session duration lowered to `maxSessionSeconds`.
 * @throws LatchkeyError E_UNSUPPORTED when its inline policy cannot be rewritten,
 *   E_POLICY_TOO_LARGE when the rewritten inline policy would be too large
 */
export async function copySpec(
  s: SsoRef,
  source: PermissionSet & { PermissionSetArn: string },
  policies: PolicySummary,
  target: { name: string; marker: GroupMarker; maxSessionSeconds: number },
): Promise<BuiltSpec> {
  let statements: InlineStatement[] = [];
  if (policies.inline !== undefined) {
    try {
      statements = parseInlinePolicy(policies.inline);
    } catch {
      throw new LatchkeyError(
        'E_UNSUPPORTED',
        `permission set ${source.Name ?? source.PermissionSetArn} cannot be copied: its inline policy is not a 2012-10-17 policy document this driver can add the expiry conditions to`,
      );
    }
  }
  const boundary = await permissionsBoundary(s, source.PermissionSetArn);
  return {
    name: target.name,
    marker: target.marker,
    sessionDurationSeconds: Math.min(
      durationSeconds(source.SessionDuration),
      target.maxSessionSeconds,
    ),
    managed: policies.managed,
    customerManaged: policies.customerManaged.map(splitCustomerManaged),
    inline: buildInlinePolicy(statements, target.marker.expiresAt),
    ...(boundary !== undefined ? { boundary } : {}),
  };
}

/**
 * The inline policy of a built permission set: the grant's statements with
 * `DateLessThan aws:CurrentTime` merged into every Allow, plus a Deny of everything after
 * `expiresAt` (which also stops attached managed policies).
 * @throws E_POLICY_TOO_LARGE over the size a role's inline policies may have
 */
export function buildInlinePolicy(
  statements: InlineStatement[],
  expiresAt: string | undefined,
): string | undefined {
  const out: InlineStatement[] = [];
  const at = expiresAt !== undefined ? new Date(expiresAt).toISOString() : undefined;
  for (const st of statements) {
    if (at === undefined || st.Effect !== 'Allow') {
      out.push(st);
      continue;
    }
    const cond = { ...(st.Condition ?? {}) };
    // An earlier end the statement already has stays (a copied policy never gains time).
    const had = cond.DateLessThan?.['aws:CurrentTime'];
    const keep =
      typeof had === 'string' && !Number.isNaN(Date.parse(had)) && Date.parse(had) < Date.parse(at);
    cond.DateLessThan = { ...(cond.DateLessThan ?? {}), 'aws:CurrentTime': keep ? had : at };
    out.push({ ...st, Condition: cond });
  }
  if (at !== undefined) {
    out.push({
      Sid: 'LatchkeyGrantExpired',
      Effect: 'Deny',
      Action: '*',
      Resource: '*',
      Condition: { DateGreaterThan: { 'aws:CurrentTime': at } },
    });
  }
  if (out.length === 0) return undefined;
  const json = JSON.stringify({ Version: '2012-10-17', Statement: out });
  const size = policySize(json);
  if (size > INLINE_POLICY_LIMITS.role) {
    throw new LatchkeyError(
      'E_POLICY_TOO_LARGE',
      `the permission set's inline policy (${size} characters) would exceed the ${INLINE_POLICY_LIMITS.role}-character limit of the role Identity Center provisions; use managed policies or fewer statements`,
      { details: { size, limit: INLINE_POLICY_LIMITS.role } },
    );
  }
  return json;
}

/**
 * Find or create the built permission set and bring its policies to the spec.
 * @returns its ARN and whether anything had to be created or attached
 */
export async function ensureBuiltPermissionSet(
  s: SsoRef,
  prefix: string,
  spec: BuiltSpec,
): Promise<{ arn: string; changed: boolean }> {
  let changed = false;
  let ps = await findPermissionSet(s, spec.name);
  if (ps) {
    const m = parseGroupMarker(prefix, ps.Description);
    if (m?.grantId !== spec.marker.grantId) {
      throw new LatchkeyError(
        'E_NOT_MANAGED',
        `permission set ${spec.name} exists without Latchkey's marker for this grant; it is not used or changed`,
      );
    }
  } else {
    const created = await withConflictRetry(s.signal, `create permission set ${spec.name}`, () =>
      awsSend(
        { service: 'sso', operation: 'CreatePermissionSet', resource: spec.name, signal: s.signal },
        (o) =>
          s.sso.send(
            new CreatePermissionSetCommand({
              InstanceArn: s.instanceArn,
              Name: spec.name,
              Description: groupMarker(prefix, spec.marker),
              SessionDuration: isoDuration(spec.sessionDurationSeconds),
              Tags: [
                { Key: `${prefix}-managed`, Value: 'true' },
                { Key: `${prefix}-grant-id`, Value: spec.marker.grantId },
              ],
            }),
            o,
          ),
      ),
    );
    ps = created.PermissionSet ?? null;
    changed = true;
  }
  const arn = ps?.PermissionSetArn;
  if (arn === undefined)
    throw new LatchkeyError('E_INTERNAL', 'CreatePermissionSet returned no ARN');
  const have = await permissionSetPolicies(s, arn);
  if (spec.inline !== undefined && have.inline !== spec.inline) {
    const inline = spec.inline;
    await withConflictRetry(s.signal, `put the inline policy of ${spec.name}`, () =>
      awsSend(
        {
          service: 'sso',
          operation: 'PutInlinePolicyToPermissionSet',
          resource: arn,
          signal: s.signal,
        },
        (o) =>
          s.sso.send(
            new PutInlinePolicyToPermissionSetCommand({
              InstanceArn: s.instanceArn,
              PermissionSetArn: arn,
              InlinePolicy: inline,
            }),
            o,
          ),
      ),
    );
    changed = true;
  }
  for (const policyArn of spec.managed.filter((m) => !have.managed.includes(m))) {
    await withConflictRetry(s.signal, `attach ${policyArn} to ${spec.name}`, () =>
      awsSend(
        {
          service: 'sso',
          operation: 'AttachManagedPolicyToPermissionSet',
          resource: arn,
          signal: s.signal,
        },
        (o) =>
          s.sso.send(
            new AttachManagedPolicyToPermissionSetCommand({
              InstanceArn: s.instanceArn,
              PermissionSetArn: arn,
              ManagedPolicyArn: policyArn,
            }),
            o,
          ),
      ),
    );
    changed = true;
  }
  for (const ref of spec.customerManaged.filter(
    (c) => !have.customerManaged.includes(`${c.path}${c.name}`),
  )) {
    await withConflictRetry(s.signal, `attach ${ref.name} to ${spec.name}`, () =>
      awsSend(
        {
          service: 'sso',
          operation: 'AttachCustomerManagedPolicyReferenceToPermissionSet',
          resource: arn,
          signal: s.signal,
        },
        (o) =>
          s.sso.send(
            new AttachCustomerManagedPolicyReferenceToPermissionSetCommand({
              InstanceArn: s.instanceArn,
              PermissionSetArn: arn,
              CustomerManagedPolicyReference: { Name: ref.name, Path: ref.path },
            }),
            o,
          ),
      ),
    );
    changed = true;
  }
  if (spec.boundary !== undefined) {
    const want = spec.boundary;
    const have = await permissionsBoundary(s, arn);
    if (have === undefined || boundaryKey(have) !== boundaryKey(want)) {
      await withConflictRetry(s.signal, `put the permissions boundary of ${spec.name}`, () =>
        awsSend(
          {
            service: 'sso',
            operation: 'PutPermissionsBoundaryToPermissionSet',
            resource: arn,
            signal: s.signal,
          },
          (o) =>
            s.sso.send(
              new PutPermissionsBoundaryToPermissionSetCommand({
                InstanceArn: s.instanceArn,
                PermissionSetArn: arn,
                PermissionsBoundary: want,
              }),
              o,
            ),
        ),
      );
      changed = true;
    }
  }
  return { arn, changed };
}

/** Delete a built permission set (only one carrying our marker). `false` when absent. */
export async function deleteBuiltPermissionSet(
  s: SsoRef,
  prefix: string,
  name: string,
  grantId: string,
): Promise<boolean> {
  const ps = await findPermissionSet(s, name);
  if (!ps?.PermissionSetArn) return false;
  if (parseGroupMarker(prefix, ps.Description)?.grantId !== grantId) return false;
  const arn = ps.PermissionSetArn;
  try {
    await withConflictRetry(s.signal, `delete permission set ${name}`, () =>
      awsSend(
        { service: 'sso', operation: 'DeletePermissionSet', resource: arn, signal: s.signal },
        (o) =>
          s.sso.send(
            new DeletePermissionSetCommand({ InstanceArn: s.instanceArn, PermissionSetArn: arn }),
            o,
          ),
      ),
    );
  } catch (err) {
    if (err instanceof LatchkeyError && err.code === 'E_NOT_FOUND') return false;
    throw err;
  }
  return true;
}
