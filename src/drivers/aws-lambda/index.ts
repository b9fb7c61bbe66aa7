import type { DriverFactory } from '../driver.js';
import { AwsLambdaDriver } from './driver.js';

export { AwsLambdaDriver, usernameFor } from './driver.js';
export { AwsLambdaConfigSchema, type AwsLambdaConfig } from './config.js';
export { ANSWER_SCHEMAS, EVENT_TYPES, REMOTE_ERROR_CODES, type EventType } from './protocol.js';

export const driverFactory: DriverFactory = (services) => new AwsLambdaDriver(services);
