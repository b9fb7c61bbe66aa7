/**
 * `latchkey run`: the daemon. Loads and validates the configuration (every problem listed
 * at once, exit 2), builds the agent and starts it; SIGTERM or SIGINT start a graceful
 * stop (drain, flush results, close) and exit 0; a second signal forces exit 1.
 */
import { createAgent } from '../agent.js';
import { ConfigError, loadConfig, unknownEnvNames, type AgentConfig } from '../config/index.js';
import { createLogger, routeProcessWarnings } from '../observability/index.js';
import { applyHeapGrowing } from './heap.js';
import { parseCommandArgs, type CliIo } from './io.js';

/** Time on top of the shutdown grace period before a stop is forced. */
const HARD_STOP_EXTRA_MS = 15_000;

export const RUN_HELP = `Usage: latchkey run [--config <file>]

Runs the agent: connects to the control plane, carries out signed commands, serves
/metrics, /healthz and /readyz. Configuration comes from LATCHKEY_* environment
variables and an optional JSON file (see docs/configuration.md).

Signals: SIGTERM or SIGINT stop gracefully (stop taking commands, finish or time out
running ones within the grace period, flush results, close) and exit 0; a second
signal exits 1 at once, and so does a stop still hanging 15 s after the grace period.

Options:
  -c, --config <file>   JSON config file (else LATCHKEY_CONFIG_FILE, if set)
  -h, --help            show this help

Exit codes: 0 stopped by a signal, 1 failed at run time, 2 invalid configuration.`;

/** Loads the config, printing every problem on failure. Returns null when invalid. */
export function loadConfigOrReport(configFile: string | undefined, io: CliIo): AgentConfig | null {
  try {
    return loadConfig(configFile === undefined ? {} : { configFile });
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`latchkey: invalid configuration (${err.problems.length} problem(s)):`);
      for (const p of err.problems) io.err(`  - ${p}`);
      return null;
    }
    throw err;
  }
}

/**
 * Warns once per `LATCHKEY_*` variable the configuration does not know (a misspelled
 * setting is otherwise ignored silently), naming the closest known variable.
 */
export function warnUnknownEnv(
  env: NodeJS.ProcessEnv,
  config: AgentConfig,
  logger: { warn: (obj: object, msg: string) => void },
): void {
  for (const u of unknownEnvNames(env, config.secretEnvPrefixes)) {
    logger.warn(
      { variable: u.name, ...(u.closest !== undefined ? { closest: u.closest } : {}) },
      u.closest !== undefined
        ? `unknown environment variable ${u.name} is ignored; did you mean ${u.closest}?`
        : `unknown environment variable ${u.name} is ignored (not a Latchkey setting; see docs/configuration.md)`,
    );
  }
}

export async function runCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' } });
  if (values.help === true) {
    io.out(RUN_HELP);
    return 0;
  }
  const config = loadConfigOrReport(values.config, io);
  if (config === null) return 2;
  const logger = createLogger({ level: config.logLevel });
  routeProcessWarnings(logger);
  warnUnknownEnv(process.env, config, logger);
  const heap = applyHeapGrowing(config.heapGrowingPercent);
  logger.info(
    { heapGrowingPercent: config.heapGrowingPercent, heapLimitMiB: heap.heapLimitMiB },
    'JavaScript heap settings',
  );

  const agent = await createAgent({ config, logger });
  let signals = 0;
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      signals += 1;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting at once');
        logger.flush();
        process.exit(1);
      }
      logger.info({ signal }, 'signal received: stopping gracefully');
      // Forced exit if the graceful stop itself hangs (a driver ignoring its signal…).
      const hardStopMs = config.shutdownGraceMs + HARD_STOP_EXTRA_MS;
      setTimeout(() => {
        logger.error({ hardStopMs }, 'graceful stop did not finish in time: exiting');
        process.exit(1);
      }, hardStopMs).unref();
      agent.stop(`signal ${signal}`).then(
        () => resolve(0),
        (err: unknown) => {
          logger.error({ err }, 'stop failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  process.on('unhandledRejection', (reason) => {
    // A bug: log it; the agent keeps serving (every command path has its own handling).
    logger.error({ err: reason }, 'unhandled promise rejection');
  });
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception: exiting');
    logger.flush();
    process.exit(1);
  });
  try {
    await agent.start();
  } catch (err) {
    logger.error({ err }, 'agent failed to start');
    await agent.stop('start failed');
    return 1;
  }
  const code = await stopped;
  logger.flush();
  return code;
}
