/**
 * The `postgres` driver: the SQL core over the PostgreSQL dialect, with pools per
 * (integration, database), secrets from `services.secrets` or RDS IAM auth tokens.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { BoundedCache } from '../../bounded-cache.js';
import { LatchkeyError, isLatchkeyError } from '../../errors.js';
import type {
  CheckOutput,
  CleanupOutput,
  CleanupParams,
  CommandKind,
  DiscoverOutput,
  DiscoverParams,
  GrantOutput,
  GrantParams,
  Integration,
  RevokeOutput,
  RevokeParams,
  RotateOutput,
  RotateParams,
  SecretRef,
  StandingCleanupParams,
} from '../../protocol/messages.js';
import { COMMAND_KINDS } from '../../protocol/messages.js';
import { checkSecretBinding, bindingPolicyOf, resolveBoundSecret } from '../../secrets/binding.js';
import type { SecretTarget } from '../../secrets/binding.js';
import { createRdsAuthTokenProvider, roleSignerCredentials } from '../../secrets/iam-auth.js';
import type { RdsAuthTokenProvider } from '../../secrets/iam-auth.js';
import type { CallContext, Driver, DriverServices, SweepReport } from '../driver.js';
import { trustedCas } from '../sql/tls.js';
import { lookedUpRdsId } from '../sql/rds-endpoint.js';
import {
  cleanupFlow,
  grantFlow,
  mapped,
  revokeFlow,
  rotateGranteeFlow,
  rotateServiceAccountFlow,
  sweepFlow,
  raceAbort,
} from '../sql/core.js';
import type { SqlCoreOptions } from '../sql/core.js';
import type { SqlScope, SqlSession } from '../sql/dialect.js';
import { parsePostgresConfig } from './config.js';
import type { PostgresConfig } from './config.js';
import { PostgresDialect, quoteIdent, quoteLiteral, str, type PgScope } from './dialect.js';
import { journalSchemaName } from './guardrails.js';
import { discoverPostgres } from './discover.js';
import {
  inventoryPostgres,
  removeStandingPostgres,
  streamInventoryPostgres,
  type InventoryOptions,
} from './inventory.js';
import { mapPgError } from './errors.js';
import {
  PgPools,
  SERVICE_SEARCH_PATH,
  connectionLost,
  sslOptionsFor,
  type PgConnectionSpec,
} from './pool.js';
import { scramVerifier } from './scram.js';

export interface PgDriverOptions {
  /** Signs RDS IAM auth tokens; default `createRdsAuthTokenProvider({})` (AWS default credentials). */
  rdsTokenProvider?: RdsAuthTokenProvider;
  /** How often idle pools are looked for (ms); default 10 000. */
  poolSweepIntervalMs?: number;
  /** Tables per discovery query; default `DISCOVER_PAGE_SIZE`. */
  discoverPageSize?: number;
}

/** The service-account connection of one integration. */
export interface PgConnection {
  spec: PgConnectionSpec;
  /** The service account's username. */
  user: string;
}

export class PostgresDriver implements Driver {
  readonly type: string = 'postgres';
  readonly kinds: readonly CommandKind[] = COMMAND_KINDS;
  protected readonly pools: PgPools;
  protected readonly dialect: PostgresDialect;
  private tokenProvider: RdsAuthTokenProvider | undefined;

  constructor(
    protected readonly services: DriverServices,
    protected readonly options: PgDriverOptions = {},
    dialect: PostgresDialect = new PostgresDialect(),
  ) {
    this.dialect = dialect;
    this.pools = new PgPools(services.logger, {
      ...(options.poolSweepIntervalMs === undefined
        ? {}
        : { sweepIntervalMs: options.poolSweepIntervalMs }),
    });
  }

  // ----- configuration and connections ------------------------------------------------

  protected parseConfig(integration: Integration): PostgresConfig {
    return parsePostgresConfig(integration);
  }

