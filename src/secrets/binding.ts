/**
 * Secret-to-target binding: the guardrail that keeps a signed command from pairing a
 * service-account secret with a server of its choosing.
 *
 * The control plane decides which integration uses which secret reference, but must never
 * be able to read a secret. Without this check, a command naming the production secret and
 * `host: attacker.example` would make the agent log in there with the production password
 * (PostgreSQL cleartext/md5, MySQL's cleartext plugin…), handing it over.
 *
 * Rules (`checkSecretBinding`), applied by every SQL driver before it opens a connection:
 * - a secret with a `host` may only be used against that host (case-insensitive, a
 *   trailing dot and IPv6 brackets ignored; no DNS resolution);
 * - a secret with a `port` only against that port; a secret with a `dbname` only when the
 *   integration's maintenance database is that one (when the driver has one);
 * - a secret without a `host` may be **bound by tag** (Secrets Manager): tagged
 *   `<prefix>-connector-read=true` (the tag the connector's IAM policy reads secrets by) and
 *   `<prefix>-connector-target=<host>` or `<host>:<port>` (or the RDS instance / cluster
 *   identifier, for an integration whose host the connector looked up from that identifier),
 *   it is used only against that host (and port); the tags are set by whoever administers the secret in AWS, never by a command;
 * - a Secrets Manager secret without a `host` is also bound when **this agent's own
 *   `aws-discovery`** found a database tagged `<prefix>-secret=<the secret's ARN>` within the
 *   pairing TTL (`./discovered.ts`): it is used only against that database's endpoint host
 *   and port, as AWS reported them (a secret bound by its own tags follows its tags); a
 *   command cannot create such a pairing;
 * - any other secret without a `host` is "unbound": it is used only when its store is in the
 *   operator's `allowUnbound` list (`LATCHKEY_ALLOW_UNBOUND_SECRETS`, default `env,file`).
 * A refusal is `E_GUARDRAIL` naming the integration's value and the field that differs,
 * never a value of the secret.
 */
import { LatchkeyError } from '../errors.js';
import type { SecretRef } from '../protocol/messages.js';
import { describeTtl, type DiscoveredPairing } from './discovered.js';
import { normalizeHost } from './host.js';
import type { SecretBindingPolicy, SecretResolver, ServiceSecret } from './types.js';

export type { SecretBindingPolicy } from './types.js';

export type SecretStore = SecretRef['store'];

/** Every secret store, in the order the docs list them. */
export const SECRET_STORES: readonly SecretStore[] = Object.freeze([
  'aws-secrets-manager',
  'kubernetes',
  'file',
  'env',
  'vault',
] as const);

/**
 * Default: unbound secrets only from the local stores (`env`, `file`), whose contents the
 * operator placed on the agent's own host under a confined prefix or directory. Secrets
 * from Secrets Manager or Kubernetes must carry a `host`.
 */
export const DEFAULT_UNBOUND_SECRET_STORES: readonly SecretStore[] = Object.freeze([
  'file',
  'env',
] as const);

export const DEFAULT_SECRET_BINDING: SecretBindingPolicy = Object.freeze({
  allowUnbound: DEFAULT_UNBOUND_SECRET_STORES,
});

/** Where a driver is about to connect with a secret. */
export interface SecretTarget {
  /** Host of the integration's config (what the driver connects to). */
  host: string;
  /** Port the driver connects to (after defaults). */
  port: number;
  /** Database the service account logs in to, for engines that name one at login. */
  database?: string;
  /**
   * RDS instance / cluster identifier the connector itself looked `host` up from
   * (`rdsInstanceId` / `rdsClusterId`), never one a command names: a
   * `<prefix>-connector-target` tag may name it instead of the host.
   */
  rdsId?: string;
}

export { normalizeHost };

