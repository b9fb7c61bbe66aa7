export {
  createLogger,
  routeProcessWarnings,
  scrubSecrets,
  scrubText,
  serializeError,
  redactPaths,
  REDACTED,
  SECRET_KEYS,
} from './logger.js';
export type { Logger, CreateLoggerOptions } from './logger.js';
export { createMetrics } from './metrics.js';
export type { Metrics } from './metrics.js';
export { startHttpServer } from './http.js';
export type { HttpServerOptions, Readiness, RunningHttpServer } from './http.js';
