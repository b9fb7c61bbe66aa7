/**
 * `latchkey check`: is this agent able to work? Validates the configuration, connects to
 * the control plane once (hello → welcome), then runs the `check` of every integration
 * configured locally (the config file's `integrations`) with its driver, and prints a
 * readable report. Exit 0 when everything passed, 1 when anything failed, 2 when the
 * configuration itself is invalid.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import { Writable } from 'node:stream';
import { buildDriverServices } from '../agent.js';
import { parseDuration, unknownEnvNames, type AgentConfig } from '../config/index.js';
import { ControlPlaneClient } from '../controlplane/client.js';
import { Outbox } from '../controlplane/outbox.js';
import type { DriverFactory } from '../drivers/driver.js';
import { createDriverRegistry, productionDriverFactories } from '../drivers/registry.js';
import { parsePublicKey } from '../protocol/signing.js';
import { LatchkeyError, toWireError } from '../errors.js';
import { AgentEvents } from '../events.js';
import { createLogger, type Logger } from '../observability/index.js';
import { parseCommandArgs, UsageError, type CliIo } from './io.js';
import { loadConfigOrReport } from './run.js';
import { packageVersion } from './version.js';

export const CHECK_HELP = `Usage: latchkey check [--config <file>] [--timeout <duration>]

Checks that this agent can work, and says what is wrong when it cannot:
  1. the configuration is valid (every problem listed at once);
  2. the control plane is reachable and accepts the connector token (hello → welcome),
     and, if it supports key proof, signs with a key this agent trusts;
  3. every integration configured locally (config file "integrations") answers its
     driver's check: connectivity, service-account secret, privileges.

Options:
  -c, --config <file>      JSON config file (else LATCHKEY_CONFIG_FILE, if set)
  -t, --timeout <duration> per step, e.g. 10s (default 15s)
      --skip-control-plane do not connect to the control plane
  -h, --help               show this help

Exit codes: 0 all checks passed, 1 a check failed, 2 invalid configuration.`;

/**
 * Collects the last warning/error messages of a logger, to explain a failure; `onRefused`
 * runs when the control plane refuses the connector's token (HTTP 401 or 403).
 */
function collectingLogger(onRefused: () => void): {
  logger: Logger;
  lastProblem: () => string | undefined;
} {
  let last: string | undefined;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      try {
        const line = JSON.parse(chunk.toString('utf8')) as {
          level?: string;
          msg?: string;
          status?: number;
          error?: string;
        };
        if ((line.level === 'warn' || line.level === 'error') && line.msg) {
          const extra =
            line.status !== undefined
              ? ` (HTTP ${line.status})`
              : line.error
                ? ` (${line.error})`
                : '';
          last = `${line.msg}${extra}`;
          if (line.status === 401 || line.status === 403) onRefused();
        }
      } catch {
        // not JSON: ignore
      }
      cb();
    },
  });
  return { logger: createLogger({ level: 'warn', destination: sink }), lastProblem: () => last };
}

export async function checkControlPlane(
  config: AgentConfig,
  timeoutMs: number,
): Promise<{ ok: boolean; detail: string }> {
  const events = new AgentEvents();
  // A refused token stays refused: the check ends at once instead of retrying until the
  // timeout (and then reporting whatever the last retry met).
  let refused = false;
  let onRefused = (): void => undefined; // set below, before the client can log anything
  const { logger, lastProblem } = collectingLogger(() => onRefused());
  const outbox = new Outbox({ logger, events });
  const client = new ControlPlaneClient({
    url: config.controlPlaneUrl,
    token: config.connectorToken,
    connectorId: config.connectorId,
    instanceId: `check-${randomUUID()}`,
    version: packageVersion(),
    // A check connection announces no capabilities: it must not be handed commands.
    capabilities: { kinds: [], integrationTypes: [] },
    heartbeatIntervalMs: config.heartbeat.intervalMs,
    heartbeatTimeoutMs: config.heartbeat.timeoutMs,
    backoff: { initialMs: 200, maxMs: 1000, stableAfterMs: 60_000 },
    maxFrameBytes: config.maxFrameBytes,
    ...(config.caBundle === undefined ? {} : { caBundle: config.caBundle }),
    ...(config.httpsProxy === undefined ? {} : { proxyUrl: config.httpsProxy }),
    outbox,
    events,
    logger,
    trustedKeys: parseTrustedKeys(config),
  });
  const started = Date.now();
  const connected = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    events.on('link:connected', () => {
      clearTimeout(timer);
      resolve(true);
    });
    onRefused = () => {
      refused = true;
      clearTimeout(timer);
      resolve(false);
    };
  });
  client.start();
  const ok = await connected;
  // Read before stopping: stopping a reconnect under way logs an error of its own.
  const problem = lastProblem();
  await client.stop({ flushTimeoutMs: 0 });
  if (ok) {
    const welcomed = `connected and welcomed in ${Date.now() - started} ms (clock offset ${Math.round(client.clockOffsetMs)} ms)`;
    const proof = client.keyProof;
    if (proof?.status === 'failed') {
      return {
        ok: false,
        detail: `${welcomed}; but ${proof.detail}: every command it signs would be refused with E_SIGNATURE`,
      };
    }
    return {
      ok: true,
      detail:
        proof?.status === 'proved'
          ? `${welcomed}; the control plane proved the trusted key "${proof.keyId}"`
          : `${welcomed}; the control plane did not prove its key (no key proof support), so a wrong trusted key would only show as E_SIGNATURE on commands`,
    };
  }
  return {
    ok: false,
    detail: refused
      ? (problem ?? 'control plane refused the connector token')
      : `no welcome within ${timeoutMs} ms: ${problem ?? 'no answer'}`,
  };
}

