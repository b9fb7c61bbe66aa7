/**
 * Loading the agent's configuration: raw (environment + optional JSON file) → defaults
 * → validated → a deeply frozen, typed `AgentConfig`.
 *
 * Precedence, lowest first: defaults, the JSON file (`LATCHKEY_CONFIG_FILE` or
 * `opts.configFile`), `LATCHKEY_*` environment variables, then, only for a setting still
 * unset, its generic fallback variables (`HTTPS_PROXY`, `AWS_REGION`, …). An empty
 * environment variable counts as unset.
 *
 * Every problem is collected and thrown at once in a `ConfigError`, each naming the
 * environment variable (and file key) concerned. No problem text ever contains the value
 * of a sensitive setting; values of other settings are quoted only for numbers, sizes,
 * durations, booleans and enums, where seeing what was given helps.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import convict from 'convict';
import { z } from 'zod';
import { IntegrationSchema, type CommandKind, type Integration } from '../protocol/messages.js';
import type { SecretStore } from '../secrets/binding.js';
import {
  CONFIG_FILE_ENV,
  SETTINGS,
  formatDuration,
  isLoopbackHost,
  parseBool,
  parseDuration,
  parseList,
  parseSize,
  parseTrustedKeys,
  type LogLevel,
  type Setting,
} from './schema.js';

/** The agent's configuration, deeply frozen. */
export interface AgentConfig {
  readonly controlPlaneUrl: string;
  readonly connectorId: string;
  /** The connector token, from `LATCHKEY_CONNECTOR_TOKEN` or read from `connectorTokenFile`. */
  readonly connectorToken: string;
  readonly connectorTokenFile: string | undefined;
  /** Key id → Ed25519 public key text (PEM or base64/base64url of 32 raw bytes). */
  readonly trustedKeys: Readonly<Record<string, string>>;
  readonly maxClockSkewMs: number;
  readonly maxCommandLifetimeMs: number;
  readonly heartbeat: { readonly intervalMs: number; readonly timeoutMs: number };
  readonly reconnect: {
    readonly initialMs: number;
    readonly maxMs: number;
    readonly stableAfterMs: number;
  };
  readonly maxFrameBytes: number;
  readonly maxResultFrameBytes: number;
  readonly concurrency: {
    readonly global: number;
    readonly perIntegration: number;
    readonly perAwsService: number;
  };
  readonly queueSize: number;
  readonly timeoutsMs: Readonly<Record<CommandKind, number>>;
  readonly shutdownGraceMs: number;
  /** 0: sweeps off. */
  readonly sweepIntervalMs: number;
  readonly httpHost: string;
  readonly httpPort: number;
  readonly logLevel: LogLevel;
  /** The state directory, resolved (`auto` → a path); undefined: state off (memory only). */
  readonly stateDir: string | undefined;
  /** How `stateDir` was chosen: named by the operator, the `auto` default, or off. */
  readonly stateDirSource: 'configured' | 'default' | 'off';
  readonly httpsProxy: string | undefined;
  readonly caBundleFile: string | undefined;
  /** PEM text of `caBundleFile`, read at load. */
  readonly caBundle: string | undefined;
  readonly allowPlaintextCredentials: boolean;
  /** `ws://` accepted for a non-loopback control-plane host. */
  readonly allowInsecureControlPlane: boolean;
  readonly secretCacheTtlMs: number;
  /** V8 `--heap-growing-percent` applied by `latchkey run`; 0 = V8's default. */
  readonly heapGrowingPercent: number;
  /** Worker threads for Ed25519 checks; 0 = inline; undefined = min(2, cores − 1), at least 1. */
  readonly verifyWorkers: number | undefined;
  /** Directories `file` secret refs must lie under. */
  readonly secretFileRoots: readonly string[];
  /** Prefixes `env` secret refs must start with. */
  readonly secretEnvPrefixes: readonly string[];
  /** Stores whose secrets may name no host (normalized: `all`/`none` expanded). */
  readonly allowUnboundSecrets: readonly SecretStore[];
  readonly tagPrefix: string;
  readonly aws: { readonly defaultRegion: string | undefined; readonly assumeRolePattern: string };
  /** The `vault` secret store; `address` undefined: not configured. */
  readonly vault: {
    readonly address: string | undefined;
    readonly namespace: string | undefined;
    readonly authMethod: 'token' | 'kubernetes' | 'aws';
    readonly token: string | undefined;
    readonly tokenFile: string | undefined;
    readonly role: string | undefined;
    readonly authMount: string | undefined;
    readonly kvMount: string;
    readonly awsServerId: string | undefined;
  };
  readonly integrations: readonly Integration[];
  /** The config file that was read, if any. */
  readonly configFile: string | undefined;
}

