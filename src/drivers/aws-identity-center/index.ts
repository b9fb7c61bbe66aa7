import type { DriverFactory } from '../driver.js';
import { AwsIdentityCenterDriver } from './driver.js';

export { AwsIdentityCenterDriver, parseGrant } from './driver.js';
export { AwsIdentityCenterConfigSchema, type AwsIdentityCenterConfig } from './config.js';

export const driverFactory: DriverFactory = (services) => new AwsIdentityCenterDriver(services);
