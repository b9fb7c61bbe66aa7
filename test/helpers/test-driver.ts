/**
 * A configurable driver for agent-level tests and the benchmark: type `test`, every kind.
 *
 * It lives under `test/` so that no production config can ever reach it (the production
 * registry does not know the type `test`).
 *
 * Behaviour is controlled by the integration's `config` (the command params are strict
 * protocol schemas, the integration config is driver-specific), parsed with zod:
 *
 * - `delayMs`: wait this long (abortable) before answering;
 * - `block`: wait until the test calls `release(name)` (or the call is aborted);
 * - `failCode` / `failMessage`: throw a `LatchkeyError` with this code;
 * - `throwPlain`: throw a plain `Error` (a bug; must become `E_INTERNAL` on the wire);
 * - `sweepRevoked`: what `sweep` reports as revoked.
 *
 * Every call is recorded in `calls` (in start order) so tests can assert that a rejected
 * command never reached the driver, or that a duplicate ran once.
 */
import { z } from 'zod';
import { ERROR_CODE_LIST, LatchkeyError } from '../../src/errors.js';
import type { CallContext, Driver, DriverFactory, SweepReport } from '../../src/drivers/driver.js';
import type {
  CheckOutput,
  CleanupOutput,
  CleanupParams,
  CommandKind,
  DiscoverOutput,
  GrantOutput,
  GrantParams,
  RevokeOutput,
  RevokeParams,
  RotateOutput,
  RotateParams,
} from '../../src/protocol/messages.js';
import { COMMAND_KINDS } from '../../src/protocol/messages.js';

export const TEST_DRIVER_TYPE = 'test';

const TestConfigSchema = z.object({
  delayMs: z.number().int().nonnegative().max(600_000).optional(),
  block: z.string().min(1).optional(),
  failCode: z.enum(ERROR_CODE_LIST).optional(),
  failMessage: z.string().optional(),
  throwPlain: z.boolean().optional(),
  sweepRevoked: z.array(z.string()).optional(),
});
export type TestDriverConfig = z.infer<typeof TestConfigSchema>;

export interface TestDriverCall {
  commandId: string;
  kind: CommandKind | 'sweep';
  integrationId: string;
  /** The grantee email for grant/revoke/rotate(grantee), to check per-grantee order. */
  grantee?: string;
  /** Order in which calls started and ended (a shared counter). */
  startSeq: number;
  endSeq?: number;
  outcome?: 'ok' | 'error' | 'aborted';
}

export interface TestDriverControl {
  /** The factory to put in the driver registry under `test`. */
  factory: DriverFactory;
  /** Every call, in start order. */
  readonly calls: TestDriverCall[];
  /** Calls of one command id. */
  callsFor(commandId: string): TestDriverCall[];
  /** Lets every call blocked on `name` (now or later) proceed. */
  release(name: string): void;
  /** Resolves when `n` calls have started (for "a command is running now"). */
  waitForCalls(n: number, timeoutMs?: number): Promise<void>;
  /** Number of driver instances closed (registry.closeAll). */
  readonly closed: number;
  reset(): void;
}

