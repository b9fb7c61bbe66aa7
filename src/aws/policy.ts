/**
 * Per-grant inline IAM policies, shared by the `aws-iam` and `aws-ssm` drivers.
 *
 * Glossary
 * - **grant policy**: one inline policy named `<tagPrefix>-<kind>grant-<grantId>` on the
 *   grantee principal, holding exactly one grant. Revoke deletes it; nothing else is touched.
 * - **size**: AWS counts the characters of ALL inline policies of a principal together,
 *   whitespace excluded: 2,048 for a user, 10,240 for a role. We measure before any change.
 * - **expiry**: a grant with `expiresAt` carries `DateLessThan aws:CurrentTime` on every
 *   statement, so AWS stops honouring it on time even if no revoke ever comes; `sweep`
 *   deletes such policies afterwards.
 */
import { createHash } from 'node:crypto';
import {
  DeleteRolePolicyCommand,
  DeleteUserPolicyCommand,
  GetRolePolicyCommand,
  GetUserPolicyCommand,
  type IAMClient,
  ListRolePoliciesCommand,
  ListRolesCommand,
  ListUserPoliciesCommand,
  ListUsersCommand,
  PutRolePolicyCommand,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';
import type PQueue from 'p-queue';
import { z } from 'zod';
import { LatchkeyError, toWireError } from '../errors.js';
import { awsSend } from './call.js';
import { parseJsonBounded } from '../protocol/json-depth.js';
import { roleNameOf } from './index.js';

export const POLICY_VERSION = '2012-10-17';
/** AWS's aggregate inline-policy size quotas (characters, whitespace excluded). */
export const INLINE_POLICY_LIMITS = { user: 2048, role: 10240 } as const;
/** Grants naming more resources one by one than this are refused (use a tag scope). */
export const MAX_NAMED_RESOURCES = 100;

export type Condition = Record<string, Record<string, string | string[]>>;

export interface Statement {
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
  Condition?: Condition;
}

export interface PolicyDocument {
  Version: typeof POLICY_VERSION;
  Statement: Statement[];
}

/** Sorted, de-duplicated; a single item as a plain string (shorter). */
function compactList(items: readonly string[]): string | string[] {
  const list = [...new Set(items)].sort();
  return list.length === 1 && list[0] !== undefined ? list[0] : list;
}

export function statement(
  actions: readonly string[],
  resources: readonly string[],
  condition?: Condition,
): Statement {
  const s: Statement = {
    Effect: 'Allow',
    Action: compactList(actions),
    Resource: compactList(resources),
  };
  if (condition && Object.keys(condition).length > 0) s.Condition = condition;
  return s;
}

/** Merge condition blocks (operator by operator). */
export function mergeConditions(...conds: (Condition | undefined)[]): Condition | undefined {
  const out: Condition = {};
  for (const c of conds) {
    if (!c) continue;
    for (const [op, kv] of Object.entries(c)) out[op] = { ...(out[op] ?? {}), ...kv };
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The condition that ends a grant at `expiresAt` without us. */
export function expiryCondition(expiresAt: string | undefined): Condition | undefined {
  if (expiresAt === undefined) return undefined;
  return { DateLessThan: { 'aws:CurrentTime': new Date(expiresAt).toISOString() } };
}

export function policyDocument(statements: Statement[]): PolicyDocument {
  return { Version: POLICY_VERSION, Statement: statements };
}

/** Compact JSON (no whitespace). */
export function serializePolicy(doc: PolicyDocument): string {
  return JSON.stringify(doc);
}

/** Size as AWS counts it: characters, whitespace excluded. */
export function policySize(json: string): number {
  return json.replace(/\s/g, '').length;
}

// ---------------------------------------------------------------------------------------
// Principals

export interface Principal {
  kind: 'role' | 'user';
  name: string;
  accountId: string;
  arn: string;
  partition: string;
}

const PRINCIPAL_ARN =
  /^arn:(aws[a-z-]*):(iam|sts)::(\d{12}):(role|user|assumed-role)\/(?:([\w+=,.@/-]*)\/)?([\w+=,.@-]{1,128})$/;
const ASSUMED_ROLE_ARN =
  /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([\w+=,.@-]{1,64})\/[\w+=,.@-]+$/;

/**
 * The principal an inline policy goes on: an IAM role or user ARN; an STS assumed-role
 * session ARN stands for its role.
 * @throws LatchkeyError E_INVALID
 */
export function parsePrincipal(arn: string | undefined): Principal {
  if (arn === undefined) {
    throw new LatchkeyError(
      'E_INVALID',
      'grantee.awsPrincipalArn is required: the IAM role or user that receives the policy',
    );
  }
  const assumed = ASSUMED_ROLE_ARN.exec(arn);
  if (assumed) {
    const [, partition, accountId, name] = assumed;
    if (partition && accountId && name) return { kind: 'role', name, accountId, arn, partition };
  }
  const m = PRINCIPAL_ARN.exec(arn);
  if (m) {
    const [, partition, service, accountId, kind, , name] = m;
    if (
      service === 'iam' &&
      (kind === 'role' || kind === 'user') &&
      partition &&
      accountId &&
      name
    ) {
      return { kind, name, accountId, arn, partition };
    }
  }
  throw new LatchkeyError(
    'E_INVALID',
    `grantee.awsPrincipalArn must be an IAM role or user ARN (arn:aws:iam::<account>:role/<name> or user/<name>), got ${arn}`,
  );
}

/**
 * The grantee of a per-grant inline policy: an IAM role or user of the integration's own
 * account, and never the connector's own role (granting it anything would hand the
 * connector's privileges to someone).
 * @throws LatchkeyError E_INVALID (not a principal, other account), E_GUARDRAIL (own role)
 */
export function granteeInAccount(
  target: { accountId: string; assumeRoleArn?: string | undefined },
  arn: string | undefined,
): Principal {
  const p = parsePrincipal(arn);
  if (p.accountId !== target.accountId) {
    throw new LatchkeyError(
      'E_INVALID',
      `grantee ${p.arn} is not in account ${target.accountId}; inline policies go on principals of the integration's account`,
    );
  }
  const own = target.assumeRoleArn !== undefined ? roleNameOf(target.assumeRoleArn) : null;
  if (p.kind === 'role' && p.name === own) {
    throw new LatchkeyError(
      'E_GUARDRAIL',
      `the grantee ${p.arn} is the connector's own role; it is never granted anything`,
    );
  }
  return p;
}

/** `<prefix>-<kind>grant-<grantId>`; grant ids with characters IAM refuses are hashed. */
export function grantPolicyName(tagPrefix: string, grantId: string, kind = ''): string {
  const base = `${tagPrefix}-${kind}grant-`;
  const direct = `${base}${grantId}`;
  if (/^[\w+=,.@-]+$/.test(direct) && direct.length <= 128) return direct;
  const h = createHash('sha256').update(grantId).digest('hex').slice(0, 40);
  return `${base}h-${h}`;
}

// ---------------------------------------------------------------------------------------
// Inline policy operations

export interface IamCallOptions {
  signal?: AbortSignal | undefined;
}

/** URL-decoded policy document as returned by Get*Policy. */
function decodeDocument(doc: string | undefined): string {
  if (doc === undefined) return '';
  try {
    return decodeURIComponent(doc);
  } catch {
    return doc;
  }
}

/** Names of all inline policies of the principal (paginated). */
export async function listInlinePolicyNames(
  iam: IAMClient,
  p: Pick<Principal, 'kind' | 'name'>,
  o: IamCallOptions,
): Promise<string[]> {
  const names: string[] = [];
  let marker: string | undefined;
  for (;;) {
    const page =
      p.kind === 'role'
        ? await awsSend(
            { service: 'iam', operation: 'ListRolePolicies', resource: p.name, signal: o.signal },
            (so) =>
              iam.send(
                new ListRolePoliciesCommand({
                  RoleName: p.name,
                  ...(marker ? { Marker: marker } : {}),
                }),
                so,
              ),
          )
        : await awsSend(
            { service: 'iam', operation: 'ListUserPolicies', resource: p.name, signal: o.signal },
            (so) =>
              iam.send(
                new ListUserPoliciesCommand({
                  UserName: p.name,
                  ...(marker ? { Marker: marker } : {}),
                }),
                so,
              ),
          );
    names.push(...(page.PolicyNames ?? []));
    if (!page.IsTruncated || !page.Marker) break;
    marker = page.Marker;
  }
  return names;
}

/** The decoded document of one inline policy, or null when it does not exist. */
export async function getInlinePolicy(
  iam: IAMClient,
  p: Pick<Principal, 'kind' | 'name'>,
  policyName: string,
  o: IamCallOptions,
): Promise<string | null> {
  try {
    const out =
      p.kind === 'role'
        ? await awsSend(
            { service: 'iam', operation: 'GetRolePolicy', resource: p.name, signal: o.signal },
            (so) =>
              iam.send(new GetRolePolicyCommand({ RoleName: p.name, PolicyName: policyName }), so),
          )
        : await awsSend(
            { service: 'iam', operation: 'GetUserPolicy', resource: p.name, signal: o.signal },
            (so) =>
              iam.send(new GetUserPolicyCommand({ UserName: p.name, PolicyName: policyName }), so),
          );
    return decodeDocument(out.PolicyDocument);
  } catch (err) {
    if (err instanceof LatchkeyError && err.code === 'E_NOT_FOUND') return null;
    throw err;
  }
}

/** Canonical form for comparison: parsed and re-serialized (whitespace-insensitive). */
function canonical(json: string): string {
  try {
    return JSON.stringify(parseJsonBounded(json));
  } catch {
    return json;
  }
}

export interface ApplyResult {
  alreadyGranted: boolean;
  /** Size of the grant policy. */
  size: number;
  /** Size of all the principal's inline policies after the grant (when measured). */
  totalSize?: number;
  limit: number;
}

function tooLarge(p: Principal, size: number, existing: number, limit: number): LatchkeyError {
  const over = size + existing - limit;
  return new LatchkeyError(
    'E_POLICY_TOO_LARGE',
    `the grant policy (${size} characters) plus the ${p.kind}'s other inline policies (${existing}) ` +
      `would exceed AWS's ${limit}-character limit for a ${p.kind} by ${over}; ` +
      'grant fewer resources or use a tag-based scope (params.tagScope)',
    { details: { size, existing, limit, over } },
  );
}

/**
 * Refuse a document that alone exceeds the principal's limit, before any AWS call.
 * @throws LatchkeyError E_POLICY_TOO_LARGE
 */
export function assertPolicyFits(p: Principal, json: string): void {
  const limit = INLINE_POLICY_LIMITS[p.kind];
  const size = policySize(json);
  if (size > limit) throw tooLarge(p, size, 0, limit);
}

/**
 * Put the grant policy on the principal, idempotently and only if it fits:
 * 1. GetXPolicy(policyName): same document → `alreadyGranted`, nothing written;
 * 2. List and fetch the principal's other inline policies, add their sizes;
 * 3. over the limit → `E_POLICY_TOO_LARGE` (nothing written); else PutXPolicy.
 */
export async function putGrantPolicy(
  iam: IAMClient,
  p: Principal,
  policyName: string,
  json: string,
  o: IamCallOptions,
): Promise<ApplyResult> {
  const limit = INLINE_POLICY_LIMITS[p.kind];
  const size = policySize(json);
  if (size > limit) throw tooLarge(p, size, 0, limit);

  const current = await getInlinePolicy(iam, p, policyName, o);
  if (current !== null && canonical(current) === canonical(json)) {
    return { alreadyGranted: true, size, limit };
  }
  const names = await listInlinePolicyNames(iam, p, o);
  let existing = 0;
  for (const name of names) {
    if (name === policyName) continue;
    const doc = await getInlinePolicy(iam, p, name, o);
    if (doc !== null) existing += policySize(doc);
  }
  if (size + existing > limit) throw tooLarge(p, size, existing, limit);

  if (p.kind === 'role') {
    await awsSend(
      { service: 'iam', operation: 'PutRolePolicy', resource: p.arn, signal: o.signal },
      (so) =>
        iam.send(
          new PutRolePolicyCommand({
            RoleName: p.name,
            PolicyName: policyName,
            PolicyDocument: json,
          }),
          so,
        ),
    );
  } else {
    await awsSend(
      { service: 'iam', operation: 'PutUserPolicy', resource: p.arn, signal: o.signal },
      (so) =>
        iam.send(
          new PutUserPolicyCommand({
            UserName: p.name,
            PolicyName: policyName,
            PolicyDocument: json,
          }),
          so,
        ),
    );
  }
  return { alreadyGranted: false, size, totalSize: size + existing, limit };
}

/** Delete the grant policy; `false` when it was already gone (NoSuchEntity). */
export async function deleteGrantPolicy(
  iam: IAMClient,
  p: Pick<Principal, 'kind' | 'name' | 'arn'>,
  policyName: string,
  o: IamCallOptions,
): Promise<boolean> {
  try {
    if (p.kind === 'role') {
      await awsSend(
        { service: 'iam', operation: 'DeleteRolePolicy', resource: p.arn, signal: o.signal },
        (so) =>
          iam.send(new DeleteRolePolicyCommand({ RoleName: p.name, PolicyName: policyName }), so),
      );
    } else {
      await awsSend(
        { service: 'iam', operation: 'DeleteUserPolicy', resource: p.arn, signal: o.signal },
        (so) =>
          iam.send(new DeleteUserPolicyCommand({ UserName: p.name, PolicyName: policyName }), so),
      );
    }
    return true;
  } catch (err) {
    if (err instanceof LatchkeyError && err.code === 'E_NOT_FOUND') return false;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------
// Expiry and sweep

const StoredPolicySchema = z.object({
  Statement: z.union([
    z.array(
      z
        .object({ Condition: z.record(z.string(), z.record(z.string(), z.unknown())).optional() })
        .loose(),
    ),
    z
      .object({ Condition: z.record(z.string(), z.record(z.string(), z.unknown())).optional() })
      .loose(),
  ]),
});

/**
 * The time after which AWS no longer honours any statement of the document (the latest
 * `DateLessThan aws:CurrentTime`), or null when some statement never expires.
 */
export function policyExpiry(json: string): Date | null {
  let parsed: unknown;
  try {
    parsed = parseJsonBounded(json);
  } catch {
    return null;
  }
  const doc = StoredPolicySchema.safeParse(parsed);
  if (!doc.success) return null;
  const statements = Array.isArray(doc.data.Statement) ? doc.data.Statement : [doc.data.Statement];
  let latest: Date | null = null;
  for (const s of statements) {
    const v = s.Condition?.DateLessThan?.['aws:CurrentTime'];
    if (typeof v !== 'string') return null;
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) return null;
    if (latest === null || d > latest) latest = d;
  }
  return latest;
}

export interface SweptPolicy {
  principal: Pick<Principal, 'kind' | 'name' | 'arn'>;
  policyName: string;
  document: string;
  expiredAt: Date;
}

export interface SweepResult {
  deleted: SweptPolicy[];
  errors: { item: string; code: string; message: string }[];
}

/**
 * Walk every role and user (ListRoles / ListUsers, paginated), find inline policies
 * whose name starts with `namePrefix`, and delete those whose expiry has passed.
 * Per-item failures are collected; the sweep goes on.
 */
export async function sweepExpiredPolicies(
  iam: IAMClient,
  namePrefix: string,
  now: Date,
  limiter: PQueue,
  o: IamCallOptions & {
    /** Runs before an expired policy is deleted (a failure keeps the policy for the next sweep). */
    beforeDelete?: (
      p: Pick<Principal, 'kind' | 'name' | 'arn'>,
      policyName: string,
    ) => Promise<void>;
  },
): Promise<SweepResult> {
  const result: SweepResult = { deleted: [], errors: [] };
  const principals: Pick<Principal, 'kind' | 'name' | 'arn'>[] = [];
  const run = <T>(fn: () => Promise<T>): Promise<T> =>
    limiter.add(fn, { throwOnTimeout: true, ...(o.signal ? { signal: o.signal } : {}) });

  let marker: string | undefined;
  for (;;) {
    const page = await run(() =>
      awsSend({ service: 'iam', operation: 'ListRoles', signal: o.signal }, (so) =>
        iam.send(new ListRolesCommand(marker ? { Marker: marker } : {}), so),
      ),
    );
    for (const r of page.Roles ?? []) {
      if (r.RoleName && r.Arn && !(r.Path ?? '').startsWith('/aws-service-role/')) {
        principals.push({ kind: 'role', name: r.RoleName, arn: r.Arn });
      }
    }
    if (!page.IsTruncated || !page.Marker) break;
    marker = page.Marker;
  }
  marker = undefined;
  for (;;) {
    const page = await run(() =>
      awsSend({ service: 'iam', operation: 'ListUsers', signal: o.signal }, (so) =>
        iam.send(new ListUsersCommand(marker ? { Marker: marker } : {}), so),
      ),
    );
    for (const u of page.Users ?? []) {
      if (u.UserName && u.Arn) principals.push({ kind: 'user', name: u.UserName, arn: u.Arn });
    }
    if (!page.IsTruncated || !page.Marker) break;
    marker = page.Marker;
  }

  for (const p of principals) {
    try {
      const names = await run(() => listInlinePolicyNames(iam, p, o));
      for (const name of names.filter((n) => n.startsWith(namePrefix))) {
        const doc = await run(() => getInlinePolicy(iam, p, name, o));
        if (doc === null) continue;
        const expiry = policyExpiry(doc);
        if (expiry === null || expiry > now) continue;
        if (o.beforeDelete) await o.beforeDelete(p, name);
        await run(() => deleteGrantPolicy(iam, p, name, o));
        result.deleted.push({ principal: p, policyName: name, document: doc, expiredAt: expiry });
      }
    } catch (err) {
      if (err instanceof LatchkeyError && err.code === 'E_CANCELLED') throw err;
      const w = toWireError(err);
      result.errors.push({ item: p.arn, code: w.code, message: w.message });
    }
  }
  return result;
}
