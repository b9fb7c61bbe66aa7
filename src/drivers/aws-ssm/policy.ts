/**
 * The Session Manager grant policy. Pure: no AWS calls.
 *
 * - `ssm:StartSession` on the chosen instances and on the session documents of the
 *   permission, with `BoolIfExists ssm:SessionDocumentAccessCheck = true` so only those
 *   documents can be used;
 * - `ssm:TerminateSession` / `ssm:ResumeSession` on the grantee's own sessions only
 *   (`session/${aws:username}-*` for a user, `session/${aws:userid}-*` for a role);
 * - `DateLessThan aws:CurrentTime` on both when the grant has `expiresAt`.
 */
import { LatchkeyError } from '../../errors.js';
import type { ResourceRef } from '../../protocol/messages.js';
import {
  expiryCondition,
  mergeConditions,
  policyDocument,
  statement,
  type PolicyDocument,
  type Principal,
} from '../../aws/policy.js';
import { parseJsonBounded } from '../../protocol/json-depth.js';
import type { AwsSsmConfig } from './config.js';

export const SSM_RESOURCE_TYPES = ['ec2-instance', 'managed-instance'] as const;
export type SsmResourceType = (typeof SSM_RESOURCE_TYPES)[number];

/** Session documents per permission. `SSM-*` documents live in the account; `AWS-*` are AWS-owned. */
export const SESSION_DOCUMENTS = {
  shell: ['SSM-SessionManagerRunShell'],
  'port-forwarding': [
    'AWS-StartPortForwardingSession',
    'AWS-StartPortForwardingSessionToRemoteHost',
  ],
  ssh: ['AWS-StartSSHSession'],
} as const satisfies Record<string, readonly string[]>;
export type SsmPermission = keyof typeof SESSION_DOCUMENTS;
export const SSM_PERMISSIONS = Object.keys(SESSION_DOCUMENTS) as SsmPermission[];

export function parseSsmPermission(permission: string): SsmPermission {
  const p = permission === 'session' ? 'shell' : permission;
  if (!(SSM_PERMISSIONS as string[]).includes(p)) {
    throw new LatchkeyError(
      'E_INVALID',
      `unknown permission '${permission}' for aws-ssm; use ${SSM_PERMISSIONS.join(', ')}`,
    );
  }
  return p as SsmPermission;
}

export interface ParsedInstance {
  type: SsmResourceType;
  arn: string;
  region: string;
  instanceId: string;
}

const INSTANCE_ARN =
  /^arn:(aws[a-z-]*):(ec2|ssm):([a-z0-9-]+):(\d{12}):(instance|managed-instance)\/((?:i|mi)-[0-9a-f]{8,17})$/;

/** @throws LatchkeyError E_INVALID */
export function parseInstance(ref: ResourceRef, cfg: AwsSsmConfig): ParsedInstance {
  if (!(SSM_RESOURCE_TYPES as readonly string[]).includes(ref.type)) {
    throw new LatchkeyError(
      'E_INVALID',
      `resource type '${ref.type}' is not served by aws-ssm (${SSM_RESOURCE_TYPES.join(', ')})`,
    );
  }
  const m = INSTANCE_ARN.exec(ref.id);
  const [, partition, service, region, account, kind, instanceId] = m ?? [];
  const okKind =
    (ref.type === 'ec2-instance' && service === 'ec2' && kind === 'instance') ||
    (ref.type === 'managed-instance' && service === 'ssm' && kind === 'managed-instance');
  if (!m || !okKind || !region || !instanceId) {
    throw new LatchkeyError('E_INVALID', `${ref.type} id must be its ARN, got ${ref.id}`);
  }
  if (partition !== cfg.partition || account !== cfg.accountId) {
    throw new LatchkeyError(
      'E_INVALID',
      `${ref.id} is not in account ${cfg.accountId} (${cfg.partition})`,
    );
  }
  if (!cfg.regions.includes(region)) {
    throw new LatchkeyError(
      'E_INVALID',
      `${ref.id} is in region ${region}, not one of this integration's regions (${cfg.regions.join(', ')})`,
    );
  }
  return { type: ref.type as SsmResourceType, arn: ref.id, region, instanceId };
}

export function instanceArn(cfg: AwsSsmConfig, region: string, instanceId: string): string {
  return instanceId.startsWith('mi-')
    ? `arn:${cfg.partition}:ssm:${region}:${cfg.accountId}:managed-instance/${instanceId}`
    : `arn:${cfg.partition}:ec2:${region}:${cfg.accountId}:instance/${instanceId}`;
}