/** The configuration is invalid; `problems` lists every invalid setting. */
export class ConfigError extends Error {
  readonly problems: string[];

  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export interface LoadConfigOptions {
  /** Environment to read; `process.env` when absent. */
  env?: NodeJS.ProcessEnv;
  /** JSON config file; overrides `LATCHKEY_CONFIG_FILE`. */
  configFile?: string;
}

// ---------------------------------------------------------------------------------------
// convict formats: coercion of environment strings only; validation is ours (below), so
// that every problem is collected with the variable's name and without secret values.

const FORMAT_NAMES = {
  duration: 'latchkey-duration',
  int: 'latchkey-int',
  size: 'latchkey-size',
  bool: 'latchkey-bool',
  string: 'latchkey-string',
  enum: 'latchkey-enum',
  keys: 'latchkey-keys',
  integrations: 'latchkey-integrations',
  list: 'latchkey-list',
} as const satisfies Record<Setting['format'], string>;

const keep = (v: string): unknown => v;
convict.addFormats({
  [FORMAT_NAMES.duration]: {
    validate: () => undefined,
    coerce: (v: string) => parseDuration(v) ?? v,
  },
  [FORMAT_NAMES.int]: {
    validate: () => undefined,
    coerce: (v: string) => (/^\s*-?\d+\s*$/.test(v) ? Number(v) : v),
  },
  [FORMAT_NAMES.size]: { validate: () => undefined, coerce: (v: string) => parseSize(v) ?? v },
  [FORMAT_NAMES.bool]: { validate: () => undefined, coerce: (v: string) => parseBool(v) ?? v },
  [FORMAT_NAMES.string]: { validate: () => undefined, coerce: keep },
  [FORMAT_NAMES.enum]: { validate: () => undefined, coerce: (v: string) => v.trim().toLowerCase() },
  [FORMAT_NAMES.keys]: { validate: () => undefined, coerce: parseTrustedKeys },
  [FORMAT_NAMES.integrations]: { validate: () => undefined, coerce: keep },
  [FORMAT_NAMES.list]: { validate: () => undefined, coerce: parseList },
});

/** The part of convict's API used here, untyped by path. */
interface LooseConvict {
  get(path: string): unknown;
  load(values: unknown): unknown;
}

type Node = { [key: string]: Node | convict.SchemaObj };

/** The convict schema derived from `SETTINGS`. */
export function convictSchema(): Node {
  const root: Node = {};
  for (const s of SETTINGS) {
    const parts = s.path.split('.');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      node[part] ??= {};
      node = node[part] as Node;
    }
    const leaf: convict.SchemaObj = {
      default: s.default,
      doc: s.doc,
      format: FORMAT_NAMES[s.format],
      nullable: true,
    };
    if (s.env !== undefined) leaf.env = s.env;
    if (s.sensitive) leaf.sensitive = true;
    node[parts[parts.length - 1] ?? s.path] = leaf;
  }
  return root;
}

// ---------------------------------------------------------------------------------------

function label(s: Setting): string {
  return s.env === undefined ? `${s.path} (config file)` : `${s.env} (${s.path})`;
}

function quoted(s: Setting, value: unknown): string {
  if (s.sensitive) return '';
  if (!['duration', 'int', 'size', 'bool', 'enum'].includes(s.format)) return '';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  if (text === undefined) return '';
  return ` (got ${JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text)})`;
}

function bounds(s: Setting): string {
  const fmt = (n: number): string =>
    s.format === 'duration' ? formatDuration(n) : s.format === 'size' ? `${n} bytes` : String(n);
  if (s.min !== undefined && s.max !== undefined) return ` between ${fmt(s.min)} and ${fmt(s.max)}`;
  if (s.min !== undefined) return ` of at least ${fmt(s.min)}`;
  return '';
}

const IntegrationsSchema = z.array(IntegrationSchema).max(10_000);