/** How an error names a secret reference (its id, which the command carried anyway). */
export function describeSecretRef(ref: SecretRef): string {
  switch (ref.store) {
    case 'aws-secrets-manager':
      return `aws-secrets-manager secret "${ref.secretId}"`;
    case 'kubernetes':
      return `kubernetes secret "${ref.namespace === undefined ? '' : `${ref.namespace}/`}${ref.name}"`;
    case 'file':
      return `file secret "${ref.path}"`;
    case 'env':
      return `env secret "${ref.prefix}*"`;
    case 'vault':
      return `vault secret "${ref.namespace === undefined ? '' : `${ref.namespace}:`}${ref.mount === undefined ? '' : `${ref.mount}/`}${ref.path}"`;
  }
}

const DEFAULT_TAG_PREFIX = 'latchkey';

type TagBinding =
  | { kind: 'bound'; key: string; host: string; port: number | undefined }
  | { kind: 'none'; readKey: string; targetKey: string; problem?: string };

/** What the tags of a secret say about its target (names of tags only in messages). */
export function tagBinding(tags: Record<string, string> | undefined, prefix: string): TagBinding {
  const readKey = `${prefix}-connector-read`;
  const targetKey = `${prefix}-connector-target`;
  const none = (problem?: string): TagBinding => ({
    kind: 'none',
    readKey,
    targetKey,
    ...(problem !== undefined ? { problem } : {}),
  });
  if (tags === undefined) return none('its tags could not be read (secretsmanager:DescribeSecret)');
  const read = tags[readKey];
  const value = tags[targetKey];
  if (read?.toLowerCase() !== 'true') {
    return none(value === undefined ? undefined : `it has ${targetKey} but not ${readKey}=true`);
  }
  if (value === undefined || value.trim() === '') {
    return none(`it has ${readKey}=true but no ${targetKey}`);
  }
  const m = /^(.+?)(?::(\d{1,5}))?$/.exec(value.trim());
  const host = m?.[1] ?? '';
  const port = m?.[2] === undefined ? undefined : Number(m[2]);
  if (!/^[A-Za-z0-9._-]+$/.test(host) || (port !== undefined && (port < 1 || port > 65535))) {
    return none(`${targetKey} is not <host> or <host>:<port>`);
  }
  return { kind: 'bound', key: targetKey, host, port };
}

/**
 * The pairing this agent's discovery recorded for the secret `ref` names and `target`'s
 * host and port, if any (see `./discovered.ts`).
 */
export function discoveredPairing(
  ref: SecretRef,
  target: SecretTarget,
  policy: SecretBindingPolicy = DEFAULT_SECRET_BINDING,
): DiscoveredPairing | undefined {
  if (ref.store !== 'aws-secrets-manager' || policy.discovered === undefined) return undefined;
  return policy.discovered.find(ref.secretId, target.host, target.port);
}

function refuse(message: string, details: Record<string, unknown>): LatchkeyError {
  return new LatchkeyError('E_GUARDRAIL', message, { details });
}

/**
 * @throws LatchkeyError E_GUARDRAIL when `secret` may not be used against `target`.
 */
