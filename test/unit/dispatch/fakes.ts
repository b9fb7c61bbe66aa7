/**
 * Small fakes for the dispatch tests: a driver whose behaviour each test scripts, command
 * envelopes, and a result collector. (Kept in test/unit/dispatch, never in production.)
 */
import { LatchkeyError } from '../../../src/errors.js';
import { AgentEvents, type AgentEventMap, type AgentEventName } from '../../../src/events.js';
import type {
  CallContext,
  Driver,
  DriverFactory,
  DriverServices,
  SweepReport,
} from '../../../src/drivers/driver.js';
import { createDriverRegistry, type DriverRegistry } from '../../../src/drivers/registry.js';
import { Dispatcher, type DispatcherOptions } from '../../../src/dispatch/dispatcher.js';
import { createLogger } from '../../../src/observability/logger.js';
import {
  COMMAND_KINDS,
  EnvelopeSchema,
  type CommandKind,
  type Envelope,
  type Result,
} from '../../../src/protocol/messages.js';

export const silentLogger = createLogger({ level: 'silent' });

export const OK_OUTPUT: Record<CommandKind, Record<string, unknown>> = {
  discover: { resources: [], permissions: [], warnings: [] },
  grant: { username: 'lk_alice', access: { host: 'db' }, alreadyGranted: false },
  revoke: { revoked: ['g1'], phases: [], sessionsTerminated: 0, alreadyRevoked: false },
  rotate: { username: 'lk_alice', phases: [] },
  cleanup: { dropped: [], kept: [] },
  check: { ok: true, checks: [] },
};

export type Behaviour = (kind: CommandKind, ctx: CallContext) => Promise<unknown>;

export interface CallRecord {
  commandId: string;
  kind: CommandKind;
  integrationId: string;
  type: string;
}

/** A driver whose every call goes through `behaviour`; it records starts and concurrency. */
export class FakeDriver implements Driver {
  readonly calls: CallRecord[] = [];
  readonly finished: string[] = [];
  /** Set by a test to give the driver a sweep. */
  sweep?: (ctx: CallContext) => Promise<SweepReport>;
  closed = false;

  constructor(
    readonly type: string,
    readonly kinds: readonly CommandKind[],
    public behaviour: Behaviour,
    private readonly tracker?: ConcurrencyTracker,
  ) {}

  private async run(kind: CommandKind, ctx: CallContext): Promise<never> {
    this.calls.push({
      commandId: ctx.commandId,
      kind,
      integrationId: ctx.integration.id,
      type: this.type,
    });
    this.tracker?.enter(ctx.integration.id, this.type);
    try {
      return (await this.behaviour(kind, ctx)) as never;
    } finally {
      this.tracker?.leave(ctx.integration.id, this.type);
      this.finished.push(ctx.commandId);
    }
  }

