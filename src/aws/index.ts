/**
 * The one AWS client factory of the agent.
 *
 * - Region per integration (`target.region`), falling back to `defaultRegion`.
 * - Base identity: the default Node credential chain (`fromNodeProviderChain`): ECS task
 *   role, EKS IRSA (web identity) and EKS Pod Identity (container credentials), env, profile.
 * - Other accounts: STS `AssumeRole` from the base identity, only for roles whose NAME
 *   matches `allowedRolePattern` (glob, default `latchkey-*`); anything else is refused
 *   with `E_GUARDRAIL` before any call. Session name, session tags and external id are
 *   sent; credentials are cached per role (so per member account) until five minutes before
 *   they expire, shared by every client and region of that role. A call refused with
 *   `ExpiredToken` (credentials revoked or expired early) drops the cached credentials and is
 *   sent once more with fresh ones.
 * - Every client: `retryMode: 'adaptive'`, `maxAttempts` (default 3), and a middleware
 *   that emits `aws:call` for every attempt (service, operation, ok | throttled | error),
 *   so metrics count calls and throttles without drivers doing anything.
 * - Clients are cached per (class, region, role, external id): drivers ask for a client on
 *   every call and get the same instance. At most `maxClients` are kept (least recently used
 *   evicted, destroyed after a grace period), so walking a large organization's accounts ×
 *   regions keeps memory bounded; assumed-role credentials are cached per role regardless.
 */
import type * as StsSdk from '@aws-sdk/client-sts';
import type { STSClient, STSClientConfig } from '@aws-sdk/client-sts';
import type {
  AbsoluteLocation,
  AwsCredentialIdentity,
  AwsCredentialIdentityProvider,
  FinalizeRequestHandlerOptions,
  FinalizeRequestMiddleware,
  HandlerExecutionContext,
} from '@smithy/types';
import type { Logger } from 'pino';
import { LatchkeyError } from '../errors.js';
import type { AgentEvents } from '../events.js';
import { isAwsThrottle, mapAwsError } from './errors.js';
import type { AwsClientClass, AwsClientFactory, AwsTarget } from './types.js';

export type { AwsClientClass, AwsClientFactory, AwsTarget } from './types.js';

/**
 * The STS client and the credential chain are loaded on first use, not with the agent:
 * together with the AWS SDK core they cost about 20 MiB of resident memory, which an
 * agent that serves no AWS integration (or has not used one yet) does not carry.
 */
let stsModule: Promise<typeof StsSdk> | undefined;
const loadSts = (): Promise<typeof StsSdk> => (stsModule ??= import('@aws-sdk/client-sts'));
export { mapAwsError, isAwsThrottle, type AwsErrorContext } from './errors.js';
export { awsSend } from './call.js';

/** Builds the STS client used to assume roles (injectable for tests). */
export type StsClientFactory = (
  region: string,
  credentials: AwsCredentialIdentityProvider,
) => STSClient;

export interface AwsClientFactoryOptions {
  /** Region used when a target names none (and for STS when assuming roles). */
  defaultRegion: string;
  /** Glob on the role NAME (`*`, `?`); roles outside it are never assumed. Default `latchkey-*`. */
  allowedRolePattern?: string;
  /** `RoleSessionName` of assumed-role sessions. Default `latchkey-connector`. */
  sessionName?: string;
  /** Session tags sent with AssumeRole (the role's trust policy must allow `sts:TagSession`). */
  sessionTags?: Record<string, string>;
  /** `DurationSeconds` of assumed-role sessions. Default 3600. */
  sessionDurationSeconds?: number;
  events: AgentEvents;
  logger: Logger;
  /** Base identity. Default: the Node default credential chain. */
  baseCredentials?: AwsCredentialIdentityProvider;
  stsClientFactory?: StsClientFactory;
  /** SDK `maxAttempts` (first try included). Default 3. Tests set it small. */
  maxAttempts?: number;
  /** SDK request handler (proxy agents; tests inject a fake transport). */
  requestHandler?: unknown;
  /** Clock, for the credential cache. */
  now?: () => Date;
  /**
   * Clients kept (least recently used go first): an organization of many accounts and
   * regions does not grow the cache without bound. Default 512.
   */
  maxClients?: number;
  /** An evicted client is destroyed this long after eviction (calls in flight finish). Default 60 000. */
  evictedClientGraceMs?: number;
}

