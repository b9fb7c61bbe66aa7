/**
 * The dispatcher: from a verified envelope to exactly one `Result`.
 *
 * Glossary
 * - **queued**: accepted, waiting for its turn; **running**: its driver call is under way.
 * - **order key**: commands with the same key run strictly in arrival order, one at a
 *   time: `integration id + grantee email` for grant, revoke and rotate of a grantee;
 *   `integration id` for cleanup and rotate of the service account; none for discover
 *   and check (they may run in any order and side by side).
 * - **priority**: revoke > rotate > grant > cleanup > check = discover. Among commands
 *   that may start, the highest priority goes first, then the earliest arrival. A later
 *   command never overtakes an earlier one with the same order key.
 * - **limits**: at most `global` running commands, `perIntegration` per integration id,
 *   and `perAwsService` per AWS integration type (`aws-iam`, `aws-ssm`, …).
 * - **deadline**: `min(envelope.expiresAt, start + timeoutsMs[kind])`; when it passes the
 *   call's `AbortSignal` fires and the result is `E_TIMEOUT`, even if the driver ignores
 *   the signal (the call is raced, not awaited forever).
 * - **idempotency**: a command id seen again with the same digest returns the stored
 *   result (or `running`); with another digest it is `E_REPLAY`. Never runs twice.
 *
 * Scheduling: a small keyed scheduler picks the next command that may start (head of its
 * order key, under the integration and AWS-service limits, highest priority first) and
 * starts it only when a global slot is free, so priorities hold even when the agent is
 * saturated. The scheduler itself enforces the global limit: no general-purpose queue
 * sits in between (it would only add its own bookkeeping to every command).
 */
import type { Logger } from 'pino';
import { LatchkeyError, toWireError, type WireError } from '../errors.js';
import type { AgentEvents } from '../events.js';
import type { CallContext, DiscoverSink, Driver } from '../drivers/driver.js';
import type { DriverRegistry } from '../drivers/registry.js';
import {
  OUTPUT_SCHEMAS,
  type CommandKind,
  type Envelope,
  type Integration,
  type Result,
} from '../protocol/messages.js';
import { ResultFrame, type HeldFrame } from '../protocol/result-frame.js';
import type { SpoolWriter } from '../controlplane/spool.js';
import { scrubText } from '../observability/logger.js';
import type { StateJournal } from '../state/journal.js';
import { IdempotencyStore } from './idempotency.js';

export interface DispatcherOptions {
  registry: DriverRegistry;
  concurrency: { global: number; perIntegration: number; perAwsService: number };
  /** Most commands queued + running at once; beyond it new commands get `E_BUSY`. */
  queueSize: number;
  timeoutsMs: Record<CommandKind, number>;
  events: AgentEvents;
  logger: Logger;
  now?: () => Date;
  /** How many finished commands keep their result for duplicates; default 10 000. */
  idempotencyCapacity?: number;
  /**
   * Most command ids remembered at once (results or digests only); default 10 × the
   * capacity. An id is never forgotten before its `expiresAt` + `maxClockSkewMs`: when
   * this many are all still inside that window, new commands get `E_BUSY`.
   */
  idempotencyMaxEntries?: number;
  /**
   * After a running command is aborted (deadline, cancel, shutdown), how long its driver
   * call may go on holding the command's slot, limits and order key before they are
   * released anyway; default 30 s. The result (`E_TIMEOUT`/`E_CANCELLED`) is sent at once.
   */
  abandonedCallLingerMs?: number;
  /**
   * The verifier's allowed clock skew: an id is remembered until `expiresAt` + this.
   * Default one hour, the largest skew the configuration allows.
   */
  maxClockSkewMs?: number;
  /** Keeps the command-id record across restarts (`src/state/`); memory only when absent. */
  journal?: StateJournal;
  /**
   * Where a `discover` writes its large output page by page (`ctx.sink`), keeping memory
   * bounded (`src/controlplane/spool.ts`); outputs are built in memory when absent.
   */
  spool?: { begin(commandId: string, kind: CommandKind): SpoolWriter };
}

/**
 * Receives each result: the object and its held frame. For a result spooled to a file
 * the object carries `output: {}` (the output is only in the file; the frame is what is
 * sent).
 */
export type ResultHandler = (result: Result, frame: HeldFrame) => void;

export type SubmitOutcome =
  | { status: 'accepted' }
  | { status: 'running' }
  | { status: 'done'; result: HeldFrame }
  | { status: 'rejected'; error: LatchkeyError };

/** Higher runs first. */
export const KIND_PRIORITY: Readonly<Record<CommandKind, number>> = Object.freeze({
  revoke: 5,
  rotate: 4,
  grant: 3,
  cleanup: 2,
  check: 1,
  discover: 1,
});

/** The order key of an envelope (see the glossary); `null` for unordered kinds. */
export function orderKeyOf(envelope: Envelope): string | null {
  const iid = envelope.integration.id;
  switch (envelope.kind) {
    case 'grant':
    case 'revoke':
      return `${iid}\u0000grantee\u0000${envelope.params.grantee.email.toLowerCase()}`;
    case 'rotate':
      return 'grantee' in envelope.params.target
        ? `${iid}\u0000grantee\u0000${envelope.params.target.grantee.email.toLowerCase()}`
        : `${iid}\u0000integration`;
    case 'cleanup':
      return `${iid}\u0000integration`;
    case 'discover':
    case 'check':
      return null;
  }
}

