/**
 * Standing cleanup of identity-policy access (issue 13), shared by `aws-iam` and `aws-ssm`:
 * the smallest change, local to the principal, that removes one listed entry.
 *
 * | via | source | call |
 * |---|---|---|
 * | `policy` | managed policy ARN | `DetachRolePolicy` / `DetachUserPolicy` (the policy itself stays for others) |
 * | `policy` | inline policy name | `DeleteRolePolicy` / `DeleteUserPolicy` (the whole inline policy: we never rewrite a customer's document) |
 * | `group` | (policy of the group) | `RemoveUserFromGroup` (the group's policies stay for its other members) |
 *
 * Refused: the connector's own role (`E_GUARDRAIL`), principals tagged `<prefix>-protected`
 * (`E_GUARDRAIL`), the agent's own grant policies (`E_NOT_MANAGED`: revoke the grant).
 * Every target is planned before the first call; one refusal means nothing is applied.
 */
import {
  DeleteRolePolicyCommand,
  DeleteUserPolicyCommand,
  DetachRolePolicyCommand,
  DetachUserPolicyCommand,
  RemoveUserFromGroupCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
import type {
  CleanupOutput,
  Inventory,
  StandingCleanupParams,
  StandingOutcome,
  StandingTarget,
} from '../protocol/messages.js';
import { LatchkeyError } from '../errors.js';
import { awsSend } from './call.js';
import { isProtectedPrincipal, principalIdOf, type IamPrincipalPolicies } from './authorization.js';

/** One IAM call of a plan. */
export type StandingCall =
  | { op: 'DetachRolePolicy'; input: { RoleName: string; PolicyArn: string } }
  | { op: 'DetachUserPolicy'; input: { UserName: string; PolicyArn: string } }
  | { op: 'DeleteRolePolicy'; input: { RoleName: string; PolicyName: string } }
  | { op: 'DeleteUserPolicy'; input: { UserName: string; PolicyName: string } }
  | { op: 'RemoveUserFromGroup'; input: { GroupName: string; UserName: string } };

export function describeCall(c: StandingCall): string {
  const args = Object.entries(c.input)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return `iam:${c.op} ${args}`;
}

export interface AwsStandingPlan {
  outcome: StandingOutcome;
  calls: StandingCall[];
}

/** Plans one target against the inventory of its resource (pure). */
export function planAwsStanding(
  principals: readonly IamPrincipalPolicies[],
  inventory: Inventory,
  target: StandingTarget,
  opts: { tagPrefix: string; ownRoleName: string | null },
): AwsStandingPlan {
  const refuse = (code: 'E_GUARDRAIL' | 'E_NOT_MANAGED', reason: string): AwsStandingPlan => ({
    outcome: { target, status: 'refused', actions: [], code, reason },
    calls: [],
  });
  const p = principals.find((x) => principalIdOf(x) === target.principalId);
  if (!p) {
    return {
      outcome: { target, status: 'absent', actions: [], reason: 'no such principal' },
      calls: [],
    };
  }
  if (p.kind === 'iam-role' && p.name === opts.ownRoleName) {
    return refuse('E_GUARDRAIL', "the connector's own role is never changed");
  }
  if (isProtectedPrincipal(p, opts.tagPrefix)) {
    return refuse('E_GUARDRAIL', `${p.arn} is tagged ${opts.tagPrefix}-protected`);
  }
  const matches = inventory.entries.filter(
    (e) =>
      e.principalId === target.principalId &&
      e.resourceId === target.resourceId &&
      e.permission === target.permission &&
      e.via === target.via &&
      (target.source === undefined || e.source === target.source),
  );
  if (matches.length === 0) {
    return {
      outcome: { target, status: 'absent', actions: [], reason: 'not in the inventory' },
      calls: [],
    };
  }
  const calls: StandingCall[] = [];
  const notes: string[] = [];
  for (const e of matches) {
    if (e.managedByAgent) {
      return refuse(
        'E_NOT_MANAGED',
        `${e.source ?? 'the policy'} is a Latchkey grant policy: revoke the grant instead`,
      );
    }
    const source = e.source ?? '';
    if (e.via === 'group') {
      const group = e.chain?.[0] ?? '';
      calls.push({ op: 'RemoveUserFromGroup', input: { GroupName: group, UserName: p.name } });
      notes.push(`${p.name} leaves group ${group} (everything its policies give)`);
    } else if (source.startsWith('arn:')) {
      calls.push(
        p.kind === 'iam-role'
          ? { op: 'DetachRolePolicy', input: { RoleName: p.name, PolicyArn: source } }
          : { op: 'DetachUserPolicy', input: { UserName: p.name, PolicyArn: source } },
      );
      notes.push(`${source} is detached from ${p.name} (everything it gives ${p.name})`);
    } else {
      calls.push(
        p.kind === 'iam-role'
          ? { op: 'DeleteRolePolicy', input: { RoleName: p.name, PolicyName: source } }
          : { op: 'DeleteUserPolicy', input: { UserName: p.name, PolicyName: source } },
      );
      notes.push(`inline policy ${source} of ${p.name} is deleted (all its statements)`);
    }
  }
  const seen = new Set<string>();
  const unique = calls.filter((c) => {
    const d = describeCall(c);
    if (seen.has(d)) return false;
    seen.add(d);
    return true;
  });
  return {
    outcome: {
      target,
      status: 'planned',
      actions: unique.map(describeCall),
      reason: [...new Set(notes)].join('; '),
    },
    calls: unique,
  };
}

async function send(iam: IAMClient, c: StandingCall, signal: AbortSignal): Promise<void> {
  const ctx = { service: 'iam', operation: c.op, signal };
  switch (c.op) {
    case 'DetachRolePolicy':
      await awsSend(ctx, (o) => iam.send(new DetachRolePolicyCommand(c.input), o));
      return;
    case 'DetachUserPolicy':
      await awsSend(ctx, (o) => iam.send(new DetachUserPolicyCommand(c.input), o));
      return;
    case 'DeleteRolePolicy':
      await awsSend(ctx, (o) => iam.send(new DeleteRolePolicyCommand(c.input), o));
      return;
    case 'DeleteUserPolicy':
      await awsSend(ctx, (o) => iam.send(new DeleteUserPolicyCommand(c.input), o));
      return;
    case 'RemoveUserFromGroup':
      await awsSend(ctx, (o) => iam.send(new RemoveUserFromGroupCommand(c.input), o));
      return;
  }
}

/** Runs the plans when applying and nothing is refused; the output of a standing cleanup. */
export async function applyAwsStanding(
  iam: IAMClient,
  plans: AwsStandingPlan[],
  params: StandingCleanupParams,
  signal: AbortSignal,
): Promise<CleanupOutput> {
  const apply = params.apply === true && plans.every((p) => p.outcome.status !== 'refused');
  if (apply) {
    const done = new Set<string>();
    for (const plan of plans) {
      for (const c of plan.calls) {
        const d = describeCall(c);
        if (done.has(d)) continue;
        done.add(d);
        try {
          await send(iam, c, signal);
        } catch (err) {
          // Already detached or deleted by someone else since the read: the goal is met.
          if (!(err instanceof LatchkeyError && err.code === 'E_NOT_FOUND')) throw err;
        }
      }
      if (plan.outcome.status === 'planned') plan.outcome.status = 'removed';
    }
  }
  return { dropped: [], kept: [], standing: plans.map((p) => p.outcome), dryRun: !apply };
}
