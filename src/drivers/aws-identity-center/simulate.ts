/**
 * The write half of `check`: Identity Center has no dry run, so the rights to create and
 * delete account assignments, grant groups and built permission sets are proven with
 * `iam:SimulatePrincipalPolicy` on the connector's own role, for the exact actions the
 * driver calls and, per action, the resource types the Service Authorization Reference
 * says it is authorized on.
 *
 * What a simulation proves: the role's identity-based policies, its permissions boundary
 * and the organization's SCPs allow these actions on these resources. What it does not:
 * session policies, a customer-managed KMS key of the instance (`kms:Decrypt` through
 * Identity Center), resource tags a policy conditions on (reported as missing context),
 * and Identity Center's own rules (a delegated administrator cannot touch permission sets
 * provisioned to the management account; an external identity source may refuse group
 * writes). Those show on the first grant, with the precise error.
 *
 * Glossary
 * - **principal**: the IAM role (or user) the driver's calls run as: `assumeRoleArn`, or
 *   the caller identity with an assumed-role session turned back into its role ARN.
 * - **sample**: ids a grant would use that check cannot know (an account, a permission
 *   set); the simulation uses one real example, or a wildcard where none exists yet.
 */
import {
  type EvaluationResult,
  type IAMClient,
  SimulatePrincipalPolicyCommand,
} from '@aws-sdk/client-iam';
import { awsSend } from '../../aws/call.js';
import { LatchkeyError } from '../../errors.js';

export type ResourceKind =
  'instance' | 'permissionSet' | 'account' | 'identitystore' | 'group' | 'user' | 'membership';

/** Resource types each simulated action is authorized on (Service Authorization Reference). */
export const ACTION_RESOURCES: Readonly<Record<string, readonly ResourceKind[]>> = {
  'sso:CreateAccountAssignment': ['instance', 'permissionSet', 'account'],
  'sso:DeleteAccountAssignment': ['instance', 'permissionSet', 'account'],
  'sso:DescribeAccountAssignmentCreationStatus': ['instance'],
  'sso:DescribeAccountAssignmentDeletionStatus': ['instance'],
  'sso:CreatePermissionSet': ['instance', 'permissionSet'],
  'sso:PutInlinePolicyToPermissionSet': ['instance', 'permissionSet'],
  'sso:AttachManagedPolicyToPermissionSet': ['instance', 'permissionSet'],
  'sso:AttachCustomerManagedPolicyReferenceToPermissionSet': ['instance', 'permissionSet'],
  'sso:PutPermissionsBoundaryToPermissionSet': ['instance', 'permissionSet'],
  'sso:DeletePermissionSet': ['instance', 'permissionSet'],
  'sso:ProvisionPermissionSet': ['instance', 'permissionSet', 'account'],
  'sso:DescribePermissionSetProvisioningStatus': ['instance'],
  'identitystore:CreateGroup': ['identitystore'],
  'identitystore:CreateGroupMembership': ['identitystore', 'group', 'user'],
  'identitystore:DeleteGroupMembership': ['identitystore', 'group', 'user', 'membership'],
  'identitystore:DeleteGroup': ['identitystore', 'group'],
};

/** The sub-checks: what a grant and its revoke write. */
export const SIMULATIONS = {
  'simulate:assignments': [
    'sso:CreateAccountAssignment',
    'sso:DescribeAccountAssignmentCreationStatus',
    'sso:DeleteAccountAssignment',
    'sso:DescribeAccountAssignmentDeletionStatus',
  ],
  'simulate:grant-groups': [
    'identitystore:CreateGroup',
    'identitystore:CreateGroupMembership',
    'identitystore:DeleteGroupMembership',
    'identitystore:DeleteGroup',
  ],
  'simulate:built-permission-sets': [
    'sso:CreatePermissionSet',
    'sso:PutInlinePolicyToPermissionSet',
    'sso:AttachManagedPolicyToPermissionSet',
    'sso:AttachCustomerManagedPolicyReferenceToPermissionSet',
    'sso:PutPermissionsBoundaryToPermissionSet',
    'sso:ProvisionPermissionSet',
    'sso:DescribePermissionSetProvisioningStatus',
    'sso:DeletePermissionSet',
  ],
} as const satisfies Record<string, readonly (keyof typeof ACTION_RESOURCES)[]>;

