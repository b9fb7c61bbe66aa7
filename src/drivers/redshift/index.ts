/** The `redshift` driver (provisioned clusters and serverless workgroups). */
import type { DriverFactory } from '../driver.js';
import { RedshiftDriver } from './driver.js';

export const driverFactory: DriverFactory = (services) => new RedshiftDriver(services);

export { RedshiftDriver, createRedshiftDriver } from './driver.js';
export { parseRedshiftConfig } from './config.js';
export type { RedshiftConfig } from './config.js';
export { RedshiftDialect, redshiftPasswordHash } from './dialect.js';
export { mapRedshiftError } from './errors.js';