  /** Configs parsed lately, by the integration's text (`configOf`). */
  private readonly configs = new BoundedCache<string, PostgresConfig>(64);
  /**
   * Connection-spec fingerprints by config object and user (`specKey`): a config from
   * `configs` stands for one integration text (type, secret and all), so its fingerprint
   * for a user never changes.
   */
  private readonly fingerprints = new WeakMap<PostgresConfig, Map<string, string>>();

  /**
   * `parseConfig`, kept by the integration's text: every command carries its integration,
   * and validating it again (zod) cost more than the rest of a grant's own work in the agent.
   * A changed config is another text, parsed afresh; a config naming `caBundleFile` is
   * parsed every time, so the file is read again and a replaced bundle is used at once.
   */
  protected configOf(integration: Integration): PostgresConfig {
    if (integration.config.caBundleFile !== undefined) return this.parseConfig(integration);
    const text = JSON.stringify([
      integration.type,
      integration.config,
      integration.secret ?? null,
      integration.settings ?? null,
    ]);
    return this.configs.get(text, () => this.parseConfig(integration));
  }

  private rdsTokens(): RdsAuthTokenProvider {
    this.tokenProvider ??= this.options.rdsTokenProvider ?? createRdsAuthTokenProvider({});
    return this.tokenProvider;
  }

  /** What connections of `cfg` trust: its CA, the RDS bundle for AWS hosts, the agent's extra CA. */
  protected trust(cfg: PostgresConfig): string[] | undefined {
    return trustedCas({ configured: cfg.ca, host: cfg.host, extra: this.services.caBundle });
  }

  protected specKey(integration: Integration, cfg: PostgresConfig, user: string): string {
    let byUser = this.fingerprints.get(cfg);
    if (byUser === undefined) {
      byUser = new Map();
      this.fingerprints.set(cfg, byUser);
    }
    let fingerprint = byUser.get(user);
    if (fingerprint === undefined) {
      fingerprint = createHash('sha256')
        .update(
          JSON.stringify([
            integration.type,
            cfg.host,
            cfg.port,
            cfg.sslMode,
            cfg.ca ?? '',
            cfg.authType,
            cfg.assumeRoleArn ?? '',
            user,
            integration.secret ?? null,
            cfg.maxConnections,
          ]),
        )
        .digest('hex')
        .slice(0, 16);
      byUser.set(user, fingerprint);
    }
    return `${integration.id}\u0000${fingerprint}`;
  }

  /** Resolves the service account and builds the connection spec. */
  protected async connection(ctx: CallContext, cfg: PostgresConfig): Promise<PgConnection> {
    const integration = ctx.integration;
    const base = {
      host: cfg.host,
      port: cfg.port,
      sslMode: cfg.sslMode,
      ca: this.trust(cfg),
      max: cfg.maxConnections,
      idleTimeoutMs: cfg.idleTimeoutMs,
      connectTimeoutMs: cfg.connectTimeoutMs,
    };
    if (cfg.authType === 'iam-auth') {
      const user = cfg.username ?? '';
      const region = cfg.region ?? '';
      const tokens = this.rdsTokens();
      // A member account's database: signed by that account's role.
      const credentials =
        cfg.assumeRoleArn !== undefined
          ? roleSignerCredentials(this.services.aws, {
              region,
              assumeRoleArn: cfg.assumeRoleArn,
              externalId: cfg.externalId,
            })
          : undefined;
      return {
        user,
        spec: {
          ...base,
          key: this.specKey(integration, cfg, user),
          user,
          password: () =>
            tokens({
              hostname: cfg.host,
              port: cfg.port,
              username: user,
              region,
              ...(credentials ? { credentials } : {}),
            }),
        },
      };
    }
    const ref = this.secretRef(integration);
    const secrets = this.services.secrets;
    // Guardrail: the secret must be bound to this server (src/secrets/binding.ts).
    const target = this.secretTarget(cfg, ctx.integration);
    const secret = await resolveBoundSecret(secrets, ref, target, ctx.signal);
    return {
      user: secret.username,
      spec: {
        ...base,
        key: this.specKey(integration, cfg, secret.username),
        user: secret.username,
        password: async () => (await resolveBoundSecret(secrets, ref, target)).password,
      },
    };
  }

