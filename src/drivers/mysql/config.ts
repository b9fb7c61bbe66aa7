/**
 * Configuration of a `mysql` integration (MySQL 8.0/8.4 and MariaDB 10.6+).
 *
 * Raw `integration.config` → zod (defaults) → frozen, typed `MysqlConfig`. Every option is
 * documented here once, with its default; docs/drivers/mysql.md repeats the table.
 */
import { ExternalIdSchema, RoleArnSchema } from '../../aws/config.js';
import { z } from 'zod';
import { LatchkeyError } from '../../errors.js';
import { DEFAULT_USER_PREFIX, USER_PREFIX_PATTERN } from '../sql/username.js';
import { RDS_CA_BUNDLE } from '../sql/tls.js';
import { RdsIdFields } from '../sql/rds-endpoint.js';

export const SSL_MODES = [
  'disable',
  'allow',
  'prefer',
  'require',
  'verify-ca',
  'verify-full',
] as const;
export type SslMode = (typeof SSL_MODES)[number];

export const FLAVORS = ['mysql', 'mariadb', 'auto'] as const;
export type Flavor = Exclude<(typeof FLAVORS)[number], 'auto'>;

/** The built-in Amazon RDS CA bundle of mysql2 (all regions), usable as `caBundle: "aws-rds"`. */
export { RDS_CA_BUNDLE };

const Port = z.coerce.number().int().min(1).max(65535);

