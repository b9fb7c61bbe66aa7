/**
 * Environment secret store, for local use and the demo: `<prefix>USERNAME`,
 * `<prefix>PASSWORD` and optionally `<prefix>HOST`, `<prefix>PORT`, `<prefix>DBNAME`.
 * No other variable is read (so a prefix like `LATCHKEY_` cannot pull the connector
 * token into a secret), and `extra` is always empty. An empty (but set) password is
 * accepted here only, for local servers that have none (MariaDB `root` in docker-compose).
 *
 * With `allowedPrefixes` (the resolver always passes them; default `LATCHKEY_SECRET_`), a
 * ref whose prefix does not start with one of them is refused (`E_GUARDRAIL`), so a command
 * cannot read another program's variables (`PGUSERNAME`/`PGPASSWORD`, `DB_PASSWORD`…).
 */
import { LatchkeyError } from '../errors.js';
import type { SecretRef } from '../protocol/messages.js';
import { toServiceSecret } from './fields.js';
import type { ServiceSecret } from './types.js';

export type EnvSecretRef = Extract<SecretRef, { store: 'env' }>;

const FIELDS = ['username', 'password', 'host', 'port', 'dbname'] as const;

/** Default of `LATCHKEY_SECRET_ENV_PREFIXES`. */
export const DEFAULT_SECRET_ENV_PREFIXES: readonly string[] = Object.freeze(['LATCHKEY_SECRET_']);

export interface EnvSecretStoreOptions {
  /** Prefixes a ref's `prefix` must start with; unrestricted when absent. */
  allowedPrefixes?: readonly string[];
}

export function readEnvSecret(
  ref: EnvSecretRef,
  env: NodeJS.ProcessEnv,
  opts: EnvSecretStoreOptions = {},
): ServiceSecret {
  const allowed = opts.allowedPrefixes;
  if (allowed && !allowed.some((p) => p !== '' && ref.prefix.startsWith(p))) {
    throw new LatchkeyError(
      'E_GUARDRAIL',
      `env secret prefix ${ref.prefix} is not allowed: it must start with ${allowed.join(' or ') || '(no prefix is allowed)'} (LATCHKEY_SECRET_ENV_PREFIXES)`,
      { details: { guardrail: 'secret-env-prefixes' } },
    );
  }
  const username = env[`${ref.prefix}USERNAME`];
  if (username === undefined || username === '') {
    throw new LatchkeyError(
      'E_SECRET',
      `environment variable ${ref.prefix}USERNAME is not set or empty`,
    );
  }
  if (env[`${ref.prefix}PASSWORD`] === undefined) {
    throw new LatchkeyError('E_SECRET', `environment variable ${ref.prefix}PASSWORD is not set`);
  }
  const fields: Record<string, string> = {};
  for (const field of FIELDS) {
    const value = env[`${ref.prefix}${field.toUpperCase()}`];
    if (value !== undefined) fields[field] = value;
  }
  return toServiceSecret(fields, `environment variables ${ref.prefix}*`, {
    allowEmptyPassword: true,
  });
}
