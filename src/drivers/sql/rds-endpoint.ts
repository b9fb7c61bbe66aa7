/**
 * Integration by region + instance id: a `postgres` or `mysql` integration may name its RDS
 * instance (`rdsInstanceId`) or Aurora / Multi-AZ cluster (`rdsClusterId`) and `region`
 * instead of `host`. The driver is wrapped (`withRdsEndpoint`) so that every call first
 * resolves the endpoint with `rds:DescribeDBInstances` / `rds:DescribeDBClusters` and hands
 * the inner driver a config with `host` (and `port`, unless configured) filled in.
 *
 * Glossary:
 * - **endpoint**: `Endpoint.Address` / `Endpoint.Port` of the instance, or `Endpoint` /
 *   `Port` (the writer endpoint) of the cluster.
 * - **cache**: a resolved endpoint is kept `ENDPOINT_TTL_MS` per (region, kind, id); a call that fails with `E_CONNECT` drops it, so a replaced instance is found again
 *   on the next call.
 *
 * The engine is checked: a `postgres` integration refuses a MySQL instance and the other way
 * round (`E_INVALID`), so a typo in an id cannot point the service account elsewhere. An
 * instance with no endpoint yet (creating) is `E_CONNECT`, retryable.
 */
import {
  DescribeDBClustersCommand,
  DescribeDBInstancesCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import { z } from 'zod';
import { awsSend } from '../../aws/call.js';
import { LatchkeyError } from '../../errors.js';
import type { Integration } from '../../protocol/messages.js';
import type { CallContext, Driver, DriverServices } from '../driver.js';

export const ENDPOINT_TTL_MS = 10 * 60_000;

/**
 * Integrations this module made (host filled from a lookup) → the RDS identifier looked up.
 * Only objects built here are keys, so a command cannot claim an identifier: what the
 * secret binding by tag may compare `<prefix>-connector-target` with (`../../secrets/binding.ts`).
 */
const lookedUp = new WeakMap<Integration, string>();

/** The RDS instance / cluster identifier the connector itself resolved `integration`'s host from. */
export function lookedUpRdsId(integration: Integration): string | undefined {
  return lookedUp.get(integration);
}

/** The config fields this adds to the `postgres` and `mysql` schemas. */
export const RdsIdFields = {
  /** RDS DB instance identifier; with `region`, replaces `host`. */
  rdsInstanceId: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[A-Za-z][A-Za-z0-9-]*$/, 'an RDS DB instance identifier')
    .optional(),
  /** Aurora / Multi-AZ DB cluster identifier; with `region`, replaces `host` (writer endpoint). */
  rdsClusterId: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[A-Za-z][A-Za-z0-9-]*$/, 'an RDS DB cluster identifier')
    .optional(),
};

const RdsRefSchema = z.object({
  host: z.string().optional(),
  port: z.unknown().optional(),
  region: z
    .string()
    .regex(/^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$/, 'an AWS region')
    .optional(),
  rdsInstanceId: RdsIdFields.rdsInstanceId,
  rdsClusterId: RdsIdFields.rdsClusterId,
});

export type EngineFamily = 'postgres' | 'mysql';

/** Which `Engine` values a driver accepts. */
function engineFamily(engine: string | undefined): EngineFamily | null {
  const e = (engine ?? '').toLowerCase();
  if (e === 'postgres' || e === 'aurora-postgresql') return 'postgres';
  if (e === 'mysql' || e === 'mariadb' || e === 'aurora-mysql' || e === 'aurora') return 'mysql';
  return null;
}

interface Endpoint {
  host: string;
  port: number;
  until: number;
}

export class RdsEndpointResolver {
  private readonly cache = new Map<string, Endpoint>();

  constructor(
    private readonly services: Pick<DriverServices, 'aws' | 'now'>,
    private readonly family: EngineFamily,
  ) {}

  /**
   * The integration as the inner driver should see it: unchanged without an RDS id, else with
   * `host` (and `port` when not configured) from the endpoint.
   * @throws LatchkeyError E_INVALID (config, engine), E_CONNECT (no endpoint yet), AWS errors
   */
  async resolve(
    integration: Integration,
    signal: AbortSignal,
  ): Promise<{ integration: Integration; key?: string; endpoint?: string }> {
    const raw = integration.config;
    if (raw['rdsInstanceId'] === undefined && raw['rdsClusterId'] === undefined) {
      return { integration };
    }
    const parsed = RdsRefSchema.safeParse(raw);
    const problems: string[] = parsed.success
      ? []
      : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    const ref = parsed.success ? parsed.data : undefined;
    if (ref) {
      if (ref.rdsInstanceId !== undefined && ref.rdsClusterId !== undefined)
        problems.push('rdsInstanceId, rdsClusterId: give one, not both');
      if (ref.region === undefined)
        problems.push('region: required with rdsInstanceId or rdsClusterId');
      if (ref.host !== undefined)
        problems.push('host: give host or an RDS id, not both (the endpoint is looked up)');
    }
    if (!ref || problems.length > 0) {
      throw new LatchkeyError(
        'E_INVALID',
        `invalid ${integration.type} integration config: ${problems.join('; ')}`,
      );
    }
    const region = ref.region ?? '';
    const kind = ref.rdsInstanceId !== undefined ? 'instance' : 'cluster';
    const id = ref.rdsInstanceId ?? ref.rdsClusterId ?? '';
    const key = `${region}|${kind}|${id}`;
    const now = this.services.now().getTime();
    let ep = this.cache.get(key);
    if (ep === undefined || ep.until <= now) {
      const found = await this.describe(kind, id, region, signal);
      ep = { ...found, until: now + ENDPOINT_TTL_MS };
      this.cache.set(key, ep);
    }
    const { rdsInstanceId: _i, rdsClusterId: _c, ...rest } = raw;
    const resolved: Integration = {
      ...integration,
      config: { ...rest, host: ep.host, ...(raw['port'] === undefined ? { port: ep.port } : {}) },
    };
    lookedUp.set(resolved, id);
    return {
      integration: resolved,
      key,
      endpoint: `${ep.host}:${ep.port}`,
    };
  }