/** The AWS service group of an integration type (`aws-iam` → `aws-iam`), or `null`. */
export function awsServiceOf(integrationType: string): string | null {
  return integrationType.startsWith('aws-') ? integrationType : null;
}

/**
 * Where a running job's driver call stands:
 * - `call`: the call is under way; an abort settles the job at once (the call is raced,
 *   not awaited forever);
 * - `complete`: the call ended and its spool writer is completing; an abort settles it too;
 * - `linger`: settled by an abort while its call goes on: it still holds its slot, limits
 *   and order key until the call ends or `abandonedCallLingerMs` passes;
 * - `over`: nothing of it holds anything any more (a call that outlived its linger may
 *   still end: that is only logged).
 */
type RunPhase = 'none' | 'call' | 'complete' | 'linger' | 'over';

/**
 * One accepted command. A class, every field set in the constructor: all jobs share one
 * shape (an object literal with a getter costs a fresh hidden class per object).
 */
class Job {
  state: 'queued' | 'running' | 'done' = 'queued';
  /** When it started (epoch ms, the dispatcher's clock). */
  startedAt: number | undefined = undefined;
  phase: RunPhase = 'none';
  /** The deadline (epoch ms) of the running call. */
  deadline = 0;
  /** The deadline's timer while the call runs, then the linger's (see `linger`). */
  timer: NodeJS.Timeout | undefined = undefined;
  /**
   * Built when the driver first reads `ctx.signal` (a call that never looks at it costs
   * no AbortController); aborted at once if the job already was.
   */
  controller: AbortController | undefined = undefined;
  /** Why the job was aborted (deadline, cancel, shutdown); set once. */
  abortReason: unknown = undefined;
  /** The spool writer of a discover, made when the driver first reads `ctx.sink`. */
  sink: SpoolWriter | undefined = undefined;
  /**
   * Resolves the promise of `whenDone`, made only when something waits for the job (a
   * drain): most jobs finish with nobody waiting, and cost no promise for it.
   */
  resolveDone: (() => void) | undefined = undefined;
  done: Promise<void> | undefined = undefined;
  /** Neighbours in the dispatcher's list of unfinished jobs. */
  prevActive: Job | undefined = undefined;
  nextActive: Job | undefined = undefined;
  private jobLogger: Logger | undefined = undefined;

  constructor(
    readonly envelope: Envelope,
    readonly digest: string,
    readonly driver: Driver,
    readonly receivedAt: Date,
    readonly priority: number,
    readonly orderKey: string | null,
    readonly awsService: string | null,
    private readonly parentLogger: Logger,
  ) {}

  /** Built on first use: most commands never log below info, and a child costs. */
  get logger(): Logger {
    return (this.jobLogger ??= this.parentLogger.child({
      commandId: this.envelope.id,
      kind: this.envelope.kind,
      integrationId: this.envelope.integration.id,
      integrationType: this.envelope.integration.type,
    }));
  }
}

/**
 * The `CallContext` a driver gets. `signal`, `logger` and `sink` are built when first read,
 * yet stay own enumerable properties (a driver may spread the context: `{ ...ctx,
 * integration }`): accessors defined from shared descriptors, so that every context has the
 * same hidden class (accessors in an object literal are fresh closures, and cost a hidden
 * class of their own per object: most of a command's allocation).
 */
class JobContext implements CallContext {
  readonly commandId: string;
  readonly integration: Integration;
  declare readonly signal: AbortSignal;
  declare readonly logger: Logger;
  declare readonly sink: DiscoverSink | undefined;
  readonly #job: Job;
  readonly #spool: DispatcherOptions['spool'];

  constructor(job: Job, spool: DispatcherOptions['spool']) {
    this.commandId = job.envelope.id;
    this.integration = job.envelope.integration;
    this.#job = job;
    this.#spool = spool;
    Object.defineProperty(this, 'signal', JobContext.SIGNAL);
    Object.defineProperty(this, 'logger', JobContext.LOGGER);
    Object.defineProperty(this, 'sink', JobContext.SINK);
  }