/** Validates one present value; returns problems (without the label). */
function checkValue(s: Setting, value: unknown): string[] {
  const number = (what: string): string[] => {
    if (
      typeof value !== 'number' ||
      !Number.isInteger(value) ||
      (s.min !== undefined && value < s.min) ||
      (s.max !== undefined && value > s.max)
    ) {
      return [`must be ${what}${bounds(s)}${quoted(s, value)}`];
    }
    return [];
  };
  let problems: string[] = [];
  switch (s.format) {
    case 'duration':
      if (typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value)) {
        // `LATCHKEY_SHUTDOWN_GRACE=30` used to mean 30 ms: say which unit to write.
        const n = value.trim();
        problems = [
          `"${n}" has no unit: write it with one, e.g. ${n}s, ${n}m or ${n}ms (a bare number other than 0 is refused)`,
        ];
      } else {
        problems = number(
          'a duration such as 500ms, 30s, 5m or 1h (a JSON number in the file: milliseconds),',
        );
      }
      break;
    case 'int':
      problems = number('an integer');
      break;
    case 'size':
      problems = number('a size such as 1MiB, 512KiB or a number of bytes,');
      break;
    case 'bool':
      if (typeof value !== 'boolean') problems = [`must be true or false${quoted(s, value)}`];
      break;
    case 'enum':
      if (typeof value !== 'string' || !(s.values ?? []).includes(value)) {
        problems = [`must be one of ${(s.values ?? []).join(', ')}${quoted(s, value)}`];
      }
      break;
    case 'string':
      if (typeof value !== 'string') problems = ['must be a string'];
      else if (value.trim() === '') problems = ['must not be empty'];
      break;
    case 'keys':
    case 'list':
      break; // s.check
    case 'integrations': {
      const parsed = IntegrationsSchema.safeParse(value);
      if (!parsed.success) {
        problems = parsed.error.issues.map((i) => {
          const path = i.path
            .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
            .join('');
          return path === '' ? i.message : `${path.replace(/^\./, '')}: ${i.message}`;
        });
      } else {
        const ids = new Set<string>();
        for (const i of parsed.data) {
          if (ids.has(i.id)) problems.push(`integration id "${i.id}" appears more than once`);
          ids.add(i.id);
        }
      }
      break;
    }
  }
  if (problems.length === 0 && s.check) {
    const p = s.check(value);
    if (p !== undefined) problems.push(p);
  }
  return problems;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The file's declared settings only, with problems for anything else. */
function sanitizeFile(json: unknown, file: string, problems: string[]): Record<string, unknown> {
  if (!isObject(json)) {
    problems.push(`${CONFIG_FILE_ENV}: ${file} must hold a JSON object`);
    return {};
  }
  const out: Record<string, unknown> = {};
  const leaves = new Map(SETTINGS.map((s) => [s.path, s]));
  const branches = new Set<string>();
  for (const s of SETTINGS) {
    const parts = s.path.split('.');
    for (let i = 1; i < parts.length; i++) branches.add(parts.slice(0, i).join('.'));
  }
  const walk = (
    obj: Record<string, unknown>,
    prefix: string,
    target: Record<string, unknown>,
  ): void => {
    for (const [key, value] of Object.entries(obj)) {
      const path = prefix === '' ? key : `${prefix}.${key}`;
      const leaf = leaves.get(path);
      if (leaf) {
        if (leaf.envOnly) {
          problems.push(
            `${path} in ${file}: not allowed in the config file (a secret); set ${leaf.env ?? 'it'} or connectorTokenFile instead`,
          );
        } else {
          target[key] = value;
        }
      } else if (branches.has(path)) {
        if (!isObject(value)) {
          problems.push(`${path} in ${file}: must be an object`);
        } else {
          const sub: Record<string, unknown> = {};
          walk(value, path, sub);
          target[key] = sub;
        }
      } else {
        problems.push(`${path} in ${file}: unknown setting`);
      }
    }
  };
  walk(json, '', out);
  return out;
}