export function checkSecretBinding(
  secret: Pick<ServiceSecret, 'host' | 'port' | 'dbname' | 'tags'>,
  ref: SecretRef,
  target: SecretTarget,
  policy: SecretBindingPolicy = DEFAULT_SECRET_BINDING,
): void {
  const which = describeSecretRef(ref);
  const details = { guardrail: 'secret-binding', store: ref.store };
  if (secret.host === undefined) {
    if (policy.allowUnbound.includes(ref.store)) return;
    const byTag = tagBinding(secret.tags, policy.tagPrefix ?? DEFAULT_TAG_PREFIX);
    if (byTag.kind === 'bound') {
      const byId =
        target.rdsId !== undefined &&
        byTag.port === undefined &&
        byTag.host.toLowerCase() === target.rdsId.toLowerCase();
      if (
        !byId &&
        (normalizeHost(byTag.host) !== normalizeHost(target.host) ||
          (byTag.port !== undefined && byTag.port !== target.port))
      ) {
        throw refuse(
          `${which} is bound by its tag ${byTag.key} to another server than the integration's ` +
            `${target.host}:${target.port}; refusing to connect with it`,
          { ...details, field: 'tag', reason: 'tag-target', targetHost: target.host },
        );
      }
      return;
    }
    // The secret's own tags bind it nowhere: a pairing this agent's discovery found may.
    if (discoveredPairing(ref, target, policy) !== undefined) return;
    const prefix = policy.tagPrefix ?? DEFAULT_TAG_PREFIX;
    const tagHow =
      ref.store === 'aws-secrets-manager'
        ? `, or tag the secret ${byTag.readKey}=true and ${byTag.targetKey}=${target.host} ` +
          `(binding by tag${byTag.problem === undefined ? '' : `; ${byTag.problem}`}), or tag ` +
          `the database ${prefix}-secret=<this secret's ARN> and let this agent's aws-discovery ` +
          `find it (no pairing of this secret with ${target.host}:${target.port} was discovered ` +
          `by this agent${policy.discovered === undefined ? '' : ` within ${describeTtl(policy.discovered.ttlMs)}`})`
        : '';
    throw refuse(
      `${which} names no host, so it is not bound to a target; refusing to send it to ` +
        `${target.host}:${target.port}. Add a "host" (and "port") field to the secret${tagHow}, or ` +
        `allow unbound ${ref.store} secrets with LATCHKEY_ALLOW_UNBOUND_SECRETS`,
      { ...details, field: 'host', reason: 'unbound' },
    );
  }
  if (normalizeHost(secret.host) !== normalizeHost(target.host)) {
    throw refuse(
      `${which} is bound to another host than the integration's host ${target.host}; ` +
        'refusing to connect with it',
      { ...details, field: 'host', targetHost: target.host },
    );
  }
  if (secret.port !== undefined && secret.port !== target.port) {
    throw refuse(
      `${which} is bound to another port than the integration's port ${target.port}; ` +
        'refusing to connect with it',
      { ...details, field: 'port', targetPort: target.port },
    );
  }
  if (
    secret.dbname !== undefined &&
    target.database !== undefined &&
    secret.dbname !== target.database
  ) {
    throw refuse(
      `${which} is bound to another database than the integration's database ` +
        `"${target.database}"; set config.database to the secret's dbname`,
      { ...details, field: 'dbname', targetDatabase: target.database },
    );
  }
}

/** The binding policy of a resolver (`DEFAULT_SECRET_BINDING` when it declares none). */
export function bindingPolicyOf(secrets: SecretResolver): SecretBindingPolicy {
  return secrets.binding ?? DEFAULT_SECRET_BINDING;
}

/**
 * Resolves `ref` and checks it may be used against `target` (the one call every SQL
 * driver makes before connecting as its service account).
 * @throws LatchkeyError E_SECRET (store) or E_GUARDRAIL (binding).
 */
export async function resolveBoundSecret(
  secrets: SecretResolver,
  ref: SecretRef,
  target: SecretTarget,
  signal?: AbortSignal,
): Promise<ServiceSecret> {
  const secret = await secrets.resolve(ref, signal);
  checkSecretBinding(secret, ref, target, bindingPolicyOf(secrets));
  return secret;
}

/**
 * Parses the operator's setting: store names, or `all`/`true`, or `none`/`false`.
 * @returns the stores, or a problem (never quoting more than the offending item).
 */
export function parseUnboundStores(
  items: readonly string[],
): { stores: SecretStore[] } | { problem: string } {
  const words = items.map((i) => i.trim().toLowerCase()).filter((i) => i !== '');
  if (words.length === 1 && (words[0] === 'all' || words[0] === 'true')) {
    return { stores: [...SECRET_STORES] };
  }
  if (words.length === 1 && (words[0] === 'none' || words[0] === 'false')) return { stores: [] };
  const stores: SecretStore[] = [];
  for (const w of words) {
    const store = SECRET_STORES.find((s) => s === w);
    if (store === undefined) {
      return {
        problem: `must be all, none, or a list of ${SECRET_STORES.join(', ')} (got "${w.slice(0, 40)}")`,
      };
    }
    if (!stores.includes(store)) stores.push(store);
  }
  return { stores };
}
