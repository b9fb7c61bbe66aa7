/**
 * HashiCorp Vault secret store: a KV version 2 secret read over Vault's HTTP API.
 *
 * Glossary
 * - **KV v2 read**: `GET /v1/<mount>/data/<path>[?version=n]`; the fields are the answer's
 *   `data.data` object (`username`, `password`, optionally `host`, `port`, `dbname`).
 * - **auth method**: how the agent gets its Vault token. `token`: given (environment or a
 *   file); `kubernetes`: `POST /v1/auth/<mount>/login {role, jwt}` with the pod's
 *   ServiceAccount token; `aws`: `POST /v1/auth/<mount>/login` with a SigV4-signed
 *   `sts:GetCallerIdentity` request (Vault's IAM auth), using the agent's AWS credentials.
 * - **namespace**: Vault Enterprise namespaces, sent as `X-Vault-Namespace` (the store's
 *   default, or the secret reference's own).
 * - **token lifetime**: a token from a login (or a given one, learnt with
 *   `lookup-self`) is renewed with `renew-self` once two thirds of its lease have passed;
 *   when it cannot be renewed (not renewable, max TTL reached, 403) the store logs in again
 *   (`kubernetes`, `aws`) or fails with `E_SECRET` (`token`). A 403 on a read also triggers
 *   one fresh login and one retry.
 *
 * Errors are `LatchkeyError`s from the closed set: 403/401/404/400 → `E_SECRET` (the reason,
 * the path, never a value or a token), 429 → `E_THROTTLED`, 5xx, sealed or unreachable →
 * `E_CONNECT`, abort → `E_CANCELLED`. Nothing here logs.
 */
