/**
 * A small IAM policy evaluator for the access inventory (issue 13): which of a principal's
 * identity policies allow an action on a resource ARN. Pure: no AWS calls.
 *
 * Glossary
 * - **identity policy**: an inline or managed policy of a user, a role or a user's group.
 *   Each arrives here as an `IdentityPolicy` with where it came from (`source`, `chain`).
 * - **request**: one action (`s3:GetObject`) on one or more resource ARNs (an S3 object
 *   action is asked on `arn:…:bucket/*`). A wildcard action (`s3:*`) is asked literally:
 *   only statements whose patterns cover every action of the service allow it.
 *
 * What is evaluated, as AWS does for identity policies in one account: `Action` and
 * `NotAction`, `Resource` and `NotResource`, `*` and `?` wildcards (actions without regard
 * to case, ARNs with), and explicit `Deny` wins over any `Allow`.
 * What is NOT evaluated (reported or documented instead): `Condition` blocks (their keys
 * are reported; an Allow with conditions counts as an allow, a Deny with conditions does
 * not deny), policy variables (`${aws:username}`: a pattern holding one matches nothing
 * but itself), service control policies, permission boundaries, session policies and
 * resource-based policies (bucket policies, role trust policies, key policies).
 */
import { z } from 'zod';
import { LatchkeyError } from '../errors.js';
import { parseJsonBounded } from '../protocol/json-depth.js';

export interface EvalStatement {
  effect: 'Allow' | 'Deny';
  actions?: string[];
  notActions?: string[];
  resources?: string[];
  notResources?: string[];
  /** Condition keys (`aws:SourceIp`), sorted; empty without a Condition block. */
  conditionKeys: string[];
}

const StringOrList = z.union([z.string(), z.array(z.string())]);
const StatementSchema = z.object({
  Sid: z.string().optional(),
  Effect: z.enum(['Allow', 'Deny']),
  Action: StringOrList.optional(),
  NotAction: StringOrList.optional(),
  Resource: StringOrList.optional(),
  NotResource: StringOrList.optional(),
  Principal: z.unknown().optional(),
  NotPrincipal: z.unknown().optional(),
  Condition: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
});
const DocumentSchema = z.object({
  Version: z.string().optional(),
  Id: z.string().optional(),
  Statement: z.union([StatementSchema, z.array(StatementSchema)]),
});

const list = (v: string | string[] | undefined): string[] | undefined =>
  v === undefined ? undefined : typeof v === 'string' ? [v] : v;

/**
 * Parses a policy document (JSON text, URL-encoded as IAM returns it or not).
 * @throws LatchkeyError E_INVALID when it is not a policy document.
 */
export function parsePolicyDocument(text: string): EvalStatement[] {
  let json: unknown;
  try {
    const decoded = text.trimStart().startsWith('{') ? text : decodeURIComponent(text);
    json = parseJsonBounded(decoded);
  } catch (err) {
    throw new LatchkeyError('E_INVALID', 'policy document is not JSON', { cause: err });
  }
  const parsed = DocumentSchema.safeParse(json);
  if (!parsed.success) {
    throw new LatchkeyError('E_INVALID', 'policy document does not have the IAM policy shape');
  }
  const statements = Array.isArray(parsed.data.Statement)
    ? parsed.data.Statement
    : [parsed.data.Statement];
  return statements.map((s) => {
    const out: EvalStatement = { effect: s.Effect, conditionKeys: [] };
    const a = list(s.Action);
    const na = list(s.NotAction);
    const r = list(s.Resource);
    const nr = list(s.NotResource);
    if (a) out.actions = a;
    if (na) out.notActions = na;
    if (r) out.resources = r;
    if (nr) out.notResources = nr;
    const keys = new Set<string>();
    for (const block of Object.values(s.Condition ?? {})) {
      for (const k of Object.keys(block)) keys.add(k);
    }
    out.conditionKeys = [...keys].sort();
    return out;
  });
}

const patternCache = new Map<string, RegExp>();

/** IAM wildcard match: `*` any run of characters, `?` one character. */
export function wildcardMatch(pattern: string, value: string, ignoreCase: boolean): boolean {
  const key = `${ignoreCase ? 'i' : 's'}:${pattern}`;
  let re = patternCache.get(key);
  if (!re) {
    const body = pattern
      .split('')
      .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
      .join('');
    re = new RegExp(`^${body}$`, ignoreCase ? 'is' : 's');
    if (patternCache.size > 10_000) patternCache.clear();
    patternCache.set(key, re);
  }
  return re.test(value);
}

function actionCovered(st: EvalStatement, action: string): boolean {
  if (st.actions) return st.actions.some((p) => wildcardMatch(p, action, true));
  if (st.notActions) return !st.notActions.some((p) => wildcardMatch(p, action, true));
  return false;
}