export const MysqlConfigSchema = z.strictObject({
  /** Server host name or IP; or give `rdsInstanceId` / `rdsClusterId` with `region`. */
  host: z.string().min(1).max(255).optional(),
  ...RdsIdFields,
  /** TCP port. Default 3306. */
  port: Port.default(3306),
  /**
   * TLS mode, as libpq names them. Default `prefer` for `user-password`, `verify-full`
   * for `iam-auth` (IAM tokens are only ever sent over verified TLS).
   */
  sslMode: z.enum(SSL_MODES).optional(),
  /**
   * CA certificates for `verify-ca`/`verify-full` (and `require` when given): PEM text,
   * an absolute path to a PEM file, or `aws-rds` for the Amazon RDS bundle shipped with
   * mysql2. Default: the Node.js trust store (or `aws-rds` with `iam-auth`).
   */
  caBundle: z.string().min(1).max(1_000_000).optional(),
  /** How the service account logs in. Default `user-password` (from `integration.secret`). */
  authType: z.enum(['user-password', 'iam-auth']).default('user-password'),
  /** AWS region of the RDS instance; required with `iam-auth`. */
  region: z.string().min(1).max(64).optional(),
  /** Service-account user name for `iam-auth` when no secret names it. */
  username: z.string().min(1).max(80).optional(),
  /**
   * `iam-auth` signs with this role (a database in an AWS Organization member account: that
   * account's member role, as aws-discovery emits it); must match the allowed role pattern.
   */
  assumeRoleArn: RoleArnSchema.optional(),
  /** External id sent with `assumeRoleArn`. */
  externalId: ExternalIdSchema.optional(),
  /** `mysql`, `mariadb`, or `auto` (detected from `VERSION()`). Default `auto`. */
  flavor: z.enum(FLAVORS).default('auto'),
  /** Host part of the accounts Latchkey creates (`'user'@'<accountHost>'`). Default `%`. */
  accountHost: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[^\0`]+$/, 'no NUL or backtick')
    .default('%'),
  /** Prefix of every user and role Latchkey creates. Default `lk_`. */
  userPrefix: z.string().regex(USER_PREFIX_PATTERN).default(DEFAULT_USER_PREFIX),
  /**
   * How grantee accounts authenticate: `password` (a strong generated password, sealed
   * to the requester) or `iam` (RDS MySQL `AWSAuthenticationPlugin`; no password exists).
   * Default `password`.
   */
  granteeAuth: z.enum(['password', 'iam']).default('password'),
  /**
   * MariaDB only: database holding Latchkey's grant and user records
   * (`<metaDatabase>.grants`, `<metaDatabase>.users`), created on first grant. Default `latchkey`.
   */
  metaDatabase: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9_$]+$/, 'letters, digits, _ and $ only')
    .default('latchkey'),
  /** Show `mysql`, `sys`, `information_schema`, `performance_schema` in discover. Default false. */
  showSystemSchemas: z.boolean().default(false),
  /** Connections per integration pool. Default 4. */
  poolSize: z.number().int().min(1).max(64).default(4),
  /** TCP connect timeout. Default 10000 ms. */
  connectTimeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  /** How long to wait for the per-user lock (`GET_LOCK`) before `E_CONFLICT`. Default 10 s. */
  lockTimeoutSeconds: z.number().int().min(0).max(300).default(10),
  /**
   * Accounts and roles a standing cleanup (`cleanup` with `standing`) never changes, besides
   * the service account, the engine's own accounts and Latchkey's own: `name` (every host)
   * or `name@host`. Flagged `protected` in the access inventory. Default none.
   */
  protectedAccounts: z.array(z.string().min(1).max(400)).max(1000).default([]),
});

export type MysqlConfigInput = z.input<typeof MysqlConfigSchema>;

export interface MysqlConfig {
  readonly host: string;
  readonly port: number;
  readonly sslMode: SslMode;
  readonly caBundle: string | undefined;
  /** PEM of `LATCHKEY_CA_BUNDLE_FILE`, added by the driver (`DriverServices.caBundle`). */
  readonly extraCa?: string;
  readonly authType: 'user-password' | 'iam-auth';
  readonly region: string | undefined;
  readonly username: string | undefined;
  readonly assumeRoleArn: string | undefined;
  readonly externalId: string | undefined;
  readonly flavor: Flavor | 'auto';
  readonly accountHost: string;
  readonly userPrefix: string;
  readonly granteeAuth: 'password' | 'iam';
  readonly metaDatabase: string;
  readonly showSystemSchemas: boolean;
  readonly poolSize: number;
  readonly connectTimeoutMs: number;
  readonly lockTimeoutSeconds: number;
  readonly protectedAccounts: readonly string[];
}

const HOST_REQUIRED = 'host: required (or rdsInstanceId / rdsClusterId with region)';

/** `host`, or an RDS id that `withRdsEndpoint` turns into one. */
function hostGiven(raw: unknown): boolean {
  if (typeof raw !== 'object' || raw === null) return false;
  const r = raw as Record<string, unknown>;
  return (
    r['host'] !== undefined || r['rdsInstanceId'] !== undefined || r['rdsClusterId'] !== undefined
  );
}

/** Parses `integration.config`; every problem is listed in one `E_INVALID`. */
export function parseMysqlConfig(raw: unknown): MysqlConfig {
  const parsed = MysqlConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `${i.path.length > 0 ? i.path.join('.') : 'config'}: ${i.message}`,
    );
    if (!hostGiven(raw)) problems.unshift(HOST_REQUIRED);
    throw new LatchkeyError(
      'E_INVALID',
      `invalid mysql integration config: ${problems.join('; ')}`,
    );
  }
  const c = parsed.data;
  const iam = c.authType === 'iam-auth';
  const sslMode: SslMode = c.sslMode ?? (iam ? 'verify-full' : 'prefer');
  const problems: string[] = [];
  if (iam && !['require', 'verify-ca', 'verify-full'].includes(sslMode)) {
    problems.push(
      `sslMode: iam-auth sends the token in clear text and needs TLS (require, verify-ca or verify-full), not ${sslMode}`,
    );
  }
  if (iam && c.region === undefined) problems.push('region: required with authType iam-auth');
  // `withRdsEndpoint` fills `host` from `rdsInstanceId` / `rdsClusterId` before this runs.
  if (c.host === undefined) problems.push(HOST_REQUIRED);
  if (problems.length > 0) {
    throw new LatchkeyError(
      'E_INVALID',
      `invalid mysql integration config: ${problems.join('; ')}`,
    );
  }
  return Object.freeze({
    host: c.host ?? '',
    port: c.port,
    sslMode,
    caBundle: c.caBundle ?? (iam ? RDS_CA_BUNDLE : undefined),
    authType: c.authType,
    region: c.region,
    username: c.username,
    assumeRoleArn: c.assumeRoleArn,
    externalId: c.externalId,
    flavor: c.flavor,
    accountHost: c.accountHost,
    userPrefix: c.userPrefix,
    granteeAuth: c.granteeAuth,
    metaDatabase: c.metaDatabase,
    showSystemSchemas: c.showSystemSchemas,
    poolSize: c.poolSize,
    connectTimeoutMs: c.connectTimeoutMs,
    lockTimeoutSeconds: c.lockTimeoutSeconds,
    protectedAccounts: Object.freeze([...c.protectedAccounts]),
  });
}

export const MysqlSettingsSchema = z.strictObject({
  /**
   * On cleanup, what happens to views, routines, triggers and events the user is the
   * DEFINER of: `reassign` (default) refuses to drop such a user (MySQL cannot change a
   * definer in place) and says which objects; `drop` drops them first.
   */
  ownedObjects: z.enum(['reassign', 'drop']).optional(),
  /** Same, in the DESIGN's words: `true` means `ownedObjects: drop`. */
  dropOwnedObjects: z.boolean().optional(),
});

export interface MysqlSettings {
  readonly ownedObjects: 'reassign' | 'drop';
}

/** Parses `integration.settings`. @throws LatchkeyError E_INVALID */
export function parseMysqlSettings(raw: unknown): MysqlSettings {
  const parsed = MysqlSettingsSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `${i.path.join('.') || 'settings'}: ${i.message}`,
    );
    throw new LatchkeyError(
      'E_INVALID',
      `invalid mysql integration settings: ${problems.join('; ')}`,
    );
  }
  const s = parsed.data;
  return Object.freeze({
    ownedObjects: s.ownedObjects ?? (s.dropOwnedObjects === true ? 'drop' : 'reassign'),
  });
}
