import type { DriverFactory } from '../driver.js';
import { AwsDiscoveryDriver } from './driver.js';

export { AwsDiscoveryDriver, type AwsDiscoveryDriverOptions } from './driver.js';
export {
  AwsDiscoveryConfigSchema,
  parseDiscoveryConfig,
  type AwsDiscoveryConfig,
  type AwsDiscoveryConfigInput,
} from './config.js';
export { readConnectorTags, tagKeys } from './tags.js';
export { subIntegrationId, toSubIntegration, engineType } from './discover.js';

export const driverFactory: DriverFactory = (services) => new AwsDiscoveryDriver(services);
