/**
 * Permissions boundaries of `aws-iam` grants (docs/drivers/aws-iam.md, "Permissions boundary").
 *
 * Glossary
 * - **boundary**: the managed policy set as a principal's permissions boundary; whatever
 *   its identity policies allow, the principal can do no more than the boundary allows.
 * - **attach mode**: while the principal holds a grant of the integration, its boundary is
 *   the configured one; when its last live grant ends, the boundary it had before (or none)
 *   is put back.
 * - **require mode**: a grant is made only to a principal whose boundary already is the
 *   configured one; nothing is changed on the principal besides the grant policy.
 * - **record**: two tags on the principal, written before the boundary is changed:
 *   `<tagPrefix>-boundary-previous` (the ARN it had, or `none`) and
 *   `<tagPrefix>-boundary-attached` (the ARN we attached). The target is the journal: a crash
 *   between any two steps leaves a state that the next grant, revoke or sweep finishes.
 *
 * Trust in the record: it is believed only while the principal's boundary is the one it
 * says we attached (then the configured boundary, which must deny the principal tagging
 * itself, protects it); otherwise the principal's actual boundary is recorded afresh, so a
 * tag written by the principal itself never makes us remove a boundary.
 */
import {
  DeleteRolePermissionsBoundaryCommand,
  DeleteUserPermissionsBoundaryCommand,
  GetRoleCommand,
  GetUserCommand,
  type IAMClient,
  PutRolePermissionsBoundaryCommand,
  PutUserPermissionsBoundaryCommand,
  TagRoleCommand,
  TagUserCommand,
  UntagRoleCommand,
  UntagUserCommand,
} from '@aws-sdk/client-iam';
import { LatchkeyError } from '../../errors.js';
import { awsSend } from '../../aws/call.js';
import {
  getInlinePolicy,
  listInlinePolicyNames,
  policyExpiry,
  type Principal,
} from '../../aws/policy.js';
import type { PermissionsBoundaryConfig } from './config.js';

type P = Pick<Principal, 'kind' | 'name' | 'arn'>;

export const NO_BOUNDARY = 'none';

export interface BoundaryState {
  /** The principal's current boundary ARN, or null. */
  current: string | null;
  tags: Record<string, string>;
}

export function boundaryTagKeys(tagPrefix: string): { previous: string; attached: string } {
  return {
    previous: `${tagPrefix}-boundary-previous`,
    attached: `${tagPrefix}-boundary-attached`,
  };
}

/** GetRole / GetUser: the current boundary and the tags (the record). */
export async function readBoundary(
  iam: IAMClient,
  p: P,
  signal: AbortSignal | undefined,
): Promise<BoundaryState> {
  const toRecord = (tags: { Key?: string | undefined; Value?: string | undefined }[] = []) =>
    Object.fromEntries(tags.flatMap((t) => (t.Key !== undefined ? [[t.Key, t.Value ?? '']] : [])));
  if (p.kind === 'role') {
    const out = await awsSend(
      { service: 'iam', operation: 'GetRole', resource: p.arn, signal },
      (o) => iam.send(new GetRoleCommand({ RoleName: p.name }), o),
    );
    return {
      current: out.Role?.PermissionsBoundary?.PermissionsBoundaryArn ?? null,
      tags: toRecord(out.Role?.Tags),
    };
  }
  const out = await awsSend(
    { service: 'iam', operation: 'GetUser', resource: p.arn, signal },
    (o) => iam.send(new GetUserCommand({ UserName: p.name }), o),
  );
  return {
    current: out.User?.PermissionsBoundary?.PermissionsBoundaryArn ?? null,
    tags: toRecord(out.User?.Tags),
  };
}

async function writeRecord(
  iam: IAMClient,
  p: P,
  tags: Record<string, string>,
  signal: AbortSignal | undefined,
): Promise<void> {
  const Tags = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
  if (p.kind === 'role') {
    await awsSend({ service: 'iam', operation: 'TagRole', resource: p.arn, signal }, (o) =>
      iam.send(new TagRoleCommand({ RoleName: p.name, Tags }), o),
    );
  } else {
    await awsSend({ service: 'iam', operation: 'TagUser', resource: p.arn, signal }, (o) =>
      iam.send(new TagUserCommand({ UserName: p.name, Tags }), o),
    );
  }
}

async function clearRecord(
  iam: IAMClient,
  p: P,
  keys: string[],
  signal: AbortSignal | undefined,
): Promise<void> {
  if (p.kind === 'role') {
    await awsSend({ service: 'iam', operation: 'UntagRole', resource: p.arn, signal }, (o) =>
      iam.send(new UntagRoleCommand({ RoleName: p.name, TagKeys: keys }), o),
    );
  } else {
    await awsSend({ service: 'iam', operation: 'UntagUser', resource: p.arn, signal }, (o) =>
      iam.send(new UntagUserCommand({ UserName: p.name, TagKeys: keys }), o),
    );
  }
}