/** The configured trusted keys, parsed (the configuration was validated before). */
function parseTrustedKeys(config: AgentConfig): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  for (const [keyId, text] of Object.entries(config.trustedKeys)) {
    try {
      keys.set(keyId, parsePublicKey(text));
    } catch {
      // An unparsable key cannot verify anything; the proof then names it as not trusted.
    }
  }
  return keys;
}

export interface CheckLine {
  ok: boolean;
  title: string;
  details: string[];
}

export async function checkIntegrations(
  config: AgentConfig,
  logger: Logger,
  timeoutMs: number,
  factories: Readonly<Record<string, DriverFactory>> = productionDriverFactories,
): Promise<CheckLine[]> {
  const built = buildDriverServices(config, logger, new AgentEvents());
  const registry = createDriverRegistry(factories, built.services);
  const lines: CheckLine[] = [];
  try {
    for (const integration of config.integrations) {
      const title = `integration ${integration.id} (${integration.type})`;
      let driver;
      try {
        driver = registry.get(integration.type);
      } catch (err) {
        lines.push({
          ok: false,
          title,
          details: [`driver failed to start: ${toWireError(err).message}`],
        });
        continue;
      }
      if (!driver) {
        lines.push({
          ok: false,
          title,
          details: [
            `type "${integration.type}" is not served by this agent (known: ${registry.types().join(', ') || 'none'})`,
          ],
        });
        continue;
      }
      const signal = AbortSignal.timeout(timeoutMs);
      try {
        const out = await driver.check({
          commandId: `check-${randomUUID()}`,
          integration,
          signal,
          logger: logger.child({ integrationId: integration.id }),
        });
        lines.push({
          ok: out.ok,
          title: `${title}${out.serverVersion ? `: ${out.serverVersion}` : ''}`,
          details: out.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`),
        });
      } catch (err) {
        const wire =
          signal.aborted && !(err instanceof LatchkeyError)
            ? { code: 'E_TIMEOUT', message: `no answer within ${timeoutMs} ms` }
            : toWireError(err);
        lines.push({ ok: false, title, details: [`${wire.code}: ${wire.message}`] });
      }
    }
  } finally {
    await registry.closeAll();
    built.close();
  }
  return lines;
}

export async function checkCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    config: { type: 'string', short: 'c' },
    timeout: { type: 'string', short: 't' },
    'skip-control-plane': { type: 'boolean' },
  });
  if (values.help === true) {
    io.out(CHECK_HELP);
    return 0;
  }
  const timeoutMs = values.timeout === undefined ? 15_000 : parseDuration(values.timeout);
  if (timeoutMs === undefined || timeoutMs <= 0) {
    throw new UsageError(`--timeout: "${values.timeout ?? ''}" is not a duration such as 10s`);
  }
  const config = loadConfigOrReport(values.config, io);
  if (config === null) return 2;

  const lines: CheckLine[] = [
    {
      ok: true,
      title: 'configuration',
      details: [
        `connector ${config.connectorId}, ${Object.keys(config.trustedKeys).length} trusted key(s), ${config.integrations.length} local integration(s)`,
        ...(config.configFile === undefined ? [] : [`file ${config.configFile}`]),
        ...unknownEnvNames(process.env, config.secretEnvPrefixes).map(
          (u) =>
            `ignored: unknown variable ${u.name}${u.closest !== undefined ? ` (did you mean ${u.closest}?)` : ''}`,
        ),
      ],
    },
  ];
  const factories = productionDriverFactories;
  const types = Object.keys(factories).sort();
  if (values['skip-control-plane'] !== true) {
    const cp = await checkControlPlane(config, timeoutMs);
    lines.push({
      ok: cp.ok,
      title: `control plane ${safeUrl(config.controlPlaneUrl)}`,
      details: [cp.detail],
    });
  }
  const driverLogger = createLogger({ level: 'silent' });
  lines.push(...(await checkIntegrations(config, driverLogger, timeoutMs, factories)));

  io.out(`latchkey check (version ${packageVersion()}; drivers: ${types.join(', ') || 'none'})`);
  for (const l of lines) {
    io.out(`${l.ok ? '[ ok ]' : '[FAIL]'} ${l.title}`);
    for (const d of l.details) io.out(`         ${d}`);
  }
  const failed = lines.filter((l) => !l.ok).length;
  io.out(failed === 0 ? 'All checks passed.' : `${failed} check(s) failed.`);
  return failed === 0 ? 0 : 1;
}

function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '<invalid url>';
  }
}
