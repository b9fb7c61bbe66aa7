/**
 * Configuration of a `redshift` integration: the PostgreSQL fields (see
 * `postgres/config.ts`; default port 5439, maintenance database `dev`) plus:
 *
 * - `clusterIdentifier`: the provisioned cluster, for `authType: "iam-auth"`, where the
 *   service account's temporary credentials come from `redshift:GetClusterCredentials`
 *   (`DbUser` = `username`);
 * - `credentialsDurationSeconds`: 900..3600, default 900;
 * - `protectedPrincipals`: user and role names a standing cleanup never changes
 *   (Redshift has no role comments to mark them, as PostgreSQL does).
 */
import { z } from 'zod';
import { LatchkeyError } from '../../errors.js';
import type { Integration } from '../../protocol/messages.js';
import { describeIssues, parsePostgresConfig } from '../postgres/config.js';
import type { PostgresConfig } from '../postgres/config.js';

export const REDSHIFT_DEFAULT_PORT = 5439;
export const REDSHIFT_DEFAULT_DATABASE = 'dev';

const RedshiftOnlySchema = z.object({
  clusterIdentifier: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[a-z][a-z0-9-]*$/)
    .optional(),
  credentialsDurationSeconds: z.number().int().min(900).max(3600).optional(),
  protectedPrincipals: z.array(z.string().min(1).max(128)).max(1000).optional(),
});

export interface RedshiftConfig extends PostgresConfig {
  readonly clusterIdentifier: string | undefined;
  readonly credentialsDurationSeconds: number;
  readonly protectedPrincipals: readonly string[];
}

export function parseRedshiftConfig(integration: Integration): RedshiftConfig {
  const { clusterIdentifier, credentialsDurationSeconds, protectedPrincipals, ...rest } =
    integration.config;
  const own = RedshiftOnlySchema.safeParse({
    clusterIdentifier,
    credentialsDurationSeconds,
    protectedPrincipals,
  });
  if (!own.success)
    throw new LatchkeyError('E_INVALID', `invalid redshift config: ${describeIssues(own.error)}`);
  const base = parsePostgresConfig(
    { ...integration, config: rest },
    { port: REDSHIFT_DEFAULT_PORT, database: REDSHIFT_DEFAULT_DATABASE },
  );
  if (base.authType === 'iam-auth' && own.data.clusterIdentifier === undefined) {
    throw new LatchkeyError(
      'E_INVALID',
      'IAM authentication to Redshift needs config.clusterIdentifier',
    );
  }
  return Object.freeze({
    ...base,
    clusterIdentifier: own.data.clusterIdentifier,
    credentialsDurationSeconds: own.data.credentialsDurationSeconds ?? 900,
    protectedPrincipals: Object.freeze([...(own.data.protectedPrincipals ?? [])]),
  });
}