  private static readonly SIGNAL: PropertyDescriptor = {
    get(this: JobContext): AbortSignal {
      return signalOf(this.#job);
    },
    enumerable: true,
  };

  private static readonly LOGGER: PropertyDescriptor = {
    get(this: JobContext): Logger {
      return this.#job.logger;
    },
    enumerable: true,
  };

  /** The spool writer of a discover (none for other kinds, or without a spool). */
  private static readonly SINK: PropertyDescriptor = {
    get(this: JobContext): SpoolWriter | undefined {
      const job = this.#job;
      const spool = this.#spool;
      if (spool === undefined) return undefined;
      return (job.sink ??= spool.begin(job.envelope.id, 'discover'));
    },
    enumerable: true,
  };
}

/** Resolves once `job` has had its result. */
function whenDone(job: Job): Promise<void> {
  if (job.state === 'done') return Promise.resolve();
  job.done ??= new Promise<void>((resolve) => {
    job.resolveDone = resolve;
  });
  return job.done;
}

/** What `submit` answers for an accepted command (one object: it is never changed). */
const ACCEPTED: SubmitOutcome = Object.freeze({ status: 'accepted' });

export const DEFAULT_IDEMPOTENCY_CAPACITY = 10_000;
/** The largest `maxClockSkewMs` the configuration accepts. */
const DEFAULT_REPLAY_SKEW_MS = 60 * 60 * 1000;
/** Priorities are small integers (`KIND_PRIORITY`): queued counts are kept by index. */
const MAX_PRIORITY = Math.max(...Object.values(KIND_PRIORITY));

export class Dispatcher {
  private readonly opts: DispatcherOptions;
  /** The test clock of `opts.now`; undefined: `Date.now()`. */
  private readonly clock: (() => Date) | undefined;
  /** ISO texts of the timings, each with its last value kept (see `IsoText`). */
  private readonly receivedText = new IsoText();
  private readonly startedText = new IsoText();
  private readonly finishedText = new IsoText();
  /** Every command id remembered; with its job while it is unfinished (`runningOf`). */
  private readonly store: IdempotencyStore<Job>;
  private readonly replaySkewMs: number;
  /** Jobs started and not yet over (an abandoned call that still holds its slot included). */
  private runsInFlight = 0;
  private readonly idleWaiters: (() => void)[] = [];
  /**
   * Accepted and not yet finished, in a list linked through the jobs (for a drain; a
   * command id leads to its job through `store.runningOf`): a Map of them, one insert and
   * one delete per command, reallocates its table all the time when it stays small.
   */
  private firstActive: Job | undefined = undefined;
  private lastActive: Job | undefined = undefined;
  /**
   * Queued jobs, in arrival order, from `pendingHead` on. Jobs that left the queue (started
   * or finished) are skipped and compacted away lazily: removing one is O(1).
   */
  private pending: Job[] = [];
  private pendingHead = 0;
  /** Jobs in `pending` still queued. */
  private queuedCount = 0;
  /** Queued jobs per priority, by priority (to stop the search at the best one waiting). */
  private readonly queuedPerPriority: number[] = new Array<number>(MAX_PRIORITY + 1).fill(0);
  /** Per order key: its unfinished jobs in arrival order (the head may be running). */
  private readonly keyQueues = new Map<string, Job[]>();
  private readonly runningPerIntegration = new Map<string, number>();
  private readonly runningPerAwsService = new Map<string, number>();
  private runningCount = 0;
  /** Depth or running changed since the last `queue:depth` event; one is due. */
  private depthChanged = false;
  private depthScheduled = false;
  private readonly emitDepthNow = (): void => {
    this.depthScheduled = false;
    if (!this.depthChanged) return;
    this.depthChanged = false;
    this.opts.events.emit('queue:depth', { depth: this.queuedCount, running: this.runningCount });
  };
  private draining = false;
  /** Set at the end of a drain's grace period: nothing starts any more. */
  private stopping = false;
  private readonly handlers: ResultHandler[] = [];
  /** Jobs whose abandoned driver call still holds their slot (see `linger`). */
  private readonly lingering = new Set<Job>();

  constructor(opts: DispatcherOptions) {
    for (const [name, value] of Object.entries(opts.concurrency)) {
      if (!Number.isInteger(value) || value < 1) {
        throw new RangeError(`concurrency.${name} must be a positive integer`);
      }
    }
    if (!Number.isInteger(opts.queueSize) || opts.queueSize < 1) {
      throw new RangeError('queueSize must be a positive integer');
    }
    this.opts = opts;
    const now = opts.now;
    this.clock = now;
    const capacity = opts.idempotencyCapacity ?? DEFAULT_IDEMPOTENCY_CAPACITY;
    this.store = new IdempotencyStore<Job>(capacity, {
      maxEntries: opts.idempotencyMaxEntries ?? Math.max(capacity * 10, opts.queueSize),
      // The store asks for the time on every eviction: no Date for it unless a test clock.
      now: now === undefined ? Date.now : () => now().getTime(),
      ...(opts.journal === undefined ? {} : { journal: opts.journal }),
    });
    this.replaySkewMs = opts.maxClockSkewMs ?? DEFAULT_REPLAY_SKEW_MS;
    if (!Number.isFinite(this.replaySkewMs) || this.replaySkewMs < 0) {
      throw new RangeError('maxClockSkewMs must be a finite, non-negative number');
    }
  }

  /** Epoch ms: the test clock's, else `Date.now()` (no Date object). */
  private nowMs(): number {
    return this.clock === undefined ? Date.now() : this.clock().getTime();
  }

  /** Commands accepted and waiting to start. */
  get depth(): number {
    return this.queuedCount;
  }

  /** Commands whose driver call is under way. */
  get running(): number {
    return this.runningCount;
  }

  /**
   * Registers a handler for every result (each accepted command yields exactly one), given
   * as the object and as its frame (serialized once; what the link sends and keeps).
   */
  onResult(handler: ResultHandler): void {
    this.handlers.push(handler);
  }

