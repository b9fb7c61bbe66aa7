/**
 * The secret resolver: one `SecretResolver` over every store a `SecretRef` can name.
 *
 * | store                 | where                                   | cached |
 * |-----------------------|-----------------------------------------|--------|
 * | `aws-secrets-manager` | GetSecretValue (AWSCURRENT), JSON       | TTL    |
 * | `kubernetes`          | Kubernetes API, Secret `data` (base64)  | TTL    |
 * | `file`                | a mounted directory, one file per field | TTL    |
 * | `env`                 | `<prefix>USERNAME`, `<prefix>PASSWORD`… | no     |
 * | `vault`               | HashiCorp Vault KV v2 (`data.data`)     | TTL    |
 *
 * Nothing here logs. Errors are `LatchkeyError`s naming the secret and the reason, never a
 * value. Rotation (`resolver.rotation`) is supported for `aws-secrets-manager` only.
 *
 * Guardrails (docs/secrets.md, "Binding secrets to targets"): `file` refs must lie under
 * `fileRoots` and `env` prefixes must start with one of `envPrefixes` (both with secure
 * defaults), and `resolver.binding` tells the SQL drivers which stores may hand out a
 * secret that names no host (`resolveBoundSecret` in `./binding.ts`).
 */
import { LatchkeyError } from '../errors.js';
import type { AwsClientFactory } from '../aws/types.js';
import { SecretRefSchema } from '../protocol/messages.js';
import type { SecretRef } from '../protocol/messages.js';
import { createAwsSecretsManagerStore } from './aws-secrets-manager.js';
import { SecretCache } from './cache.js';
import { throwIfAborted } from './errors.js';
import { DEFAULT_UNBOUND_SECRET_STORES } from './binding.js';
import { DiscoveredPairings } from './discovered.js';
import type { SecretStore } from './binding.js';
import { DEFAULT_SECRET_ENV_PREFIXES, readEnvSecret } from './env.js';
import { DEFAULT_SECRET_FILE_ROOTS, readSecretDirectory } from './file.js';
import { createKubernetesSecretStore } from './kubernetes.js';
import type { KubernetesSecretsApi } from './kubernetes.js';
import { createVaultStore } from './vault.js';
import type { VaultStore, VaultStoreOptions } from './vault.js';
import type {
  SecretBindingPolicy,
  SecretResolver,
  SecretRotation,
  ServiceSecret,
} from './types.js';

export type {
  PendingServiceSecret,
  SecretResolver,
  SecretRotation,
  ServiceSecret,
} from './types.js';
export {
  AWSCURRENT,
  AWSPENDING,
  createAwsSecretsManagerStore,
  mapSecretsManagerError,
  parseSecretValue,
} from './aws-secrets-manager.js';
export type {
  AwsSecretRef,
  AwsSecretsManagerStore,
  AwsSecretsManagerStoreOptions,
} from './aws-secrets-manager.js';
export {
  createInClusterKubernetesSecretsApi,
  createKubernetesSecretStore,
  runningInKubernetes,
} from './kubernetes.js';
export type { KubernetesSecretRef, KubernetesSecretsApi } from './kubernetes.js';
export { DEFAULT_SECRET_FILE_ROOTS, readSecretDirectory } from './file.js';
export type { FileSecretRef, FileSecretStoreOptions } from './file.js';
export { DEFAULT_SECRET_ENV_PREFIXES, readEnvSecret } from './env.js';
export type { EnvSecretRef, EnvSecretStoreOptions } from './env.js';
export {
  DEFAULT_SECRET_BINDING,
  DEFAULT_UNBOUND_SECRET_STORES,
  SECRET_STORES,
  bindingPolicyOf,
  checkSecretBinding,
  describeSecretRef,
  discoveredPairing,
  normalizeHost,
  parseUnboundStores,
  resolveBoundSecret,
} from './binding.js';
export type { SecretBindingPolicy, SecretStore, SecretTarget } from './binding.js';
export { SecretCache } from './cache.js';
export {
  DEFAULT_DISCOVERED_PAIRING_TTL_MS,
  DiscoveredPairings,
  PAIRING_KEY_PREFIX,
} from './discovered.js';
export type { DiscoveredPairing, DiscoveredPairingsOptions, PairingJournal } from './discovered.js';
export { VAULT_AUTH_METHODS, createVaultStore, signedGetCallerIdentity } from './vault.js';
export type { VaultAuthMethod, VaultSecretRef, VaultStore, VaultStoreOptions } from './vault.js';
export { createRdsAuthTokenProvider, getRedshiftClusterCredentials } from './iam-auth.js';
export type { RdsAuthTokenProvider, RedshiftClusterCredentials } from './iam-auth.js';

