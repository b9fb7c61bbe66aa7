/** The engine-neutral SQL core (see `dialect.ts` for the glossary). */
export * from './dialect.js';
export * from './username.js';
export * from './password.js';
export * from './resources.js';
export * from './marker.js';
export * from './core.js';