/** The factory plus housekeeping for shutdown. */
export interface LatchkeyAwsClientFactory extends AwsClientFactory {
  /** Throws E_GUARDRAIL when the role may not be assumed (same check `client` does). */
  assertRoleAllowed(roleArn: string): void;
  /** The (cached, refreshed) credentials of a target, e.g. for the RDS auth-token signer. */
  credentials(target: AwsTarget): AwsCredentialIdentityProvider;
  /** Destroy every cached client (shutdown). */
  destroy(): void;
}

/** Refresh assumed-role credentials this long before they expire. */
export const CREDENTIAL_REFRESH_MARGIN_MS = 5 * 60_000;

const ROLE_ARN = /^arn:aws[a-z-]*:iam::(\d{12}):role\/(?:[\w+=,.@/-]*\/)?([\w+=,.@-]{1,64})$/;

/** Role name (last path segment) of a role ARN, or null when it is not a role ARN. */
export function roleNameOf(roleArn: string): string | null {
  const m = ROLE_ARN.exec(roleArn);
  return m?.[2] ?? null;
}

/** Glob (`*` any run of characters, `?` one character) to an anchored RegExp. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** `IAMClient` → `iam`, `SecretsManagerClient` → `secretsmanager`. */
export function serviceOfClientName(clientName: string | undefined): string {
  if (!clientName) return 'unknown';
  return clientName.replace(/Client$/, '').toLowerCase();
}

interface MiddlewareCapable {
  middlewareStack: {
    add(
      middleware: FinalizeRequestMiddleware<object, object>,
      options: FinalizeRequestHandlerOptions & AbsoluteLocation & { name: string },
    ): void;
  };
}

function hasMiddlewareStack(client: unknown): client is MiddlewareCapable {
  if (typeof client !== 'object' || client === null) return false;
  const stack = (client as { middlewareStack?: unknown }).middlewareStack;
  return (
    typeof stack === 'object' &&
    stack !== null &&
    typeof (stack as { add?: unknown }).add === 'function'
  );
}

const METRIC_MIDDLEWARE = 'latchkeyAwsCallMetric';
const EXPIRED_TOKEN_MIDDLEWARE = 'latchkeyExpiredTokenRefresh';

/** Error names AWS answers when the session token has expired. */
const EXPIRED_TOKEN_NAMES: ReadonlySet<string> = new Set(['ExpiredToken', 'ExpiredTokenException']);

function isExpiredToken(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { name?: unknown; Code?: unknown; code?: unknown };
  return [e.name, e.Code, e.code].some((n) => typeof n === 'string' && EXPIRED_TOKEN_NAMES.has(n));
}

/** An assumed-role provider that can drop what it cached. */
interface RefreshableProvider extends AwsCredentialIdentityProvider {
  /** Increases with every credentials fetch. */
  generation(): number;
  /** Drop the cached credentials if they are still those of `generation`. */
  invalidate(generation: number): void;
}

/**
 * On `ExpiredToken`, drop the role's cached credentials and send the request once more. It
 * sits in the initialize step, above retries and signing, so the retry is signed anew.
 */
function addExpiredTokenMiddleware(client: unknown, provider: RefreshableProvider): void {
  if (!hasMiddlewareStack(client)) return;
  const stack = client.middlewareStack as unknown as {
    add(
      middleware: (next: (args: object) => Promise<object>) => (args: object) => Promise<object>,
      options: { step: 'initialize'; priority: 'high'; name: string },
    ): void;
  };
  stack.add(
    (next) => async (args) => {
      const generation = provider.generation();
      try {
        return await next(args);
      } catch (err) {
        if (!isExpiredToken(err)) throw err;
        provider.invalidate(generation);
        return next(args);
      }
    },
    { step: 'initialize', priority: 'high', name: EXPIRED_TOKEN_MIDDLEWARE },
  );
}

/**
 * Add the `aws:call` middleware. It sits in the finalizeRequest step below the retry
 * middleware, so every attempt is counted, retried throttles included.
 */
export function addCallMetricMiddleware(client: unknown, events: AgentEvents): void {
  if (!hasMiddlewareStack(client)) return;
  const middleware: FinalizeRequestMiddleware<object, object> =
    (next, context: HandlerExecutionContext) => async (args) => {
      const service = serviceOfClientName(context.clientName);
      const operation = (context.commandName ?? 'unknown').replace(/Command$/, '');
      try {
        const out = await next(args);
        events.emit('aws:call', { service, operation, outcome: 'ok' });
        return out;
      } catch (err) {
        events.emit('aws:call', {
          service,
          operation,
          outcome: isAwsThrottle(err) ? 'throttled' : 'error',
        });
        throw err;
      }
    };
  client.middlewareStack.add(middleware, {
    step: 'finalizeRequest',
    priority: 'low',
    name: METRIC_MIDDLEWARE,
  });
}