export interface SecretResolverOptions {
  aws: AwsClientFactory;
  /** Region of `aws-secrets-manager` refs that name none. */
  defaultRegion: string;
  /** How long a resolved value is reused (every store but `env`); `<= 0` disables caching. */
  cacheTtlMs: number;
  /** Environment for the `env` store (and in-cluster detection); default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Clock for the cache; injectable for tests. */
  now?: () => Date;
  /** Kubernetes API; default: in-cluster `CoreV1Api`, created on first use. */
  kubernetes?: KubernetesSecretsApi;
  /** Namespace of `kubernetes` refs that name none; default: the pod's namespace. */
  kubernetesNamespace?: string;
  /**
   * `file` refs must lie under one of these directories (real paths: no `..` or link
   * escape); default `DEFAULT_SECRET_FILE_ROOTS` (`LATCHKEY_SECRET_FILE_ROOTS`).
   */
  fileRoots?: readonly string[];
  /**
   * `env` ref prefixes must start with one of these; default `DEFAULT_SECRET_ENV_PREFIXES`
   * (`LATCHKEY_SECRET_ENV_PREFIXES`).
   */
  envPrefixes?: readonly string[];
  /**
   * Stores whose secrets may be used without a `host` field (the binding policy the SQL
   * drivers apply); default `DEFAULT_UNBOUND_SECRET_STORES` (`LATCHKEY_ALLOW_UNBOUND_SECRETS`).
   */
  allowUnbound?: readonly SecretStore[];
  /** The `vault` store (`LATCHKEY_VAULT_*`); without it a `vault` ref is `E_SECRET`. */
  vault?: VaultStoreOptions | VaultStore;
  /** Tag prefix of binding by tag (`<prefix>-connector-read`, …); default `latchkey`. */
  tagPrefix?: string;
  /**
   * How long a secret ↔ database pairing found by this agent's `aws-discovery` is trusted
   * (`./discovered.ts`); default `DEFAULT_DISCOVERED_PAIRING_TTL_MS` (24 h).
   */
  discoveredPairingTtlMs?: number;
}

export interface LatchkeySecretResolver extends SecretResolver {
  invalidate(ref: SecretRef): void;
  rotation: SecretRotation;
  binding: SecretBindingPolicy;
  /** Drops (and zeroes) every cached value. */
  clear(): void;
}

