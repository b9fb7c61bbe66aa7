/**
 * Every setting of the agent, once: its file key, environment variable, default, format
 * and meaning. The convict schema, the validation and `docs/configuration.md` are all
 * derived from `SETTINGS` (see `scripts/gen-config-docs.ts`).
 *
 * Durations accept `30s`, `5m`, `1h`, `500ms`, `1d` (a unit is required in text: a bare
 * number other than 0 is refused; a JSON number in the file is milliseconds); sizes accept `1MiB`, `512KiB`, `1MB` or a plain number of bytes.
 */
import { parsePublicKey } from '../protocol/signing.js';
import { DEFAULT_UNBOUND_SECRET_STORES, parseUnboundStores } from '../secrets/binding.js';
import { DEFAULT_SECRET_ENV_PREFIXES } from '../secrets/env.js';
import { DEFAULT_SECRET_FILE_ROOTS } from '../secrets/file.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type SettingFormat =
  | 'duration'
  | 'int'
  | 'size'
  | 'bool'
  | 'string'
  | 'enum'
  | 'keys'
  | 'integrations'
  /** Strings: comma-separated in the environment, a JSON array (or such a string) in the file. */
  | 'list';

export interface Setting {
  /** Dotted key in the JSON config file, and path in `AgentConfig`. */
  path: string;
  /** Environment variable; absent for file-only settings. */
  env?: string;
  /** Environment variables read, in order, when neither `env` nor the file sets a value. */
  envFallback?: readonly string[];
  /** Only from the environment: a secret does not belong in a config file. */
  envOnly?: boolean;
  format: SettingFormat;
  /** `null`: no default (optional, or required when `required`). */
  default: unknown;
  required?: boolean;
  /** Its value is a secret (or may embed one): never printed. */
  sensitive?: boolean;
  /** For `int`, `duration`, `size`: inclusive bounds. */
  min?: number;
  max?: number;
  /** For `enum`. */
  values?: readonly string[];
  /** Extra check of a present value: a problem (never quoting the value) or undefined. */
  check?: (value: unknown) => string | undefined;
  /** Turns a checked value into the one `AgentConfig` holds (e.g. `all` → every store). */
  normalize?: (value: unknown) => unknown;
  /** Shown in the docs' default column instead of the raw default. */
  docDefault?: string;
  doc: string;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const KIB = 1024;
const MIB = 1024 * KIB;

/** An id safe to log and to use in names, as in the protocol. */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

function checkWsUrl(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a ws:// or wss:// URL';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be a ws:// or wss:// URL';
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    return `must use ws:// or wss:// (not ${url.protocol.replace(/:$/, '')}://)`;
  }
  if (url.username !== '' || url.password !== '') {
    return 'must not carry a user name or password (the connector token authenticates)';
  }
  if (url.hash !== '') return 'must not have a #fragment';
  return undefined;
}