export function documentArns(
  cfg: AwsSsmConfig,
  permission: SsmPermission,
  regions: string[],
): string[] {
  const out: string[] = [];
  for (const region of regions) {
    for (const doc of SESSION_DOCUMENTS[permission]) {
      const owner = doc.startsWith('AWS-') ? '' : cfg.accountId;
      out.push(`arn:${cfg.partition}:ssm:${region}:${owner}:document/${doc}`);
    }
  }
  return out;
}

/** An EC2 tag scope of an aws-ssm grant: every instance of the integration carrying `key=value`. */
export interface SsmTagScope {
  key: string;
  value: string;
}

/**
 * Check a grant's `tagScope` for aws-ssm: EC2 instances only, a valid AWS tag key.
 * @throws LatchkeyError E_INVALID
 */
export function parseSsmTagScope(ts: {
  resourceType: string;
  key: string;
  value: string;
}): SsmTagScope {
  if (ts.resourceType !== 'ec2-instance') {
    throw new LatchkeyError(
      'E_INVALID',
      `aws-ssm tag scopes cover ec2-instance only, got '${ts.resourceType}'`,
    );
  }
  if (!/^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u.test(ts.key)) {
    throw new LatchkeyError('E_INVALID', 'tagScope.key is not a valid AWS tag key');
  }
  return { key: ts.key, value: ts.value };
}

const SESSION_DOCUMENT_CHECK = { BoolIfExists: { 'ssm:SessionDocumentAccessCheck': 'true' } };

export function buildSessionPolicy(input: {
  cfg: AwsSsmConfig;
  principal: Principal;
  instances: ParsedInstance[];
  permission: SsmPermission;
  tagScope?: SsmTagScope | undefined;
  expiresAt?: string | undefined;
}): PolicyDocument {
  const { cfg, tagScope } = input;
  if (input.instances.length === 0 && tagScope === undefined) {
    throw new LatchkeyError(
      'E_INVALID',
      'an aws-ssm grant needs at least one instance or a tagScope',
    );
  }
  const expiry = expiryCondition(input.expiresAt);
  const regions =
    tagScope !== undefined ? cfg.regions : [...new Set(input.instances.map((i) => i.region))];
  const self = input.principal.kind === 'user' ? '${aws:username}' : '${aws:userid}';
  const docs = documentArns(cfg, input.permission, regions);
  const statements = [
    statement(
      ['ssm:StartSession'],
      [...input.instances.map((i) => i.arn), ...docs],
      mergeConditions(SESSION_DOCUMENT_CHECK, expiry),
    ),
  ];
  if (tagScope !== undefined) {
    // The tag condition on the instances only: documents carry no such tag.
    statements.push(
      statement(
        ['ssm:StartSession'],
        cfg.regions.map((r) => `arn:${cfg.partition}:ec2:${r}:${cfg.accountId}:instance/*`),
        mergeConditions(
          { StringEquals: { [`ssm:resourceTag/${tagScope.key}`]: tagScope.value } },
          SESSION_DOCUMENT_CHECK,
          expiry,
        ),
      ),
    );
  }
  statements.push(
    statement(
      ['ssm:ResumeSession', 'ssm:TerminateSession'],
      [`arn:${cfg.partition}:ssm:*:*:session/${self}-*`],
      expiry,
    ),
  );
  return policyDocument(statements);
}

/** The tag scope of a stored grant policy (its `ssm:resourceTag/<key>` condition), if any. */
export function tagScopeInPolicy(json: string): SsmTagScope | null {
  let doc: unknown;
  try {
    doc = parseJsonBounded(json);
  } catch {
    return null;
  }
  const statements = (doc as { Statement?: unknown }).Statement;
  for (const s of Array.isArray(statements) ? statements : []) {
    const eq = (s as { Condition?: { StringEquals?: Record<string, unknown> } }).Condition
      ?.StringEquals;
    for (const [k, v] of Object.entries(eq ?? {})) {
      if (k.startsWith('ssm:resourceTag/') && typeof v === 'string') {
        return { key: k.slice('ssm:resourceTag/'.length), value: v };
      }
    }
  }
  return null;
}

/** Instance ARNs named in a stored grant policy (to end sessions when revoking from the policy alone). */
export function instancesInPolicy(json: string): string[] {
  const found = json.match(
    /arn:aws[a-z-]*:(?:ec2|ssm):[a-z0-9-]+:\d{12}:(?:instance|managed-instance)\/(?:i|mi)-[0-9a-f]{8,17}/g,
  );
  return [...new Set(found ?? [])];
}
