/**
 * Redshift errors: Redshift reports PostgreSQL SQLSTATEs, so the mapping is the
 * PostgreSQL one (`postgres/errors.ts`); GetClusterCredentials errors are mapped by
 * `secrets/iam-auth.ts`.
 */
export { mapPgError as mapRedshiftError } from '../postgres/errors.js';
