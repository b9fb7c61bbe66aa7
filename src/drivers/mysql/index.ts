/** The `mysql` driver (MySQL 8.0/8.4 and MariaDB 10.6+). See docs/drivers/mysql.md. */
import type { DriverFactory } from '../driver.js';
import { createMysqlDriver } from './driver.js';
import { withRdsEndpoint } from '../sql/rds-endpoint.js';

export { createMysqlDriver, MYSQL_DRIVER_TYPE } from './driver.js';
export type { MysqlDriverOptions } from './driver.js';
export {
  parseMysqlConfig,
  parseMysqlSettings,
  MysqlConfigSchema,
  MysqlSettingsSchema,
} from './config.js';
export type { MysqlConfig, MysqlConfigInput, MysqlSettings } from './config.js';
export { mapMysqlError } from './errors.js';

export const driverFactory: DriverFactory = (services) =>
  withRdsEndpoint(createMysqlDriver(services), services, 'mysql');
