/**
 * The `mysql` driver: MySQL 8.0/8.4 and MariaDB 10.6+ as two flavors of one driver, on the
 * engine-neutral SQL core (src/drivers/sql/core.ts). This file builds the per-call scope
 * (pool session, service account, dialect), and implements what the core leaves to
 * drivers: discover, check, and the service-account rotation steps.
 */
import { createHash } from 'node:crypto';
import mysql from 'mysql2/promise';
import { BoundedCache } from '../../bounded-cache.js';
import { LatchkeyError, isLatchkeyError } from '../../errors.js';
import type {
  CheckOutput,
  CleanupOutput,
  CleanupParams,
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
import { bindingPolicyOf, checkSecretBinding, resolveBoundSecret } from '../../secrets/binding.js';
import {
  createRdsAuthTokenProvider,
  roleSignerCredentials,
  type RdsAuthTokenProvider,
} from '../../secrets/iam-auth.js';
import type { ServiceSecret } from '../../secrets/types.js';
import {
  cleanupFlow,
  grantFlow,
  revokeFlow,
  rotateGranteeFlow,
  rotateServiceAccountFlow,
  sweepFlow,
  throwIfAborted,
  type SqlCoreOptions,
  raceAbort,
} from '../sql/core.js';
import type { SqlDialect, SqlScope, SqlSession } from '../sql/dialect.js';
import { BASE_PERMISSIONS, databaseId, roleId, tableId } from '../sql/resources.js';
import type { CallContext, Driver, DriverServices, SweepReport } from '../driver.js';
import {
  parseMysqlConfig,
  parseMysqlSettings,
  type MysqlConfig,
  type MysqlSettings,
} from './config.js';
import {
  MysqlPools,
  connectionSession,
  watchConnection,
  type ConnectionState,
  caFor,
  prepareSession,
  tlsAttempts,
  verifyLogin,
  type LoginSource,
  type ServerInfo,
  type ServiceLogin,
} from './connection.js';
import { createMariadbOps } from './dialect-mariadb.js';
import { createMysqlOps } from './dialect-mysql.js';
import { quoteIdent, run, str, type FlavorOps, type RequiredPrivilege } from './dialect.js';
import { mapMysqlError, mysqlErrno } from './errors.js';
import { buildInventory, removeStandingOn, snapshotOf } from './inventory.js';
import { privilegeChecks } from './privilege-checks.js';
import { lookedUpRdsId } from '../sql/rds-endpoint.js';
import { grantLinesOf, holds, parseShowGrants } from './show-grants.js';
import {
  createMysqlSqlDialect,
  dangerousRolePath,
  guardedDatabases,
  isSystemSchema,
  SYSTEM_SCHEMAS,
} from './sql-dialect.js';

export const MYSQL_DRIVER_TYPE = 'mysql';
/** Inventory entries per page written to a discover's sink (the agent's result spool). */
export const INVENTORY_SINK_PAGE = 2000;

export interface MysqlDriverOptions {
  /** Signs RDS IAM tokens (`authType: iam-auth`); default: `createRdsAuthTokenProvider({})`. */
  tokenProvider?: RdsAuthTokenProvider;
}

/** Privileges every flavor needs, for `check`. */
export const REQUIRED_PRIVILEGES: readonly RequiredPrivilege[] = [
  {
    privilege: 'CREATE USER',
    on: '*.*',
    why: 'to create, lock and drop grantee users and grant roles',
  },
  { privilege: 'SHOW DATABASES', on: '*.*', why: 'to discover every database' },
  {
    privilege: 'PROCESS',
    on: '*.*',
    why: "to see grantees' open sessions (to end them on revoke)",
  },
  { privilege: 'SELECT', on: { database: 'mysql' }, why: 'to read users, roles and role grants' },
  {
    privilege: 'UPDATE',
    on: { database: 'mysql' },
    why: "to set grantees' default roles (SET DEFAULT ROLE … FOR)",
  },
];

export { GRANTABLE_PRIVILEGES } from './privilege-checks.js';

interface Resolved {
  key: string;
  config: MysqlConfig;
  settings: MysqlSettings;
}

interface CallScope {
  scope: SqlScope;
  server: ServerInfo;
  dialect: SqlDialect;
  ops: FlavorOps;
  core: SqlCoreOptions;
  session: SqlSession;
}

/** Integrations parsed so far, by their text (the oldest forgotten past this many). */
const PARSED_INTEGRATIONS = 64;

export function createMysqlDriver(
  services: DriverServices,
  options: MysqlDriverOptions = {},
): Driver {
  const pools = new MysqlPools();
  const tokenProvider = options.tokenProvider ?? createRdsAuthTokenProvider({});
  const dialects = new Map<string, { ops: FlavorOps; dialect: SqlDialect }>();

  /** The pool key in use per integration id: a changed config gets a new pool, the old one is closed. */
  const keyById = new Map<string, string>();

  /**
   * Parsed config and settings and the pool fingerprint, by the integration's text: every
   * command carries its integration, and parsing it (zod) and hashing it cost more than
   * reading the cache. Keyed by the whole text, so a changed config is parsed afresh.
   */
  const parsed = new BoundedCache<string, Omit<Resolved, 'key'> & { fingerprint: string }>(
    PARSED_INTEGRATIONS,
  );

  function parse(integration: Integration): Omit<Resolved, 'key'> & { fingerprint: string } {
    const pooled = JSON.stringify({ c: integration.config, s: integration.secret ?? null });
    const text = `${pooled}\n${JSON.stringify(integration.settings ?? null)}`;
    return parsed.get(text, () => {
      const config: MysqlConfig = Object.freeze({
        ...parseMysqlConfig(integration.config),
        ...(services.caBundle === undefined ? {} : { extraCa: services.caBundle }),
      });
      const settings = parseMysqlSettings(integration.settings);
      const fingerprint = createHash('sha256').update(pooled).digest('hex').slice(0, 16);
      return { config, settings, fingerprint };
    });
  }

  function resolve(integration: Integration): Resolved {
    const { config, settings, fingerprint } = parse(integration);
    const key = `${integration.id}:${fingerprint}`;
    const previous = keyById.get(integration.id);
    if (previous !== key) {
      keyById.set(integration.id, key);
      if (previous !== undefined) void pools.drop(previous);
    }
    return { key, config, settings };
  }

  /**
   * The service-account secret, checked to be bound to the integration's server
   * (`config`: the integration's parsed config, from `resolve`).
   */
  async function secretOf(
    integration: Integration,
    config: MysqlConfig,
    signal: AbortSignal,
  ): Promise<ServiceSecret> {
    if (!integration.secret) {
      throw new LatchkeyError(
        'E_SECRET',
        `integration ${integration.id} names no secret for its service account`,
      );
    }
    const rdsId = lookedUpRdsId(integration);
    return resolveBoundSecret(
      services.secrets,
      integration.secret,
      { host: config.host, port: config.port, ...(rdsId !== undefined ? { rdsId } : {}) },
      signal,
    );
  }

  /** Guardrail for a pending (rotated) secret about to be used against `config`'s server. */
  function checkPending(pending: ServiceSecret, ref: SecretRef, config: MysqlConfig): void {
    checkSecretBinding(
      pending,
      ref,
      { host: config.host, port: config.port },
      bindingPolicyOf(services.secrets),
    );
  }

  function loginSource(integration: Integration, config: MysqlConfig) {
    return async (signal: AbortSignal): Promise<ServiceLogin> => {
      if (config.authType === 'iam-auth') {
        const user =
          config.username ??
          (integration.secret ? (await secretOf(integration, config, signal)).username : undefined);
        if (user === undefined) {
          throw new LatchkeyError(
            'E_INVALID',
            'iam-auth needs the service-account user name (config.username or a secret)',
          );
        }
        const region = config.region ?? '';
        // A member account's database: signed by that account's role.
        const credentials =
          config.assumeRoleArn !== undefined
            ? roleSignerCredentials(services.aws, {
                region,
                assumeRoleArn: config.assumeRoleArn,
                externalId: config.externalId,
              })
            : undefined;
        return {
          user,
          password: () =>
            tokenProvider({
              hostname: config.host,
              port: config.port,
              username: user,
              region,
              ...(credentials ? { credentials } : {}),
            }),
        };
      }
      const secret = await secretOf(integration, config, signal);
      return { user: secret.username, password: secret.password };
    };
  }

  function flavorOf(
    key: string,
    config: MysqlConfig,
    server: ServerInfo,
  ): { ops: FlavorOps; dialect: SqlDialect } {
    const k = `${key}:${server.flavor}`;
    let d = dialects.get(k);
    if (!d) {
      const settings = { accountHost: config.accountHost, metaDatabase: config.metaDatabase };
      const ops =
        server.flavor === 'mariadb' ? createMariadbOps(settings) : createMysqlOps(settings);
      d = {
        ops,
        dialect: createMysqlSqlDialect(ops, {
          ...settings,
          lockTimeoutSeconds: config.lockTimeoutSeconds,
        }),
      };
      dialects.set(k, d);
    }
    return d;
  }

  /** Runs `fn` with a scope on the integration; retries once after an authentication failure. */
  async function withScope<T>(ctx: CallContext, fn: (c: CallScope) => Promise<T>): Promise<T> {
    const { key, config, settings } = resolve(ctx.integration);
    const attempt = (login: LoginSource = loginSource(ctx.integration, config)) =>
      pools.withSession(key, config, login, ctx.signal, (session, server, user) => {
        const { ops, dialect } = flavorOf(key, config, server);
        const scope: SqlScope = {
          session,
          onDatabase: (_db, f) => f(session),
          withLockSession: (f) => f(session),
          signal: ctx.signal,
          serviceAccount: user,
          prefix: config.userPrefix,
        };
        const core: SqlCoreOptions = {
          dialect,
          iamAuth: config.granteeAuth === 'iam',
          ownedObjects: settings.ownedObjects,
          sealer: services.sealer,
          now: services.now,
          access: {
            host: config.host,
            port: config.port,
            engine: server.flavor,
            sslMode: config.sslMode,
          },
        };
        return fn({ scope, server, dialect, ops, core, session });
      });
    const ref = ctx.integration.secret;
    try {
      return await attempt();
    } catch (err) {
      if (!isAuthFailure(err) || config.authType !== 'user-password' || !ref) throw err;
    }
    // A secret rotated by another replica: forget the cached one and the pool, once.
    services.secrets.invalidate?.(ref);
    await pools.drop(key);
    try {
      return await attempt();
    } catch (err) {
      const rotation = services.secrets.rotation;
      if (!isAuthFailure(err) || !rotation) throw err;
      // A rotation interrupted after the password change: AWSPENDING is the one that works.
      const pending = await rotation.getPendingSecret(ref, ctx.signal);
      if (pending === null) throw err;
      checkPending(pending, ref, config);
      ctx.logger.warn(
        { integrationId: ctx.integration.id },
        'service-account login works only with the AWSPENDING secret; run rotate serviceAccount to finish the rotation',
      );
      await pools.drop(key);
      return attempt(() => Promise.resolve({ user: pending.username, password: pending.password }));
    }
  }

  async function discover(ctx: CallContext, params?: DiscoverParams): Promise<DiscoverOutput> {
    return withScope(ctx, async ({ session, ops, scope, server }) => {
      try {
        const { config } = resolve(ctx.integration);
        const dbRows = await run(session, {
          sql: 'SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME',
        });
        const hidden = (db: string): boolean =>
          (!config.showSystemSchemas && isSystemSchema(db)) || db === config.metaDatabase;
        const databases = dbRows
          .map((r) => str(r, 'name'))
          .filter((db) => db !== '' && !hidden(db));
        const tableRows = await run(session, {
          sql:
            'SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name, TABLE_TYPE AS kind, ENGINE AS engine FROM information_schema.TABLES ' +
            `WHERE TABLE_SCHEMA NOT IN (${SYSTEM_SCHEMAS.map(() => '?').join(', ')}) ORDER BY TABLE_SCHEMA, TABLE_NAME`,
          values: [...SYSTEM_SCHEMAS],
        });
        const roles = await ops.listRoles(session, scope.prefix);
        const output: DiscoverOutput = {
          resources: [],
          permissions: [...BASE_PERMISSIONS],
          warnings: [],
        };
        const grants = parseShowGrants(grantLinesOf(await run(session, { sql: 'SHOW GRANTS' })));
        if (!holds(grants, 'SHOW DATABASES', '*.*')) {
          output.warnings.push({
            code: 'E_PRIVILEGE',
            message:
              'the service account lacks SHOW DATABASES: only databases it holds a privilege on are listed (GRANT SHOW DATABASES ON *.* to it)',
          });
        }
        for (const db of databases) {
          output.resources.push({
            id: databaseId(db),
            name: db,
            type: 'database',
            metadata: { engine: server.flavor, system: isSystemSchema(db) },
          });
        }
        const shown = new Set(databases);
        for (const r of tableRows) {
          const db = str(r, 'db');
          if (!shown.has(db)) continue;
          const name = str(r, 'name');
          output.resources.push({
            id: tableId(db, null, name),
            name,
            type: 'table',
            parentId: databaseId(db),
            metadata: {
              database: db,
              kind: str(r, 'kind') === 'VIEW' ? 'view' : 'table',
              storageEngine: str(r, 'engine'),
            },
          });
        }
        const seenRoles = new Set<string>();
        const guarded = guardedDatabases(config.metaDatabase);
        for (const role of roles) {
          if (seenRoles.has(role.name)) continue;
          seenRoles.add(role.name);
          // Same rule as grant (validateGrant): every host of the name, the whole closure.
          let why: string | null = null;
          for (const r of roles.filter((x) => x.name === role.name)) {
            why ??= await dangerousRolePath(session, ops, r, guarded);
          }
          output.resources.push({
            id: roleId(role.name),
            name: role.name,
            type: 'role',
            metadata:
              why === null
                ? { host: role.host, grantable: true }
                : { host: role.host, grantable: false, notGrantableBecause: why },
          });
          if (why === null) {
            output.permissions.push({
              id: `role:${role.name}`,
              name: `Member of role ${role.name}`,
            });
          }
        }
        if (params?.include?.includes('privileges') === true) {
          const snapshot = await snapshotOf(session, ops, inventorySettings(config));
          const { inventory } = buildInventory(snapshot);
          if (ctx.sink === undefined) output.inventory = inventory;
          else {
            // The agent's spool: resources first, then the inventory page by page, so the
            // result is never one string in memory (src/controlplane/spool.ts).
            await ctx.sink.resources(output.resources.splice(0));
            await ctx.sink.inventory(inventory.principals);
            for (let i = 0; i < inventory.entries.length; i += INVENTORY_SINK_PAGE) {
              await ctx.sink.entries(inventory.entries.slice(i, i + INVENTORY_SINK_PAGE));
            }
          }
        }
        return output;
      } catch (err) {
        throw mapMysqlError(err, 'discovering databases, tables and roles', ctx.signal);
      }
    });
  }

  async function check(ctx: CallContext): Promise<CheckOutput> {
    const checks: CheckOutput['checks'] = [];
    let serverVersion: string | undefined;
    try {
      const { config } = resolve(ctx.integration);
      await withScope(ctx, async ({ session, server, ops }) => {
        serverVersion = server.version;
        checks.push({
          name: 'connect',
          ok: true,
          detail: `connected to ${config.host}:${config.port} (${server.flavor} ${server.version}, sslMode ${config.sslMode})`,
        });
        try {
          checks.push(
            ...(await privilegeChecks(session, ops, [
              ...REQUIRED_PRIVILEGES,
              ...ops.extraRequiredPrivileges,
            ])),
          );
          {
            const sched = await run(session, { sql: 'SELECT @@GLOBAL.event_scheduler AS s' });
            const state = (sched[0] === undefined ? '' : str(sched[0], 's')).toUpperCase();
            checks.push({
              name: 'event scheduler (server-side expiry)',
              ok: true,
              detail:
                state === 'ON'
                  ? 'ON: a grant with expiresAt is ended on the server by its EVENT at expiry, even with no agent running'
                  : `${state || 'unknown'}: grants end at expiry only when an agent sweeps (within one sweep interval). ` +
                    'For server-side expiry set event_scheduler=ON in the server configuration (RDS: the parameter group)',
            });
          }
          checks.push({
            name: 'note',
            ok: true,
            detail:
              'privileges are read from SHOW GRANTS of the service account and its active role only',
          });
        } catch (err) {
          const e = mapMysqlError(err, 'reading SHOW GRANTS', ctx.signal);
          checks.push({ name: 'privileges', ok: false, detail: e.message });
        }
      });
    } catch (err) {
      const e = isLatchkeyError(err) ? err : mapMysqlError(err, 'connecting', ctx.signal);
      if (e.code === 'E_CANCELLED' || e.code === 'E_TIMEOUT') throw e;
      checks.push({ name: 'connect', ok: false, detail: `${e.code}: ${e.message}` });
    }
    const out: CheckOutput = { ok: checks.every((c) => c.ok), checks };
    if (serverVersion !== undefined) out.serverVersion = serverVersion;
    return out;
  }

  /** Two-phase rotation; the new password stays in the secret store (nothing is returned). */
  async function rotateServiceAccount(ctx: CallContext): Promise<RotateOutput> {
    const { key, config } = resolve(ctx.integration);
    if (config.authType === 'iam-auth') {
      throw new LatchkeyError(
        'E_UNSUPPORTED',
        'an IAM-auth service account has no password to rotate',
      );
    }
    const ref: SecretRef | undefined = ctx.integration.secret;
    const rotation = services.secrets.rotation;
    if (!ref || ref.store !== 'aws-secrets-manager' || !rotation) {
      throw new LatchkeyError(
        'E_UNSUPPORTED',
        'service-account rotation needs a secret in AWS Secrets Manager',
      );
    }
    const current = await secretOf(ctx.integration, config, ctx.signal);
    // The flow only uses the dialect to map errors, which is the same for both flavors.
    const settings = { accountHost: config.accountHost, metaDatabase: config.metaDatabase };
    const dialect = createMysqlSqlDialect(createMysqlOps(settings), {
      ...settings,
      lockTimeoutSeconds: config.lockTimeoutSeconds,
    });
    return rotateServiceAccountFlow(dialect, ctx.signal, {
      username: current.username,
      putPending: async (password) =>
        (await rotation.putPendingSecret(ref, { ...current, password }, ctx.signal)).versionId,
      getPending: async () => {
        const pending = await rotation.getPendingSecret(ref, ctx.signal);
        if (pending === null || pending.username !== current.username) return null;
        checkPending(pending, ref, config);
        return { token: pending.versionId, password: pending.password };
      },
      setPassword: async (password) => {
        // Log in with the current password, or with the new one when an interrupted run already set it.
        await withOwnConnection(
          config,
          current.username,
          [current.password, password],
          ctx.signal,
          async (session) => {
            // MariaDB accepts `ALTER USER CURRENT_USER()` but does not apply it: name the account.
            const who = await run(session, { sql: 'SELECT CURRENT_USER() AS cu' });
            const cu = who[0] === undefined ? '' : str(who[0], 'cu');
            const at = cu.lastIndexOf('@');
            if (at < 0)
              throw new LatchkeyError('E_INTERNAL', 'cannot read the service account name');
            const account = `${quoteIdent(cu.slice(0, at))}@${quoteIdent(cu.slice(at + 1))}`;
            await run(session, {
              sql: `ALTER USER ${account} IDENTIFIED BY ?`,
              values: [password],
            });
          },
        );
      },
      verifyLogin: (password) =>
        verifyLogin(config, { user: current.username, password }, ctx.signal),
      promote: (token) => rotation.promotePendingSecret(ref, token, ctx.signal),
      afterPromote: async () => {
        services.secrets.invalidate?.(ref);
        await pools.drop(key);
      },
    });
  }

  const driver: Driver = {
    type: MYSQL_DRIVER_TYPE,
    kinds: ['discover', 'grant', 'revoke', 'rotate', 'cleanup', 'check'],
    discover,
    check,
    grant: (ctx: CallContext, params: GrantParams): Promise<GrantOutput> =>
      withScope(ctx, ({ core, scope }) => grantFlow(core, scope, params)),
    revoke: (ctx: CallContext, params: RevokeParams): Promise<RevokeOutput> =>
      withScope(ctx, ({ core, scope }) =>
        revokeFlow(core, scope, {
          grantId: params.grantId,
          grantee: params.grantee,
          ...(params.terminateSessions === undefined
            ? {}
            : { terminateSessions: params.terminateSessions }),
        }),
      ),
    rotate: (ctx: CallContext, params: RotateParams): Promise<RotateOutput> => {
      const target = params.target;
      if ('serviceAccount' in target) return rotateServiceAccount(ctx);
      return withScope(ctx, ({ core, scope }) =>
        rotateGranteeFlow(core, scope, {
          email: target.grantee.email,
          ...(params.recipientKey === undefined ? {} : { recipientKey: params.recipientKey }),
        }),
      );
    },
    cleanup: (ctx: CallContext, params: CleanupParams): Promise<CleanupOutput> =>
      withScope(ctx, async ({ core, scope }) => {
        // Names without our prefix are never ours: say so, instead of "dropped" for an absent one.
        const names = [...new Set(params.usernames)];
        const ours = names.filter((u) => u.startsWith(scope.prefix) && u !== scope.serviceAccount);
        const result =
          ours.length > 0
            ? await cleanupFlow(core, scope, { usernames: ours })
            : { dropped: [], kept: [] };
        const out: CleanupOutput = { dropped: [], kept: [] };
        for (const u of names) {
          if (result.dropped.includes(u)) {
            out.dropped.push(u);
            continue;
          }
          const kept = result.kept.find((k) => k.username === u);
          if (kept) out.kept.push(kept);
          else if (u === scope.serviceAccount) {
            out.kept.push({
              username: u,
              reason: 'the service account is never cleaned up',
              code: 'E_NOT_MANAGED',
            });
          } else {
            out.kept.push({
              username: u,
              reason: `not created by Latchkey (no ${scope.prefix} prefix)`,
              code: 'E_NOT_MANAGED',
            });
          }
        }
        return out;
      }),
    removeStanding: (ctx: CallContext, params: StandingCleanupParams): Promise<CleanupOutput> =>
      withScope(ctx, async ({ session, ops }) => {
        try {
          const { config } = resolve(ctx.integration);
          return await removeStandingOn(session, ops, inventorySettings(config), params);
        } catch (err) {
          throw mapMysqlError(err, 'removing standing access', ctx.signal);
        }
      }),
    sweep: (ctx: CallContext): Promise<SweepReport> =>
      withScope(ctx, ({ core, scope }) => sweepFlow(core, scope)),
    close: () => pools.close(),
  };
  return driver;
}

function inventorySettings(config: MysqlConfig) {
  return {
    prefix: config.userPrefix,
    metaDatabase: config.metaDatabase,
    protectedAccounts: config.protectedAccounts,
  };
}

function isAuthFailure(err: unknown): boolean {
  if (!isLatchkeyError(err) || err.code !== 'E_CONNECT') return false;
  const errno = err.details?.errno;
  return errno === 1045;
}

/** One dedicated connection as `user`, trying each password in turn (rotation). */
async function withOwnConnection<T>(
  config: MysqlConfig,
  user: string,
  passwords: string[],
  signal: AbortSignal,
  fn: (session: SqlSession) => Promise<T>,
): Promise<T> {
  const ca = await caFor(config);
  let lastError: unknown;
  for (const password of passwords) {
    for (const ssl of tlsAttempts(config.sslMode, ca)) {
      throwIfAborted(signal);
      let conn: mysql.Connection | undefined;
      try {
        const connecting = mysql.createConnection({
          host: config.host,
          port: config.port,
          user,
          password,
          ...(ssl === undefined ? {} : { ssl }),
          connectTimeout: config.connectTimeoutMs,
        });
        conn = await raceAbort(connecting, signal, () => {
          connecting.then((c) => c.destroy()).catch(() => undefined);
        });
      } catch (err) {
        lastError = err;
        const code = (err as { code?: unknown }).code;
        if (code === 'HANDSHAKE_NO_SSL_SUPPORT' || mysqlErrno(err) === 3159) continue;
        break;
      }
      const state: ConnectionState = { broken: false };
      watchConnection(conn, state);
      const session = connectionSession(conn, signal, state);
      try {
        await prepareSession(conn);
        return await fn(session);
      } catch (err) {
        throw mapMysqlError(err, 'changing the service-account password', signal);
      } finally {
        session.release();
        if (state.broken) conn.destroy();
        else await conn.end().catch(() => undefined);
      }
    }
  }
  throw mapMysqlError(lastError, 'logging in as the service account', signal);
}
