import type { DriverFactory } from '../driver.js';
import { AwsEksDriver } from './driver.js';

export { AwsEksDriver, type AwsEksDriverOptions } from './driver.js';
export { AwsEksConfigSchema, type AwsEksConfig } from './config.js';
export { ACCESS_POLICIES, EKS_LEVELS, EKS_RESOURCE_TYPES, accountScope } from './scope.js';

export const driverFactory: DriverFactory = (services) => new AwsEksDriver(services);