  /** Forget an endpoint (after a connection failure). */
  invalidate(key: string): void {
    this.cache.delete(key);
  }

  private async describe(
    kind: 'instance' | 'cluster',
    id: string,
    region: string,
    signal: AbortSignal,
  ): Promise<{ host: string; port: number }> {
    const rds = this.services.aws.client(RDSClient, { region });
    let engine: string | undefined;
    let host: string | undefined;
    let port: number | undefined;
    let status: string | undefined;
    if (kind === 'instance') {
      const out = await awsSend(
        { service: 'rds', operation: 'DescribeDBInstances', resource: id, signal },
        (o) => rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }), o),
      );
      const i = out.DBInstances?.find(
        (d) => d.DBInstanceIdentifier?.toLowerCase() === id.toLowerCase(),
      );
      if (!i) throw new LatchkeyError('E_NOT_FOUND', `RDS instance ${id} not found in ${region}`);
      engine = i.Engine;
      host = i.Endpoint?.Address;
      port = i.Endpoint?.Port;
      status = i.DBInstanceStatus;
    } else {
      const out = await awsSend(
        { service: 'rds', operation: 'DescribeDBClusters', resource: id, signal },
        (o) => rds.send(new DescribeDBClustersCommand({ DBClusterIdentifier: id }), o),
      );
      const c = out.DBClusters?.find(
        (d) => d.DBClusterIdentifier?.toLowerCase() === id.toLowerCase(),
      );
      if (!c) throw new LatchkeyError('E_NOT_FOUND', `RDS cluster ${id} not found in ${region}`);
      engine = c.Engine;
      host = c.Endpoint;
      port = c.Port;
      status = c.Status;
    }
    const family = engineFamily(engine);
    if (family !== this.family) {
      throw new LatchkeyError(
        'E_INVALID',
        `RDS ${kind} ${id} in ${region} runs ${engine ?? 'an unknown engine'}, not ${this.family === 'postgres' ? 'PostgreSQL' : 'MySQL/MariaDB'}`,
      );
    }
    if (!host || port === undefined) {
      throw new LatchkeyError(
        'E_CONNECT',
        `RDS ${kind} ${id} in ${region} has no endpoint yet (status ${status ?? 'unknown'})`,
      );
    }
    return { host, port };
  }
}

/**
 * `driver` with RDS endpoint resolution in front of every call that names an integration.
 * Calls without `rdsInstanceId`/`rdsClusterId` pass through unchanged.
 */
export function withRdsEndpoint(
  driver: Driver,
  services: DriverServices,
  family: EngineFamily,
): Driver {
  const resolver = new RdsEndpointResolver(services, family);
  const around = async <T>(ctx: CallContext, fn: (c: CallContext) => Promise<T>): Promise<T> => {
    const { integration, key } = await resolver.resolve(ctx.integration, ctx.signal);
    if (key === undefined) return fn(ctx);
    try {
      return await fn({ ...ctx, integration });
    } catch (err) {
      if (err instanceof LatchkeyError && err.code === 'E_CONNECT') resolver.invalidate(key);
      throw err;
    }
  };
  const wrapped: Driver = {
    type: driver.type,
    kinds: driver.kinds,
    discover: (ctx, params) => around(ctx, (c) => driver.discover(c, params)),
    grant: (ctx, params) => around(ctx, (c) => driver.grant(c, params)),
    revoke: (ctx, params) => around(ctx, (c) => driver.revoke(c, params)),
    rotate: (ctx, params) => around(ctx, (c) => driver.rotate(c, params)),
    cleanup: (ctx, params) => around(ctx, (c) => driver.cleanup(c, params)),
    check: async (ctx) => {
      let resolved: Awaited<ReturnType<RdsEndpointResolver['resolve']>>;
      try {
        resolved = await resolver.resolve(ctx.integration, ctx.signal);
      } catch (err) {
        if (!(err instanceof LatchkeyError) || err.code === 'E_CANCELLED') throw err;
        return { ok: false, checks: [{ name: 'rds-endpoint', ok: false, detail: err.message }] };
      }
      if (resolved.key === undefined) return driver.check(ctx);
      const out = await driver.check({ ...ctx, integration: resolved.integration });
      const detail = `endpoint ${resolved.endpoint ?? ''}`;
      return { ...out, checks: [{ name: 'rds-endpoint', ok: true, detail }, ...out.checks] };
    },
    close: () => driver.close(),
  };
  if (driver.removeStanding) {
    wrapped.removeStanding = (ctx, params) =>
      around(ctx, (c) => {
        if (!driver.removeStanding) throw new LatchkeyError('E_UNSUPPORTED', 'no removeStanding');
        return driver.removeStanding(c, params);
      });
  }
  if (driver.sweep) {
    wrapped.sweep = (ctx) =>
      around(ctx, (c) => {
        if (!driver.sweep) throw new LatchkeyError('E_UNSUPPORTED', 'no sweep');
        return driver.sweep(c);
      });
  }
  return wrapped;
}
