/**
 * An in-process agent (with the `test` driver) connected over a real WebSocket to the
 * reference control plane, both on random local ports. For agent-level integration tests
 * and the benchmark.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { createAgent, type Agent } from '../../src/agent.js';
import { loadConfig, type AgentConfig } from '../../src/config/index.js';
import { startDevControlPlane, type DevControlPlane } from '../../src/devcp/server.js';
import type { DriverFactory } from '../../src/drivers/driver.js';
import {
  generateSigningKeyPair,
  parsePrivateKey,
  signEnvelope,
  type SigningKeyPair,
} from '../../src/protocol/index.js';
import type { CommandKind, Integration } from '../../src/protocol/messages.js';
import {
  createTestDriver,
  TEST_DRIVER_TYPE,
  type TestDriverConfig,
  type TestDriverControl,
} from './test-driver.js';

export interface HarnessOptions {
  /** Extra `LATCHKEY_*` environment for `loadConfig` (wins over the harness defaults). */
  env?: Record<string, string>;
  withholdAcks?: boolean;
  /** Extra driver factories (the `test` driver is always there). */
  driverFactories?: Record<string, DriverFactory>;
  logger?: Logger;
  /** Do not wait for the agent to be ready (default: wait). */
  noWait?: boolean;
}

export interface SendOptions {
  integration?: Integration;
  id?: string;
  ttlMs?: number;
  issuedAt?: Date;
}

export interface AgentHarness {
  cp: DevControlPlane;
  agent: Agent;
  driver: TestDriverControl;
  config: AgentConfig;
  connectorId: string;
  token: string;
  signing: SigningKeyPair;
  signingKey: KeyObject;
  /** A `test` integration with this driver config. */
  integration(config?: TestDriverConfig, id?: string): Integration;
  /** A signed command through the control plane (kept pending and redelivered until answered). */
  send(kind: CommandKind, params?: Record<string, unknown>, opts?: SendOptions): Promise<string>;
  /** An envelope (unsigned) as the control plane would build it. */
  envelope(
    kind: string,
    params?: Record<string, unknown>,
    overrides?: Record<string, unknown>,
  ): Record<string, unknown>;
  /** A `command` frame signed with `key` (default the trusted key) under `keyId`. */
  frame(
    envelope: Record<string, unknown>,
    key?: KeyObject,
    keyId?: string,
  ): Record<string, unknown>;
  /** Sends a frame as is (string) or JSON-encoded (object). */
  sendRaw(frame: string | Record<string, unknown>): void;
  /** GET /metrics over HTTP. */
  metrics(): Promise<string>;
  /** A counter or gauge value from /metrics (0 when absent). */
  metricValue(name: string, labels?: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

/** The env the harness gives `loadConfig`: everything the agent needs, fast timings. */
export function harnessEnv(opts: {
  url: string;
  connectorId: string;
  token: string;
  signing: SigningKeyPair;
}): Record<string, string> {
  return {
    LATCHKEY_CONTROL_PLANE_URL: opts.url,
    LATCHKEY_CONNECTOR_ID: opts.connectorId,
    LATCHKEY_CONNECTOR_TOKEN: opts.token,
    LATCHKEY_TRUSTED_KEYS: JSON.stringify({ [opts.signing.keyId]: opts.signing.publicKey }),
    LATCHKEY_HTTP_HOST: '127.0.0.1',
    LATCHKEY_HTTP_PORT: '0',
    LATCHKEY_LOG_LEVEL: 'silent',
    LATCHKEY_RECONNECT_INITIAL: '50ms',
    LATCHKEY_RECONNECT_MAX: '200ms',
    LATCHKEY_SHUTDOWN_GRACE: '10s',
    LATCHKEY_SWEEP_INTERVAL: '0',
  };
}

export async function startAgentHarness(opts: HarnessOptions = {}): Promise<AgentHarness> {
  const connectorId = `conn-${randomUUID().slice(0, 8)}`;
  const token = `tok-${randomUUID()}`;
  const signing = generateSigningKeyPair();
  const signingKey = parsePrivateKey(signing.privateKeyPem);
  const logger = opts.logger ?? pino({ level: 'silent' });
  const cp = await startDevControlPlane({
    agents: [{ connectorId, token }],
    signingKey: { keyId: signing.keyId, privateKeyPem: signing.privateKeyPem },
    withholdAcks: opts.withholdAcks ?? false,
    logger,
  });
  const driver = createTestDriver();
  const env = { ...harnessEnv({ url: cp.url, connectorId, token, signing }), ...opts.env };
  let config: AgentConfig;
  try {
    config = loadConfig({ env });
  } catch (err) {
    await cp.close();
    throw err;
  }
  const agent = await createAgent({
    config,
    logger,
    driverFactories: { [TEST_DRIVER_TYPE]: driver.factory, ...opts.driverFactories },
  });
  await agent.start();
  if (opts.noWait !== true) await agent.waitReady(10_000);

  const integration = (cfg: TestDriverConfig = {}, id = 'it-test'): Integration => ({
    id,
    type: TEST_DRIVER_TYPE,
    config: { ...cfg },
  });

  const envelope = (
    kind: string,
    params: Record<string, unknown> = {},
    overrides: Record<string, unknown> = {},
  ): Record<string, unknown> => {
    const now = Date.now();
    return {
      id: `cmd-${randomUUID()}`,
      kind,
      connectorId,
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 60_000).toISOString(),
      integration: integration(),
      params,
      ...overrides,
    };
  };

  const metrics = async (): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${agent.httpPort}/metrics`);
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
    return res.text();
  };

  return {
    cp,
    agent,
    driver,
    config,
    connectorId,
    token,
    signing,
    signingKey,
    integration,
    async send(kind, params = {}, o = {}) {
      const { commandId } = await cp.sendCommand(connectorId, {
        kind,
        integration: o.integration ?? integration(),
        params,
        ...(o.id === undefined ? {} : { id: o.id }),
        ...(o.ttlMs === undefined ? {} : { ttlMs: o.ttlMs }),
        ...(o.issuedAt === undefined ? {} : { issuedAt: o.issuedAt }),
      });
      return commandId;
    },
    envelope,
    frame(env, key = signingKey, keyId = signing.keyId) {
      return { type: 'command', envelope: env, signature: signEnvelope(env, key, keyId) };
    },
    sendRaw(frame) {
      cp.sendRaw(connectorId, typeof frame === 'string' ? frame : JSON.stringify(frame));
    },
    metrics,
    async metricValue(name, labels = {}) {
      return metricFromText(await metrics(), name, labels);
    },
    async close() {
      await agent.stop('harness close');
      await cp.close();
    },
  };
}

/** Reads one sample from Prometheus text: the line of `name` whose labels include `labels`. */
export function metricFromText(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const part of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      if (part[1] !== undefined) found[part[1]] = part[2] ?? '';
    }
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(m[4]);
  }
  return 0;
}
