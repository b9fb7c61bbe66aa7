/**
 * Kubernetes secret store: a `Secret` read through the Kubernetes API with the pod's
 * ServiceAccount (in-cluster config). Its `data` fields are base64; the fields used are
 * `username`, `password` and optionally `host`, `port`, `dbname`.
 *
 * The API is reached through `KubernetesSecretsApi`, a one-method slice of `CoreV1Api`,
 * so tests inject a fake and `@kubernetes/client-node` is only loaded when a pod really
 * reads a Kubernetes secret. The agent's ServiceAccount needs `get` on `secrets` (scope it
 * with `resourceNames` in a Role; see deploy/helm).
 */
import { readFile } from 'node:fs/promises';
import { LatchkeyError, isLatchkeyError } from '../errors.js';
import type { SecretRef } from '../protocol/messages.js';
import { abortError, raceAbort, secretStoreError, throwIfAborted } from './errors.js';
import { toServiceSecret } from './fields.js';
import type { ServiceSecret } from './types.js';

export type KubernetesSecretRef = Extract<SecretRef, { store: 'kubernetes' }>;

/** The slice of `CoreV1Api` (client-node v1, object parameters) this store uses. */
export interface KubernetesSecretsApi {
  readNamespacedSecret(param: {
    name: string;
    namespace: string;
  }): Promise<{ data?: Record<string, string> | undefined }>;
}

export const SERVICE_ACCOUNT_NAMESPACE_FILE =
  '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** Whether the process runs in a Kubernetes pod (the variable the kubelet always sets). */
export function runningInKubernetes(env: NodeJS.ProcessEnv = process.env): boolean {
  return (
    typeof env['KUBERNETES_SERVICE_HOST'] === 'string' && env['KUBERNETES_SERVICE_HOST'] !== ''
  );
}

/** The real API with the pod's in-cluster config; the client library is loaded on first use. */
export async function createInClusterKubernetesSecretsApi(): Promise<KubernetesSecretsApi> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromCluster();
  return kc.makeApiClient(k8s.CoreV1Api);
}

export interface KubernetesSecretStoreOptions {
  /** The API; when absent it is created in-cluster on first use (outside a pod: `E_SECRET`). */
  api?: KubernetesSecretsApi;
  /** Namespace for refs that name none; default: the pod's own namespace, else `default`. */
  defaultNamespace?: string;
  env?: NodeJS.ProcessEnv;
}

export interface KubernetesSecretStore {
  resolve(ref: KubernetesSecretRef, signal?: AbortSignal): Promise<ServiceSecret>;
  /** The namespace a ref resolves in (for cache keys). */
  namespaceOf(ref: KubernetesSecretRef): Promise<string>;
}

export function createKubernetesSecretStore(
  opts: KubernetesSecretStoreOptions = {},
): KubernetesSecretStore {
  let api: Promise<KubernetesSecretsApi> | undefined = opts.api
    ? Promise.resolve(opts.api)
    : undefined;
  let podNamespace: Promise<string> | undefined;

  function getApi(): Promise<KubernetesSecretsApi> {
    if (!api) {
      if (!runningInKubernetes(opts.env)) {
        return Promise.reject(
          new LatchkeyError(
            'E_SECRET',
            'the kubernetes secret store needs the agent to run in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set); use the file or env store outside a cluster',
          ),
        );
      }
      api = createInClusterKubernetesSecretsApi().catch((err: unknown) => {
        api = undefined;
        throw secretStoreError(
          'E_SECRET',
          'cannot load the in-cluster Kubernetes configuration',
          err,
        );
      });
    }
    return api;
  }

  async function namespaceOf(ref: KubernetesSecretRef): Promise<string> {
    if (ref.namespace !== undefined) return ref.namespace;
    if (opts.defaultNamespace !== undefined) return opts.defaultNamespace;
    podNamespace ??= readFile(SERVICE_ACCOUNT_NAMESPACE_FILE, 'utf8').then(
      (text) => text.trim() || 'default',
      () => 'default',
    );
    return podNamespace;
  }

  async function resolve(ref: KubernetesSecretRef, signal?: AbortSignal): Promise<ServiceSecret> {
    throwIfAborted(signal);
    const namespace = await namespaceOf(ref);
    const where = `kubernetes secret ${namespace}/${ref.name}`;
    const client = await getApi();
    let secret: { data?: Record<string, string> | undefined };
    try {
      secret = await raceAbort(client.readNamespacedSecret({ name: ref.name, namespace }), signal);
    } catch (err) {
      throw mapKubernetesError(err, where, signal);
    }
    const fields: Record<string, string> = {};
    for (const [key, value] of Object.entries(secret.data ?? {})) {
      fields[key] = decodeBase64Field(value, key, where);
    }
    return toServiceSecret(fields, where);
  }

  return { resolve, namespaceOf };
}

function decodeBase64Field(value: string, key: string, where: string): string {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) {
    throw new LatchkeyError('E_SECRET', `${where}: data field "${key}" is not base64`);
  }
  return Buffer.from(value, 'base64').toString('utf8');
}

function statusOf(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number') return code;
    const status = (err as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number') return status;
  }
  return undefined;
}

export function mapKubernetesError(
  err: unknown,
  where: string,
  signal?: AbortSignal,
): LatchkeyError {
  if (signal?.aborted) return abortError(signal);
  if (isLatchkeyError(err)) return err;
  const status = statusOf(err);
  const details = { where, status };
  switch (status) {
    case 404:
      return secretStoreError('E_SECRET', `${where} not found`, err, details);
    case 401:
    case 403:
      return secretStoreError(
        'E_SECRET',
        `${where} is not readable: the agent's ServiceAccount needs "get" on this secret (HTTP ${status})`,
        err,
        details,
      );
    case 429:
      return secretStoreError('E_THROTTLED', `reading ${where} was throttled`, err, details);
  }
  if (status !== undefined && status < 500) {
    return secretStoreError('E_SECRET', `reading ${where} failed (HTTP ${status})`, err, details);
  }
  return secretStoreError('E_CONNECT', `Kubernetes API unreachable reading ${where}`, err, details);
}