export function createAwsClientFactory(opts: AwsClientFactoryOptions): LatchkeyAwsClientFactory {
  const pattern = opts.allowedRolePattern ?? 'latchkey-*';
  const roleRe = globToRegExp(pattern);
  const sessionName = opts.sessionName ?? 'latchkey-connector';
  const duration = opts.sessionDurationSeconds ?? 3600;
  const maxAttempts = opts.maxAttempts ?? 3;
  const now = opts.now ?? (() => new Date());
  let base: AwsCredentialIdentityProvider | undefined = opts.baseCredentials;
  const baseProvider = (): AwsCredentialIdentityProvider => {
    // The chain's own STS calls (web identity / IRSA, SSO) use the same transport.
    if (base === undefined) {
      let chain: Promise<AwsCredentialIdentityProvider> | undefined;
      const load = (): Promise<AwsCredentialIdentityProvider> =>
        (chain ??= import('@aws-sdk/credential-providers').then(({ fromNodeProviderChain }) =>
          fromNodeProviderChain(
            opts.requestHandler !== undefined
              ? {
                  clientConfig: {
                    requestHandler: opts.requestHandler as STSClientConfig['requestHandler'],
                  },
                }
              : {},
          ),
        ));
      // The chain (memoized by the SDK) is built on the first credentials asked for.
      base = async (props) => (await load())(props);
    }
    return base;
  };

  /** Insertion order = recency: a hit moves its entry to the end. */
  const clients = new Map<string, unknown>();
  const classIds = new WeakMap<object, number>();
  let nextClassId = 0;
  const maxClients = opts.maxClients ?? 512;
  const graceMs = opts.evictedClientGraceMs ?? 60_000;
  const destroyClient = (c: unknown): void => {
    const d = (c as { destroy?: unknown }).destroy;
    if (typeof d === 'function') (d as () => void).call(c);
  };
  const providers = new Map<string, RefreshableProvider>();
  const stsClients = new Map<string, STSClient>();

  const clientConfig = (region: string, credentials: AwsCredentialIdentityProvider) => {
    const cfg: {
      region: string;
      credentials: AwsCredentialIdentityProvider;
      retryMode: string;
      maxAttempts: number;
      requestHandler?: unknown;
    } = { region, credentials, retryMode: 'adaptive', maxAttempts };
    if (opts.requestHandler !== undefined) cfg.requestHandler = opts.requestHandler;
    return cfg;
  };

  const stsFor = async (region: string): Promise<STSClient> => {
    let sts = stsClients.get(region);
    if (!sts) {
      if (opts.stsClientFactory) {
        sts = opts.stsClientFactory(region, baseProvider());
      } else {
        const { STSClient } = await loadSts();
        // Another call may have built it while the module loaded.
        const built = stsClients.get(region);
        if (built !== undefined) return built;
        const { requestHandler: _ignored, ...cfg } = clientConfig(region, baseProvider());
        sts = new STSClient(
          opts.requestHandler !== undefined
            ? { ...cfg, requestHandler: opts.requestHandler as STSClientConfig['requestHandler'] }
            : cfg,
        );
      }
      addCallMetricMiddleware(sts, opts.events);
      stsClients.set(region, sts);
    }
    return sts;
  };

  const assertRoleAllowed = (roleArn: string): void => {
    const name = roleNameOf(roleArn);
    if (name === null) {
      throw new LatchkeyError('E_GUARDRAIL', `assumeRoleArn is not an IAM role ARN: ${roleArn}`);
    }
    if (!roleRe.test(name)) {
      throw new LatchkeyError(
        'E_GUARDRAIL',
        `role ${name} does not match the allowed role pattern '${pattern}'; the connector assumes no other role`,
        { details: { roleArn } },
      );
    }
  };

  const assumedProvider = (
    target: AwsTarget & { assumeRoleArn: string },
    region: string,
  ): RefreshableProvider => {
    const key = `${target.assumeRoleArn}|${target.externalId ?? ''}`;
    const existing = providers.get(key);
    if (existing) return existing;
    let cached: AwsCredentialIdentity | undefined;
    let inflight: Promise<AwsCredentialIdentity> | undefined;
    let generation = 0;
    const fetch = async (): Promise<AwsCredentialIdentity> => {
      const tags = Object.entries(opts.sessionTags ?? {}).map(([Key, Value]) => ({ Key, Value }));
      try {
        const sts = await stsFor(region);
        const { AssumeRoleCommand } = await loadSts();
        const out = await sts.send(
          new AssumeRoleCommand({
            RoleArn: target.assumeRoleArn,
            RoleSessionName: sessionName,
            DurationSeconds: duration,
            ...(target.externalId !== undefined ? { ExternalId: target.externalId } : {}),
            ...(tags.length > 0 ? { Tags: tags } : {}),
          }),
        );
        const c = out.Credentials;
        if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken) {
          throw new LatchkeyError(
            'E_INTERNAL',
            `STS AssumeRole of ${target.assumeRoleArn} returned no credentials`,
          );
        }
        opts.logger.debug({ roleArn: target.assumeRoleArn }, 'assumed role');
        return {
          accessKeyId: c.AccessKeyId,
          secretAccessKey: c.SecretAccessKey,
          sessionToken: c.SessionToken,
          ...(c.Expiration ? { expiration: c.Expiration } : {}),
        };
      } catch (err) {
        throw mapAwsError(err, {
          service: 'sts',
          operation: 'AssumeRole',
          resource: target.assumeRoleArn,
        });
      }
    };
    const get = async (): Promise<AwsCredentialIdentity> => {
      const fresh =
        cached !== undefined &&
        (cached.expiration === undefined ||
          cached.expiration.getTime() - CREDENTIAL_REFRESH_MARGIN_MS > now().getTime());
      if (fresh && cached) return cached;
      inflight ??= fetch()
        .then((c) => {
          generation++;
          return c;
        })
        .finally(() => {
          inflight = undefined;
        });
      cached = await inflight;
      return cached;
    };
    const provider = Object.assign(get, {
      generation: () => generation,
      invalidate: (g: number) => {
        if (g === generation) cached = undefined;
      },
      // The SDK must ask us for every request (we cache): otherwise its own memo keeps
      // credentials we dropped after ExpiredToken until they expire.
      memoized: true,
    });
    providers.set(key, provider);
    return provider;
  };

  const credentialsOf = (target: AwsTarget, region: string) =>
    target.assumeRoleArn !== undefined
      ? assumedProvider({ ...target, assumeRoleArn: target.assumeRoleArn }, region)
      : undefined;

  return {
    assertRoleAllowed,
    credentials(target: AwsTarget): AwsCredentialIdentityProvider {
      const region = target.region || opts.defaultRegion;
      if (target.assumeRoleArn !== undefined) assertRoleAllowed(target.assumeRoleArn);
      return credentialsOf(target, region) ?? baseProvider();
    },
    client<C>(cls: AwsClientClass<C>, target: AwsTarget): C {
      const region = target.region || opts.defaultRegion;
      if (target.assumeRoleArn !== undefined) assertRoleAllowed(target.assumeRoleArn);
      let classId = classIds.get(cls);
      if (classId === undefined) {
        classId = nextClassId++;
        classIds.set(cls, classId);
      }
      const key = `${classId}|${region}|${target.assumeRoleArn ?? ''}|${target.externalId ?? ''}`;
      const hit = clients.get(key);
      if (hit !== undefined) {
        clients.delete(key);
        clients.set(key, hit);
        return hit as C;
      }
      const assumed = credentialsOf(target, region);
      const client = new cls(clientConfig(region, assumed ?? baseProvider()));
      addCallMetricMiddleware(client, opts.events);
      if (assumed) addExpiredTokenMiddleware(client, assumed);
      clients.set(key, client);
      while (clients.size > maxClients) {
        const [oldestKey, oldest] = clients.entries().next().value as [string, unknown];
        clients.delete(oldestKey);
        // A weak reference: an evicted client nothing uses any more is collected at once;
        // one still in use (a long listing) is destroyed after the grace period.
        const ref = new WeakRef(oldest as object);
        setTimeout(() => {
          const c = ref.deref();
          if (c !== undefined) destroyClient(c);
        }, graceMs).unref();
      }
      return client;
    },
    destroy(): void {
      for (const c of clients.values()) destroyClient(c);
      for (const s of stsClients.values()) s.destroy();
      clients.clear();
      stsClients.clear();
      providers.clear();
    },
  };
}
