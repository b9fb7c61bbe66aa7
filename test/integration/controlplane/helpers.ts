/** Shared set-up for the control-plane link tests: a dev control plane and a client. */
import { randomUUID } from 'node:crypto';
import { pino, type Logger } from 'pino';
import {
  ControlPlaneClient,
  type ControlPlaneClientOptions,
} from '../../../src/controlplane/client.js';
import { Outbox } from '../../../src/controlplane/outbox.js';
import {
  startDevControlPlane,
  type DevControlPlane,
  type DevControlPlaneOptions,
} from '../../../src/devcp/server.js';
import { AgentEvents, type AgentEventMap, type AgentEventName } from '../../../src/events.js';
import { generateSigningKeyPair } from '../../../src/protocol/keys.js';
import type { Integration, Result } from '../../../src/protocol/messages.js';

export const CONNECTOR = 'conn-test';
export const TOKEN = 'tok-' + randomUUID();

export const integration: Integration = { id: 'pg-main', type: 'postgres', config: { host: 'db' } };

export function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => lines.push(l) });
  return { logger, lines };
}

export async function startCp(
  extra: Partial<DevControlPlaneOptions> = {},
): Promise<{ cp: DevControlPlane; keys: ReturnType<typeof generateSigningKeyPair> }> {
  const keys = generateSigningKeyPair();
  const cp = await startDevControlPlane({
    agents: [{ connectorId: CONNECTOR, token: TOKEN }],
    signingKey: { keyId: keys.keyId, privateKeyPem: keys.privateKeyPem },
    ...extra,
  });
  return { cp, keys };
}

export interface TestClient {
  client: ControlPlaneClient;
  events: AgentEvents;
  outbox: Outbox;
  lines: string[];
  /** Resolves with the next emission of `event` (after this call). */
  next<K extends AgentEventName>(event: K): Promise<AgentEventMap[K]>;
}

export function makeClient(
  url: string,
  overrides: Partial<ControlPlaneClientOptions> = {},
): TestClient {
  const events = new AgentEvents();
  const { logger, lines } = capturingLogger();
  const outbox = overrides.outbox ?? new Outbox({ logger, events });
  const client = new ControlPlaneClient({
    url,
    token: TOKEN,
    connectorId: CONNECTOR,
    instanceId: 'inst-' + randomUUID().slice(0, 8),
    version: '0.0.0-test',
    capabilities: { kinds: ['check', 'grant'], integrationTypes: ['postgres'] },
    heartbeatIntervalMs: 1000,
    heartbeatTimeoutMs: 5000,
    backoff: { initialMs: 10, maxMs: 100, stableAfterMs: 60_000 },
    maxFrameBytes: 64 * 1024,
    events,
    logger,
    ...overrides,
    outbox,
  });
  const next = <K extends AgentEventName>(event: K): Promise<AgentEventMap[K]> =>
    new Promise((resolve) => {
      const off = events.on(event, (p) => {
        off();
        resolve(p);
      });
    });
  return { client, events, outbox, lines, next };
}

export function result(commandId: string): Result {
  return {
    type: 'result',
    commandId,
    kind: 'check',
    status: 'ok',
    output: { ok: true, checks: [] },
    timings: {
      receivedAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      queueMs: 0,
      runMs: 1,
    },
  };
}
