/**
 * PostgreSQL test environment for the SQL drivers: a per-file service account
 * (CREATEROLE, CREATEDB, pg_signal_backend, not superuser), databases it owns, a unique
 * user prefix, and teardown that drops everything with that prefix.
 *
 * Roles are cluster-wide: every test file gets its own `lk_t<random>_` prefix so that
 * parallel files (and other engineers' tests) never see each other's roles.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import pg from 'pg';
import pino from 'pino';
import type { CallContext, DriverServices } from '../../src/drivers/driver.js';
import { PostgresDriver, type PgDriverOptions } from '../../src/drivers/postgres/driver.js';
import type { Integration } from '../../src/protocol/messages.js';
import { createSealer, open } from '../../src/protocol/seal.js';
import { generateRecipientKeyPair } from '../../src/protocol/keys.js';
import type { SecretResolver, ServiceSecret } from '../../src/secrets/types.js';
import type { AwsClientFactory } from '../../src/aws/types.js';
import { pgTestUrl } from './endpoints.js';

export function pgEndpoint(): {
  host: string;
  port: number;
  adminUser: string;
  adminPassword: string | undefined;
} {
  const url = new URL(pgTestUrl());
  return {
    host: url.hostname,
    port: url.port ? Number(url.port) : 5432,
    adminUser: decodeURIComponent(url.username || 'postgres'),
    adminPassword: url.password ? decodeURIComponent(url.password) : undefined,
  };
}

/** A superuser client on `database` (default: the URL's database). Caller ends it. */
export async function adminClient(database?: string): Promise<pg.Client> {
  const url = new URL(pgTestUrl());
  if (database !== undefined) url.pathname = `/${encodeURIComponent(database)}`;
  const client = new pg.Client({ connectionString: url.toString() });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

export function q(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Whether `password` matches a stored `SCRAM-SHA-256$…` verifier (`pg_authid.rolpassword`). */
export function scramMatches(stored: string | null, password: string): boolean {
  const m = stored ? /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(stored) : null;
  if (!m) return false;
  const salted = pbkdf2Sync(
    password,
    Buffer.from(m[2] ?? '', 'base64'),
    Number(m[1]),
    32,
    'sha256',
  );
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return createHash('sha256').update(clientKey).digest('base64') === m[3];
}

export function randomSuffix(): string {
  return randomBytes(4).toString('hex');
}

/** A fixed-secret resolver (the test service account has no password under trust auth). */
export function staticSecrets(
  secret: Omit<ServiceSecret, 'extra'>,
): SecretResolver & { invalidated: number } {
  const r = {
    invalidated: 0,
    resolve: () => Promise.resolve({ ...secret, extra: {} }),
    invalidate: () => {
      r.invalidated++;
    },
  };
  return r;
}

export const noAws: AwsClientFactory = {
  client: () => {
    throw new Error('AWS is not reachable in tests');
  },
};

export function testServices(
  secrets: SecretResolver,
  now: () => Date = () => new Date(),
): DriverServices {
  return {
    logger: pino({ level: 'silent' }),
    secrets,
    aws: noAws,
    sealer: createSealer({ allowPlaintext: false }),
    tagPrefix: 'latchkey',
    now,
  };
}

/**
 * A postgres driver logged in as the env's service account (trust auth: no password),
 * with sealed credentials; the caller closes it.
 */
export function serviceDriver(
  env: Pick<PgTestEnv, 'serviceAccount'>,
  options: PgDriverOptions = {},
  now?: () => Date,
): PostgresDriver {
  return new PostgresDriver(
    testServices(staticSecrets({ username: env.serviceAccount, password: '' }), now),
    options,
  );
}

export function ctxFor(
  integration: Integration,
  signal: AbortSignal = AbortSignal.timeout(60_000),
): CallContext {
  return {
    commandId: `cmd-${randomSuffix()}`,
    integration,
    signal,
    logger: pino({ level: 'silent' }),
  };
}

export interface PgTestEnv {
  suffix: string;
  /** `lk_t<suffix>_`: the driver's userPrefix and the prefix of every test object. */
  prefix: string;
  serviceAccount: string;
  /** Databases created for this file, owned by the service account. */
  databases: string[];
  integration: Integration;
  recipient: { publicKey: string; privateKeyPem: string };
  openCredentials(creds: unknown): Record<string, string>;
  /** A client logged in as `user` on `database`. Caller ends it. */
  connectAs(user: string, database: string, password?: string): Promise<pg.Client>;
  /** Runs SQL as the service account on `database`. */
  asService<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T>;
  /** Runs SQL as the superuser. */
  asAdmin<T>(database: string | undefined, fn: (c: pg.Client) => Promise<T>): Promise<T>;
  /** True when `password` matches the role's stored SCRAM verifier (trust auth ignores passwords). */
  passwordMatches(user: string, password: string): Promise<boolean>;
  teardown(): Promise<void>;
}

/**
 * Creates a service account `lk_t<sfx>_svc` and `count` databases `lk_t<sfx>_db<i>`
 * owned by it. The integration uses the first database as its maintenance database
 * and only visits the file's own databases.
 */
export async function createPgTestEnv(
  opts: { databases?: number; label?: string } = {},
): Promise<PgTestEnv> {
  const suffix = randomSuffix();
  const prefix = `lk_t${suffix}_`;
  const serviceAccount = `${prefix}svc`;
  const databases = Array.from({ length: opts.databases ?? 1 }, (_, i) => `${prefix}db${i}`);
  const ep = pgEndpoint();
  const admin = await adminClient();
  try {
    await admin.query(`CREATE ROLE ${q(serviceAccount)} LOGIN CREATEROLE CREATEDB NOSUPERUSER`);
    await admin.query(`GRANT pg_signal_backend TO ${q(serviceAccount)}`);
    for (const db of databases)
      await admin.query(`CREATE DATABASE ${q(db)} OWNER ${q(serviceAccount)}`);
  } finally {
    await admin.end();
  }
  const recipient = generateRecipientKeyPair();
  const integration: Integration = {
    id: `pg-${suffix}`,
    type: 'postgres',
    config: {
      host: ep.host,
      port: ep.port,
      database: databases[0],
      sslMode: 'disable',
      userPrefix: prefix,
      databases,
    },
    // The env store only reads prefixes under LATCHKEY_SECRET_ (LATCHKEY_SECRET_ENV_PREFIXES).
    secret: { store: 'env', prefix: `LATCHKEY_SECRET_T${suffix.toUpperCase()}_` },
  };

  async function connectAs(
    user: string,
    database: string,
    password = 'unused',
  ): Promise<pg.Client> {
    const c = new pg.Client({ host: ep.host, port: ep.port, user, password, database });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  }

  return {
    suffix,
    prefix,
    serviceAccount,
    databases,
    integration,
    recipient,
    openCredentials(creds: unknown): Record<string, string> {
      const sealed = (creds as { sealed?: unknown }).sealed;
      if (sealed === undefined) throw new Error('credentials are not sealed');
      return open(recipient.privateKeyPem, sealed as Parameters<typeof open>[1]);
    },
    connectAs,
    async asService<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
      const c = await connectAs(serviceAccount, database);
      try {
        return await fn(c);
      } finally {
        await c.end();
      }
    },
    async asAdmin<T>(database: string | undefined, fn: (c: pg.Client) => Promise<T>): Promise<T> {
      const c = await adminClient(database);
      try {
        return await fn(c);
      } finally {
        await c.end();
      }
    },
    async passwordMatches(user: string, password: string): Promise<boolean> {
      const c = await adminClient();
      try {
        const r = await c.query<{ p: string | null }>(
          'SELECT rolpassword AS p FROM pg_authid WHERE rolname = $1',
          [user],
        );
        return scramMatches(r.rows[0]?.p ?? null, password);
      } finally {
        await c.end();
      }
    },
    async teardown(): Promise<void> {
      await dropPrefixed(prefix, databases);
    },
  };
}

/** Drops the given databases and every role starting with `prefix`. */
export async function dropPrefixed(prefix: string, databases: string[]): Promise<void> {
  const admin = await adminClient();
  try {
    for (const db of databases) await admin.query(`DROP DATABASE IF EXISTS ${q(db)} WITH (FORCE)`);
    const roles = await admin.query<{ rolname: string }>(
      'SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY rolname',
      [prefix],
    );
    await admin.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE starts_with(usename, $1)',
      [prefix],
    );
    // Privileges in the admin database (granted by tests there) would block DROP ROLE.
    for (const r of roles.rows)
      await admin.query(`DROP OWNED BY ${q(r.rolname)}`).catch(() => undefined);
    // Members first (users), then roles they were granted, then the service account.
    const ordered = [...roles.rows.map((r) => r.rolname)].sort(
      (a, b) => rank(a, prefix) - rank(b, prefix),
    );
    for (const r of ordered)
      await admin.query(`DROP ROLE IF EXISTS ${q(r)}`).catch(() => undefined);
  } finally {
    await admin.end();
  }
}

function rank(role: string, prefix: string): number {
  if (role === `${prefix}svc`) return 2;
  if (role.startsWith(`${prefix}g_`)) return 1;
  return 0;
}