  /** Where the service-account secret is sent: the server and maintenance database. */
  protected secretTarget(cfg: PostgresConfig, integration: Integration): SecretTarget {
    const rdsId = lookedUpRdsId(integration);
    return {
      host: cfg.host,
      port: cfg.port,
      database: cfg.database,
      ...(rdsId !== undefined ? { rdsId } : {}),
    };
  }

  protected secretRef(integration: Integration): SecretRef {
    if (!integration.secret) throw new LatchkeyError('E_SECRET', 'the integration names no secret');
    return integration.secret;
  }

  /** Runs `fn` in a scope on the maintenance database; maps every error once. */
  protected async withScope<T>(
    ctx: CallContext,
    fn: (scope: SqlScope, cfg: PostgresConfig, conn: PgConnection) => Promise<T>,
  ): Promise<T> {
    return mapped(this.dialect, ctx.signal, async () => {
      const cfg = this.configOf(ctx.integration);
      const conn = await this.connection(ctx, cfg);
      try {
        return await this.pools.withSession(
          conn.spec,
          cfg.database,
          'main',
          ctx.signal,
          (mainSession) => {
            // Work on a user runs on the main session while the lock session holds the
            // per-user lock. Once the server ends the lock session, the lock is gone: every
            // later statement of this command is refused (E_CONNECT, retryable) instead of
            // going on unlocked; only a statement already running can still finish.
            let lockLost: Error | undefined;
            const guarded = (inner: SqlSession): SqlSession => ({
              query: (sql, values) =>
                lockLost === undefined
                  ? inner.query(sql, values)
                  : Promise.reject(connectionLost(lockLost)),
            });
            const session = guarded(mainSession);
            const scope: PgScope = {
              session,
              maintenanceDatabase: cfg.database,
              onDatabase: <R>(db: string, f: (s: SqlSession) => Promise<R>): Promise<R> =>
                db === cfg.database
                  ? f(session)
                  : this.pools.withSession(conn.spec, db, 'db', ctx.signal, (s) => f(guarded(s))),
              withLockSession: <R>(f: (s: SqlSession) => Promise<R>): Promise<R> =>
                this.pools.withSession(conn.spec, cfg.database, 'lock', ctx.signal, f, (err) => {
                  lockLost = err;
                }),
              signal: ctx.signal,
              serviceAccount: conn.user,
              prefix: cfg.userPrefix,
              databases: cfg.databases,
            };
            return fn(scope, cfg, conn);
          },
        );
      } catch (err) {
        const e = isLatchkeyError(err) ? err : mapPgError(err);
        const sqlstate = e.details?.sqlstate;
        if ((sqlstate === '28P01' || sqlstate === '28000') && ctx.integration.secret) {
          // The secret may have been rotated elsewhere: read it again next time.
          this.services.secrets.invalidate?.(ctx.integration.secret);
        }
        throw e;
      }
    });
  }

  protected coreOptions(cfg: PostgresConfig): SqlCoreOptions {
    return {
      dialect: this.dialect,
      iamAuth: cfg.authType === 'iam-auth',
      ownedObjects: cfg.ownedObjects,
      sealer: this.services.sealer,
      now: this.services.now,
      access: { host: cfg.accountHost, port: cfg.accountPort, defaultDatabase: cfg.database },
    };
  }

  // ----- commands -----------------------------------------------------------------------

  discover(ctx: CallContext, params?: DiscoverParams): Promise<DiscoverOutput> {
    return this.withScope(ctx, async (scope, cfg) => {
      // With a sink (the agent's spool) resources and inventory entries are written page
      // by page as they are read, never all held (docs/drivers/postgres.md).
      const sink = ctx.sink;
      const out = await discoverPostgres(scope, {
        databases: cfg.databases,
        sink,
        ...(this.options.discoverPageSize === undefined
          ? {}
          : { pageSize: this.options.discoverPageSize }),
      });
      if (params?.include?.includes('privileges') === true) {
        const opts = await this.inventoryOptions(scope, cfg);
        if (sink === undefined) out.inventory = (await inventoryPostgres(scope, opts)).inventory;
        else await streamInventoryPostgres(scope, opts, sink);
      }
      return out;
    });
  }