/** A Deny may touch some action of `service:*` (it names one, or excludes some with NotAction). */
function actionOverlaps(st: EvalStatement, action: string): boolean {
  if (actionCovered(st, action)) return true;
  if (!action.endsWith(':*')) return false;
  const service = action.slice(0, -2).toLowerCase();
  if (st.actions) {
    return st.actions.some((p) => {
      const s = p.split(':')[0] ?? '';
      return wildcardMatch(s, service, true);
    });
  }
  return st.notActions !== undefined;
}

function resourceCovered(st: EvalStatement, arn: string): boolean {
  if (st.resources) return st.resources.some((p) => wildcardMatch(p, arn, false));
  if (st.notResources) return !st.notResources.some((p) => wildcardMatch(p, arn, false));
  return false;
}

/** Whether one statement applies to `action` on `arn`. */
export function statementApplies(st: EvalStatement, action: string, arn: string): boolean {
  return actionCovered(st, action) && resourceCovered(st, arn);
}

export interface IdentityPolicy {
  statements: EvalStatement[];
}

export interface ActionDecision {
  /** Some unconditional Deny applies (explicit deny wins). */
  denied: boolean;
  /** Indexes (into the policies given) of the policies with an Allow that applies. */
  allowedBy: number[];
  /** Condition keys of the applying Allow statements, per policy index, and of conditional Denies. */
  conditionKeys: Map<number, string[]>;
}

/**
 * Decides one action on a set of ARNs (any of them: an S3 bucket action is asked on the
 * bucket, an object action on `bucket/*`) against all the principal's policies.
 */
export function decide(
  policies: readonly IdentityPolicy[],
  action: string,
  arns: readonly string[],
): ActionDecision {
  const allowedBy: number[] = [];
  const conditionKeys = new Map<number, string[]>();
  const conditionalDenyKeys = new Set<string>();
  let denied = false;
  policies.forEach((p, i) => {
    for (const st of p.statements) {
      if (st.effect === 'Deny') {
        const hits = arns.some((arn) => resourceCovered(st, arn)) && actionOverlaps(st, action);
        if (!hits) continue;
        if (st.conditionKeys.length === 0) denied = true;
        else for (const k of st.conditionKeys) conditionalDenyKeys.add(k);
        continue;
      }
      if (!arns.some((arn) => statementApplies(st, action, arn))) continue;
      if (!allowedBy.includes(i)) allowedBy.push(i);
      const keys = new Set([...(conditionKeys.get(i) ?? []), ...st.conditionKeys]);
      conditionKeys.set(i, [...keys]);
    }
  });
  if (conditionalDenyKeys.size > 0) {
    for (const i of allowedBy) {
      const keys = new Set([...(conditionKeys.get(i) ?? []), ...conditionalDenyKeys]);
      conditionKeys.set(i, [...keys]);
    }
  }
  for (const [i, keys] of conditionKeys) conditionKeys.set(i, keys.sort());
  return { denied, allowedBy, conditionKeys };
}

/** A permission level as a list of actions, each asked on its own ARNs. */
export interface LevelSpec {
  level: string;
  actions: readonly { action: string; arns: readonly string[] }[];
}

export interface PolicyGrant {
  /** Index of the policy (into the list given). */
  policy: number;
  /** Highest level whose actions this policy allows in full (and none is denied); `partial` when only some. */
  permission: string;
  /** The actions it allows (not denied), sorted. */
  privileges: string[];
  conditions: string[];
}

/**
 * What each policy of one principal gives on one resource: for every policy with at least
 * one allowed (and not denied) action, the highest level it covers in full. Levels are
 * given lowest first.
 */
export function grantsOnResource(
  policies: readonly IdentityPolicy[],
  levels: readonly LevelSpec[],
): PolicyGrant[] {
  const byPolicy = new Map<
    number,
    { actions: Set<string>; keys: Set<string>; conditions: Set<string> }
  >();
  const keyOf = (a: { action: string; arns: readonly string[] }): string =>
    `${a.action}\u0000${a.arns.join('\u0000')}`;
  const decided = new Map<string, ActionDecision>();
  for (const l of levels) {
    for (const a of l.actions) {
      const key = keyOf(a);
      if (decided.has(key)) continue;
      const d = decide(policies, a.action, a.arns);
      decided.set(key, d);
      if (d.denied) continue;
      for (const i of d.allowedBy) {
        const entry = byPolicy.get(i) ?? {
          actions: new Set<string>(),
          keys: new Set<string>(),
          conditions: new Set<string>(),
        };
        entry.actions.add(a.action);
        entry.keys.add(key);
        for (const k of d.conditionKeys.get(i) ?? []) entry.conditions.add(k);
        byPolicy.set(i, entry);
      }
    }
  }
  const out: PolicyGrant[] = [];
  for (const [policy, e] of [...byPolicy].sort((x, y) => x[0] - y[0])) {
    let permission = 'partial';
    for (const l of levels) {
      if (l.actions.length > 0 && l.actions.every((a) => e.keys.has(keyOf(a)))) {
        permission = l.level;
      }
    }
    out.push({
      policy,
      permission,
      privileges: [...e.actions].sort(),
      conditions: [...e.conditions].sort(),
    });
  }
  return out;
}
