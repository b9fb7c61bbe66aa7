/**
 * The agent: wires config, protocol verification, the control-plane link, the dispatcher,
 * the drivers, the sweeper and the local HTTP server into one process with an explicit
 * lifecycle.
 *
 * Lifecycle (`status`):
 *
 *   starting ──start()──► connecting ◄──► ready ──stop()──► draining ──► stopped
 *
 * - `starting`: built, nothing listening yet.
 * - `connecting`: HTTP server up (`/healthz` answers), link to the control plane being
 *   (re-)established; `/readyz` says not ready.
 * - `ready`: connected (welcome received); `/readyz` is 200.
 * - `draining`: `stop()` was called: new commands are refused with `E_BUSY` (by the
 *   dispatcher), running ones get the grace period, their results are flushed.
 * - `stopped`: everything closed.
 *
 * The flow of one frame:
 *   invalid frame        → `rejected` + 'command:rejected'
 *   command              → verify (fail → `rejected` + 'command:rejected')
 *                        → known integrations remember it (for the sweeper)
 *                        → dispatcher.submit:
 *                             accepted → `accepted`
 *                             running  → nothing (a duplicate of a running command)
 *                             done     → the stored result again
 *                             rejected → `rejected` + 'command:rejected'
 *   dispatcher result    → client.sendResult (kept in the outbox until acked)
 *   cancel               → dispatcher.cancel
 */
import { randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { packageVersion } from './cli/version.js';
import type { AgentConfig } from './config/index.js';
import { ControlPlaneClient } from './controlplane/client.js';
import { Outbox } from './controlplane/outbox.js';
import { ResultSpool } from './controlplane/spool.js';
import { Dispatcher } from './dispatch/dispatcher.js';
import { KnownIntegrations } from './dispatch/known-integrations.js';
import { Sweeper } from './dispatch/sweeper.js';
import type { DriverFactory, DriverServices } from './drivers/driver.js';
import { createDriverRegistry, productionDriverFactories } from './drivers/registry.js';
import { LatchkeyError, toWireError } from './errors.js';
import type { ErrorCode } from './errors.js';
import { AgentEvents } from './events.js';
import { openState } from './state/index.js';
import { createMetrics, startHttpServer } from './observability/index.js';
import { RefusalLog, type Refusal } from './observability/refusal-log.js';
import { COMMAND_KINDS, type CommandMessage } from './protocol/messages.js';
import { createSealer, parsePublicKey, type VerifyOutcome } from './protocol/index.js';
import {
  ArrivalOrder,
  VerifierPool,
  backpressureGate,
  defaultVerifyWorkers,
} from './protocol/verify-pool.js';
import { createAwsClientFactory, type LatchkeyAwsClientFactory } from './aws/index.js';
import { awsRequestHandler } from './aws/proxy.js';
import {
  bindingPolicyOf,
  createSecretResolver,
  type LatchkeySecretResolver,
} from './secrets/index.js';
import { vaultOptionsFromSettings } from './secrets/vault.js';

export type AgentStatus = 'starting' | 'connecting' | 'ready' | 'draining' | 'stopped';

export interface Agent {
  /** Starts the HTTP server and the link; resolves once both are started (not yet connected). */
  start(): Promise<void>;
  /** Graceful stop: drain, flush results, close. Idempotent; resolves when stopped. */
  stop(reason?: string): Promise<void>;
  /** Resolves when the agent is `ready` (connected), rejects after `timeoutMs`. */
  waitReady(timeoutMs?: number): Promise<void>;
  readonly status: AgentStatus;
  /** The bound port of the local HTTP server (0 before `start`). */
  readonly httpPort: number;
  readonly events: AgentEvents;
  readonly metricsRegistry: Registry;
  readonly instanceId: string;
}

export interface CreateAgentOptions {
  config: AgentConfig;
  logger: Logger;
  /** Driver factories by type; default the production set. Tests add the `test` driver. */
  driverFactories?: Readonly<Record<string, DriverFactory>>;
  /** Overrides of driver services (secrets, aws, clock…). */
  services?: Partial<DriverServices>;
  /** Default: a random UUID per process. */
  instanceId?: string;
}

/** The least number of commands read and not yet checked before reading is held back. */
const MIN_UNCHECKED_COMMANDS = 64;

/** Region for AWS calls when neither the integration nor the config names one. */
export const FALLBACK_AWS_REGION = 'us-east-1';

export interface BuiltDriverServices {
  services: DriverServices;
  /** Releases what the services hold (cached AWS clients, cached secrets). */
  close(): void;
}

/**
 * The long-lived services drivers are built with, from the config; `overrides` win (tests).
 * Shared by the agent, `latchkey check` and `latchkey exec`.
 */
export function buildDriverServices(
  config: AgentConfig,
  logger: Logger,
  events: AgentEvents,
  overrides: Partial<DriverServices> = {},
): BuiltDriverServices {
  const defaultRegion = config.aws.defaultRegion ?? FALLBACK_AWS_REGION;
  let ownedAws: LatchkeyAwsClientFactory | undefined;
  let aws = overrides.aws;
  if (aws === undefined) {
    // Every AWS call through LATCHKEY_HTTPS_PROXY (NO_PROXY honoured) and trusting
    // LATCHKEY_CA_BUNDLE_FILE: the SDK itself reads neither.
    const requestHandler = awsRequestHandler({
      proxyUrl: config.httpsProxy ?? undefined,
      caBundle: config.caBundle ?? undefined,
    });
    ownedAws = createAwsClientFactory({
      defaultRegion,
      allowedRolePattern: config.aws.assumeRolePattern,
      events,
      logger: logger.child({ component: 'aws' }),
      ...(requestHandler ? { requestHandler } : {}),
    });
    aws = ownedAws;
  }
  let ownedSecrets: LatchkeySecretResolver | undefined;
  let secrets = overrides.secrets;
  if (secrets === undefined) {
    ownedSecrets = createSecretResolver({
      aws,
      defaultRegion,
      cacheTtlMs: config.secretCacheTtlMs,
      // Guardrails (docs/secrets.md, "Binding secrets to targets").
      fileRoots: config.secretFileRoots,
      envPrefixes: config.secretEnvPrefixes,
      allowUnbound: config.allowUnboundSecrets,
      ...vaultOption(config),
      tagPrefix: config.tagPrefix,
    });
    secrets = ownedSecrets;
  }
  const services: DriverServices = {
    logger: logger.child({ component: 'driver' }),
    sealer: createSealer({ allowPlaintext: config.allowPlaintextCredentials }),
    tagPrefix: config.tagPrefix,
    now: () => new Date(),
    ...(config.caBundle === undefined ? {} : { caBundle: config.caBundle }),
    ...overrides,
    secrets,
    aws,
  };
  return {
    services,
    close() {
      ownedSecrets?.clear();
      ownedAws?.destroy();
    },
  };
}

/** The outbox, telling the agent which results the control plane acknowledges. */
class AgentOutbox extends Outbox {
  onAck: ((commandId: string) => void) | undefined;

  override ack(commandId: string): boolean | Promise<boolean> {
    this.onAck?.(commandId);
    return super.ack(commandId);
  }
}

export async function createAgent(opts: CreateAgentOptions): Promise<Agent> {
  const { config } = opts;
  const logger = opts.logger;
  const instanceId = opts.instanceId ?? randomUUID();
  const events = new AgentEvents();
  const { registry: metricsRegistry } = createMetrics(events);

  let status: AgentStatus = 'starting';
  const setStatus = (next: AgentStatus): void => {
    if (status === next) return;
    logger.info({ from: status, to: next }, `agent ${next}`);
    status = next;
    for (const w of [...readyWaiters]) w();
  };
  const readyWaiters = new Set<() => void>();

  const built = buildDriverServices(config, logger, events, opts.services);
  const services = built.services;
  const registry = createDriverRegistry(
    opts.driverFactories ?? productionDriverFactories,
    services,
  );

  const trustedKeys = new Map<string, KeyObject>();
  for (const [keyId, text] of Object.entries(config.trustedKeys)) {
    trustedKeys.set(keyId, parsePublicKey(text));
  }
  // Ed25519 checks on worker threads (0: inline); outcomes reach the dispatcher in
  // arrival order whatever order the workers finish in.
  const verifyWorkers = config.verifyWorkers;
  const verifier = new VerifierPool({
    connectorId: config.connectorId,
    trustedKeys,
    maxClockSkewMs: config.maxClockSkewMs,
    maxCommandLifetimeMs: config.maxCommandLifetimeMs,
    workers: verifyWorkers ?? defaultVerifyWorkers(),
    // A command that finds the agent idle is checked inline (lower latency than a worker
    // round trip); with work about, the workers take the signatures.
    busy: () => inOrder.waiting > 0 || dispatcher.depth > 0 || dispatcher.running > 0,
    logger: logger.child({ component: 'verify' }),
  });
  // Read backpressure: while as many commands wait for their signature check as the
  // workers take, frames are left unread in the socket (TCP slows the control plane);
  // reading restarts at half. This bounds what a burst puts in memory at once, and the
  // work done in one event-loop turn. (The dispatcher's own bound, E_BUSY, is after it.)
  const maxUnchecked = Math.max(MIN_UNCHECKED_COMMANDS, verifier.backlogLimit);
  const inOrder = new ArrivalOrder(
    backpressureGate(maxUnchecked, (held) => client.holdReading(held)),
  );

  // The state journal (on by default; memory only when off or not usable).
  const state = await openState({
    dir: config.stateDir,
    explicit: config.stateDirSource === 'configured',
    logger: logger.child({ component: 'state' }),
    events,
  });
  const journal = state.journal;
  // Secret pairings found by aws-discovery outlive a restart (src/secrets/discovered.ts).
  if (journal !== undefined) await bindingPolicyOf(services.secrets).discovered?.attach(journal);
  // Large discover results are written to files while produced (bounded memory): in the
  // state directory when there is one (re-sent after a restart), else a temporary one.
  const spool = await ResultSpool.open({
    stateDir: journal === undefined ? undefined : state.dir,
    memoryBytes: config.maxResultFrameBytes,
    logger: logger.child({ component: 'spool' }),
  });
  const outbox = new AgentOutbox({
    ...(journal === undefined ? {} : { journal }),
    spoolDir: spool.dir,
    logger: logger.child({ component: 'outbox' }),
    events,
  });
  await outbox.load();
  await spool.sweep(outbox.frames());

  // Drivers are built here (once per type) so that hello announces what they really serve.
  // A driver that fails to build is left out of hello (and its commands get E_INTERNAL
  // from the dispatcher) rather than keeping the whole agent down.
  const drivers = registry.types().flatMap((type) => {
    try {
      const d = registry.get(type);
      return d === undefined ? [] : [d];
    } catch (err) {
      logger.error({ err, integrationType: type }, 'driver failed to start; not announced');
      return [];
    }
  });
  const capabilities = {
    kinds: COMMAND_KINDS.filter((k) => drivers.some((d) => d.kinds.includes(k))),
    integrationTypes: drivers.map((d) => d.type),
  };

  const client = new ControlPlaneClient({
    url: config.controlPlaneUrl,
    token: config.connectorToken,
    connectorId: config.connectorId,
    instanceId,
    version: packageVersion(),
    capabilities,
    heartbeatIntervalMs: config.heartbeat.intervalMs,
    heartbeatTimeoutMs: config.heartbeat.timeoutMs,
    backoff: { ...config.reconnect },
    maxFrameBytes: config.maxFrameBytes,
    maxResultFrameBytes: config.maxResultFrameBytes,
    ...(config.caBundle == null ? {} : { caBundle: config.caBundle }),
    ...(config.httpsProxy == null ? {} : { proxyUrl: config.httpsProxy }),
    outbox,
    events,
    logger,
    // hello asks the control plane to prove its key; a wrong trusted key is logged at connect.
    trustedKeys,
  });

  const dispatcher = new Dispatcher({
    registry,
    concurrency: { ...config.concurrency },
    queueSize: config.queueSize,
    timeoutsMs: { ...config.timeoutsMs },
    // Command ids are remembered until their expiresAt plus this skew (no re-run while valid).
    maxClockSkewMs: config.maxClockSkewMs,
    ...(journal === undefined ? {} : { journal }),
    spool,
    events,
    logger: logger.child({ component: 'dispatch' }),
  });

  const known = new KnownIntegrations({
    ...(journal === undefined ? {} : { journal }),
    initial: [...config.integrations],
    logger: logger.child({ component: 'known-integrations' }),
  });
  await known.load();
  const sweeper = new Sweeper({
    registry,
    known,
    intervalMs: config.sweepIntervalMs,
    // One integration's sweep is a batch of revokes: give it the revoke timeout.
    timeoutMs: config.timeoutsMs.revoke,
    events,
    logger: logger.child({ component: 'sweep' }),
  });

  // One line per refusal, only known-safe fields, rate limited per code (a flood of junk
  // frames must not cost more to log than to refuse).
  const refusals = new RefusalLog({ logger, events });
  const reject = (
    commandId: string | null,
    error: LatchkeyError | { code: ErrorCode; message: string; retryable: boolean },
    stage: Refusal['stage'],
    bytes?: number,
  ): void => {
    const wire = error instanceof LatchkeyError ? error.toWire() : error;
    events.emit('command:rejected', { commandId, code: wire.code });
    refusals.log({
      code: wire.code,
      commandId,
      stage,
      reason: wire.message,
      ...(bytes === undefined ? {} : { bytes }),
    });
    client.send({ type: 'rejected', commandId, error: wire });
  };

  // No promise nor closure per result unless there is a journal to wait for.
  const sendResultSafely = (result: Parameters<ControlPlaneClient['queueResult']>[0]): void => {
    let durable: Promise<void> | undefined;
    try {
      durable = client.queueResult(result);
    } catch (err) {
      logger.error({ err, commandId: result.commandId }, 'could not queue result');
      return;
    }
    durable?.catch((err: unknown) => {
      logger.error({ err, commandId: result.commandId }, 'could not queue result');
    });
  };

  // A duplicate of a finished command gets its result again unless that result is in the
  // outbox. With verification off the thread, the control plane's ack of that result may
  // be handled while the duplicate is still being verified: what counts is the outbox
  // when the duplicate ARRIVED. Acks seen while commands await their verdict are noted
  // (with the arrival count at that moment) and dropped once no waiting command can
  // predate them.
  let arrivals = 0;
  const ackedWhileVerifying = new Map<string, number>();
  outbox.onAck = (commandId) => {
    if (inOrder.waiting > 0) {
      ackedWhileVerifying.delete(commandId);
      ackedWhileVerifying.set(commandId, arrivals);
    }
  };
  const inOutboxOnArrival = (commandId: string, arrival: number): boolean => {
    const ackedAt = ackedWhileVerifying.get(commandId);
    if (ackedAt !== undefined && ackedAt >= arrival) return true;
    return outbox.has(commandId);
  };

  const onCommand = (msg: CommandMessage): void => {
    const receivedAt = new Date();
    const arrival = ++arrivals;
    const rawId = msg.envelope.id; // not `msg`: it would stay alive until the verdict
    inOrder.add(
      verifier.verify(msg),
      (verdict) => {
        // Acks noted before this command arrived matter to no command still waiting.
        // (Checked first: iterating even an empty Map allocates an iterator.)
        if (ackedWhileVerifying.size > 0) {
          for (const [id, ackedAt] of ackedWhileVerifying) {
            if (ackedAt >= arrival) break;
            ackedWhileVerifying.delete(id);
          }
        }
        onVerdict(verdict, receivedAt, arrival);
      },
      (err: unknown) => {
        // Not expected (the pool answers E_INTERNAL itself): fail closed all the same.
        logger.error({ err }, 'command verification failed');
        reject(typeof rawId === 'string' ? rawId : null, toWireError(err), 'command');
      },
    );
  };

  const onVerdict = (verdict: VerifyOutcome, receivedAt: Date, arrival: number): void => {
    if (!verdict.ok) {
      reject(verdict.commandId, verdict.error, 'command');
      return;
    }
    const { envelope, digest } = verdict;
    // While draining the dispatcher refuses new commands with E_BUSY (duplicates of
    // running ones still get 'running', finished ones their result).
    let outcome: ReturnType<Dispatcher['submit']>;
    try {
      outcome = dispatcher.submit(envelope, digest, receivedAt);
    } catch (err) {
      logger.error({ err, commandId: envelope.id }, 'dispatcher.submit threw');
      reject(envelope.id, toWireError(err), 'command');
      return;
    }
    switch (outcome.status) {
      case 'accepted':
        client.send({ type: 'accepted', commandId: envelope.id });
        // Remembered for the sweeper only once a driver serves it.
        known.remember(envelope.integration).catch((err: unknown) => {
          logger.warn(
            { err, integrationId: envelope.integration.id },
            'could not remember integration',
          );
        });
        break;
      case 'running':
        logger.info(
          { commandId: envelope.id },
          'duplicate of a running command; its result will follow',
        );
        break;
      case 'done':
        // Still in the outbox: it was (re-)sent on this connection already and will be
        // again until acked; sending it once more would only duplicate it.
        if (inOutboxOnArrival(envelope.id, arrival)) {
          logger.info(
            { commandId: envelope.id },
            'duplicate of a finished command; its result is in the outbox',
          );
        } else {
          logger.info(
            { commandId: envelope.id },
            'duplicate of a finished command; re-sending its result',
          );
          sendResultSafely(outcome.result);
        }
        break;
      case 'rejected':
        // The dispatcher already emitted 'command:rejected' and logged it.
        client.send({ type: 'rejected', commandId: envelope.id, error: outcome.error.toWire() });
        break;
    }
  };

  client.onCommand(onCommand);
  // Invalid frames and cancels keep their place after the commands before them (a cancel
  // must find the command it follows, even one still being verified).
  const noError = (): void => undefined;
  client.onInvalidFrame(({ commandId, error, bytes }) =>
    inOrder.add(undefined, () => reject(commandId, error, 'frame', bytes), noError),
  );
  client.onCancel((commandId) => {
    logger.info({ commandId }, 'cancel requested by the control plane');
    inOrder.add(undefined, () => dispatcher.cancel(commandId), noError);
  });
  dispatcher.onResult((_result, frame) => sendResultSafely(frame));

  events.on('link:connected', () => {
    if (status === 'connecting') setStatus('ready');
  });
  events.on('link:disconnected', () => {
    if (status === 'ready') setStatus('connecting');
  });

  let http: { port: number; close(): Promise<void> } | undefined;
  let stopping: Promise<void> | undefined;

  const agent: Agent = {
    get status() {
      return status;
    },
    get httpPort() {
      return http?.port ?? 0;
    },
    events,
    metricsRegistry,
    instanceId,

    async start() {
      if (status !== 'starting') throw new Error(`agent cannot start from status ${status}`);
      http = await startHttpServer({
        host: config.httpHost,
        port: config.httpPort,
        registry: metricsRegistry,
        readiness: () => {
          const reasons: string[] = [];
          if (status === 'draining' || status === 'stopped') reasons.push(`agent is ${status}`);
          else if (!client.connected) reasons.push('not connected to the control plane');
          return { ready: reasons.length === 0, reasons };
        },
      });
      setStatus('connecting');
      client.start();
      sweeper.start();
      logger.info(
        {
          connectorId: config.connectorId,
          instanceId,
          httpPort: http.port,
          integrationTypes: capabilities.integrationTypes,
        },
        'agent started',
      );
    },

    waitReady(timeoutMs = 30_000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (status === 'ready') {
            done();
            resolve();
          } else if (status === 'draining' || status === 'stopped') {
            done();
            reject(new Error(`agent is ${status}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`agent not ready after ${timeoutMs} ms (status ${status})`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          readyWaiters.delete(check);
        };
        readyWaiters.add(check);
        check();
      });
    },

    stop(reason = 'stop requested') {
      stopping ??= (async () => {
        logger.info({ reason }, 'agent stopping');
        setStatus('draining');
        const t0 = Date.now();
        await step('drain', () => dispatcher.drain(config.shutdownGraceMs));
        const flushTimeoutMs = Math.max(1000, config.shutdownGraceMs - (Date.now() - t0));
        await step('link', () => client.stop({ flushTimeoutMs }));
        await step('verifier', () => verifier.close());
        await step('sweeper', () => sweeper.stop());
        await step('http', () => http?.close());
        await step('drivers', () => registry.closeAll());
        await step('services', () => built.close());
        refusals.close();
        await step('state', () => state.close());
        await step('spool', () => spool.close());
        setStatus('stopped');
        logger.info({ durationMs: Date.now() - t0 }, 'shutdown complete');
      })();
      return stopping;
    },
  };

  async function step(name: string, fn: () => unknown): Promise<void> {
    try {
      await fn();
    } catch (err) {
      logger.error({ err, step: name }, 'error while stopping');
    }
  }

  return agent;
}

/** The `vault` secret store of the resolver, when `LATCHKEY_VAULT_ADDR` is set. */
function vaultOption(config: AgentConfig): {
  vault?: NonNullable<ReturnType<typeof vaultOptionsFromSettings>>;
} {
  const vault = vaultOptionsFromSettings(config.vault, config.caBundle);
  return vault === undefined ? {} : { vault };
}
