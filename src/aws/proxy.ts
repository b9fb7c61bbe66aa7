/**
 * The AWS SDK's HTTP transport through the configured proxy (issue 15): the SDK ignores
 * `HTTPS_PROXY`, so in a proxy-only VPC every AWS call failed while the agent reported
 * ready. Every AWS client of the factory, STS for assumed roles and the credential
 * chain's own STS calls (web identity / IRSA) use this handler.
 *
 * - `LATCHKEY_HTTPS_PROXY` (or `HTTPS_PROXY`/`https_proxy`, through the config) names the
 *   proxy; requests are tunnelled with `CONNECT host:443`.
 * - Hosts matching `NO_PROXY`/`no_proxy` (same rules as the control-plane link:
 *   `bypassesProxy`) are reached directly: VPC endpoints, for instance.
 * - The instance metadata and ECS credential endpoints are not called through this
 *   handler (the SDK's providers use their own requests), so they never hit the proxy.
 * - `LATCHKEY_CA_BUNDLE_FILE` is trusted in addition to Node's roots (a TLS-inspecting
 *   proxy re-signs AWS's certificates).
 */
import type { ClientRequest } from 'node:http';
import { Agent as HttpsAgent, type AgentOptions } from 'node:https';
import { rootCertificates } from 'node:tls';
import { createRequire } from 'node:module';
import type * as NodeHttpHandlerModule from '@smithy/node-http-handler';
import type { NodeHttpHandler } from '@smithy/node-http-handler';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { bypassesProxy } from '../controlplane/client.js';

/** The connect options agent-base hands to `connect()` (its own type, as https-proxy-agent uses it). */
type AgentConnectOpts = Parameters<HttpsProxyAgent<string>['connect']>[1];

export interface AwsTransportOptions {
  /** Proxy URL (may carry credentials; never logged). */
  proxyUrl?: string | undefined;
  /** NO_PROXY-style list; default `NO_PROXY`/`no_proxy` from the environment. */
  noProxy?: string | undefined;
  /** Extra PEM CA certificates, trusted besides Node's roots. */
  caBundle?: string | undefined;
}

/** An HTTPS agent that tunnels through the proxy, except to hosts in NO_PROXY. */
export class AwsProxyAgent extends HttpsProxyAgent<string> {
  constructor(
    proxyUrl: string,
    private readonly noProxy: string | undefined,
    private readonly direct: HttpsAgent,
    options: AgentOptions,
  ) {
    super(proxyUrl, options);
    this.targetTls = {
      rejectUnauthorized: true,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
    };
  }

  /** TLS options of the session to AWS inside the tunnel. */
  private readonly targetTls: Pick<AgentOptions, 'ca' | 'rejectUnauthorized'>;

  /** Whether a request to `host:port` goes through the proxy. */
  usesProxy(host: string, port: number | string): boolean {
    return !bypassesProxy(host, String(port), this.noProxy);
  }

  override async connect(
    req: ClientRequest,
    opts: AgentConnectOpts,
  ): ReturnType<HttpsProxyAgent<string>['connect']> {
    const host = opts.host ?? '';
    const port = opts.port ?? (opts.secureEndpoint ? 443 : 80);
    // agent-base hands the request to another agent when connect() returns one.
    if (!this.usesProxy(host, port))
      return this.direct as unknown as Awaited<ReturnType<HttpsProxyAgent<string>['connect']>>;
    // HttpsProxyAgent keeps its constructor options for the proxy connection only; the
    // TLS session to AWS inside the tunnel gets the request's options, so the CA bundle
    // (a TLS-inspecting proxy's) is added to those here.
    return super.connect(req, { ...opts, ...this.targetTls });
  }
}

/**
 * The SDK request handler for every AWS client, or `undefined` when neither a proxy nor
 * a CA bundle is configured (the SDK's default handler then).
 */
export function awsRequestHandler(opts: AwsTransportOptions): NodeHttpHandler | undefined {
  if (!opts.proxyUrl && !opts.caBundle) return undefined;
  const tlsOptions: AgentOptions = {
    keepAlive: true,
    rejectUnauthorized: true,
    ...(opts.caBundle ? { ca: [...rootCertificates, opts.caBundle] } : {}),
  };
  const direct = new HttpsAgent(tlsOptions);
  const httpsAgent = opts.proxyUrl
    ? new AwsProxyAgent(
        opts.proxyUrl,
        opts.noProxy ?? process.env.NO_PROXY ?? process.env.no_proxy,
        direct,
        tlsOptions,
      )
    : direct;
  // Required here, not imported with the module: with neither a proxy nor a CA bundle
  // the agent does not carry the SDK's HTTP stack (and @smithy/core under it) at all.
  const { NodeHttpHandler: Handler } = createRequire(import.meta.url)(
    '@smithy/node-http-handler',
  ) as typeof NodeHttpHandlerModule;
  return new Handler({ httpsAgent });
}