function abortable(signal: AbortSignal, wait: (done: () => void) => () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(abortError(signal));
      return;
    }
    let cleanup: () => void = () => undefined;
    const onAbort = (): void => {
      cleanup();
      reject(abortError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    cleanup = wait(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

function abortError(signal: AbortSignal): LatchkeyError {
  const reason: unknown = signal.reason;
  if (reason instanceof LatchkeyError) return reason;
  return new LatchkeyError('E_CANCELLED', 'test driver call aborted', { cause: reason });
}

/**
 * A config with no key at all: `TestConfigSchema` takes it as every option at its
 * default (no delay, no block, no failure), with nothing to parse.
 */
function isEmptyConfig(config: unknown): boolean {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return false;
  for (const key in config) {
    if (Object.prototype.hasOwnProperty.call(config, key)) return false;
  }
  return true;
}

/** Freezes `value` and everything in it. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * The answers that depend on nothing: one frozen object each, shared by every call (the
 * dispatcher validates a driver's output into a copy, and never changes what it got).
 */
const DISCOVER_OUTPUT: DiscoverOutput = deepFreeze({
  resources: [
    { id: 'database:demo', name: 'demo', type: 'database', metadata: {} },
    {
      id: 'table:demo/public/orders',
      name: 'orders',
      type: 'table',
      parentId: 'database:demo',
      metadata: {},
    },
  ],
  permissions: [
    { id: 'read', name: 'Read' },
    { id: 'write', name: 'Write' },
  ],
  warnings: [],
});
const discoverAnswer = (): DiscoverOutput => DISCOVER_OUTPUT;

const CHECK_OUTPUT: CheckOutput = deepFreeze({
  ok: true,
  serverVersion: 'test-1',
  checks: [{ name: 'connect', ok: true, detail: 'test driver always connects' }],
});
const checkAnswer = (): CheckOutput => CHECK_OUTPUT;

export interface TestDriverOptions {
  /** Record every call in `calls` (default true; the benchmark turns it off). */
  record?: boolean;
}

export function createTestDriver(opts: TestDriverOptions = {}): TestDriverControl {
  const record = opts.record ?? true;
  const calls: TestDriverCall[] = [];
  const released = new Set<string>();
  const waiters = new Map<string, Set<() => void>>();
  const callWaiters = new Set<() => void>();
  let seq = 0;
  let closed = 0;

  const waitForGate = (name: string, signal: AbortSignal): Promise<void> =>
    abortable(signal, (done) => {
      if (released.has(name)) {
        done();
        return () => undefined;
      }
      let set = waiters.get(name);
      if (!set) {
        set = new Set();
        waiters.set(name, set);
      }
      set.add(done);
      const s = set;
      return () => s.delete(done);
    });

  const delay = (ms: number, signal: AbortSignal): Promise<void> =>
    abortable(signal, (done) => {
      const t = setTimeout(done, ms);
      return () => clearTimeout(t);
    });

  /**
   * The call of a command whose config is empty (every option at its default) when calls
   * are not recorded, as in the benchmark: it answers at once, with no async frame, no
   * call record and no config parse (the bench measures the agent, not this driver).
   * Anything else takes the full path below.
   */
  function run<T>(
    ctx: CallContext,
    kind: CommandKind | 'sweep',
    grantee: string | undefined,
    answer: () => T,
  ): Promise<T> {
    if (!record && isEmptyConfig(ctx.integration.config)) {
      try {
        return Promise.resolve(answer());
      } catch (err) {
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- as the async path would reject
        return Promise.reject(err);
      }
    }
    return runRecorded(ctx, kind, grantee, answer);
  }

  async function runRecorded<T>(
    ctx: CallContext,
    kind: CommandKind | 'sweep',
    grantee: string | undefined,
    answer: () => T,
  ): Promise<T> {
    const call: TestDriverCall = {
      commandId: ctx.commandId,
      kind,
      integrationId: ctx.integration.id,
      startSeq: ++seq,
      ...(grantee === undefined ? {} : { grantee }),
    };
    if (record) calls.push(call);
    if (callWaiters.size > 0) for (const w of [...callWaiters]) w();
    const parsed = TestConfigSchema.safeParse(ctx.integration.config);
    try {
      if (!parsed.success) throw new LatchkeyError('E_INVALID', 'test driver config is invalid');
      const cfg = parsed.data;
      if (cfg.delayMs !== undefined && cfg.delayMs > 0) await delay(cfg.delayMs, ctx.signal);
      if (cfg.block !== undefined) await waitForGate(cfg.block, ctx.signal);
      if (cfg.throwPlain === true) throw new Error('test driver plain failure');
      if (cfg.failCode !== undefined) {
        throw new LatchkeyError(
          cfg.failCode,
          cfg.failMessage ?? `test driver failure ${cfg.failCode}`,
        );
      }
      const out = answer();
      call.outcome = 'ok';
      return out;
    } catch (err) {
      call.outcome = ctx.signal.aborted ? 'aborted' : 'error';
      throw err;
    } finally {
      call.endSeq = ++seq;
    }
  }

  const factory: DriverFactory = () => {
    const driver: Driver = {
      type: TEST_DRIVER_TYPE,
      kinds: COMMAND_KINDS,
      discover: (ctx): Promise<DiscoverOutput> => run(ctx, 'discover', undefined, discoverAnswer),
      grant: (ctx, params: GrantParams): Promise<GrantOutput> =>
        run(ctx, 'grant', params.grantee.email, () => ({
          username: `lk_${params.grantee.email.split('@')[0] ?? 'user'}`,
          access: { host: 'test.invalid', grantId: params.grantId },
          alreadyGranted: false,
          ...(params.expiresAt === undefined ? {} : { expiresAt: params.expiresAt }),
        })),
      revoke: (ctx, params: RevokeParams): Promise<RevokeOutput> =>
        run(ctx, 'revoke', params.grantee.email, () => ({
          revoked: [params.grantId],
          phases: [{ phase: 'drop-grant-role', status: 'done' as const }],
          sessionsTerminated: 0,
          alreadyRevoked: false,
        })),
      rotate: (ctx, params: RotateParams): Promise<RotateOutput> =>
        run(
          ctx,
          'rotate',
          'grantee' in params.target ? params.target.grantee.email : undefined,
          () => ({
            username: 'lk_rotated',
            phases: [{ phase: 'change-password', status: 'done' as const }],
          }),
        ),
      cleanup: (ctx, params: CleanupParams): Promise<CleanupOutput> =>
        run(ctx, 'cleanup', undefined, () => ({ dropped: [...params.usernames], kept: [] })),
      check: (ctx): Promise<CheckOutput> => run(ctx, 'check', undefined, checkAnswer),
      sweep: (ctx): Promise<SweepReport> =>
        run(ctx, 'sweep', undefined, () => {
          const cfg = TestConfigSchema.safeParse(ctx.integration.config);
          return { revoked: cfg.success ? (cfg.data.sweepRevoked ?? []) : [], errors: [] };
        }),
      close: (): Promise<void> => {
        closed += 1;
        return Promise.resolve();
      },
    };
    return driver;
  };

  return {
    factory,
    calls,
    callsFor: (commandId) => calls.filter((c) => c.commandId === commandId),
    release(name) {
      released.add(name);
      const set = waiters.get(name);
      if (set) for (const w of [...set]) w();
      waiters.delete(name);
    },
    waitForCalls(n, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        if (calls.length >= n) {
          resolve();
          return;
        }
        const timer = setTimeout(() => {
          callWaiters.delete(check);
          reject(new Error(`timed out waiting for ${n} test driver calls (have ${calls.length})`));
        }, timeoutMs);
        const check = (): void => {
          if (calls.length >= n) {
            clearTimeout(timer);
            callWaiters.delete(check);
            resolve();
          }
        };
        callWaiters.add(check);
      });
    },
    get closed() {
      return closed;
    },
    reset() {
      calls.length = 0;
      released.clear();
    },
  };
}
