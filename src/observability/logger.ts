/**
 * The agent's logger: pino, one JSON object per line, secrets redacted.
 *
 * Redaction works in two layers:
 * 1. pino's `redact` by path, for every secret-bearing key name at the top level and up
 *    to four levels deep, in objects and arrays (`password`, `*.password`,
 *    `*.*.password`, `*[*].password`, …), censored as `[redacted]`;
 * 2. a backstop in `formatters.log` that walks plain objects and arrays at any depth
 *    (bounded) and censors the same key names case-insensitively, so that a secret under
 *    a path nobody thought of is still not written.
 *
 * Neither layer can see inside free text: never put a secret in a message or an error
 * message in the first place.
 */
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export const REDACTED = '[redacted]';

/** Key names whose values are secrets, exactly as they are spelled in objects. */
export const SECRET_KEYS: readonly string[] = [
  'password',
  'Password',
  'passwd',
  'pwd',
  'newPassword',
  'oldPassword',
  'pendingPassword',
  'secret',
  'Secret',
  'secretString',
  'SecretString',
  'SecretBinary',
  'secretValue',
  'clientSecret',
  'token',
  'Token',
  'connectorToken',
  'accessToken',
  'refreshToken',
  'sessionToken',
  'SessionToken',
  'idToken',
  'authToken',
  'bearer',
  'apiKey',
  'api_key',
  'x-api-key',
  'privateKey',
  'private_key',
  'signingKey',
  'secretAccessKey',
  'SecretAccessKey',
  'aws_secret_access_key',
  'credentials',
  'Credentials',
  'plaintext',
  'authorization',
  'Authorization',
  'proxy-authorization',
  'cookie',
  'Cookie',
  'set-cookie',
  'connectionString',
  'httpsProxy',
];

const SECRET_KEYS_LOWER = new Set(SECRET_KEYS.map((k) => k.toLowerCase()));

function segment(key: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `.${key}` : `["${key}"]`;
}

/** Every pino redact path: each secret key at depth 0..4, through objects and arrays. */
export function redactPaths(): string[] {
  const prefixes = ['', '*', '*.*', '*.*.*', '*.*.*.*', '*[*]', '*.*[*]', '*[*].*', '*.*.*[*]'];
  const paths: string[] = [];
  for (const key of SECRET_KEYS) {
    for (const prefix of prefixes) {
      const seg = segment(key);
      if (prefix === '') paths.push(seg.startsWith('.') ? seg.slice(1) : seg);
      else paths.push(`${prefix}${seg}`);
    }
  }
  // Headers as HTTP libraries log them.
  for (const h of ['authorization', 'cookie', 'x-api-key', 'proxy-authorization']) {
    paths.push(`headers["${h}"]`, `*.headers["${h}"]`, `*.*.headers["${h}"]`);
  }
  return [...new Set(paths)];
}

const MAX_SCRUB_DEPTH = 12;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Copy of `value` with secret keys censored at any depth; the input is never mutated. */
export function scrubSecrets(value: unknown, depth = 0): unknown {
  if (depth > MAX_SCRUB_DEPTH) return value;
  if (Array.isArray(value)) {
    let changed = false;
    const out = value.map((item: unknown) => {
      const s = scrubSecrets(item, depth + 1);
      if (s !== item) changed = true;
      return s;
    });
    return changed ? out : value;
  }
  if (!isPlainObject(value)) return value;
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(value)) {
    let next: unknown;
    if (SECRET_KEYS_LOWER.has(k.toLowerCase())) {
      next = v === undefined || v === null ? v : REDACTED;
    } else {
      next = scrubSecrets(v, depth + 1);
    }
    if (next !== v) {
      out ??= { ...value };
      out[k] = next;
    }
  }
  return out ?? value;
}

export interface CreateLoggerOptions {
  /** pino level: fatal, error, warn, info, debug, trace or silent. */
  level: string;
  /** Where lines go; stdout when absent. */
  destination?: DestinationStream;
  /** Bound fields on every line (e.g. connectorId, instanceId). */
  base?: Record<string, unknown>;
}

export function createLogger(opts: CreateLoggerOptions): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level,
    base: { service: 'latchkey', ...opts.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    messageKey: 'msg',
    redact: { paths: redactPaths(), censor: REDACTED },
    serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
    formatters: {
      level: (label) => ({ level: label }),
      log: (obj) => scrubSecrets(obj) as Record<string, unknown>,
    },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
