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
 * 3. errors (any `Error`, at any depth, and its `cause` chain) are serialized by
 *    `serializeError`: SQL text and bound values that database clients attach to their
 *    errors (mysql2 `sql`, pg `query`/`parameters`), AWS SDK `$response` and secret keys
 *    are dropped, and every string (message, stack, `sqlMessage`, …) goes through
 *    `scrubText`;
 * 4. `scrubText` censors the free-text shapes a secret takes in SQL and URLs
 *    (`IDENTIFIED BY '…'`, `PASSWORD '…'`, `://user:pass@`, `Bearer …`), in every string
 *    value and in the message itself.
 *
 * Layer 4 is a backstop for what database servers echo back: still never put a secret in
 * a message or an error message in the first place.
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

/**
 * Free-text shapes of a secret: a quoted literal after `IDENTIFIED … BY|AS`, after
 * `PASSWORD` (PostgreSQL `PASSWORD '…'`, MySQL `SET PASSWORD = '…'`, `PASSWORD('…')`),
 * the password of a URL's userinfo, a bearer token. A literal cut short by the server
 * (`near '… IDENTIFIED BY 'abc` at the end of a message) is censored to the end.
 */
const QUOTED = String.raw`(?:'(?:[^'\\]|\\.|'')*(?:'|$)|"(?:[^"\\]|\\.|"")*(?:"|$))`;
const TEXT_PATTERNS: readonly [RegExp, string][] = [
  [
    new RegExp(
      String.raw`(\bIDENTIFIED\s+(?:WITH\s+\S+\s+)?(?:BY|AS)\s+(?:PASSWORD\s+)?)${QUOTED}`,
      'gi',
    ),
    `$1'${REDACTED}'`,
  ],
  [
    new RegExp(String.raw`(\bSET\s+PASSWORD\b[^=]{0,300}=\s*(?:PASSWORD\s*\(\s*)?)${QUOTED}`, 'gi'),
    `$1'${REDACTED}'`,
  ],
  [new RegExp(String.raw`(\bPASSWORD\s*(?:=\s*)?(?:\(\s*)?)${QUOTED}`, 'gi'), `$1'${REDACTED}'`],
  // Bounded repetitions: unbounded ones make this quadratic on long `a.a.a.…` strings.
  [/(\b[A-Za-z][A-Za-z0-9+.-]{0,31}:\/\/[^\s:@/]{0,256}:)[^\s@/]{1,1024}@/g, `$1${REDACTED}@`],
  [/(\bBearer\s+)[A-Za-z0-9._~+/=-]+/gi, `$1${REDACTED}`],
  // A presigned URL (an RDS IAM auth token is one): its signature and session token.
  [/(\bX-Amz-(?:Signature|Security-Token|Credential)=)[^&\s"']+/gi, `$1${REDACTED}`],
];

/** `text` with SQL password literals, URL passwords and bearer tokens censored. */
export function scrubText(text: string): string {
  let out = text;
  for (const [re, replacement] of TEXT_PATTERNS) {
    re.lastIndex = 0;
    out = out.replace(re, replacement);
  }
  return out;
}

/**
 * Keys of error objects whose values are dropped whole: the SQL text and bound values
 * that mysql2 (`sql`), pg (`query`, `parameters`) and others attach to their errors, and
 * the raw HTTP response of AWS SDK v3 errors (headers, body).
 */
export const ERROR_DROP_KEYS: readonly string[] = [
  'sql',
  'query',
  'parameters',
  'values',
  'params',
  'bindings',
  '$response',
  'response',
  'request',
  'config',
  'headers',
];
const ERROR_DROP_KEYS_LOWER = new Set(ERROR_DROP_KEYS.map((k) => k.toLowerCase()));

const MAX_CAUSE_DEPTH = 8;

/**
 * A loggable copy of an error: `type`, `message`, `stack`, `code`, its other own fields
 * and its `cause` chain (and `errors` of an AggregateError), with secret keys censored,
 * SQL text / raw responses dropped and every string passed through `scrubText`.
 */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return scrubSecrets(err, depth);
  const out: Record<string, unknown> = {
    type: err.constructor.name || err.name,
    message: scrubText(err.message),
  };
  if (typeof err.stack === 'string') out.stack = scrubText(err.stack);
  // `errors` of an AggregateError is own but not enumerable.
  const errors = (err as { errors?: unknown }).errors;
  if (Array.isArray(errors)) {
    out.errors =
      depth < MAX_CAUSE_DEPTH ? errors.map((e: unknown) => serializeError(e, depth + 1)) : REDACTED;
  }
  for (const [k, v] of Object.entries(err)) {
    if (k === 'message' || k === 'stack' || k === 'cause' || k === 'errors') continue;
    const lower = k.toLowerCase();
    if (SECRET_KEYS_LOWER.has(lower) || ERROR_DROP_KEYS_LOWER.has(lower)) {
      if (v !== undefined && v !== null) out[k] = REDACTED;
      continue;
    }
    out[k] = scrubSecrets(v, depth + 1);
  }
  const cause = (err as { cause?: unknown }).cause;
  if (cause !== undefined) {
    out.cause = depth < MAX_CAUSE_DEPTH ? serializeError(cause, depth + 1) : REDACTED;
  }
  return out;
}

/**
 * Copy of `value` with secret keys censored at any depth, errors serialized by
 * `serializeError` and strings passed through `scrubText`; the input is never mutated.
 */
export function scrubSecrets(value: unknown, depth = 0): unknown {
  if (depth > MAX_SCRUB_DEPTH) {
    return typeof value === 'object' && value !== null ? '[too deep]' : value;
  }
  if (typeof value === 'string') return scrubText(value);
  if (value instanceof Error) return serializeError(value, depth);
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

/**
 * `scrubSecrets` for the formatters: logging must never throw (a getter that throws, a
 * revoked Proxy) and never write what could not be scrubbed.
 */
function safeScrub(obj: Record<string, unknown>): Record<string, unknown> {
  try {
    return scrubSecrets(obj) as Record<string, unknown>;
  } catch {
    return { logFieldsDropped: 'could not be scrubbed' };
  }
}

/** pino serializer for `err`/`error`: errors (already scrubbed by the formatter) pass through. */
function serializeErrorValue(value: unknown): unknown {
  try {
    return value instanceof Error ? serializeError(value) : value;
  } catch {
    return { type: 'Error', message: 'error could not be serialized' };
  }
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
    serializers: { err: serializeErrorValue, error: serializeErrorValue },
    formatters: {
      level: (label) => ({ level: label }),
      bindings: (bindings) => safeScrub(bindings),
      log: (obj) => safeScrub(obj),
    },
    hooks: {
      // The message text too: `logger.error(err)` uses the error's message as `msg`.
      logMethod(args, method) {
        const [first, ...rest] = args as unknown[];
        const err =
          first instanceof Error
            ? first
            : isPlainObject(first) && first.err instanceof Error
              ? first.err
              : undefined;
        if (err !== undefined && typeof rest[0] !== 'string') {
          method.apply(this, [first, scrubText(err.message), ...rest] as Parameters<typeof method>);
          return;
        }
        method.apply(
          this,
          (args as unknown[]).map((a) => (typeof a === 'string' ? scrubText(a) : a)) as Parameters<
            typeof method
          >,
        );
      },
    },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/**
 * Process warnings (deprecations, the AWS SDK's Node-version notice, …) as JSON log lines
 * instead of Node's plain-text stderr output, which broke the one-JSON-object-per-line
 * stream that log shippers parse (issue 15). Node's own printer is the `warning` listener
 * present at start; it is replaced. Messages pass through `scrubText` like every log line.
 * Returns a function that restores the previous listeners (tests).
 */
export function routeProcessWarnings(logger: Logger): () => void {
  const previous = process.listeners('warning');
  process.removeAllListeners('warning');
  const onWarning = (w: Error & { code?: string }): void => {
    logger.warn(
      {
        warning: {
          name: w.name,
          ...(w.code !== undefined ? { code: w.code } : {}),
          message: scrubText(w.message),
        },
      },
      'process warning',
    );
  };
  process.on('warning', onWarning);
  return () => {
    process.removeListener('warning', onWarning);
    for (const l of previous) process.on('warning', l);
  };
}
