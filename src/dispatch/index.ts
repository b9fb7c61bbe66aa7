export { Dispatcher, KIND_PRIORITY, orderKeyOf, awsServiceOf } from './dispatcher.js';
export type { DispatcherOptions, SubmitOutcome } from './dispatcher.js';
export { KnownIntegrations, INTEGRATION_KEY_PREFIX } from './known-integrations.js';
export type { KnownIntegrationsOptions } from './known-integrations.js';
export { Sweeper } from './sweeper.js';
export type { SweeperOptions } from './sweeper.js';
export { IdempotencyStore } from './idempotency.js';