  /**
   * Takes a verified envelope. Never throws: refusals come back as `rejected` with
   * `E_REPLAY`, `E_UNSUPPORTED`, `E_BUSY` (full or draining) or `E_INTERNAL`.
   * @param digest a digest of the envelope's canonical JSON, to tell a retry from a reuse.
   */
  submit(envelope: Envelope, digest: string, receivedAt: Date): SubmitOutcome {
    const commandId = envelope.id;
    const seen = this.store.get(commandId);
    if (seen) {
      if (seen.digest !== digest) {
        return this.reject(
          commandId,
          new LatchkeyError(
            'E_REPLAY',
            `command id ${commandId} was already used for another command`,
          ),
        );
      }
      if (seen.state === 'forgotten') {
        // It ran; its result was acknowledged long ago and is no longer held. It must not
        // run again while it is still inside its validity window.
        return this.reject(
          commandId,
          new LatchkeyError(
            'E_REPLAY',
            `command id ${commandId} already ran; its result is no longer held`,
          ),
        );
      }
      this.opts.events.emit('command:duplicate', { commandId, state: seen.state });
      return seen.state === 'running'
        ? { status: 'running' }
        : { status: 'done', result: seen.result };
    }
    if (this.draining) {
      return this.reject(commandId, new LatchkeyError('E_BUSY', 'agent is shutting down'));
    }

    const type = envelope.integration.type;
    let driver: Driver | undefined;
    try {
      driver = this.opts.registry.get(type);
    } catch (err) {
      this.opts.logger.error({ err, commandId, integrationType: type }, 'driver failed to start');
      return this.reject(
        commandId,
        new LatchkeyError('E_INTERNAL', `driver for integration type ${type} failed to start`),
      );
    }
    if (!driver) {
      return this.reject(
        commandId,
        new LatchkeyError('E_UNSUPPORTED', `integration type ${type} is not served by this agent`),
      );
    }
    if (!driver.kinds.includes(envelope.kind)) {
      return this.reject(
        commandId,
        new LatchkeyError(
          'E_UNSUPPORTED',
          `integration type ${type} does not support ${envelope.kind}`,
        ),
      );
    }
    if (this.queuedCount + this.runningCount >= this.opts.queueSize) {
      return this.reject(
        commandId,
        new LatchkeyError('E_BUSY', `queue full (${this.opts.queueSize} commands)`),
      );
    }
    // Forgetting a command id still inside its window would let it run twice: refuse
    // new work instead until old ids expire.
    if (!this.store.hasRoom()) {
      return this.reject(
        commandId,
        new LatchkeyError('E_BUSY', 'too many recent command ids remembered; retry later'),
      );
    }
    const expiresAtMs = Date.parse(envelope.expiresAt);
    const retainUntil = Number.isFinite(expiresAtMs)
      ? expiresAtMs + this.replaySkewMs
      : Number.POSITIVE_INFINITY;

    const job = new Job(
      envelope,
      digest,
      driver,
      receivedAt,
      KIND_PRIORITY[envelope.kind],
      orderKeyOf(envelope),
      awsServiceOf(type),
      this.opts.logger,
    );
    this.addActive(job);
    this.enqueue(job);
    if (job.orderKey !== null) {
      const q = this.keyQueues.get(job.orderKey);
      if (q) q.push(job);
      else this.keyQueues.set(job.orderKey, [job]);
    }
    this.store.markRunning(commandId, digest, retainUntil, job);
    if (this.opts.events.listened('command:accepted')) {
      this.opts.events.emit('command:accepted', {
        commandId,
        kind: envelope.kind,
        integrationType: type,
      });
    }
    if (this.opts.logger.isLevelEnabled('debug')) job.logger.debug('command accepted');
    this.pump();
    return ACCEPTED;
  }

  /**
   * Cancels a queued or running command; its result is `E_CANCELLED`.
   * @returns false when the command is unknown or already finished.
   */
  cancel(commandId: string): boolean {
    const job = this.store.runningOf(commandId);
    if (!job || job.state === 'done') return false;
    const reason = new LatchkeyError('E_CANCELLED', 'command cancelled');
    if (job.state === 'queued') {
      this.finish(job, { error: reason });
      this.pump();
    } else {
      this.abort(job, reason);
    }
    return true;
  }

  /**
   * Graceful stop: refuses new commands with `E_BUSY`, lets queued and running commands
   * go on for up to `graceMs`, then cancels what is left (`E_CANCELLED`). Resolves when
   * every accepted command has had its one result.
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    const all = (): Promise<void[]> => Promise.all(this.activeJobs().map(whenDone));
    if (this.firstActive !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(0, graceMs));
      });
      await Promise.race([all(), grace]);
      clearTimeout(timer);
    }
    this.stopping = true;
    const reason = (): LatchkeyError =>
      new LatchkeyError('E_CANCELLED', 'cancelled by agent shutdown');
    for (const job of this.pending.slice(this.pendingHead)) {
      if (job.state === 'queued') this.finish(job, { error: reason() });
    }
    for (const job of this.activeJobs()) {
      if (job.state === 'running') this.abort(job, reason());
    }
    this.pump();
    await all();
    // A drain past its grace does not wait for abandoned calls.
    for (const job of [...this.lingering]) this.lingerEnded(job, true);
    if (this.runsInFlight > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
  }

  // -------------------------------------------------------------------------------------

  private addActive(job: Job): void {
    job.prevActive = this.lastActive;
    if (this.lastActive === undefined) this.firstActive = job;
    else this.lastActive.nextActive = job;
    this.lastActive = job;
  }

  private removeActive(job: Job): void {
    if (job.prevActive === undefined) this.firstActive = job.nextActive;
    else job.prevActive.nextActive = job.nextActive;
    if (job.nextActive === undefined) this.lastActive = job.prevActive;
    else job.nextActive.prevActive = job.prevActive;
    job.prevActive = undefined;
    job.nextActive = undefined;
  }

  /** The unfinished jobs, in arrival order. */
  private activeJobs(): Job[] {
    const jobs: Job[] = [];
    for (let j = this.firstActive; j !== undefined; j = j.nextActive) jobs.push(j);
    return jobs;
  }

