/**
 * Reaching a cluster's Kubernetes API as the connector: the EKS bearer token and the
 * namespace listing of `discover`.
 *
 * The token is what `aws eks get-token` prints: `k8s-aws-v1.` + base64url (no padding) of
 * a presigned STS `GetCallerIdentity` URL whose signature covers the `x-k8s-aws-id: <cluster
 * name>` header, valid 60 seconds. It is signed by the SDK's SigV4 signer
 * (`@smithy/signature-v4`) with the connector's credentials for the cluster's account; EKS
 * sends it to STS and maps the caller to its access entry. It is a credential: never logged
 * or returned.
 *
 * Listing namespaces needs `list namespaces` for the connector on the cluster (an access
 * entry of the connector's role with `AmazonEKSViewPolicy`, or an RBAC binding); without
 * it `discover` warns and reports the namespaces of the integration config.
 */
import { Sha256 } from '@smithy/core/checksum';
import { HttpRequest } from '@smithy/core/protocols';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity } from '@smithy/types';
import { LatchkeyError } from '../../errors.js';

export const TOKEN_PREFIX = 'k8s-aws-v1.';
/** Seconds a presigned token URL is valid (what EKS accepts; the authenticator allows 15 minutes of skew). */
export const TOKEN_EXPIRES_SECONDS = 60;

export function stsHostname(partition: string, region: string): string {
  return `sts.${region}.${partition === 'aws-cn' ? 'amazonaws.com.cn' : 'amazonaws.com'}`;
}

/** The EKS bearer token for `clusterName`, signed with `credentials`. */
export async function eksToken(input: {
  clusterName: string;
  region: string;
  partition: string;
  credentials: AwsCredentialIdentity;
  now?: Date;
}): Promise<string> {
  const hostname = stsHostname(input.partition, input.region);
  const signer = new SignatureV4({
    credentials: input.credentials,
    region: input.region,
    service: 'sts',
    sha256: Sha256,
  });
  const request = new HttpRequest({
    method: 'GET',
    protocol: 'https:',
    hostname,
    path: '/',
    query: { Action: 'GetCallerIdentity', Version: '2011-06-15' },
    headers: { host: hostname, 'x-k8s-aws-id': input.clusterName },
  });
  const signed = await signer.presign(request, {
    expiresIn: TOKEN_EXPIRES_SECONDS,
    ...(input.now ? { signingDate: input.now } : {}),
  });
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(signed.query ?? {})) {
    if (typeof v === 'string') query.append(k, v);
    else if (Array.isArray(v)) for (const x of v) query.append(k, x);
  }
  const url = `https://${hostname}/?${query.toString()}`;
  return `${TOKEN_PREFIX}${Buffer.from(url, 'utf8').toString('base64url')}`;
}

export interface ClusterEndpoint {
  /** `https://…eks.amazonaws.com`, from DescribeCluster. */
  endpoint: string;
  /** Base64 PEM of the cluster CA, from DescribeCluster. */
  caData: string | undefined;
  token: string;
}

/** The one Kubernetes call of the driver; injectable so tests fake the API server. */
export interface NamespaceLister {
  listNamespaces(cluster: ClusterEndpoint, signal: AbortSignal): Promise<string[]>;
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new LatchkeyError('E_CANCELLED', 'aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void =>
      reject(new LatchkeyError('E_CANCELLED', 'aborted while calling the Kubernetes API'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Kubernetes API errors as Latchkey errors (status only: bodies may echo request data). */
export function mapKubernetesError(err: unknown): LatchkeyError {
  if (err instanceof LatchkeyError) return err;
  const rec = typeof err === 'object' && err !== null ? (err as Record<string, unknown>) : {};
  const code = typeof rec.code === 'number' ? rec.code : undefined;
  if (code === 401 || code === 403) {
    return new LatchkeyError(
      'E_PRIVILEGE',
      `the Kubernetes API refused to list namespaces (HTTP ${code}); give the connector's role an access entry allowing it (AmazonEKSViewPolicy)`,
      { cause: err },
    );
  }
  if (code === 429) {
    return new LatchkeyError('E_THROTTLED', 'the Kubernetes API throttled the namespace listing', {
      cause: err,
    });
  }
  return new LatchkeyError(
    'E_CONNECT',
    `the Kubernetes API could not be reached to list namespaces${code !== undefined ? ` (HTTP ${code})` : ''}`,
    { cause: err },
  );
}

/** Upper bound on namespace pages (500 each). */
const MAX_PAGES = 200;

/** The real lister: `@kubernetes/client-node`, loaded on first use. */
export function kubernetesNamespaceLister(): NamespaceLister {
  return {
    async listNamespaces(cluster, signal) {
      const k8s = await import('@kubernetes/client-node');
      const kc = new k8s.KubeConfig();
      kc.loadFromOptions({
        clusters: [
          {
            name: 'eks',
            server: cluster.endpoint,
            skipTLSVerify: false,
            ...(cluster.caData !== undefined ? { caData: cluster.caData } : {}),
          },
        ],
        users: [{ name: 'latchkey', token: cluster.token }],
        contexts: [{ name: 'eks', cluster: 'eks', user: 'latchkey' }],
        currentContext: 'eks',
      });
      const api = kc.makeApiClient(k8s.CoreV1Api);
      const names: string[] = [];
      let token: string | undefined;
      for (let i = 0; i < MAX_PAGES; i++) {
        let page: Awaited<ReturnType<typeof api.listNamespace>>;
        try {
          page = await raceAbort(
            api.listNamespace({ limit: 500, ...(token ? { _continue: token } : {}) }),
            signal,
          );
        } catch (err) {
          throw mapKubernetesError(err);
        }
        for (const ns of page.items) if (ns.metadata?.name) names.push(ns.metadata.name);
        token = page.metadata?._continue;
        if (!token) break;
      }
      return names;
    },
  };
}
