export { loadConfig, ConfigError, describeConfig, convictSchema } from './load.js';
export type { AgentConfig, LoadConfigOptions } from './load.js';
export { SETTINGS, CONFIG_FILE_ENV, LOG_LEVELS, parseDuration, parseSize } from './schema.js';
export type { Setting, LogLevel } from './schema.js';
export { renderConfigDocs } from './docs.js';
export { unknownEnvNames, type UnknownEnvName } from './env-names.js';