  private reject(commandId: string, error: LatchkeyError): SubmitOutcome {
    this.opts.events.emit('command:rejected', { commandId, code: error.code });
    this.opts.logger.info({ commandId, code: error.code }, `command rejected: ${error.message}`);
    return { status: 'rejected', error };
  }

  private enqueue(job: Job): void {
    this.pending.push(job);
    this.queuedCount++;
    this.queuedPerPriority[job.priority] = (this.queuedPerPriority[job.priority] ?? 0) + 1;
    this.depthChanged = true;
  }

  /** Accounts for a job that was queued and no longer is (call once its state changed). */
  private dequeued(job: Job): void {
    this.queuedCount--;
    this.queuedPerPriority[job.priority] = (this.queuedPerPriority[job.priority] ?? 1) - 1;
    this.depthChanged = true;
    // It stays in `pending` as a stale entry until compacted.
    this.compact();
  }

  /** Drops stale entries at the head, and all of them once they outnumber the live ones. */
  private compact(): void {
    while (this.pendingHead < this.pending.length) {
      const head = this.pending[this.pendingHead];
      if (head !== undefined && head.state === 'queued') break;
      this.pendingHead++;
    }
    const stale = this.pending.length - this.pendingHead - this.queuedCount;
    if (this.pendingHead === this.pending.length) {
      // Emptied: the array is kept (no new one to grow again for the next burst).
      this.pending.length = 0;
      this.pendingHead = 0;
    } else if (this.pendingHead > 1024 || stale > 1024) {
      if (this.pendingHead + stale > this.queuedCount) {
        this.pending = this.pending.slice(this.pendingHead).filter((j) => j.state === 'queued');
        this.pendingHead = 0;
      }
    }
  }

  private topQueuedPriority(): number {
    for (let p = MAX_PRIORITY; p >= 0; p -= 1) {
      if ((this.queuedPerPriority[p] ?? 0) > 0) return p;
    }
    return Number.NEGATIVE_INFINITY;
  }

  /**
   * Notes that a `queue:depth` event is due. It goes out once the current turn's work is
   * done, with the counts of that moment: the metrics keep only the latest, and a burst
   * changes them several times per command.
   */
  private emitDepth(): void {
    if (!this.depthChanged || this.depthScheduled) return;
    if (!this.opts.events.listened('queue:depth')) {
      this.depthChanged = false;
      return;
    }
    this.depthScheduled = true;
    queueMicrotask(this.emitDepthNow);
  }

  private mayStart(job: Job): boolean {
    if (job.orderKey !== null && this.keyQueues.get(job.orderKey)?.[0] !== job) return false;
    const iid = job.envelope.integration.id;
    if ((this.runningPerIntegration.get(iid) ?? 0) >= this.opts.concurrency.perIntegration) {
      return false;
    }
    if (
      job.awsService !== null &&
      (this.runningPerAwsService.get(job.awsService) ?? 0) >= this.opts.concurrency.perAwsService
    ) {
      return false;
    }
    return true;
  }

  /** Starts as many commands as the limits allow, best first. */
  private pump(): void {
    while (!this.stopping && this.runningCount < this.opts.concurrency.global) {
      let best: Job | undefined;
      const top = this.topQueuedPriority();
      for (let i = this.pendingHead; i < this.pending.length; i += 1) {
        const job = this.pending[i];
        if (job === undefined || job.state !== 'queued') continue;
        if (best && job.priority <= best.priority) continue; // pending is in arrival order
        if (this.mayStart(job)) {
          best = job;
          if (job.priority >= top) break; // nothing queued can beat it
        }
      }
      if (!best) break;
      this.start(best);
    }
    this.emitDepth();
  }

  private start(job: Job): void {
    job.state = 'running';
    this.dequeued(job);
    this.runningCount++;
    const iid = job.envelope.integration.id;
    this.runningPerIntegration.set(iid, (this.runningPerIntegration.get(iid) ?? 0) + 1);
    if (job.awsService !== null) {
      this.runningPerAwsService.set(
        job.awsService,
        (this.runningPerAwsService.get(job.awsService) ?? 0) + 1,
      );
    }
    const startedAt = this.nowMs();
    job.startedAt = startedAt;
    if (this.opts.events.listened('command:started')) {
      this.opts.events.emit('command:started', {
        commandId: job.envelope.id,
        kind: job.envelope.kind,
        integrationType: job.envelope.integration.type,
        waitMs: Math.max(0, startedAt - job.receivedAt.getTime()),
      });
    }
    this.runsInFlight++;
    try {
      this.run(job, startedAt);
    } catch (err) {
      this.runFailed(job, err);
    }
  }

