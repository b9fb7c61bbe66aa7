/** The `postgres` driver (PostgreSQL 12–17, RDS and self-hosted). */
import type { DriverFactory } from '../driver.js';
import { PostgresDriver } from './driver.js';
import { withRdsEndpoint } from '../sql/rds-endpoint.js';

export const driverFactory: DriverFactory = (services) =>
  withRdsEndpoint(new PostgresDriver(services), services, 'postgres');

export { PostgresDriver, createPostgresDriver } from './driver.js';
export type { PgDriverOptions } from './driver.js';
export { parsePostgresConfig, PostgresConfigSchema, PostgresSettingsSchema } from './config.js';
export type { PostgresConfig } from './config.js';
export { mapPgError } from './errors.js';
export { PostgresDialect } from './dialect.js';