export function createSecretResolver(opts: SecretResolverOptions): LatchkeySecretResolver {
  const env = opts.env ?? process.env;
  const aws = createAwsSecretsManagerStore({
    aws: opts.aws,
    defaultRegion: opts.defaultRegion,
    cacheTtlMs: opts.cacheTtlMs,
    ...(opts.now ? { now: opts.now } : {}),
  });
  const kubernetes = createKubernetesSecretStore({
    ...(opts.kubernetes ? { api: opts.kubernetes } : {}),
    ...(opts.kubernetesNamespace !== undefined
      ? { defaultNamespace: opts.kubernetesNamespace }
      : {}),
    env,
  });
  const cache = new SecretCache(opts.cacheTtlMs, opts.now);
  let vault: VaultStore | undefined;
  function vaultStore(): VaultStore {
    if (opts.vault === undefined) {
      throw new LatchkeyError(
        'E_SECRET',
        'no Vault is configured for this agent (LATCHKEY_VAULT_ADDR); a vault secret reference cannot be read',
      );
    }
    vault ??= 'resolve' in opts.vault ? opts.vault : createVaultStore(opts.vault);
    return vault;
  }
  const fileOptions = { roots: Object.freeze([...(opts.fileRoots ?? DEFAULT_SECRET_FILE_ROOTS)]) };
  const envOptions = {
    allowedPrefixes: Object.freeze([...(opts.envPrefixes ?? DEFAULT_SECRET_ENV_PREFIXES)]),
  };
  const binding: SecretBindingPolicy = Object.freeze({
    allowUnbound: Object.freeze([...(opts.allowUnbound ?? DEFAULT_UNBOUND_SECRET_STORES)]),
    ...(opts.tagPrefix !== undefined ? { tagPrefix: opts.tagPrefix } : {}),
    discovered: new DiscoveredPairings({
      ...(opts.discoveredPairingTtlMs !== undefined ? { ttlMs: opts.discoveredPairingTtlMs } : {}),
      ...(opts.now ? { now: opts.now } : {}),
    }),
  });

  async function cached(key: string, load: () => Promise<ServiceSecret>): Promise<ServiceSecret> {
    const hit = cache.get(key);
    if (hit) return hit;
    const value = await load();
    cache.set(key, value);
    return value;
  }

  async function resolve(ref: SecretRef, signal?: AbortSignal): Promise<ServiceSecret> {
    throwIfAborted(signal);
    const checked = checkRef(ref);
    switch (checked.store) {
      case 'aws-secrets-manager':
        return aws.resolve(checked, signal);
      case 'kubernetes': {
        const namespace = await kubernetes.namespaceOf(checked);
        return cached(`kubernetes\u0000${namespace}\u0000${checked.name}`, () =>
          kubernetes.resolve(checked, signal),
        );
      }
      case 'file':
        return cached(`file\u0000${checked.path}`, () =>
          readSecretDirectory(checked, fileOptions, signal),
        );
      case 'env':
        return readEnvSecret(checked, env, envOptions);
      case 'vault': {
        const store = vaultStore();
        return cached(vaultKey(checked), () => store.resolve(checked, signal));
      }
    }
  }

  function vaultKey(ref: Extract<SecretRef, { store: 'vault' }>): string {
    return [
      'vault',
      ref.namespace ?? '',
      ref.mount ?? '',
      ref.path,
      String(ref.version ?? ''),
    ].join('\u0000');
  }

  function invalidate(ref: SecretRef): void {
    switch (ref.store) {
      case 'aws-secrets-manager':
        aws.invalidate(ref);
        return;
      case 'kubernetes':
        // The namespace may be the pod's (async to find): drop that name in any namespace.
        cache.deleteWhere(
          (key) => key.startsWith('kubernetes\u0000') && key.endsWith(`\u0000${ref.name}`),
        );
        return;
      case 'file':
        cache.delete(`file\u0000${ref.path}`);
        return;
      case 'env':
        return;
      case 'vault':
        cache.deleteWhere(
          (key) =>
            key.startsWith(`vault\u0000${ref.namespace ?? ''}\u0000`) &&
            key.includes(`\u0000${ref.path}\u0000`),
        );
        return;
    }
  }

  return {
    resolve,
    invalidate,
    rotation: {
      putPendingSecret: (ref, value, signal) => aws.putPendingSecret(checkRef(ref), value, signal),
      getPendingSecret: (ref, signal) => aws.getPendingSecret(checkRef(ref), signal),
      promotePendingSecret: (ref, versionId, signal) =>
        aws.promotePendingSecret(checkRef(ref), versionId, signal),
    },
    binding,
    clear: () => {
      aws.clear();
      cache.clear();
    },
  };
}

function checkRef(ref: SecretRef): SecretRef {
  const parsed = SecretRefSchema.safeParse(ref);
  if (!parsed.success) {
    throw new LatchkeyError(
      'E_SECRET',
      `invalid secret reference: ${parsed.error.issues.map((i) => i.path.join('.') || '(root)').join(', ')}`,
    );
  }
  return parsed.data;
}
