import type { DriverFactory } from '../driver.js';
import { AwsSsmDriver } from './driver.js';

export { AwsSsmDriver } from './driver.js';
export { AwsSsmConfigSchema, type AwsSsmConfig } from './config.js';
export { SESSION_DOCUMENTS, SSM_RESOURCE_TYPES, buildSessionPolicy } from './policy.js';

export const driverFactory: DriverFactory = (services) => new AwsSsmDriver(services);