  /**
   * Calls the driver, raced with the job's deadline. No async function and no promise of
   * its own: the call's promise is followed with two callbacks, and everything after it
   * (`callSettled`, `abandon`, `completeSettled`, `lingerEnded`) runs from those, the
   * deadline timer or an abort.
   */
  private run(job: Job, startedAt: number): void {
    const { envelope } = job;
    const timeoutMs = this.opts.timeoutsMs[envelope.kind];
    const deadline = Math.min(Date.parse(envelope.expiresAt), startedAt + timeoutMs);
    const remaining = deadline - startedAt;
    if (job.abortReason !== undefined) {
      this.finish(job, { error: job.abortReason });
      this.runOver(job);
      return;
    }
    if (remaining <= 0) {
      this.finish(job, {
        error: new LatchkeyError('E_TIMEOUT', 'command expired before it could start'),
      });
      this.runOver(job);
      return;
    }
    job.deadline = deadline;
    // The timer's arguments instead of a closure over the job.
    job.timer = setTimeout(Dispatcher.deadlinePassed, remaining, this, job);
    job.phase = 'call';
    // The spool writer of a discover is made when the driver first reads `ctx.sink`: a
    // driver that returns its output at once costs no writer.
    const ctx = new JobContext(job, envelope.kind === 'discover' ? this.opts.spool : undefined);
    let call: Promise<unknown>;
    try {
      // `Promise.resolve` hands a native promise back as is; a driver that throws instead
      // of rejecting fails its command the same way.
      call = Promise.resolve(callDriver(job.driver, ctx, envelope));
    } catch (err) {
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the driver's own failure, passed on as is (it may be anything)
      call = Promise.reject(err);
    }
    call.then(
      (value) => this.callSettled(job, true, value),
      (err: unknown) => this.callSettled(job, false, err),
    );
  }

  private static deadlinePassed(this: void, dispatcher: Dispatcher, job: Job): void {
    const { envelope } = job;
    const timeoutMs = dispatcher.opts.timeoutsMs[envelope.kind];
    dispatcher.abort(
      job,
      new LatchkeyError(
        'E_TIMEOUT',
        job.deadline === Date.parse(envelope.expiresAt)
          ? 'command expiry reached before the driver finished'
          : `${envelope.kind} did not finish within ${timeoutMs} ms`,
      ),
    );
  }