function readTextFile(path: string): { text: string } | { error: string } {
  try {
    return { text: readFileSync(path, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    return { error: `cannot read ${path} (${code})` };
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    node[part] ??= {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] ?? path] = value;
}

/**
 * Reads, validates and freezes the configuration.
 * @throws ConfigError listing every problem at once.
 */
export function loadConfig(opts: LoadConfigOptions = {}): AgentConfig {
  const rawEnv = opts.env ?? process.env;
  const problems: string[] = [];

  // Only our variables, and an empty one is unset.
  const env: Record<string, string> = {};
  for (const s of SETTINGS) {
    const v = s.env === undefined ? undefined : rawEnv[s.env];
    if (s.env !== undefined && v !== undefined && v.trim() !== '') env[s.env] = v;
  }

  const cfg = convict(convictSchema(), { env, args: [] }) as unknown as LooseConvict;

  const configFile =
    opts.configFile ?? (rawEnv[CONFIG_FILE_ENV]?.trim() ? rawEnv[CONFIG_FILE_ENV] : undefined);
  if (configFile !== undefined) {
    const read = readTextFile(configFile);
    if ('error' in read) {
      problems.push(`${CONFIG_FILE_ENV}: ${read.error}`);
    } else {
      let json: unknown;
      try {
        json = JSON.parse(read.text);
      } catch {
        // The parser's message may quote the file's content: keep it out.
        problems.push(`${CONFIG_FILE_ENV}: ${configFile} is not valid JSON`);
      }
      if (json !== undefined) cfg.load(sanitizeFile(json, configFile, problems));
    }
  }

  const values = new Map<string, unknown>();
  for (const s of SETTINGS) {
    let value: unknown = cfg.get(s.path);
    if (value === null || value === undefined) {
      for (const name of s.envFallback ?? []) {
        const v = rawEnv[name];
        if (v !== undefined && v.trim() !== '') {
          value = v;
          break;
        }
      }
    }
    if (value === null || value === undefined) {
      if (s.required) problems.push(`${label(s)}: is required`);
      values.set(s.path, undefined);
      continue;
    }
    // A list in the file may also be written as one comma-separated string.
    if (s.format === 'list' && typeof value === 'string') value = parseList(value);
    const found = checkValue(s, value);
    for (const p of found) problems.push(`${label(s)}: ${p}`);
    values.set(s.path, found.length === 0 ? (s.normalize?.(value) ?? value) : undefined);
  }

  // Cross-setting rules and files read at load.
  const token = values.get('connectorToken') as string | undefined;
  const tokenFile = values.get('connectorTokenFile') as string | undefined;
  const tokenGiven = env.LATCHKEY_CONNECTOR_TOKEN !== undefined;
  const tokenFileGiven = cfg.get('connectorTokenFile') !== null;
  let connectorToken: string | undefined = token;
  if (tokenGiven && tokenFileGiven) {
    problems.push(
      'LATCHKEY_CONNECTOR_TOKEN and LATCHKEY_CONNECTOR_TOKEN_FILE (connectorTokenFile): set only one of them',
    );
  } else if (tokenFile !== undefined) {
    const read = readTextFile(tokenFile);
    if ('error' in read) {
      problems.push(`LATCHKEY_CONNECTOR_TOKEN_FILE (connectorTokenFile): ${read.error}`);
    } else {
      const text = read.text.trim();
      const bad = SETTINGS.find((s) => s.path === 'connectorToken')?.check?.(text);
      if (bad !== undefined) {
        problems.push(
          `LATCHKEY_CONNECTOR_TOKEN_FILE (connectorTokenFile): the token in ${tokenFile} ${bad}`,
        );
      } else {
        connectorToken = text;
      }
    }
  } else if (!tokenGiven && !tokenFileGiven) {
    problems.push(
      'LATCHKEY_CONNECTOR_TOKEN or LATCHKEY_CONNECTOR_TOKEN_FILE (connectorTokenFile): one is required',
    );
  }

  const cpUrl = values.get('controlPlaneUrl') as string | undefined;
  if (cpUrl !== undefined && values.get('allowInsecureControlPlane') !== true) {
    const url = new URL(cpUrl); // checked by checkWsUrl
    if (url.protocol === 'ws:' && !isLoopbackHost(url.hostname)) {
      problems.push(
        'LATCHKEY_CONTROL_PLANE_URL (controlPlaneUrl): ws:// sends the connector token in clear; use wss:// (ws:// is accepted for a loopback host, or anywhere with LATCHKEY_ALLOW_INSECURE_CONTROL_PLANE=true)',
      );
    }
  }

  const hbInterval = values.get('heartbeat.intervalMs') as number | undefined;
  const hbTimeout = values.get('heartbeat.timeoutMs') as number | undefined;
  if (hbInterval !== undefined && hbTimeout !== undefined && hbTimeout <= hbInterval) {
    problems.push(
      'LATCHKEY_HEARTBEAT_TIMEOUT (heartbeat.timeoutMs): must be longer than LATCHKEY_HEARTBEAT_INTERVAL',
    );
  }
  const rcInitial = values.get('reconnect.initialMs') as number | undefined;
  const rcMax = values.get('reconnect.maxMs') as number | undefined;
  if (rcInitial !== undefined && rcMax !== undefined && rcMax < rcInitial) {
    problems.push(
      'LATCHKEY_RECONNECT_MAX (reconnect.maxMs): must be at least LATCHKEY_RECONNECT_INITIAL',
    );
  }

  const vaultMethod = values.get('vault.authMethod') as string | undefined;
  if (values.get('vault.address') !== undefined) {
    if (vaultMethod !== 'token' && values.get('vault.role') === undefined) {
      problems.push(
        `LATCHKEY_VAULT_ROLE (vault.role): required with LATCHKEY_VAULT_AUTH_METHOD=${vaultMethod ?? ''}`,
      );
    }
    if (
      vaultMethod === 'token' &&
      (values.get('vault.token') === undefined) === (values.get('vault.tokenFile') === undefined)
    ) {
      problems.push(
        'LATCHKEY_VAULT_TOKEN or LATCHKEY_VAULT_TOKEN_FILE (vault.tokenFile): exactly one is required with LATCHKEY_VAULT_AUTH_METHOD=token',
      );
    }
  }

  const caBundleFile = values.get('caBundleFile') as string | undefined;
  let caBundle: string | undefined;
  if (caBundleFile !== undefined) {
    const read = readTextFile(caBundleFile);
    if ('error' in read) {
      problems.push(`LATCHKEY_CA_BUNDLE_FILE (caBundleFile): ${read.error}`);
    } else if (!read.text.includes('-----BEGIN CERTIFICATE-----')) {
      problems.push(
        `LATCHKEY_CA_BUNDLE_FILE (caBundleFile): ${caBundleFile} holds no PEM certificate`,
      );
    } else {
      caBundle = read.text;
    }
  }

  // State directory: `off` (or LATCHKEY_STATE_DIR set to an empty string) disables it;
  // `auto` resolves to the per-user state directory when the environment names one.
  const rawStateEnv = rawEnv.LATCHKEY_STATE_DIR;
  const stateSetting = values.get('stateDir') as string | undefined;
  let stateDir: string | undefined;
  let stateDirSource: AgentConfig['stateDirSource'] = 'off';
  if (rawStateEnv !== undefined && rawStateEnv.trim() === '') {
    stateDir = undefined;
  } else if (stateSetting === undefined || stateSetting.trim().toLowerCase() === 'off') {
    stateDir = undefined;
  } else if (stateSetting.trim().toLowerCase() === 'auto') {
    stateDir = defaultStateDir(rawEnv);
    if (stateDir !== undefined) stateDirSource = 'default';
  } else {
    stateDir = resolve(stateSetting);
    stateDirSource = 'configured';
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) setPath(out, s.path, values.get(s.path));
  out.connectorToken = connectorToken;
  out.caBundle = caBundle;
  out.configFile = configFile;
  out.stateDir = stateDir;
  out.stateDirSource = stateDirSource;
  out.trustedKeys = { ...(values.get('trustedKeys') as Record<string, string>) };
  out.integrations = structuredClone(values.get('integrations') ?? []);
  return deepFreeze(out as unknown as AgentConfig);
}

/**
 * The default state directory (`stateDir: auto`): `$XDG_STATE_HOME/latchkey`, else
 * `$HOME/.local/state/latchkey`; undefined when neither is set to an absolute path.
 */
export function defaultStateDir(
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  const xdg = env.XDG_STATE_HOME?.trim();
  if (xdg !== undefined && xdg !== '' && isAbsolute(xdg)) return join(xdg, 'latchkey');
  const home = env.HOME?.trim();
  if (home !== undefined && home !== '' && isAbsolute(home)) {
    return join(home, '.local', 'state', 'latchkey');
  }
  return undefined;
}

/** A copy safe to log or print: the token and any proxy password replaced. */
export function describeConfig(config: AgentConfig): Record<string, unknown> {
  let httpsProxy = config.httpsProxy;
  if (httpsProxy !== undefined) {
    try {
      const url = new URL(httpsProxy);
      if (url.password !== '' || url.username !== '') {
        url.username = '***';
        url.password = '';
      }
      httpsProxy = url.toString();
    } catch {
      httpsProxy = '[redacted]';
    }
  }
  const { caBundle: _ca, connectorToken: _t, ...rest } = config;
  return {
    ...structuredClone(rest),
    vault: { ...rest.vault, token: rest.vault.token === undefined ? undefined : '[redacted]' },
    connectorToken: '[redacted]',
    caBundle: config.caBundle === undefined ? undefined : '[PEM]',
    httpsProxy,
  };
}