/**
 * The IAM principal to simulate for a caller identity ARN: a role for an assumed-role
 * session (its path is not in the session ARN: a role with a path needs `assumeRoleArn`
 * in the config), the user itself for an IAM user.
 * @throws LatchkeyError E_UNSUPPORTED for identities IAM cannot simulate (root, federated users)
 */
export function principalOfCaller(callerArn: string): string {
  const session = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/[^/]+$/.exec(callerArn);
  if (session) return `arn:${session[1]}:iam::${session[2]}:role/${session[3]}`;
  if (/^arn:aws[a-z-]*:iam::\d{12}:(role|user)\/.+$/.test(callerArn)) return callerArn;
  throw new LatchkeyError(
    'E_UNSUPPORTED',
    `cannot simulate the policies of ${callerArn}; run the integration as an IAM role (assumeRoleArn)`,
  );
}

export interface SimulationTarget {
  iam: IAMClient;
  /** The principal's ARN. */
  principal: string;
  /** ARN (or wildcard ARN) of each resource kind. */
  resources: Readonly<Record<ResourceKind, string>>;
  signal: AbortSignal;
}

function denials(r: EvaluationResult): string[] {
  const out: string[] = [];
  const perResource = r.ResourceSpecificResults ?? [];
  for (const rr of perResource) {
    if (rr.EvalResourceDecision !== 'allowed') {
      const missing = rr.MissingContextValues?.length
        ? `, missing context ${rr.MissingContextValues.join(', ')}`
        : '';
      out.push(
        `${r.EvalActionName ?? '?'} on ${rr.EvalResourceName ?? '?'}: ${rr.EvalResourceDecision ?? 'no decision'}${missing}`,
      );
    }
  }
  if (out.length === 0 && r.EvalDecision !== 'allowed') {
    const missing = r.MissingContextValues?.length
      ? `, missing context ${r.MissingContextValues.join(', ')}`
      : '';
    out.push(`${r.EvalActionName ?? '?'}: ${r.EvalDecision ?? 'no decision'}${missing}`);
  }
  return out;
}

/**
 * Simulate `actions` for the principal, each on its own resource types (one
 * `SimulatePrincipalPolicy` per distinct resource set, paginated).
 * @returns the line detail when every action is allowed on every resource
 * @throws LatchkeyError E_PRIVILEGE listing each denied action and resource
 */
export async function simulate(t: SimulationTarget, actions: readonly string[]): Promise<string> {
  const bySet = new Map<string, { resources: string[]; actions: string[] }>();
  for (const action of actions) {
    const kinds = ACTION_RESOURCES[action];
    if (kinds === undefined) throw new LatchkeyError('E_INTERNAL', `no resources for ${action}`);
    const resources = kinds.map((k) => t.resources[k]);
    const key = resources.join(' ');
    const entry = bySet.get(key) ?? { resources, actions: [] };
    entry.actions.push(action);
    bySet.set(key, entry);
  }
  const denied: string[] = [];
  const seen = new Set<string>();
  for (const { resources, actions: names } of bySet.values()) {
    let marker: string | undefined;
    do {
      const out = await awsSend(
        {
          service: 'iam',
          operation: 'SimulatePrincipalPolicy',
          resource: t.principal,
          signal: t.signal,
        },
        (o) =>
          t.iam.send(
            new SimulatePrincipalPolicyCommand({
              PolicySourceArn: t.principal,
              ActionNames: names,
              ResourceArns: resources,
              ...(marker !== undefined ? { Marker: marker } : {}),
            }),
            o,
          ),
      );
      for (const r of out.EvaluationResults ?? []) {
        if (r.EvalActionName !== undefined) seen.add(r.EvalActionName);
        denied.push(...denials(r));
      }
      marker = out.IsTruncated === true ? out.Marker : undefined;
    } while (marker !== undefined);
  }
  const unanswered = actions.filter((a) => !seen.has(a));
  if (unanswered.length > 0) denied.push(`${unanswered.join(', ')}: not evaluated`);
  if (denied.length > 0) {
    throw new LatchkeyError('E_PRIVILEGE', `${t.principal} may not: ${denied.join('; ')}`);
  }
  return `${t.principal} may ${actions.map((a) => a.split(':')[1] ?? a).join(', ')} (simulated)`;
}