import { createHash, createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { z } from 'zod';
import { LatchkeyError, isLatchkeyError } from '../errors.js';
import type { SecretRef } from '../protocol/messages.js';
import { abortError, throwIfAborted } from './errors.js';
import { toServiceSecret } from './fields.js';
import type { ServiceSecret } from './types.js';

export type VaultSecretRef = Extract<SecretRef, { store: 'vault' }>;

export const VAULT_AUTH_METHODS = ['token', 'kubernetes', 'aws'] as const;
export type VaultAuthMethod = (typeof VAULT_AUTH_METHODS)[number];

export const DEFAULT_KUBERNETES_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** AWS credentials for the `aws` auth method (the agent's, from the default provider chain). */
export interface VaultAwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

export interface VaultStoreOptions {
  /** `https://vault.example.com:8200` (http only for a loopback address). */
  address: string;
  /** Default namespace (`X-Vault-Namespace`); a ref's `namespace` replaces it. */
  namespace?: string | undefined;
  /** Mount of the KV v2 engine when a ref names none; default `secret`. */
  kvMount?: string | undefined;
  authMethod: VaultAuthMethod;
  /** `token`: the token itself (from the environment), or … */
  token?: string | undefined;
  /** … a file holding it (re-read at each login, so a rotated file is picked up). */
  tokenFile?: string | undefined;
  /** `kubernetes` / `aws`: the Vault role to log in as. */
  role?: string | undefined;
  /** Mount path of the auth method; default the method's name. */
  authMount?: string | undefined;
  /** `kubernetes`: the ServiceAccount token file. */
  kubernetesTokenFile?: string | undefined;
  /** `aws`: value of `X-Vault-AWS-IAM-Server-ID` when the Vault role requires one. */
  awsServerId?: string | undefined;
  /** `aws`: region of the STS endpoint signed for; default the global endpoint (us-east-1). */
  awsStsRegion?: string | undefined;
  /** `aws`: the credentials to sign with. */
  awsCredentials?: () => Promise<VaultAwsCredentials>;
  /** Extra CA certificates (PEM) for https. */
  ca?: string | undefined;
  /** Per-request timeout; default 10 s. */
  timeoutMs?: number;
  now?: () => Date;
}

export interface VaultStore {
  resolve(ref: VaultSecretRef, signal?: AbortSignal): Promise<ServiceSecret>;
  /** Drops the token (next read logs in again). */
  reset(): void;
}

interface HttpAnswer {
  status: number;
  body: unknown;
}

const AuthAnswerSchema = z.object({
  auth: z.object({
    client_token: z.string().min(1),
    lease_duration: z.number().int().nonnegative(),
    renewable: z.boolean(),
  }),
});
const LookupAnswerSchema = z.object({
  data: z.object({ ttl: z.number().int().nonnegative(), renewable: z.boolean().optional() }),
});
const KvAnswerSchema = z.object({
  data: z.object({
    data: z.record(z.string(), z.unknown()).nullable(),
    metadata: z
      .object({ deletion_time: z.string().optional(), destroyed: z.boolean().optional() })
      .loose()
      .optional(),
  }),
});

interface TokenState {
  token: string;
  /** Null: never expires (ttl 0). */
  expiresAt: Date | null;
  renewAfter: Date | null;
  renewable: boolean;
}

const SEGMENT = /^[A-Za-z0-9_.-]+$/;

function checkPath(path: string, what: string): string {
  const parts = path.split('/').filter((p) => p !== '');
  if (parts.length === 0 || parts.some((p) => p === '.' || p === '..' || !SEGMENT.test(p))) {
    throw new LatchkeyError(
      'E_SECRET',
      `vault ${what} must be segments of letters, digits, _ . - separated by /`,
    );
  }
  return parts.join('/');
}

export function createVaultStore(opts: VaultStoreOptions): VaultStore {
  const base = new URL(opts.address);
  if (base.protocol !== 'https:' && base.protocol !== 'http:') {
    throw new LatchkeyError('E_INVALID', 'vault address must be an http(s) URL');
  }
  const now = opts.now ?? (() => new Date());
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const authMount = checkPath(opts.authMount ?? opts.authMethod, 'auth mount');
  let state: TokenState | null = null;
  let pending: Promise<TokenState> | null = null;

  function send(
    method: 'GET' | 'POST',
    path: string,
    o: { token?: string; namespace?: string | undefined; body?: unknown; signal?: AbortSignal },
  ): Promise<HttpAnswer> {
    const url = new URL(`/v1/${path}`, base);
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (o.token !== undefined) headers['x-vault-token'] = o.token;
    if (o.namespace !== undefined && o.namespace !== '') headers['x-vault-namespace'] = o.namespace;
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const where = `vault ${method} /v1/${path.split('?')[0] ?? ''}`;
    return new Promise<HttpAnswer>((resolve, reject) => {
      if (o.signal?.aborted) {
        reject(abortError(o.signal));
        return;
      }
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
        url,
        {
          method,
          headers,
          timeout: timeoutMs,
          ...(opts.ca !== undefined && url.protocol === 'https:' ? { ca: opts.ca } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > 1024 * 1024) {
              req.destroy(new LatchkeyError('E_SECRET', `${where}: answer larger than 1 MiB`));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown = null;
            if (text !== '') {
              try {
                body = JSON.parse(text);
              } catch {
                body = null; // a parse error would quote the text: never attach it
              }
            }
            resolve({ status: res.statusCode ?? 0, body });
          });
          res.on('error', (err) => reject(transportError(err, where)));
        },
      );
      const onAbort = () => req.destroy(abortError(o.signal as AbortSignal));
      o.signal?.addEventListener('abort', onAbort, { once: true });
      req.on('close', () => o.signal?.removeEventListener('abort', onAbort));
      req.on('timeout', () =>
        req.destroy(new LatchkeyError('E_CONNECT', `${where}: no answer within ${timeoutMs} ms`)),
      );
      req.on('error', (err) => reject(transportError(err, where)));
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  function transportError(err: unknown, where: string): LatchkeyError {
    if (isLatchkeyError(err)) return err;
    return new LatchkeyError('E_CONNECT', `${where}: Vault unreachable`, { cause: err });
  }

  function failure(a: HttpAnswer, where: string): LatchkeyError {
    const details = { status: a.status };
    switch (a.status) {
      case 400:
        return new LatchkeyError('E_SECRET', `${where}: refused by Vault (HTTP 400)`, { details });
      case 401:
      case 403:
        return new LatchkeyError(
          'E_SECRET',
          `${where}: permission denied (HTTP ${a.status}): the agent's Vault token is invalid, expired, or its policy does not allow this path`,
          { details },
        );
      case 404:
        return new LatchkeyError('E_SECRET', `${where}: not found`, { details });
      case 429:
        return new LatchkeyError('E_THROTTLED', `${where}: rate limited by Vault`, { details });
      case 503:
        return new LatchkeyError(
          'E_CONNECT',
          `${where}: Vault is sealed or in standby (HTTP 503)`,
          {
            details,
          },
        );
    }
    return new LatchkeyError(
      a.status >= 500 ? 'E_CONNECT' : 'E_SECRET',
      `${where}: HTTP ${a.status}`,
      { details },
    );
  }

  function fromLease(token: string, leaseSeconds: number, renewable: boolean): TokenState {
    if (leaseSeconds === 0) return { token, expiresAt: null, renewAfter: null, renewable };
    const t = now().getTime();
    return {
      token,
      expiresAt: new Date(t + leaseSeconds * 1000),
      renewAfter: new Date(t + (leaseSeconds * 1000 * 2) / 3),
      renewable,
    };
  }

  async function login(signal?: AbortSignal): Promise<TokenState> {
    const ns = opts.namespace;
    if (opts.authMethod === 'token') {
      const token = opts.token ?? (await readToken(opts.tokenFile, 'vault token file'));
      const where = 'vault token lookup-self';
      const a = await send('GET', 'auth/token/lookup-self', {
        token,
        namespace: ns,
        ...sig(signal),
      });
      if (a.status !== 200) throw failure(a, where);
      const parsed = LookupAnswerSchema.safeParse(a.body);
      if (!parsed.success) throw new LatchkeyError('E_SECRET', `${where}: unexpected answer`);
      return fromLease(token, parsed.data.data.ttl, parsed.data.data.renewable ?? false);
    }
    if (opts.role === undefined || opts.role === '') {
      throw new LatchkeyError('E_SECRET', `vault ${opts.authMethod} auth needs a role`);
    }
    let body: Record<string, unknown>;
    if (opts.authMethod === 'kubernetes') {
      const jwt = await readToken(
        opts.kubernetesTokenFile ?? DEFAULT_KUBERNETES_TOKEN_FILE,
        'Kubernetes ServiceAccount token file',
      );
      body = { role: opts.role, jwt };
    } else {
      if (!opts.awsCredentials) {
        throw new LatchkeyError('E_SECRET', 'vault aws auth: no AWS credentials available');
      }
      const creds = await opts.awsCredentials();
      body = { role: opts.role, ...signedGetCallerIdentity(creds, opts, now()) };
    }
    const where = `vault ${opts.authMethod} login (auth/${authMount})`;
    const a = await send('POST', `auth/${authMount}/login`, {
      namespace: ns,
      body,
      ...sig(signal),
    });
    if (a.status !== 200) throw failure(a, where);
    const parsed = AuthAnswerSchema.safeParse(a.body);
    if (!parsed.success) throw new LatchkeyError('E_SECRET', `${where}: answer carries no token`);
    const auth = parsed.data.auth;
    return fromLease(auth.client_token, auth.lease_duration, auth.renewable);
  }

  async function renew(s: TokenState, signal?: AbortSignal): Promise<TokenState | null> {
    if (!s.renewable) return null;
    const a = await send('POST', 'auth/token/renew-self', {
      token: s.token,
      namespace: opts.namespace,
      body: {},
      ...sig(signal),
    });
    if (a.status !== 200) return null;
    const parsed = AuthAnswerSchema.safeParse(a.body);
    if (!parsed.success) return null;
    // Renewal cannot go past the token's max TTL: a shorter lease than asked is expected.
    return fromLease(
      parsed.data.auth.client_token,
      parsed.data.auth.lease_duration,
      parsed.data.auth.renewable,
    );
  }

  /** A usable token: the current one, renewed when due, else a fresh login. */
  async function token(signal?: AbortSignal, fresh = false): Promise<TokenState> {
    const t = now();
    if (!fresh && state !== null) {
      if (state.renewAfter === null || t < state.renewAfter) return state;
    }
    pending ??= (async () => {
      try {
        let next: TokenState | null = null;
        if (!fresh && state !== null && state.expiresAt !== null && t < state.expiresAt) {
          next = await renew(state, signal).catch(() => null);
        }
        if (next === null) {
          if (opts.authMethod === 'token' && state !== null && !fresh) {
            // A given token cannot be replaced by us: go on with it until it expires.
            if (state.expiresAt === null || t < state.expiresAt) return state;
            throw new LatchkeyError(
              'E_SECRET',
              'the Vault token has expired and cannot be renewed; give the agent a new one',
            );
          }
          next = await login(signal);
        }
        state = next;
        return next;
      } finally {
        pending = null;
      }
    })();
    return pending;
  }

  async function resolve(ref: VaultSecretRef, signal?: AbortSignal): Promise<ServiceSecret> {
    throwIfAborted(signal);
    const mount = checkPath(ref.mount ?? opts.kvMount ?? 'secret', 'mount');
    const path = checkPath(ref.path, 'path');
    const namespace = ref.namespace ?? opts.namespace;
    const query = ref.version !== undefined ? `?version=${ref.version}` : '';
    const where = `vault secret ${namespace ? `${namespace}:` : ''}${mount}/${path}`;
    const read = async (t: TokenState) =>
      send('GET', `${mount}/data/${path}${query}`, { token: t.token, namespace, ...sig(signal) });
    let a = await read(await token(signal));
    if ((a.status === 403 || a.status === 401) && opts.authMethod !== 'token') {
      // The token may have been revoked or expired early: one fresh login, one retry.
      a = await read(await token(signal, true));
    }
    if (a.status !== 200) throw failure(a, where);
    const parsed = KvAnswerSchema.safeParse(a.body);
    if (!parsed.success) {
      throw new LatchkeyError(
        'E_SECRET',
        `${where}: not a KV version 2 answer (data.data); is ${mount} a KV v2 mount?`,
      );
    }
    const fields = parsed.data.data.data;
    if (fields === null) {
      throw new LatchkeyError('E_SECRET', `${where}: this version is deleted or destroyed`);
    }
    return toServiceSecret(fields, where);
  }

  return {
    resolve,
    reset: () => {
      state = null;
    },
  };
}

function sig(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {};
}

async function readToken(file: string | undefined, what: string): Promise<string> {
  if (file === undefined) throw new LatchkeyError('E_SECRET', `vault: no token and no ${what}`);
  try {
    const text = (await readFile(file, 'utf8')).trim();
    if (text === '') throw new LatchkeyError('E_SECRET', `${what} ${file} is empty`);
    return text;
  } catch (err) {
    if (isLatchkeyError(err)) throw err;
    throw new LatchkeyError('E_SECRET', `${what} ${file} is not readable`);
  }
}

// ---------------------------------------------------------------------------------------
// Vault's AWS IAM auth: a SigV4-signed sts:GetCallerIdentity request, handed to Vault,
// which sends it to STS and learns who we are.

const STS_BODY = 'Action=GetCallerIdentity&Version=2011-06-15';

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}
function sha256hex(data: string): string {
  return createHash('sha256').update(data, 'utf8').digest('hex');
}

/** The `iam_*` login fields of Vault's aws auth method (`iam` type). */
export function signedGetCallerIdentity(
  creds: VaultAwsCredentials,
  opts: Pick<VaultStoreOptions, 'awsServerId' | 'awsStsRegion'>,
  at: Date,
): Record<string, string> {
  const region = opts.awsStsRegion ?? 'us-east-1';
  const host = opts.awsStsRegion ? `sts.${region}.amazonaws.com` : 'sts.amazonaws.com';
  const amzDate = at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
    host,
    'x-amz-date': amzDate,
  };
  if (creds.sessionToken !== undefined) headers['x-amz-security-token'] = creds.sessionToken;
  if (opts.awsServerId !== undefined) headers['x-vault-aws-iam-server-id'] = opts.awsServerId;
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${headers[n]?.trim() ?? ''}\n`).join('');
  const signedHeaders = names.join(';');
  const canonicalRequest = [
    'POST',
    '/',
    '',
    canonicalHeaders,
    signedHeaders,
    sha256hex(STS_BODY),
  ].join('\n');
  const scope = `${day}/${region}/sts/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256hex(canonicalRequest)].join('\n');
  const kDate = hmac(`AWS4${creds.secretAccessKey}`, day);
  const kSigning = hmac(hmac(hmac(kDate, region), 'sts'), 'aws4_request');
  const signature = createHmac('sha256', kSigning).update(toSign, 'utf8').digest('hex');
  const outHeaders: Record<string, string[]> = {};
  for (const n of names) outHeaders[n] = [headers[n] ?? ''];
  outHeaders.authorization = [
    `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  ];
  return {
    iam_http_request_method: 'POST',
    iam_request_url: Buffer.from(`https://${host}/`).toString('base64'),
    iam_request_body: Buffer.from(STS_BODY).toString('base64'),
    iam_request_headers: Buffer.from(JSON.stringify(outHeaders)).toString('base64'),
  };
}

/** The agent's Vault settings (`LATCHKEY_VAULT_*`, see `AgentConfig.vault`). */
export interface VaultSettings {
  address: string | undefined;
  namespace: string | undefined;
  authMethod: VaultAuthMethod;
  token: string | undefined;
  tokenFile: string | undefined;
  role: string | undefined;
  authMount: string | undefined;
  kvMount: string;
  awsServerId: string | undefined;
}

/** Store options from the agent's settings; undefined when no Vault is configured. */
export function vaultOptionsFromSettings(
  s: VaultSettings,
  ca: string | undefined,
): VaultStoreOptions | undefined {
  if (s.address === undefined) return undefined;
  return {
    address: s.address,
    namespace: s.namespace,
    kvMount: s.kvMount,
    authMethod: s.authMethod,
    token: s.token,
    tokenFile: s.tokenFile,
    role: s.role,
    authMount: s.authMount,
    awsServerId: s.awsServerId,
    ca,
    awsCredentials: async () => {
      const { fromNodeProviderChain } = await import('@aws-sdk/credential-providers');
      return fromNodeProviderChain()();
    },
  };
}