  /** The driver call ended, with its output (`ok`) or its failure. */
  private callSettled(job: Job, ok: boolean, value: unknown): void {
    try {
      if (job.phase !== 'call') {
        // It lost the race to an abort: its outcome is only logged, and a slot it still
        // held is released now.
        if (job.state === 'done' && job.abortReason !== undefined) {
          if (ok) job.logger.warn('driver finished after the command was aborted');
          else job.logger.debug({ err: value }, 'driver failed after the command was aborted');
        }
        if (job.phase === 'linger') this.lingerEnded(job, false);
        return;
      }
      if (job.abortReason !== undefined || !ok) {
        // An abort that came before the call ended wins over its outcome.
        this.failed(job, value);
        return;
      }
      const parsed = OUTPUT_SCHEMAS[job.envelope.kind].safeParse(value);
      if (!parsed.success) {
        job.logger.error(
          {
            issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), code: i.code })),
          },
          'driver returned a malformed output',
        );
        this.finish(job, {
          error: new LatchkeyError(
            'E_INTERNAL',
            `driver returned a malformed ${job.envelope.kind} output`,
          ),
        });
      } else if (job.sink?.used === true) {
        // Pages were written as they came: the rest of the output closes the spool. An
        // abort (deadline, cancel, shutdown) while it closes wins, as for the call.
        const written = job.sink;
        job.phase = 'complete';
        written.complete(parsed.data).then(
          () => this.completeSettled(job, written, true, undefined),
          (err: unknown) => this.completeSettled(job, written, false, err),
        );
        return;
      } else {
        this.finish(job, { output: parsed.data });
      }
      this.runOver(job);
    } catch (err) {
      this.runFailed(job, err);
    }
  }

  /** The spool writer of a spooled discover completed (`ok`) or failed. */
  private completeSettled(job: Job, written: SpoolWriter, ok: boolean, err: unknown): void {
    try {
      if (job.phase !== 'complete') return; // settled by an abort already
      if (job.abortReason !== undefined || !ok) {
        this.failed(job, err);
        return;
      }
      this.finish(job, { spooled: written });
      this.runOver(job);
    } catch (e) {
      this.runFailed(job, e);
    }
  }

  /**
   * Settles a running job that failed (its call or its spool) or was aborted: with the
   * abort's reason if there is one, else with `err`.
   * @param callUnderWay its driver call has not ended (an abort won the race).
   */
  private failed(job: Job, err: unknown, callUnderWay = false): void {
    const cause: unknown = job.abortReason !== undefined ? job.abortReason : err;
    if (cause instanceof LatchkeyError) {
      const level = cause.code === 'E_INTERNAL' ? 'error' : 'info';
      job.logger[level]({ err: cause }, `command failed: ${cause.code}`);
    } else {
      job.logger.error({ err: cause }, 'command failed with an unexpected error');
    }
    // A call that lost the race may still be changing the target (a grant still being
    // applied): its result goes out now, but its slot, limits and order key stay held
    // until it really ends (bounded), so that a revoke of the same grantee cannot
    // overtake it and the limits hold.
    const holdSlot = callUnderWay;
    this.finish(job, { error: cause }, holdSlot);
    if (holdSlot) this.linger(job);
    else this.runOver(job);
  }

  /**
   * Aborts a running job (once: the first reason stands): its driver call's signal fires,
   * and the job settles with `reason` in a microtask, as a rejected race would, unless its
   * call or spool ends first (the abort still wins then).
   */
  private abort(job: Job, reason: unknown): void {
    if (job.abortReason !== undefined) return;
    job.abortReason = reason;
    job.controller?.abort(reason);
    if (job.phase === 'call' || job.phase === 'complete') {
      queueMicrotask(() => this.abandon(job));
    }
  }

  /** Settles a job whose call or spool is still under way after an abort. */
  private abandon(job: Job): void {
    try {
      if (job.phase !== 'call' && job.phase !== 'complete') return; // settled meanwhile
      this.failed(job, job.abortReason, job.phase === 'call');
    } catch (err) {
      this.runFailed(job, err);
    }
  }

  /** Keeps an abandoned call's slot until it ends, at most `abandonedCallLingerMs`. */
  private linger(job: Job): void {
    clearTimeout(job.timer);
    job.phase = 'linger';
    if (this.stopping) {
      // A drain past its grace does not wait for abandoned calls.
      this.lingerEnded(job, true);
      return;
    }
    const lingerMs = this.opts.abandonedCallLingerMs ?? DEFAULT_ABANDONED_LINGER_MS;
    job.timer = setTimeout(() => this.lingerEnded(job, true), Math.max(0, lingerMs));
    this.lingering.add(job);
  }

  /** The abandoned call of a lingering job ended, or (`expired`) its wait did. */
  private lingerEnded(job: Job, expired: boolean): void {
    if (job.phase !== 'linger') return;
    clearTimeout(job.timer);
    this.lingering.delete(job);
    if (expired) {
      job.logger.warn(
        { lingerMs: this.opts.abandonedCallLingerMs ?? DEFAULT_ABANDONED_LINGER_MS },
        'driver ignored the abort; releasing its slot and order key while it still runs',
      );
    }
    this.release(job, true);
    this.runOver(job);
  }

  /** A started job holds nothing any more: the next ones may start. */
  private runOver(job: Job): void {
    job.phase = 'over';
    clearTimeout(job.timer);
    // Unused, failed or abandoned: its file goes (a no-op once the result is finished).
    if (job.sink !== undefined) void job.sink.discard();
    this.pump();
    if (--this.runsInFlight === 0 && this.idleWaiters.length > 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Not expected (every outcome is settled above): never leave a job without a result. */
  private runFailed(job: Job, err: unknown): void {
    this.opts.logger.error({ err, commandId: job.envelope.id }, 'command run failed');
    try {
      this.finish(job, { error: err });
    } finally {
      if (job.phase !== 'over' && job.phase !== 'linger') this.runOver(job);
    }
  }

  /** Frees a job's running slot and limits (when it ran) and its place in its order key. */
  private release(job: Job, wasRunning: boolean): void {
    if (wasRunning) {
      this.runningCount--;
      this.depthChanged = true;
      decrement(this.runningPerIntegration, job.envelope.integration.id);
      if (job.awsService !== null) decrement(this.runningPerAwsService, job.awsService);
    }
    if (job.orderKey !== null) {
      const q = this.keyQueues.get(job.orderKey);
      if (q) {
        // Mostly the head (keys run in order): shifted off, with no array made for it.
        if (q[0] === job) q.shift();
        else {
          const at = q.indexOf(job);
          if (at !== -1) q.splice(at, 1);
        }
        // An emptied queue stays while there are few keys: the next command of the same
        // grantee reuses it, and the Map does not shrink and grow again at every command.
        if (q.length === 0 && this.keyQueues.size > KEEP_IDLE_KEYS) {
          this.keyQueues.delete(job.orderKey);
        }
      }
    }
  }

  /**
   * Produces the one result of a job and releases everything it held.
   * @param holdSlot keep the job's running slot, limits and order key (a driver call
   *   that lost the race to its deadline or a cancel and has not ended yet): the caller
   *   releases them with `release` once the call really ends.
   */
  private finish(
    job: Job,
    outcome: { output: Record<string, unknown> } | { spooled: SpoolWriter } | { error: unknown },
    holdSlot = false,
  ): void {
    if (job.state === 'done') return;
    const wasRunning = job.state === 'running';
    job.state = 'done';
    clearTimeout(job.timer);
    const { envelope } = job;
    const commandId = envelope.id;

    if (!wasRunning) this.dequeued(job);
    if (!(wasRunning && holdSlot)) this.release(job, wasRunning);
    this.removeActive(job);

    const finishedAt = this.nowMs();
    const startedAt = job.startedAt;
    const receivedAt = job.receivedAt.getTime();
    const queueMs = Math.max(0, (startedAt ?? finishedAt) - receivedAt);
    const runMs = startedAt !== undefined ? Math.max(0, finishedAt - startedAt) : 0;
    const receivedAtText = this.receivedText.of(receivedAt);
    const finishedAtText = this.finishedText.of(finishedAt);
    // One literal per shape (in the same key order, which is the frame's): adding a key
    // to a built object would give it a second, out-of-object property store.
    const timings: Result['timings'] =
      startedAt !== undefined
        ? {
            receivedAt: receivedAtText,
            finishedAt: finishedAtText,
            queueMs,
            runMs,
            startedAt: this.startedText.of(startedAt),
          }
        : { receivedAt: receivedAtText, finishedAt: finishedAtText, queueMs, runMs };

    let result: Result;
    let code: WireError['code'] | undefined;
    let frame: HeldFrame | undefined;
    if ('spooled' in outcome) {
      try {
        frame = outcome.spooled.finish(timings);
        result = {
          type: 'result',
          commandId,
          kind: envelope.kind,
          status: 'ok',
          output: {},
          timings,
        };
      } catch (err) {
        void outcome.spooled.discard();
        job.logger.error({ err }, 'could not complete the spooled result');
        const error = wireErrorOf(new LatchkeyError('E_INTERNAL', 'could not write the result'));
        code = error.code;
        result = {
          type: 'result',
          commandId,
          kind: envelope.kind,
          status: 'error',
          error,
          timings,
        };
      }
    } else if ('output' in outcome) {
      result = {
        type: 'result',
        commandId,
        kind: envelope.kind,
        status: 'ok',
        output: outcome.output,
        timings,
      };
    } else {
      const error = wireErrorOf(outcome.error);
      code = error.code;
      result = { type: 'result', commandId, kind: envelope.kind, status: 'error', error, timings };
    }

    frame ??= ResultFrame.of(result);
    this.store.markDone(commandId, job.digest, frame);
    if (this.opts.events.listened('command:finished')) {
      const integrationType = envelope.integration.type;
      this.opts.events.emit(
        'command:finished',
        code === undefined
          ? {
              commandId,
              kind: envelope.kind,
              integrationType,
              outcome: result.status,
              durationMs: runMs,
            }
          : {
              commandId,
              kind: envelope.kind,
              integrationType,
              outcome: result.status,
              durationMs: runMs,
              code,
            },
      );
    }
    if (this.opts.logger.isLevelEnabled('info')) {
      job.logger.info(
        { status: result.status, code, queueMs, runMs },
        `command finished: ${result.status}`,
      );
    }
    for (const handler of this.handlers) {
      try {
        handler(result, frame);
      } catch (err) {
        this.opts.logger.error({ err, commandId }, 'result handler failed');
      }
    }
    job.resolveDone?.();
  }
}

/**
 * The ISO text of an epoch ms, the last one kept: a burst starts and finishes many
 * commands within one millisecond, and each text costs a Date and a string.
 */
class IsoText {
  private ms = Number.NaN;
  private text = '';

  of(ms: number): string {
    if (ms !== this.ms) {
      this.text = new Date(ms).toISOString();
      this.ms = ms;
    }
    return this.text;
  }
}

/** Longest `error.message` the protocol allows (`WireErrorSchema`). */
const MAX_WIRE_MESSAGE = 2000;

/**
 * `toWireError`, with a backstop on what leaves the agent: a driver's message that echoes
 * a password literal or a URL password (a server error quoting a statement) is censored,
 * and a message longer than the protocol allows is cut so the result stays valid.
 */
function wireErrorOf(err: unknown): WireError {
  const wire = toWireError(err);
  let message = scrubText(wire.message);
  if (message.length > MAX_WIRE_MESSAGE) message = `${message.slice(0, MAX_WIRE_MESSAGE - 1)}…`;
  return message === wire.message ? wire : { ...wire, message };
}

/** The job's abort signal, built on first use (already aborted if the job is). */
function signalOf(job: Job): AbortSignal {
  if (job.controller === undefined) {
    job.controller = new AbortController();
    if (job.abortReason !== undefined) job.controller.abort(job.abortReason);
  }
  return job.controller.signal;
}

/** Default of `DispatcherOptions.abandonedCallLingerMs`. */
const DEFAULT_ABANDONED_LINGER_MS = 30_000;

/**
 * Up to this many keys, a per-key count or order queue that falls to zero stays in its
 * Map: one command at a time would otherwise delete and re-add its key every time, and a
 * small Map reallocates its table as it shrinks and grows again. Beyond it, they go.
 */
const KEEP_IDLE_KEYS = 256;

function decrement<K>(map: Map<K, number>, key: K): void {
  const n = (map.get(key) ?? 0) - 1;
  if (n > 0 || map.size <= KEEP_IDLE_KEYS) map.set(key, Math.max(0, n));
  else map.delete(key);
}

/**
 * The driver method of the envelope's kind. Not an async function: it hands on the
 * driver's own promise (one promise per call, not two).
 */
function callDriver(driver: Driver, ctx: CallContext, envelope: Envelope): Promise<unknown> {
  switch (envelope.kind) {
    case 'discover': {
      const call = driver.discover(ctx, envelope.params);
      if (envelope.params.include?.includes('privileges') !== true) return call;
      // Asked for the access inventory from a driver that has none: say so, rather
      // than a silently missing inventory that reads like "nobody holds anything".
      return call.then((output) => {
        if (
          typeof output === 'object' &&
          output !== null &&
          output.inventory === undefined &&
          Array.isArray(output.warnings)
        ) {
          return {
            ...output,
            warnings: [
              ...output.warnings,
              {
                code: 'E_UNSUPPORTED',
                message: `the ${driver.type} driver does not produce an access inventory (include: privileges)`,
              },
            ],
          };
        }
        return output;
      });
    }
    case 'grant':
      return driver.grant(ctx, envelope.params);
    case 'revoke':
      return driver.revoke(ctx, envelope.params);
    case 'rotate':
      return driver.rotate(ctx, envelope.params);
    case 'cleanup': {
      const params = envelope.params;
      if ('standing' in params) {
        if (!driver.removeStanding) {
          return Promise.reject(
            new LatchkeyError(
              'E_UNSUPPORTED',
              `the ${driver.type} driver cannot remove standing access`,
            ),
          );
        }
        return driver.removeStanding(ctx, params);
      }
      return driver.cleanup(ctx, params);
    }
    case 'check':
      return driver.check(ctx);
  }
}
