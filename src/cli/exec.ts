/**
 * `latchkey exec`: runs one command locally, through the same Dispatcher and drivers as
 * the daemon (deadlines, output validation, error mapping), without a control plane and
 * without a signature. For operators trying an integration, and for debugging a driver.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { buildDriverServices } from '../agent.js';
import { ConfigError, loadConfig, type AgentConfig } from '../config/index.js';
import { Dispatcher } from '../dispatch/dispatcher.js';
import type { DriverFactory } from '../drivers/driver.js';
import { createDriverRegistry, productionDriverFactories } from '../drivers/registry.js';
import { AgentEvents } from '../events.js';
import { createLogger } from '../observability/index.js';
import { envelopeDigest, generateSigningKeyPair } from '../protocol/index.js';
import {
  CommandKindSchema,
  EnvelopeSchema,
  IntegrationSchema,
  type Result,
} from '../protocol/messages.js';
import { parseCommandArgs, UsageError, type CliIo } from './io.js';

export const EXEC_HELP = `Usage: latchkey exec --integration <file.json> --command <file.json> [options]

Runs one command locally through the dispatcher and the drivers, exactly as the daemon
would (deadline, output validation, error codes), but without a control plane and
without a signature, and prints the Result message as JSON.

  --integration <file>  the integration: {"id", "type", "config", "secret"?, "settings"?}
  --command <file>      the command: {"kind": "check"|"discover"|"grant"|..., "params": {...}}
  -c, --config <file>   JSON config file (else LATCHKEY_CONFIG_FILE); the control-plane
                        settings are not needed here
  -h, --help            show this help

Credentials in a grant or rotate output are sealed to params.recipientKey; without one
they are returned only if LATCHKEY_ALLOW_PLAINTEXT_CREDENTIALS=true.
Logs go to stderr (LATCHKEY_LOG_LEVEL, default warn here).

Exit codes: 0 result ok, 1 result error, 2 wrong invocation, unreadable input or config.`;

const CommandFileSchema = z.strictObject({
  kind: CommandKindSchema,
  params: z.record(z.string(), z.unknown()).default({}),
});

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(
      `cannot read ${what} file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`${what} file ${path} is not JSON`);
  }
}

/** The config for a local run: the control-plane settings are not needed, so placeholders fill them when unset. */
export function loadLocalConfig(
  configFile: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): AgentConfig {
  const filled: NodeJS.ProcessEnv = { LATCHKEY_LOG_LEVEL: 'warn', ...env };
  filled.LATCHKEY_CONTROL_PLANE_URL ??= 'ws://127.0.0.1:9/unused-by-exec';
  filled.LATCHKEY_CONNECTOR_ID ??= 'local-exec';
  if (
    filled.LATCHKEY_CONNECTOR_TOKEN === undefined &&
    filled.LATCHKEY_CONNECTOR_TOKEN_FILE === undefined
  ) {
    filled.LATCHKEY_CONNECTOR_TOKEN = 'unused-by-exec';
  }
  if (filled.LATCHKEY_TRUSTED_KEYS === undefined) {
    const k = generateSigningKeyPair();
    filled.LATCHKEY_TRUSTED_KEYS = JSON.stringify({ [k.keyId]: k.publicKey });
  }
  return loadConfig(configFile === undefined ? { env: filled } : { env: filled, configFile });
}

export async function execLocal(
  config: AgentConfig,
  integrationValue: unknown,
  commandValue: unknown,
  factories: Readonly<Record<string, DriverFactory>> = productionDriverFactories,
): Promise<Result> {
  const integration = IntegrationSchema.safeParse(integrationValue);
  if (!integration.success) {
    throw new UsageError(
      `invalid integration: ${integration.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  }
  const command = CommandFileSchema.safeParse(commandValue);
  if (!command.success) {
    throw new UsageError(
      `invalid command: ${command.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  }
  const now = new Date();
  const raw = {
    id: `exec-${randomUUID()}`,
    kind: command.data.kind,
    connectorId: config.connectorId,
    issuedAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + config.timeoutsMs[command.data.kind] + 1000).toISOString(),
    integration: integration.data,
    params: command.data.params,
  };
  const envelope = EnvelopeSchema.safeParse(raw);
  if (!envelope.success) {
    throw new UsageError(
      `invalid params for ${command.data.kind}: ${envelope.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  const logger = createLogger({ level: config.logLevel, destination: process.stderr });
  const events = new AgentEvents();
  const built = buildDriverServices(config, logger, events);
  const registry = createDriverRegistry(factories, built.services);
  const dispatcher = new Dispatcher({
    registry,
    concurrency: { global: 1, perIntegration: 1, perAwsService: 1 },
    queueSize: 1,
    timeoutsMs: { ...config.timeoutsMs },
    events,
    logger,
  });
  try {
    const result = new Promise<Result>((resolve) => dispatcher.onResult(resolve));
    const outcome = dispatcher.submit(envelope.data, envelopeDigest(raw), now);
    if (outcome.status === 'rejected') {
      const at = new Date().toISOString();
      return {
        type: 'result',
        commandId: raw.id,
        kind: raw.kind,
        status: 'error',
        error: outcome.error.toWire(),
        timings: { receivedAt: now.toISOString(), finishedAt: at, queueMs: 0, runMs: 0 },
      };
    }
    return await result;
  } finally {
    await dispatcher.drain(0);
    await registry.closeAll();
    built.close();
  }
}

export async function execCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    integration: { type: 'string', short: 'i' },
    command: { type: 'string' },
    config: { type: 'string', short: 'c' },
  });
  if (values.help === true) {
    io.out(EXEC_HELP);
    return 0;
  }
  if (values.integration === undefined)
    throw new UsageError('--integration <file.json> is required');
  if (values.command === undefined) throw new UsageError('--command <file.json> is required');
  let config: AgentConfig;
  try {
    config = loadLocalConfig(values.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`latchkey exec: invalid configuration (${err.problems.length} problem(s)):`);
      for (const p of err.problems) io.err(`  - ${p}`);
      return 2;
    }
    throw err;
  }
  const result = await execLocal(
    config,
    await readJson(values.integration, 'integration'),
    await readJson(values.command, 'command'),
  );
  io.out(JSON.stringify(result, null, 2));
  return result.status === 'ok' ? 0 : 1;
}