/** True for `localhost`, `*.localhost`, 127.0.0.0/8, ::1 and the unspecified address (as `URL.hostname` spells them). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  // The unspecified address reaches this host (a dev control plane bound to all interfaces).
  if (h === '[::1]' || h === '::1' || h === '0.0.0.0' || h === '[::]') return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function checkProxyUrl(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be an http:// or https:// URL';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an http:// or https:// URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return 'must be an http:// or https:// URL';
  }
  return undefined;
}

function checkPattern(re: RegExp, what: string): (value: unknown) => string | undefined {
  return (value) => (typeof value === 'string' && re.test(value) ? undefined : `must be ${what}`);
}

function checkToken(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0) return 'must not be empty';
  if (!/^[\x21-\x7e]+$/.test(value)) {
    return 'must be printable ASCII without spaces or line breaks';
  }
  if (value.length > 4096) return 'must be at most 4096 characters';
  return undefined;
}

/** Checks a map of key id → Ed25519 public key; problems name the key id, never the key. */
export function checkTrustedKeys(value: unknown): string | undefined {
  if (typeof value === 'string') {
    return 'must be a JSON object {"keyId": "publicKey"} or keyId=publicKey pairs separated by commas';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return 'must be an object of key id → Ed25519 public key';
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return 'must name at least one trusted key';
  const bad: string[] = [];
  for (const [kid, key] of entries) {
    if (!ID_PATTERN.test(kid)) {
      bad.push(`key id "${kid.slice(0, 40)}" is not 1-128 of letters, digits, . _ : -`);
      continue;
    }
    if (typeof key !== 'string') {
      bad.push(`key "${kid}" must be a string`);
      continue;
    }
    try {
      parsePublicKey(key);
    } catch {
      bad.push(
        `key "${kid}" is not an Ed25519 public key (PEM SPKI, or base64/base64url of 32 raw bytes)`,
      );
    }
  }
  return bad.length > 0 ? bad.join('; ') : undefined;
}

/** Splits a comma-separated list (environment); empty items are dropped. */
export function parseList(text: string): string[] {
  return text
    .split(',')
    .map((i) => i.trim())
    .filter((i) => i !== '');
}

function checkList(
  ok: (item: string) => boolean,
  what: string,
): (value: unknown) => string | undefined {
  return (value) => {
    if (!Array.isArray(value) || !value.every((i) => typeof i === 'string')) {
      return `must be a list of ${what}`;
    }
    const bad = value.findIndex((i: string) => !ok(i));
    return bad < 0 ? undefined : `item ${bad + 1} is not valid: must be ${what}`;
  };
}

export const SETTINGS: readonly Setting[] = [
  // --- control plane -------------------------------------------------------------------
  {
    path: 'controlPlaneUrl',
    env: 'LATCHKEY_CONTROL_PLANE_URL',
    format: 'string',
    default: null,
    required: true,
    check: checkWsUrl,
    doc: 'WebSocket URL of the control plane (`wss://` in production). `ws://` (no TLS: the connector token and every command travel in clear) is accepted only for a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`) unless `allowInsecureControlPlane` is set.',
  },
  {
    path: 'allowInsecureControlPlane',
    env: 'LATCHKEY_ALLOW_INSECURE_CONTROL_PLANE',
    format: 'bool',
    default: false,
    doc: 'Accept a `ws://` (unencrypted) control-plane URL for a host that is not loopback. The connector token would cross the network in clear: only for an isolated test network.',
  },
  {
    path: 'connectorId',
    env: 'LATCHKEY_CONNECTOR_ID',
    format: 'string',
    default: null,
    required: true,
    check: checkPattern(ID_PATTERN, '1-128 of letters, digits, . _ : -'),
    doc: "This connector's id, as registered in the control plane; commands for another id are refused (`E_CONNECTOR`).",
  },
  {
    path: 'connectorToken',
    env: 'LATCHKEY_CONNECTOR_TOKEN',
    envOnly: true,
    format: 'string',
    default: null,
    sensitive: true,
    check: checkToken,
    doc: 'Bearer token the agent presents to the control plane. Environment only (a secret does not belong in a config file). Exactly one of this and `connectorTokenFile` must be set.',
  },
  {
    path: 'connectorTokenFile',
    env: 'LATCHKEY_CONNECTOR_TOKEN_FILE',
    format: 'string',
    default: null,
    doc: 'File holding the connector token (e.g. a mounted Kubernetes or ECS secret), read once at start-up; surrounding whitespace is ignored.',
  },
  {
    path: 'trustedKeys',
    env: 'LATCHKEY_TRUSTED_KEYS',
    format: 'keys',
    default: {},
    required: true,
    check: checkTrustedKeys,
    docDefault: '— (required)',
    doc: 'Ed25519 public keys whose command signatures are accepted, by key id: a JSON object `{"kid": "key"}` or `kid=key,kid2=key2`. Keys are PEM (SPKI) or base64/base64url of the 32 raw bytes. List several during a key rotation.',
  },
  {
    path: 'maxClockSkewMs',
    env: 'LATCHKEY_MAX_CLOCK_SKEW',
    format: 'duration',
    default: 30 * SECOND,
    min: 0,
    max: HOUR,
    doc: "Tolerated difference between the control plane's clock and ours when checking `issuedAt`/`expiresAt`.",
  },
  {
    path: 'maxCommandLifetimeMs',
    env: 'LATCHKEY_MAX_COMMAND_LIFETIME',
    format: 'duration',
    default: 15 * MINUTE,
    min: SECOND,
    max: DAY,
    doc: 'Longest accepted `expiresAt - issuedAt` of a command; longer ones are refused (`E_EXPIRED`).',
  },
  {
    path: 'heartbeat.intervalMs',
    env: 'LATCHKEY_HEARTBEAT_INTERVAL',
    format: 'duration',
    default: 15 * SECOND,
    min: SECOND,
    max: 10 * MINUTE,
    doc: 'How often the agent pings the control plane.',
  },
  {
    path: 'heartbeat.timeoutMs',
    env: 'LATCHKEY_HEARTBEAT_TIMEOUT',
    format: 'duration',
    default: 45 * SECOND,
    min: SECOND,
    max: HOUR,
    doc: 'Silence after which the connection is considered dead and re-opened; must exceed the interval.',
  },
  {
    path: 'reconnect.initialMs',
    env: 'LATCHKEY_RECONNECT_INITIAL',
    format: 'duration',
    default: 500,
    min: 10,
    max: 10 * MINUTE,
    doc: 'First reconnection delay; it doubles (with jitter) after each failure.',
  },
  {
    path: 'reconnect.maxMs',
    env: 'LATCHKEY_RECONNECT_MAX',
    format: 'duration',
    default: 30 * SECOND,
    min: 10,
    max: HOUR,
    doc: 'Longest reconnection delay; at least the initial delay.',
  },
  {
    path: 'reconnect.stableAfterMs',
    env: 'LATCHKEY_RECONNECT_STABLE_AFTER',
    format: 'duration',
    default: 60 * SECOND,
    min: 0,
    max: HOUR,
    doc: 'A connection that stayed up this long resets the backoff to the initial delay.',
  },
  {
    path: 'maxFrameBytes',
    env: 'LATCHKEY_MAX_FRAME_BYTES',
    format: 'size',
    default: MIB,
    min: KIB,
    max: 64 * MIB,
    docDefault: '`1MiB`',
    doc: 'Largest WebSocket frame accepted; larger ones are refused (`E_TOO_LARGE`).',
  },
  {
    path: 'maxResultFrameBytes',
    env: 'LATCHKEY_MAX_RESULT_FRAME_BYTES',
    format: 'size',
    default: MIB,
    min: 4 * KIB,
    max: 64 * MIB,
    docDefault: '`1MiB`',
    doc: 'Largest frame the agent sends: a larger result goes as `result-chunk` frames, or fails with `E_TOO_LARGE` when the control plane takes no chunks (docs/protocol.md).',
  },
  // --- queue ---------------------------------------------------------------------------
  {
    path: 'concurrency.global',
    env: 'LATCHKEY_CONCURRENCY_GLOBAL',
    format: 'int',
    default: 16,
    min: 1,
    max: 1024,
    doc: 'Most commands running at once.',
  },
  {
    path: 'concurrency.perIntegration',
    env: 'LATCHKEY_CONCURRENCY_PER_INTEGRATION',
    format: 'int',
    default: 4,
    min: 1,
    max: 1024,
    doc: 'Most commands running at once against one integration.',
  },
  {
    path: 'concurrency.perAwsService',
    env: 'LATCHKEY_CONCURRENCY_PER_AWS_SERVICE',
    format: 'int',
    default: 4,
    min: 1,
    max: 1024,
    doc: 'Most commands running at once per AWS integration type (`aws-iam`, `aws-ssm`, …), to stay under AWS API rate limits.',
  },
  {
    path: 'queueSize',
    env: 'LATCHKEY_QUEUE_SIZE',
    format: 'int',
    default: 1000,
    min: 1,
    max: 1_000_000,
    doc: 'Most commands queued plus running; beyond it new commands are refused with the retryable `E_BUSY`.',
  },
  {
    path: 'heapGrowingPercent',
    env: 'LATCHKEY_HEAP_GROWING_PERCENT',
    format: 'int',
    default: 50,
    min: 0,
    max: 300,
    doc: 'How far past its live data V8 lets the JavaScript heap grow before a full garbage collection, in percent (V8 `--heap-growing-percent`), set by `latchkey run` at start. The default keeps memory near what the agent really holds after a burst of commands; `0` leaves the choice to V8, which on a large host without a memory limit lets the heap grow to 4× its live data.',
  },
  {
    path: 'verifyWorkers',
    env: 'LATCHKEY_VERIFY_WORKERS',
    format: 'int',
    default: null,
    min: 0,
    max: 64,
    docDefault: '`min(2, cores − 1)`, at least 1',
    doc: 'Worker threads that check command signatures (Ed25519), off the thread that runs the link and the queue; `0` checks them on that thread. Commands still reach the queue in arrival order.',
  },
  ...(['discover', 'grant', 'revoke', 'rotate', 'cleanup', 'check'] as const).map(
    (kind): Setting => ({
      path: `timeoutsMs.${kind}`,
      env: `LATCHKEY_TIMEOUT_${kind.toUpperCase()}`,
      format: 'duration',
      default: kind === 'discover' ? 300 * SECOND : kind === 'check' ? 30 * SECOND : 60 * SECOND,
      min: SECOND,
      max: DAY,
      doc: `Longest run of a \`${kind}\` command (the deadline is also never later than the command's \`expiresAt\`); then it ends with \`E_TIMEOUT\`.`,
    }),
  ),
  {
    path: 'shutdownGraceMs',
    env: 'LATCHKEY_SHUTDOWN_GRACE',
    format: 'duration',
    default: 30 * SECOND,
    min: 0,
    max: HOUR,
    doc: "On SIGTERM, how long running commands may finish before they are cancelled. Keep it below the orchestrator's kill timeout.",
  },
  {
    path: 'sweepIntervalMs',
    env: 'LATCHKEY_SWEEP_INTERVAL',
    format: 'duration',
    default: 60 * SECOND,
    min: 0,
    max: DAY,
    check: (v) =>
      typeof v === 'number' && v > 0 && v < SECOND ? 'must be 0 (off) or at least 1s' : undefined,
    doc: 'How often expired grants are revoked in every known integration (with ±10 % jitter); `0` turns sweeps off.',
  },
  // --- local endpoints and logs --------------------------------------------------------
  {
    path: 'httpHost',
    env: 'LATCHKEY_HTTP_HOST',
    format: 'string',
    default: '0.0.0.0',
    check: (v) => (typeof v === 'string' && v.length > 0 ? undefined : 'must not be empty'),
    doc: 'Address of the local `/metrics`, `/healthz`, `/readyz` port.',
  },
  {
    path: 'httpPort',
    env: 'LATCHKEY_HTTP_PORT',
    format: 'int',
    default: 8080,
    min: 0,
    max: 65535,
    doc: 'Port of `/metrics`, `/healthz`, `/readyz` (`0`: any free port).',
  },
  {
    path: 'logLevel',
    env: 'LATCHKEY_LOG_LEVEL',
    format: 'enum',
    values: LOG_LEVELS,
    default: 'info',
    doc: `Log level: ${LOG_LEVELS.map((l) => `\`${l}\``).join(', ')}.`,
  },
  {
    path: 'stateDir',
    env: 'LATCHKEY_STATE_DIR',
    format: 'string',
    default: 'auto',
    doc: 'Writable directory for the state journal, kept across restarts: the result outbox, the command-id record (a re-delivered command gets its original result, never a second one) and the integrations seen in commands (swept again after a restart). `auto` (default): `$XDG_STATE_HOME/latchkey`, else `$HOME/.local/state/latchkey` (the container image sets `/var/lib/latchkey`); `off`, or the variable set to an empty string: memory only. A directory that cannot be used (not writable, or locked by another running agent) is logged and the agent runs with memory-only state (`latchkey_state_enabled` 0). One directory per agent process. See docs/operations.md.',
  },
  // --- network -------------------------------------------------------------------------
  {
    path: 'httpsProxy',
    env: 'LATCHKEY_HTTPS_PROXY',
    envFallback: ['HTTPS_PROXY', 'https_proxy'],
    format: 'string',
    default: null,
    sensitive: true,
    check: checkProxyUrl,
    doc: 'HTTP(S) proxy for outbound connections (control plane, AWS APIs). When unset, `HTTPS_PROXY` / `https_proxy` are used.',
  },
  {
    path: 'caBundleFile',
    env: 'LATCHKEY_CA_BUNDLE_FILE',
    format: 'string',
    default: null,
    doc: 'PEM file of extra CA certificates trusted for TLS (control plane, proxy, databases), read at start-up.',
  },
  // --- credentials and AWS -------------------------------------------------------------
  {
    path: 'allowPlaintextCredentials',
    env: 'LATCHKEY_ALLOW_PLAINTEXT_CREDENTIALS',
    format: 'bool',
    default: false,
    doc: 'Allow returning new credentials unsealed when a command carries no `recipientKey`. Leave `false` outside development.',
  },
  {
    path: 'secretCacheTtlMs',
    env: 'LATCHKEY_SECRET_CACHE_TTL',
    format: 'duration',
    default: 60 * SECOND,
    min: 0,
    max: DAY,
    doc: 'How long a service-account secret read from a secret store is cached (`0`: not cached).',
  },
  {
    path: 'secretFileRoots',
    env: 'LATCHKEY_SECRET_FILE_ROOTS',
    format: 'list',
    default: [...DEFAULT_SECRET_FILE_ROOTS],
    docDefault: `\`${DEFAULT_SECRET_FILE_ROOTS.join(',')}\``,
    check: checkList(
      (item) => item.startsWith('/'),
      'absolute directory paths (comma-separated in the environment)',
    ),
    doc: 'Directories under which a `file` secret reference must lie (comma-separated; a JSON array in the file). Checked on real paths: `..` and symbolic links cannot lead out, so a command cannot make the agent read an arbitrary directory. Outside them: `E_GUARDRAIL`.',
  },
  {
    path: 'secretEnvPrefixes',
    env: 'LATCHKEY_SECRET_ENV_PREFIXES',
    format: 'list',
    default: [...DEFAULT_SECRET_ENV_PREFIXES],
    docDefault: `\`${DEFAULT_SECRET_ENV_PREFIXES.join(',')}\``,
    check: checkList(
      (item) => /^[A-Z][A-Z0-9_]*$/.test(item),
      'environment variable prefixes (upper-case letters, digits, _)',
    ),
    doc: "Prefixes an `env` secret reference's `prefix` must start with (comma-separated), so that a command cannot read another program's variables (`PGPASSWORD`, `DB_PASSWORD`…). Otherwise: `E_GUARDRAIL`.",
  },
  {
    path: 'allowUnboundSecrets',
    env: 'LATCHKEY_ALLOW_UNBOUND_SECRETS',
    format: 'list',
    default: [...DEFAULT_UNBOUND_SECRET_STORES],
    docDefault: `\`${DEFAULT_UNBOUND_SECRET_STORES.join(',')}\``,
    check: (v) => {
      if (!Array.isArray(v)) return 'must be a list of secret stores';
      const parsed = parseUnboundStores(v.map(String));
      return 'problem' in parsed ? parsed.problem : undefined;
    },
    normalize: (v) => {
      const parsed = parseUnboundStores(Array.isArray(v) ? v.map(String) : []);
      return 'stores' in parsed ? parsed.stores : [];
    },
    doc: 'Secret stores whose secrets may be used by the SQL drivers although they name no `host` (comma-separated of `aws-secrets-manager`, `kubernetes`, `file`, `env`; or `all` / `true`, or `none` / `false`). A secret that names a `host` (and `port`, `dbname`) is only ever used against that server; an unbound one from a store not listed is refused (`E_GUARDRAIL`), so a command cannot send it to a server of its choosing. See docs/secrets.md, "Binding secrets to targets".',
  },
  {
    path: 'tagPrefix',
    env: 'LATCHKEY_TAG_PREFIX',
    format: 'string',
    default: 'latchkey',
    check: checkPattern(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/, '1-32 of letters, digits, _ . -'),
    doc: 'Prefix of the AWS tags the agent reads (`<prefix>-connector-id`, `<prefix>-secret`, `<prefix>-connector-access`); `apono` works for users coming from there.',
  },
  {
    path: 'aws.defaultRegion',
    env: 'LATCHKEY_AWS_REGION',
    envFallback: ['AWS_REGION', 'AWS_DEFAULT_REGION'],
    format: 'string',
    default: null,
    check: checkPattern(/^[a-z]{2,}(-[a-z0-9]+)*-\d{1,2}$/, 'an AWS region such as eu-west-1'),
    doc: 'AWS region used when an integration names none. When unset, `AWS_REGION` / `AWS_DEFAULT_REGION` are used.',
  },
  {
    path: 'aws.assumeRolePattern',
    env: 'LATCHKEY_AWS_ASSUME_ROLE_PATTERN',
    format: 'string',
    default: 'latchkey-*',
    check: checkPattern(
      /^[A-Za-z0-9+=,.@_/*-]{1,128}$/,
      'an IAM role name pattern (letters, digits, +=,.@_-/ and * as wildcard)',
    ),
    doc: 'Only roles whose name matches this pattern (`*` = any run of characters) may be assumed in other accounts.',
  },
  // --- HashiCorp Vault (the `vault` secret store, docs/secrets.md) -----------------------
  {
    path: 'vault.address',
    env: 'LATCHKEY_VAULT_ADDR',
    envFallback: ['VAULT_ADDR'],
    format: 'string',
    default: null,
    check: (v) => {
      try {
        const url = new URL(String(v));
        if (url.protocol === 'https:') return undefined;
        if (url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname))
          return undefined;
        return 'must be an https:// URL (http:// only for a loopback address)';
      } catch {
        return 'must be a URL such as https://vault.example.com:8200';
      }
    },
    doc: 'Address of HashiCorp Vault for `vault` secret references (KV v2). When unset, `VAULT_ADDR` is used; with neither, a `vault` reference is `E_SECRET`. `LATCHKEY_CA_BUNDLE_FILE` is trusted for its TLS.',
  },
  {
    path: 'vault.namespace',
    env: 'LATCHKEY_VAULT_NAMESPACE',
    envFallback: ['VAULT_NAMESPACE'],
    format: 'string',
    default: null,
    doc: 'Vault Enterprise namespace (`X-Vault-Namespace`) of the login and of references that name none.',
  },
  {
    path: 'vault.authMethod',
    env: 'LATCHKEY_VAULT_AUTH_METHOD',
    format: 'enum',
    values: ['token', 'kubernetes', 'aws'],
    default: 'token',
    doc: "How the agent gets its Vault token: `token` (given, or read from a file), `kubernetes` (a login with the pod's ServiceAccount token) or `aws` (an IAM login with the agent's AWS credentials); the last two need `vault.role`. Tokens are renewed before they expire; logins are repeated when renewal is no longer possible.",
  },
  {
    path: 'vault.token',
    env: 'LATCHKEY_VAULT_TOKEN',
    envFallback: ['VAULT_TOKEN'],
    envOnly: true,
    sensitive: true,
    format: 'string',
    default: null,
    doc: 'Vault token for `authMethod` `token` (environment only). When unset, `VAULT_TOKEN` is used.',
  },
  {
    path: 'vault.tokenFile',
    env: 'LATCHKEY_VAULT_TOKEN_FILE',
    format: 'string',
    default: null,
    doc: 'File holding the Vault token for `authMethod` `token` (e.g. written by Vault Agent), read at each login.',
  },
  {
    path: 'vault.role',
    env: 'LATCHKEY_VAULT_ROLE',
    format: 'string',
    default: null,
    doc: 'Vault role of the `kubernetes` or `aws` login (required with those methods).',
  },
  {
    path: 'vault.authMount',
    env: 'LATCHKEY_VAULT_AUTH_MOUNT',
    format: 'string',
    default: null,
    check: checkPattern(
      /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/,
      'a Vault mount path such as kubernetes or auth-prod/k8s',
    ),
    doc: "Mount path of the auth method (default: the method's name, `kubernetes` or `aws`).",
  },
  {
    path: 'vault.kvMount',
    env: 'LATCHKEY_VAULT_KV_MOUNT',
    format: 'string',
    default: 'secret',
    check: checkPattern(
      /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/,
      'a Vault mount path such as secret',
    ),
    doc: 'KV version 2 mount of references that name none.',
  },
  {
    path: 'vault.awsServerId',
    env: 'LATCHKEY_VAULT_AWS_SERVER_ID',
    format: 'string',
    default: null,
    doc: 'Value of the `X-Vault-AWS-IAM-Server-ID` header signed into an `aws` login, when the Vault role requires one.',
  },
  // --- integrations --------------------------------------------------------------------
  {
    path: 'integrations',
    format: 'integrations',
    default: [],
    docDefault: '`[]`',
    doc: "Config file only. Integrations configured locally (same shape as a command's `integration`: `id`, `type`, `config`, `secret` reference, `settings`), used by `latchkey check` and by expiry sweeps even before the control plane names them. Secrets are referenced, never inlined.",
  },
];

/** Every setting by path. */
export const SETTINGS_BY_PATH: ReadonlyMap<string, Setting> = new Map(
  SETTINGS.map((s) => [s.path, s]),
);

/** Environment variable of the config file path. */
export const CONFIG_FILE_ENV = 'LATCHKEY_CONFIG_FILE';

/** `30s`, `5m`, `500ms`, `1h`, `2d` or a number of ms → ms; `undefined` when unreadable. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  // A bare number has no unit (`30` meant 30 ms before): refused, except 0 (off/none).
  if (/^\d+$/.test(t)) return Number(t) === 0 ? 0 : undefined;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/i.exec(t);
  if (!m?.[1] || !m[2]) return undefined;
  const unit = m[2].toLowerCase();
  const factor =
    unit === 'ms' ? 1 : unit === 's' ? SECOND : unit === 'm' ? MINUTE : unit === 'h' ? HOUR : DAY;
  return Math.round(Number(m[1]) * factor);
}

/** `1MiB`, `512KiB`, `1MB`, `64kb` or a number of bytes → bytes; `undefined` when unreadable. */
export function parseSize(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)$/i.exec(t);
  if (!m?.[1] || !m[2]) return undefined;
  const unit = m[2].toLowerCase();
  const factors: Record<string, number> = {
    b: 1,
    kb: 1000,
    kib: KIB,
    mb: 1000 * 1000,
    mib: MIB,
    gb: 1000 ** 3,
    gib: 1024 * MIB,
  };
  const factor = factors[unit];
  return factor === undefined ? undefined : Math.round(Number(m[1]) * factor);
}

/** `true/false/1/0/yes/no/on/off` → boolean; `undefined` otherwise. */
export function parseBool(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(t)) return true;
  if (['false', '0', 'no', 'off'].includes(t)) return false;
  return undefined;
}

/**
 * `LATCHKEY_TRUSTED_KEYS`: a JSON object, or `kid=key,kid2=key2`. Unreadable text comes
 * back unchanged (a string), for the validation to report.
 */
export function parseTrustedKeys(text: string): Record<string, unknown> | string {
  const t = text.trim();
  if (t.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(t);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
        return parsed as Record<string, unknown>;
      }
    } catch {
      // reported by validation
    }
    return text;
  }
  const out: Record<string, unknown> = {};
  for (const part of t.split(',')) {
    const p = part.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    if (eq <= 0) return text;
    // base64 padding may end in '=': only the first '=' separates the key id.
    out[p.slice(0, eq).trim()] = p.slice(eq + 1).trim();
  }
  return out;
}

/** Human form of a default for the docs (`30s`, `15m`, `1MiB`). */
export function formatDefault(setting: Setting): string {
  if (setting.docDefault !== undefined) return setting.docDefault;
  const v = setting.default;
  if (v === null || v === undefined) return setting.required ? '— (required)' : '— (unset)';
  if (setting.format === 'duration' && typeof v === 'number') return `\`${formatDuration(v)}\``;
  return `\`${JSON.stringify(v)}\``;
}

export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  if (ms % DAY === 0) return `${ms / DAY}d`;
  if (ms % HOUR === 0) return `${ms / HOUR}h`;
  if (ms % MINUTE === 0) return `${ms / MINUTE}m`;
  if (ms % SECOND === 0) return `${ms / SECOND}s`;
  return `${ms}ms`;
}