  /**
   * Removes standing access listed by the inventory (docs/drivers/postgres.md, "Access
   * inventory"): a dry run unless `params.apply`.
   */
  removeStanding(ctx: CallContext, params: StandingCleanupParams): Promise<CleanupOutput> {
    return this.withScope(ctx, async (scope, cfg) =>
      removeStandingPostgres(scope, params, await this.inventoryOptions(scope, cfg)),
    );
  }

  protected async inventoryOptions(
    scope: SqlScope,
    cfg: PostgresConfig,
  ): Promise<InventoryOptions> {
    const grantRoles = new Map<string, string>();
    for (const r of await this.dialect.listGrantRoles(scope, {})) grantRoles.set(r.role, r.grantId);
    return {
      databases: cfg.databases,
      protectedMarker: `${this.services.tagPrefix}:protected`,
      grantRoles,
    };
  }

  grant(ctx: CallContext, params: GrantParams): Promise<GrantOutput> {
    return this.withScope(ctx, (scope, cfg) => grantFlow(this.coreOptions(cfg), scope, params));
  }

  revoke(ctx: CallContext, params: RevokeParams): Promise<RevokeOutput> {
    return this.withScope(ctx, (scope, cfg) => revokeFlow(this.coreOptions(cfg), scope, params));
  }

  rotate(ctx: CallContext, params: RotateParams): Promise<RotateOutput> {
    const target = params.target;
    if ('grantee' in target) {
      return this.withScope(ctx, (scope, cfg) =>
        rotateGranteeFlow(this.coreOptions(cfg), scope, {
          email: target.grantee.email,
          ...(params.recipientKey === undefined ? {} : { recipientKey: params.recipientKey }),
        }),
      );
    }
    return this.rotateServiceAccount(ctx);
  }

  cleanup(ctx: CallContext, params: CleanupParams): Promise<CleanupOutput> {
    return this.withScope(ctx, (scope, cfg) => cleanupFlow(this.coreOptions(cfg), scope, params));
  }

  sweep(ctx: CallContext): Promise<SweepReport> {
    return this.withScope(ctx, (scope, cfg) => sweepFlow(this.coreOptions(cfg), scope));
  }

  async close(): Promise<void> {
    await this.pools.close();
  }

  // ----- service-account rotation ---------------------------------------------------

  /** SQL that sets the service account's own password. */
  protected async selfPasswordStatement(password: string, _username: string): Promise<string> {
    return `ALTER ROLE CURRENT_USER WITH PASSWORD ${quoteLiteral(await scramVerifier(password))}`;
  }