  discover(ctx: CallContext) {
    return this.run('discover', ctx);
  }
  grant(ctx: CallContext) {
    return this.run('grant', ctx);
  }
  revoke(ctx: CallContext) {
    return this.run('revoke', ctx);
  }
  rotate(ctx: CallContext) {
    return this.run('rotate', ctx);
  }
  cleanup(ctx: CallContext) {
    return this.run('cleanup', ctx);
  }
  check(ctx: CallContext) {
    return this.run('check', ctx);
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** Records how many calls run at once: overall, per integration, per type. */
export class ConcurrencyTracker {
  now = 0;
  max = 0;
  private readonly perIntegration = new Map<string, number>();
  private readonly perType = new Map<string, number>();
  readonly maxPerIntegration = new Map<string, number>();
  readonly maxPerType = new Map<string, number>();

  enter(integrationId: string, type: string): void {
    this.now++;
    this.max = Math.max(this.max, this.now);
    bump(this.perIntegration, this.maxPerIntegration, integrationId, 1);
    bump(this.perType, this.maxPerType, type, 1);
  }

  leave(integrationId: string, type: string): void {
    this.now--;
    bump(this.perIntegration, this.maxPerIntegration, integrationId, -1);
    bump(this.perType, this.maxPerType, type, -1);
  }
}

function bump(cur: Map<string, number>, max: Map<string, number>, key: string, d: number): void {
  const n = (cur.get(key) ?? 0) + d;
  cur.set(key, n);
  max.set(key, Math.max(max.get(key) ?? 0, n));
}

/** Manually released gates, one per command id; a gate also opens when the signal aborts. */
export class Gates {
  private readonly waiting = new Map<string, () => void>();
  private readonly opened = new Set<string>();
  private allOpen = false;

  wait(id: string, signal: AbortSignal): Promise<void> {
    if (this.allOpen || this.opened.has(id)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason as Error);
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.set(id, () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  release(id: string): void {
    this.opened.add(id);
    const r = this.waiting.get(id);
    this.waiting.delete(id);
    r?.();
  }

  /** Opens every gate, now and for later waits. */
  releaseAll(): void {
    this.allOpen = true;
    for (const id of [...this.waiting.keys()]) this.release(id);
  }

  isWaiting(id: string): boolean {
    return this.waiting.has(id);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function services(): DriverServices {
  return {
    logger: silentLogger,
    secrets: {
      resolve: () => Promise.reject(new LatchkeyError('E_SECRET', 'no secrets in this test')),
    },
    aws: {
      client: () => {
        throw new Error('no AWS in this test');
      },
    },
    sealer: {
      seal: () => {
        throw new LatchkeyError('E_INVALID', 'no sealing in this test');
      },
    },
    tagPrefix: 'latchkey',
    now: () => new Date(),
  };
}

export function registryOf(...drivers: Driver[]): DriverRegistry {
  const factories: Record<string, DriverFactory> = {};
  for (const d of drivers) factories[d.type] = () => d;
  return createDriverRegistry(factories, services());
}

let counter = 0;

export interface EnvelopeOptions {
  id?: string;
  integrationId?: string;
  type?: string;
  email?: string;
  serviceAccount?: boolean;
  expiresInMs?: number;
  config?: Record<string, unknown>;
}

export function envelope(kind: CommandKind, o: EnvelopeOptions = {}): Envelope {
  const id = o.id ?? `cmd-${++counter}`;
  const email = o.email ?? 'alice@example.com';
  const grantee = { email };
  const params: Record<CommandKind, unknown> = {
    discover: {},
    check: {},
    grant: { grantId: `g-${id}`, grantee, resources: [], permission: 'read' },
    revoke: { grantId: `g-${id}`, grantee, resources: [], permission: 'read' },
    rotate: o.serviceAccount ? { target: { serviceAccount: true } } : { target: { grantee } },
    cleanup: { usernames: ['lk_alice'] },
  };
  const now = Date.now();
  return EnvelopeSchema.parse({
    id,
    kind,
    connectorId: 'conn-1',
    issuedAt: new Date(now - 1000).toISOString(),
    expiresAt: new Date(now + (o.expiresInMs ?? 60_000)).toISOString(),
    integration: { id: o.integrationId ?? 'int-1', type: o.type ?? 'fake', config: o.config ?? {} },
    params: params[kind],
  });
}

export const TIMEOUTS: Record<CommandKind, number> = {
  discover: 10_000,
  grant: 10_000,
  revoke: 10_000,
  rotate: 10_000,
  cleanup: 10_000,
  check: 10_000,
};

export interface Harness {
  dispatcher: Dispatcher;
  events: AgentEvents;
  results: Result[];
  resultOf(id: string): Promise<Result>;
  recorded: { name: AgentEventName; payload: unknown }[];
}

export function harness(
  registry: DriverRegistry,
  overrides: Partial<DispatcherOptions> = {},
): Harness {
  const events = overrides.events ?? new AgentEvents();
  const recorded: Harness['recorded'] = [];
  const names: AgentEventName[] = [
    'command:accepted',
    'command:started',
    'command:finished',
    'command:duplicate',
    'command:rejected',
    'queue:depth',
  ];
  for (const name of names) {
    events.on(name, (payload: AgentEventMap[typeof name]) => recorded.push({ name, payload }));
  }
  const dispatcher = new Dispatcher({
    registry,
    concurrency: { global: 4, perIntegration: 4, perAwsService: 4 },
    queueSize: 100,
    timeoutsMs: TIMEOUTS,
    events,
    logger: silentLogger,
    ...overrides,
  });
  const results: Result[] = [];
  const waiters = new Map<string, (r: Result) => void>();
  dispatcher.onResult((r) => {
    results.push(r);
    waiters.get(r.commandId)?.(r);
  });
  return {
    dispatcher,
    events,
    results,
    recorded,
    resultOf: (id) => {
      const done = results.find((r) => r.commandId === id);
      if (done) return Promise.resolve(done);
      return new Promise((resolve) => waiters.set(id, resolve));
    },
  };
}

export const ALL_KINDS = COMMAND_KINDS;

export function submit(h: Harness, env: Envelope, digest = `digest-${env.id}`) {
  return h.dispatcher.submit(env, digest, new Date());
}