async function setBoundary(
  iam: IAMClient,
  p: P,
  arn: string | null,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (arn === null) {
    try {
      if (p.kind === 'role') {
        await awsSend(
          {
            service: 'iam',
            operation: 'DeleteRolePermissionsBoundary',
            resource: p.arn,
            signal,
          },
          (o) => iam.send(new DeleteRolePermissionsBoundaryCommand({ RoleName: p.name }), o),
        );
      } else {
        await awsSend(
          {
            service: 'iam',
            operation: 'DeleteUserPermissionsBoundary',
            resource: p.arn,
            signal,
          },
          (o) => iam.send(new DeleteUserPermissionsBoundaryCommand({ UserName: p.name }), o),
        );
      }
    } catch (err) {
      if (err instanceof LatchkeyError && err.code === 'E_NOT_FOUND') return;
      throw err;
    }
    return;
  }
  if (p.kind === 'role') {
    await awsSend(
      { service: 'iam', operation: 'PutRolePermissionsBoundary', resource: p.arn, signal },
      (o) =>
        iam.send(
          new PutRolePermissionsBoundaryCommand({ RoleName: p.name, PermissionsBoundary: arn }),
          o,
        ),
    );
  } else {
    await awsSend(
      { service: 'iam', operation: 'PutUserPermissionsBoundary', resource: p.arn, signal },
      (o) =>
        iam.send(
          new PutUserPermissionsBoundaryCommand({ UserName: p.name, PermissionsBoundary: arn }),
          o,
        ),
    );
  }
}

export interface BoundaryApplied {
  policyArn: string;
  mode: PermissionsBoundaryConfig['mode'];
  /** What the principal had before (attach mode): an ARN or `none`. */
  previous?: string;
  /** True when this call changed the principal's boundary. */
  changed: boolean;
}

/**
 * Before a grant policy is put: in `require` mode check the principal's boundary; in
 * `attach` mode record the current one and attach the configured one (idempotent).
 * @throws LatchkeyError E_GUARDRAIL (require: another boundary; attach: the principal
 *   already carries another integration's boundary for its grants)
 */
export async function applyBoundary(
  iam: IAMClient,
  p: P,
  cfg: PermissionsBoundaryConfig,
  tagPrefix: string,
  signal: AbortSignal | undefined,
): Promise<BoundaryApplied> {
  const state = await readBoundary(iam, p, signal);
  const ours = cfg.policyArn;
  if (cfg.mode === 'require') {
    if (state.current !== ours) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `${p.arn} has ${state.current === null ? 'no permissions boundary' : `permissions boundary ${state.current}`}; this integration grants only to principals bounded by ${ours}`,
      );
    }
    return { policyArn: ours, mode: 'require', changed: false };
  }
  const keys = boundaryTagKeys(tagPrefix);
  const attached = state.tags[keys.attached];
  const previous = state.tags[keys.previous];
  if (state.current === ours && attached === ours && previous !== undefined) {
    return { policyArn: ours, mode: 'attach', previous, changed: false };
  }
  if (attached !== undefined && attached !== ours && state.current === attached) {
    throw new LatchkeyError(
      'E_GUARDRAIL',
      `${p.arn} carries permissions boundary ${attached} for grants of another integration; revoke those first`,
    );
  }
  // Record first, then change: a crash in between leaves a record that the next run rewrites.
  const before = state.current ?? NO_BOUNDARY;
  await writeRecord(iam, p, { [keys.previous]: before, [keys.attached]: ours }, signal);
  if (state.current !== ours) await setBoundary(iam, p, ours, signal);
  return { policyArn: ours, mode: 'attach', previous: before, changed: state.current !== ours };
}

export type RestoreOutcome =
  { status: 'restored'; to: string } | { status: 'kept'; reason: string } | { status: 'none' };

/**
 * After a grant policy is gone (or expired): when the principal holds no live grant policy
 * of ours (`<grantPrefix>*`, unexpired) any more, put back the boundary recorded before
 * ours, then clear the record. A boundary someone changed since is left as it is.
 */
export async function restoreBoundary(
  iam: IAMClient,
  p: P,
  tagPrefix: string,
  grantPrefix: string,
  now: Date,
  signal: AbortSignal | undefined,
): Promise<RestoreOutcome> {
  const state = await readBoundary(iam, p, signal);
  const keys = boundaryTagKeys(tagPrefix);
  const attached = state.tags[keys.attached];
  const previous = state.tags[keys.previous];
  if (attached === undefined && previous === undefined) return { status: 'none' };
  let live = 0;
  for (const name of await listInlinePolicyNames(iam, p, { signal })) {
    if (!name.startsWith(grantPrefix)) continue;
    const doc = await getInlinePolicy(iam, p, name, { signal });
    if (doc === null) continue;
    const expiry = policyExpiry(doc);
    if (expiry === null || expiry > now) live++;
  }
  if (live > 0) return { status: 'kept', reason: `${live} live grant(s) still hold it` };
  let outcome: RestoreOutcome;
  if (attached !== undefined && state.current === attached && previous !== undefined) {
    const to = previous === NO_BOUNDARY ? null : previous;
    if (to !== state.current) await setBoundary(iam, p, to, signal);
    outcome = { status: 'restored', to: previous };
  } else {
    outcome = {
      status: 'kept',
      reason: `the boundary was changed outside Latchkey (${state.current ?? NO_BOUNDARY}); left as it is`,
    };
  }
  await clearRecord(iam, p, [keys.previous, keys.attached], signal);
  return outcome;
}
