import type { DriverFactory } from '../driver.js';
import { AwsIamDriver } from './driver.js';

export { AwsIamDriver } from './driver.js';
export { AwsIamConfigSchema, IAM_RESOURCE_TYPES, type AwsIamConfig } from './config.js';
export { ACTIONS as IAM_ACTIONS, KMS_ACTIONS, buildGrantPolicy } from './policy.js';

export const driverFactory: DriverFactory = (services) => new AwsIamDriver(services);
