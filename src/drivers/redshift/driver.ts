/**
 * The `redshift` driver: the PostgreSQL driver's pools and flows over the Redshift
 * dialect, with svv_* discovery and GetClusterCredentials as an auth type.
 */
import { RedshiftClient } from '@aws-sdk/client-redshift';
import type {
  CheckOutput,
  CleanupOutput,
  DiscoverOutput,
  DiscoverParams,
  Integration,
  StandingCleanupParams,
} from '../../protocol/messages.js';
import { getRedshiftClusterCredentials } from '../../secrets/iam-auth.js';
import type { RedshiftClusterCredentials } from '../../secrets/iam-auth.js';
import type { CallContext, DriverServices } from '../driver.js';
import type { SqlCoreOptions } from '../sql/core.js';
import type { SqlScope } from '../sql/dialect.js';
import type { PostgresConfig } from '../postgres/config.js';
import { quoteLiteral, str } from '../postgres/dialect.js';
import { PostgresDriver, journalCheck } from '../postgres/driver.js';
import type { PgConnection, PgDriverOptions } from '../postgres/driver.js';
import { parseRedshiftConfig } from './config.js';
import type { RedshiftConfig } from './config.js';
import { RedshiftDialect, redshiftPasswordHash } from './dialect.js';
import { discoverRedshift } from './discover.js';
import { inventoryRedshift, removeStandingRedshift } from './inventory.js';

/** Renew temporary credentials this long before they expire. */
const RENEW_MARGIN_MS = 60_000;

export class RedshiftDriver extends PostgresDriver {
  override readonly type: string = 'redshift';
  private readonly temporary = new Map<string, RedshiftClusterCredentials>();

  constructor(services: DriverServices, options: PgDriverOptions = {}) {
    super(services, options, new RedshiftDialect());
  }

  protected override parseConfig(integration: Integration): RedshiftConfig {
    return parseRedshiftConfig(integration);
  }

  protected override async connection(
    ctx: CallContext,
    cfg: PostgresConfig,
  ): Promise<PgConnection> {
    if (cfg.authType !== 'iam-auth') return super.connection(ctx, cfg);
    const rc = cfg as RedshiftConfig;
    const dbUser = cfg.username ?? '';
    const key = `${ctx.integration.id}\u0000${rc.clusterIdentifier ?? ''}\u0000${dbUser}`;
    const creds = await this.clusterCredentials(ctx, rc, key, dbUser);
    return {
      // Objects and grants name the database user; the login name is `IAM:<user>`.
      user: dbUser,
      spec: {
        key: this.specKey(ctx.integration, cfg, dbUser),
        host: cfg.host,
        port: cfg.port,
        user: creds.username,
        password: async () => (await this.clusterCredentials(ctx, rc, key, dbUser)).password,
        sslMode: cfg.sslMode,
        ca: this.trust(cfg),
        max: cfg.maxConnections,
        idleTimeoutMs: cfg.idleTimeoutMs,
        connectTimeoutMs: cfg.connectTimeoutMs,
      },
    };
  }

  private async clusterCredentials(
    ctx: CallContext,
    cfg: RedshiftConfig,
    key: string,
    dbUser: string,
  ): Promise<RedshiftClusterCredentials> {
    const cached = this.temporary.get(key);
    if (cached && cached.expiresAt.getTime() - RENEW_MARGIN_MS > this.services.now().getTime())
      return cached;
    const client = this.services.aws.client(RedshiftClient, {
      region: cfg.region ?? '',
      // A member account's cluster: its credentials are asked for with that account's role.
      ...(cfg.assumeRoleArn !== undefined ? { assumeRoleArn: cfg.assumeRoleArn } : {}),
      ...(cfg.externalId !== undefined ? { externalId: cfg.externalId } : {}),
    });
    const creds = await getRedshiftClusterCredentials(
      client,
      {
        clusterIdentifier: cfg.clusterIdentifier ?? '',
        dbUser,
        dbName: cfg.database,
        durationSeconds: cfg.credentialsDurationSeconds,
        autoCreate: false,
      },
      ctx.signal,
    );
    this.temporary.set(key, creds);
    return creds;
  }

  protected override coreOptions(cfg: PostgresConfig): SqlCoreOptions {
    // IAM auth is for the service account; grantees always get a password on Redshift.
    return { ...super.coreOptions(cfg), iamAuth: false };
  }

  /**
   * Removes standing access listed by the inventory (docs/drivers/redshift.md, "Access
   * inventory"): a dry run unless `params.apply`.
   */
  override removeStanding(ctx: CallContext, params: StandingCleanupParams): Promise<CleanupOutput> {
    return this.withScope(ctx, async (scope, cfg) =>
      removeStandingRedshift(scope, params, {
        databases: cfg.databases,
        grantRoles: await this.grantRoles(scope),
        protectedPrincipals: (cfg as RedshiftConfig).protectedPrincipals,
      }),
    );
  }

  private async grantRoles(scope: SqlScope): Promise<Map<string, string>> {
    const grantRoles = new Map<string, string>();
    for (const r of await this.dialect.listGrantRoles(scope, {})) {
      grantRoles.set(r.role, r.grantId);
    }
    return grantRoles;
  }

  override discover(ctx: CallContext, params?: DiscoverParams): Promise<DiscoverOutput> {
    return this.withScope(ctx, async (scope, cfg) => {
      const out = await discoverRedshift(scope, { databases: cfg.databases });
      if (params?.include?.includes('privileges') === true) {
        out.inventory = await inventoryRedshift(scope, {
          databases: cfg.databases,
          grantRoles: await this.grantRoles(scope),
          protectedPrincipals: (cfg as RedshiftConfig).protectedPrincipals,
        });
      }
      return out;
    });
  }

  protected override selfPasswordStatement(password: string, username: string): Promise<string> {
    return Promise.resolve(
      `ALTER USER ${this.dialect.quoteIdent(username)} PASSWORD ${quoteLiteral(redshiftPasswordHash(password, username))}`,
    );
  }

  protected override async privilegeChecks(
    scope: SqlScope,
    cfg: PostgresConfig,
    checks: CheckOutput['checks'],
    setVersion: (v: string) => void,
  ): Promise<void> {
    const v = await scope.session.query('SELECT version() AS v');
    const version = str(v[0]?.v) ?? 'unknown';
    setVersion(version);
    checks.push({ name: 'server-version', ok: true, detail: version });
    const u = await scope.session.query(
      'SELECT usesuper, usecreatedb FROM pg_user WHERE usename = current_user',
    );
    const superuser = u[0]?.usesuper === true;
    checks.push({
      name: 'create-user',
      ok: superuser,
      detail: superuser
        ? 'the service account is a superuser: it may create users and roles and end sessions'
        : `the service account is not a superuser: grant it the CREATE USER, CREATE ROLE, DROP ROLE and ` +
          `terminate-session system permissions (GRANT CREATE USER, CREATE ROLE, DROP ROLE TO ROLE …) or make it a superuser`,
    });
    checks.push(await journalCheck(scope, cfg.database));
    checks.push({ name: 'ssl', ok: cfg.sslMode !== 'disable', detail: `sslMode ${cfg.sslMode}` });
  }
}

export function createRedshiftDriver(
  services: DriverServices,
  options: PgDriverOptions = {},
): RedshiftDriver {
  return new RedshiftDriver(services, options);
}