  /** A one-off client as the service account with an explicit password (rotation). */
  protected async withDirectClient<T>(
    ctx: CallContext,
    cfg: PostgresConfig,
    user: string,
    password: string,
    fn: (client: pg.Client) => Promise<T>,
  ): Promise<T> {
    const mode = cfg.sslMode === 'prefer' || cfg.sslMode === 'allow' ? null : cfg.sslMode;
    const client = new pg.Client({
      host: cfg.host,
      port: cfg.port,
      user,
      password,
      database: cfg.database,
      ssl:
        mode === null
          ? cfg.sslMode === 'prefer'
            ? { rejectUnauthorized: false }
            : false
          : sslOptionsFor(mode, cfg.host, this.trust(cfg)),
      connectionTimeoutMillis: cfg.connectTimeoutMs,
      application_name: 'latchkey',
    });
    client.on('error', () => undefined);
    try {
      await raceAbort(client.connect(), ctx.signal, () => void client.end().catch(() => undefined));
      await client.query(SERVICE_SEARCH_PATH);
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  protected async rotateServiceAccount(ctx: CallContext): Promise<RotateOutput> {
    return mapped(this.dialect, ctx.signal, async () => {
      const cfg = this.configOf(ctx.integration);
      if (cfg.authType === 'iam-auth') {
        throw new LatchkeyError(
          'E_UNSUPPORTED',
          'an IAM-auth service account has no password to rotate',
        );
      }
      const ref = this.secretRef(ctx.integration);
      const rotation = this.services.secrets.rotation;
      if (ref.store !== 'aws-secrets-manager' || !rotation) {
        throw new LatchkeyError(
          'E_UNSUPPORTED',
          'service-account rotation needs an aws-secrets-manager secret',
        );
      }
      const target = this.secretTarget(cfg, ctx.integration);
      const current = await resolveBoundSecret(this.services.secrets, ref, target, ctx.signal);
      const conn = await this.connection(ctx, cfg);
      return rotateServiceAccountFlow(this.dialect, ctx.signal, {
        username: current.username,
        getPending: async () => {
          const pending = await rotation.getPendingSecret(ref, ctx.signal);
          if (pending === null) return null;
          checkSecretBinding(pending, ref, target, bindingPolicyOf(this.services.secrets));
          return { token: pending.versionId, password: pending.password };
        },
        putPending: async (password) =>
          (
            await rotation.putPendingSecret(
              ref,
              { ...current, extra: { ...current.extra }, password },
              ctx.signal,
            )
          ).versionId,
        setPassword: async (password) => {
          const statement = await this.selfPasswordStatement(password, current.username);
          try {
            await this.withDirectClient(ctx, cfg, current.username, current.password, async (c) => {
              await c.query(statement);
            });
          } catch (err) {
            // After a crash between ALTER and promotion, only the pending password works.
            if (mapPgError(err).details?.sqlstate !== '28P01') throw err;
            await this.withDirectClient(ctx, cfg, current.username, password, async (c) => {
              await c.query(statement);
            });
          }
        },
        verifyLogin: async (password) => {
          await this.withDirectClient(ctx, cfg, current.username, password, async (c) => {
            await c.query('SELECT 1');
          });
        },
        promote: (token) => rotation.promotePendingSecret(ref, token, ctx.signal),
        afterPromote: async () => {
          this.services.secrets.invalidate?.(ref);
          await this.pools.closeKey(conn.spec.key);
        },
      });
    });
  }

  // ----- check --------------------------------------------------------------------------

  async check(ctx: CallContext): Promise<CheckOutput> {
    const checks: CheckOutput['checks'] = [];
    let serverVersion: string | undefined;
    try {
      await this.withScope(ctx, async (scope, cfg) => {
        checks.push({
          name: 'connect',
          ok: true,
          detail: `connected to ${cfg.host}:${cfg.port}/${cfg.database} as ${scope.serviceAccount}`,
        });
        await this.privilegeChecks(scope, cfg, checks, (v) => (serverVersion = v));
      });
    } catch (err) {
      const e = isLatchkeyError(err) ? err : mapPgError(err);
      checks.push({ name: 'connect', ok: false, detail: `${e.code}: ${e.message}` });
    }
    return {
      ok: checks.every((c) => c.ok),
      ...(serverVersion === undefined ? {} : { serverVersion }),
      checks,
    };
  }

  protected async privilegeChecks(
    scope: SqlScope,
    cfg: PostgresConfig,
    checks: CheckOutput['checks'],
    setVersion: (v: string) => void,
  ): Promise<void> {
    const v = await scope.session.query(
      `SELECT current_setting('server_version') AS v, current_setting('server_version_num')::int AS n`,
    );
    const version = str(v[0]?.v) ?? 'unknown';
    setVersion(version);
    const num = Number(v[0]?.n ?? 0);
    checks.push({
      name: 'server-version',
      ok: num >= 120000,
      detail:
        num >= 120000
          ? `PostgreSQL ${version}`
          : `PostgreSQL ${version} is older than 12, which Latchkey does not support`,
    });
    const roleRows = await scope.session.query(
      `SELECT r.rolsuper, r.rolcreaterole,
              EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_superuser')
                AND pg_has_role(current_user, 'rds_superuser', 'MEMBER') AS rds_superuser,
              pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS signal_backend,
              EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam') AS has_rds_iam
         FROM pg_roles r WHERE r.rolname = current_user`,
    );
    const r = roleRows[0] ?? {};
    const superuser = r.rolsuper === true;
    const canCreateRoles = superuser || r.rolcreaterole === true || r.rds_superuser === true;
    checks.push({
      name: 'create-role',
      ok: canCreateRoles,
      detail: canCreateRoles
        ? superuser
          ? 'the service account is a superuser (works, but see not-superuser)'
          : 'the service account may create roles (CREATEROLE or rds_superuser)'
        : `the service account cannot create roles: run ALTER ROLE ${this.dialect.quoteIdent(scope.serviceAccount)} CREATEROLE (or GRANT rds_superuser on RDS)`,
    });
    // A superuser service account makes every grant guardrail the only line of defence:
    // anything it can read (catalogs, pg_authid) is one mistake away from a grantee.
    checks.push({
      name: 'not-superuser',
      ok: !superuser,
      detail: superuser
        ? `warning: the service account is a superuser; use a CREATEROLE role with pg_signal_backend instead (ALTER ROLE ${this.dialect.quoteIdent(scope.serviceAccount)} NOSUPERUSER CREATEROLE)`
        : 'the service account is not a superuser',
    });
    const canTerminate = superuser || r.signal_backend === true || r.rds_superuser === true;
    checks.push({
      name: 'terminate-sessions',
      ok: canTerminate,
      detail: canTerminate
        ? 'the service account may end grantees\u2019 sessions'
        : `revoke cannot end open sessions: run GRANT pg_signal_backend TO ${this.dialect.quoteIdent(scope.serviceAccount)}`,
    });
    checks.push(await journalCheck(scope, cfg.database));
    if (cfg.authType === 'iam-auth') {
      checks.push({
        name: 'rds-iam',
        ok: r.has_rds_iam === true,
        detail:
          r.has_rds_iam === true
            ? 'role rds_iam exists'
            : 'role rds_iam does not exist: IAM database authentication is not enabled on this instance',
      });
    }
    checks.push({ name: 'ssl', ok: true, detail: `sslMode ${cfg.sslMode}` });
  }
}

/**
 * Whether the service account can keep its journal (`"<prefix>meta"`) in the maintenance
 * database: it owns that schema already, or it may CREATE in the database.
 * Shared by the PostgreSQL and Redshift checks.
 */
export async function journalCheck(
  scope: SqlScope,
  database: string,
): Promise<CheckOutput['checks'][number]> {
  const schema = journalSchemaName(scope.prefix);
  const rows = await scope.session.query(
    `SELECT has_database_privilege(current_database(), 'CREATE') AS can_create,
            EXISTS (SELECT 1 FROM pg_namespace n JOIN pg_user u ON u.usesysid = n.nspowner
                     WHERE n.nspname = $1 AND u.usename = current_user) AS ours`,
    [schema],
  );
  const canCreate = rows[0]?.can_create === true;
  const ours = rows[0]?.ours === true;
  return {
    name: 'journal-schema',
    ok: canCreate || ours,
    detail: ours
      ? `the journal schema ${JSON.stringify(schema)} exists and belongs to the service account`
      : canCreate
        ? `the service account may create its journal schema ${JSON.stringify(schema)} in ${JSON.stringify(database)}`
        : `the service account cannot create its journal schema ${JSON.stringify(schema)} (grant records): run GRANT CREATE ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(scope.serviceAccount)}`,
  };
}

export function createPostgresDriver(
  services: DriverServices,
  options: PgDriverOptions = {},
): PostgresDriver {
  return new PostgresDriver(services, options);
}
