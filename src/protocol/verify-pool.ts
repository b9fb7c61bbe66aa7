/**
 * Command verification with the Ed25519 signature check on worker threads.
 *
 * The checks, their order and their codes are exactly those of `createCommandVerifier`
 * (schema → key id / signature → connector → time window): the schema stage and the key
 * id check run here when the command arrives (`prepare`, which also reads the clock: the
 * time window is judged against the arrival time), only the signature itself runs on a
 * worker, and stages 3 and 4 run here again on its answer (`complete`).
 *
 * - `workers: 0` verifies inline: `verify` then answers synchronously, as
 *   `createCommandVerifier(...).verify` does. With workers, a command that arrives alone
 *   (nothing in flight, first of its event-loop turn) is still checked inline: a round
 *   trip to a thread costs more than the check. As soon as commands come together, the
 *   workers take them; when their backlog is full, this thread checks inline too.
 * - Commands that arrive in one event-loop turn go to the workers as one batch, split
 *   evenly between the workers, in messages of at most 32 (buffers transferred), each
 *   answered on its own: the first answers are handed on while the rest is checked.
 * - The workers start when a signature first goes to one (an idle agent does not carry
 *   the threads).
 * - Fail closed: a worker that dies (crash, exit, termination) is replaced, and every
 *   verification it had in flight ends as `E_INTERNAL` (rejected, never accepted). So
 *   does every verification still pending when the pool is closed.
 *
 * Verifications may finish out of order (several workers); `ArrivalOrder` hands outcomes
 * on in arrival order.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { LatchkeyError } from '../errors.js';
import type { CommandMessage } from './messages.js';
import {
  createCommandVerifier,
  signatureValid,
  type PreparedCommand,
  type VerifierOptions,
  type VerifyOutcome,
} from './verify.js';
import { VERIFY_WORKER_SOURCE } from './verify-worker.js';

export interface VerifierPoolOptions extends VerifierOptions {
  /** Worker threads; 0 verifies inline. Default `defaultVerifyWorkers()`. */
  workers?: number;
  logger?: Logger;
  /**
   * Most verifications waiting per worker; beyond, signatures are checked inline until
   * the backlog shrinks. Default 256.
   */
  maxQueuedPerWorker?: number;
  /**
   * Check a command that arrives alone inline (see `inlineAlone`); default true. False
   * sends every signature to the workers (tests).
   */
  inlineWhenAlone?: boolean;
  /**
   * The caller's own backlog (commands still to hand on, queued or running): while it
   * says busy, no command counts as alone.
   */
  busy?: () => boolean;
  /** The worker's code (tests only; default `VERIFY_WORKER_SOURCE`). */
  workerSource?: string;
}

/** `min(2, availableParallelism() - 1)`, at least 1. */
export function defaultVerifyWorkers(): number {
  return Math.max(1, Math.min(2, availableParallelism() - 1));
}

interface Item {
  readonly prepared: PreparedCommand;
  readonly keyIndex: number;
  /** The promise's own resolve (through `settle`, which also counts it out of `queued`). */
  readonly resolve: (outcome: VerifyOutcome) => void;
}

/**
 * `new Promise(takeResolve)` leaves the promise's resolve function in `takenResolve`: one
 * shared executor instead of a closure per command (Node 20 has no
 * `Promise.withResolvers`). The executor runs synchronously inside the constructor.
 */
let takenResolve: ((outcome: VerifyOutcome) => void) | undefined;
const takeResolve = (resolve: (outcome: VerifyOutcome) => void): void => {
  takenResolve = resolve;
};

interface Slot {
  worker: Worker;
  /** Batches sent and not answered, by batch id. */
  readonly inFlight: Map<number, Item[]>;
  /** Items in flight (for the split). */
  load: number;
  /** False once its worker exited (until replaced). */
  alive: boolean;
}

interface WorkerReply {
  id: number;
  ok: Uint8Array;
}

function isReply(value: unknown): value is WorkerReply {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { id?: unknown }).id === 'number' &&
    (value as { ok?: unknown }).ok instanceof Uint8Array
  );
}

const SIGNATURE_BYTES = 64;
/**
 * Most signatures in one message to a worker (about 2.5 ms of checks): a burst's batch
 * goes in several, so that the answers come back in a stream, not all at the end.
 */
const MAX_ITEMS_PER_MESSAGE = 32;
const DEFAULT_MAX_QUEUED_PER_WORKER = 256;

export class VerifierPool {
  private readonly verifier: ReturnType<typeof createCommandVerifier>;
  private readonly logger: Logger | undefined;
  private readonly source: string;
  /** Trusted keys as SPKI DER, in the order the workers index them. */
  private readonly keyDer: Uint8Array[] = [];
  private readonly keyIndex = new Map<string, number>();
  private readonly slots: Slot[] = [];
  /** Worker threads configured (0: inline); started on first use (`startWorkers`). */
  private readonly workerCount: number;
  private started = false;
  /** Verifications handed to the pool and not yet answered (batch + in flight). */
  private queued = 0;
  private readonly maxQueued: number;
  private readonly inlineWhenAlone: boolean;
  private readonly busy: (() => boolean) | undefined;
  private inlinedThisTurn = false;
  private batch: Item[] = [];
  private flushScheduled = false;
  private nextBatchId = 0;
  private closed = false;
  /** Respawns in a row that ended at once: throttles a worker that cannot start. */
  private quickDeaths = 0;
  private readonly flushBound = (): void => this.flush();
  private readonly endTurn = (): void => {
    this.inlinedThisTurn = false;
  };

  constructor(opts: VerifierPoolOptions) {
    this.verifier = createCommandVerifier(opts);
    this.logger = opts.logger;
    this.source = opts.workerSource ?? VERIFY_WORKER_SOURCE;
    const workers = opts.workers ?? defaultVerifyWorkers();
    if (!Number.isInteger(workers) || workers < 0) {
      throw new RangeError('workers must be a non-negative integer');
    }
    for (const [keyId, key] of opts.trustedKeys) {
      if (key.asymmetricKeyType !== 'ed25519') continue; // never verifies (see prepare)
      this.keyIndex.set(keyId, this.keyDer.length);
      this.keyDer.push(new Uint8Array(key.export({ format: 'der', type: 'spki' })));
    }
    this.inlineWhenAlone = opts.inlineWhenAlone ?? true;
    this.busy = opts.busy;
    this.maxQueued = (opts.maxQueuedPerWorker ?? DEFAULT_MAX_QUEUED_PER_WORKER) * workers;
    this.workerCount = workers;
  }

  /**
   * The workers start when a signature first goes to one, not with the pool: an agent
   * that sits idle, or sees one command at a time (checked inline), does not carry the
   * threads (about 10 MiB of resident memory).
   */
  private startWorkers(): void {
    if (this.started || this.closed) return;
    this.started = true;
    for (let i = 0; i < this.workerCount; i += 1) this.slots.push(this.spawn());
  }

  /**
   * A command alone (the caller not `busy`, nothing waiting for or at a worker, none
   * checked inline yet in this event-loop turn) is checked inline: one check costs less than the round trip to a
   * thread. Any other command of the same turn goes to the workers, so under load they
   * do nearly all the checks.
   */
  private inlineAlone(): boolean {
    if (!this.inlineWhenAlone || this.queued > 0 || this.inlinedThisTurn) return false;
    if (this.busy?.() === true) return false;
    this.inlinedThisTurn = true;
    setImmediate(this.endTurn);
    return true;
  }

  /** Worker threads configured (0: inline); they start on first use. */
  get size(): number {
    return this.workerCount;
  }

  /** Worker threads started (0 until a signature first went to a worker). */
  get running(): number {
    return this.slots.length;
  }

  /** Most verifications waiting for the workers before this thread checks them itself. */
  get backlogLimit(): number {
    return this.maxQueued;
  }

  /** The synchronous verifier with the same options (same checks, signature inline). */
  verifySync(msg: CommandMessage): VerifyOutcome {
    return this.verifier.verify(msg);
  }

  /**
   * Verifies a command. The outcome is synchronous when it is decided without a worker
   * (a schema failure, an untrusted key id, an unusable signature value, inline mode),
   * else a promise, which never rejects (a failure of the pool is `E_INTERNAL`).
   */
  verify(msg: CommandMessage): VerifyOutcome | Promise<VerifyOutcome> {
    if (this.closed) return this.internal(msg.envelope.id, 'command verifier is stopped');
    const prepared = this.verifier.prepare(msg);
    if (prepared.done) return prepared.outcome;
    const keyIndex = this.keyIndex.get(prepared.keyId);
    if (
      this.workerCount === 0 ||
      prepared.signature === null ||
      keyIndex === undefined ||
      this.queued >= this.maxQueued ||
      this.inlineAlone()
    ) {
      // Inline mode; nothing to ask a worker; or the workers have a full backlog: then
      // this thread checks the signature itself, which also stops it reading further
      // frames meanwhile (backpressure, and a bounded number of commands held in memory).
      return this.verifier.complete(prepared, signatureValid(prepared));
    }
    this.startWorkers();
    const promise = new Promise<VerifyOutcome>(takeResolve);
    const resolve = takenResolve;
    takenResolve = undefined;
    if (resolve === undefined) throw new Error('unreachable: Promise runs its executor at once');
    this.queued += 1;
    this.batch.push({ prepared, keyIndex, resolve });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushBound);
    }
    return promise;
  }

  /** The one way an item ends: its promise resolves, and it leaves the backlog. */
  private settle(item: Item, outcome: VerifyOutcome): void {
    this.queued -= 1;
    item.resolve(outcome);
  }

  /** Terminates the workers; pending verifications end as `E_INTERNAL`. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending = this.batch;
    this.batch = [];
    const slots = this.slots.splice(0);
    for (const item of pending) this.failItem(item, 'command verifier stopped');
    for (const slot of slots) this.failInFlight(slot, 'command verifier stopped');
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  // -------------------------------------------------------------------------------------

  private internal(commandId: unknown, message: string): VerifyOutcome {
    return {
      ok: false,
      commandId: typeof commandId === 'string' ? commandId : null,
      error: new LatchkeyError('E_INTERNAL', message),
    };
  }

  private failItem(item: Item, message: string): void {
    this.settle(item, this.internal(item.prepared.commandId, message));
  }

  private failInFlight(slot: Slot, message: string): void {
    for (const items of slot.inFlight.values()) {
      for (const item of items) this.failItem(item, message);
    }
    slot.inFlight.clear();
    slot.load = 0;
  }

  private spawn(): Slot {
    const worker = new Worker(this.source, {
      eval: true,
      workerData: { keys: this.keyDer },
      // A verifier needs little memory: keep the thread's heap (and the RSS) small.
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 },
      stdout: false,
      stderr: false,
    });
    // Never what keeps the process alive: the link and the agent's lifecycle do that.
    worker.unref();
    const slot: Slot = { worker, inFlight: new Map(), load: 0, alive: true };
    const startedAt = Date.now();
    worker.on('message', (value: unknown) => this.onReply(slot, value));
    worker.on('error', (err) => {
      this.logger?.error({ err }, 'signature verification worker failed');
    });
    worker.on('exit', (code) => {
      const index = this.slots.indexOf(slot);
      if (index < 0 || !slot.alive) return; // closed, or already replaced
      slot.alive = false;
      this.logger?.error(
        { exitCode: code, inFlight: slot.load },
        'signature verification worker exited; its verifications fail closed, replacing it',
      );
      this.failInFlight(slot, 'signature verification worker failed; command not verified');
      this.quickDeaths = Date.now() - startedAt < 1000 ? this.quickDeaths + 1 : 0;
      const respawn = (): void => {
        const at = this.slots.indexOf(slot);
        if (this.closed || at < 0) return;
        this.slots[at] = this.spawn();
      };
      if (this.quickDeaths > 3) {
        // A worker that cannot even start: do not spin. Meanwhile the other workers serve,
        // or, with none alive, commands fail closed.
        this.logger?.error('signature verification workers keep dying; respawning in 1 s');
        setTimeout(respawn, 1000).unref();
      } else {
        respawn();
      }
    });
    return slot;
  }

  private onReply(slot: Slot, value: unknown): void {
    if (!isReply(value)) return;
    const items = slot.inFlight.get(value.id);
    if (items === undefined) return;
    slot.inFlight.delete(value.id);
    slot.load -= items.length;
    if (value.ok.length !== items.length) {
      for (const item of items) this.failItem(item, 'signature verification worker misbehaved');
      return;
    }
    for (let i = 0; i < items.length; i += 1) {
      const item = items[i];
      if (item === undefined) continue;
      let outcome: VerifyOutcome;
      try {
        outcome = this.verifier.complete(item.prepared, value.ok[i] === 1);
      } catch {
        outcome = this.internal(item.prepared.commandId, 'command verification failed');
      }
      this.settle(item, outcome);
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.batch;
    this.batch = [];
    if (batch.length === 0) return;
    const alive = this.aliveBySpareCapacity();
    if (this.closed || alive.length === 0) {
      const why = this.closed ? 'command verifier stopped' : 'no signature verification worker';
      for (const item of batch) this.failItem(item, why);
      return;
    }
    const parts = Math.min(alive.length, batch.length);
    const per = Math.ceil(batch.length / parts);
    for (let i = 0; i < parts; i += 1) {
      const slot = alive[i];
      const end = Math.min((i + 1) * per, batch.length);
      if (slot === undefined) continue;
      // In messages of at most MAX_ITEMS_PER_MESSAGE, answered one by one: this thread
      // hands on the first answers while the worker checks the next ones.
      for (let at = i * per; at < end; at += MAX_ITEMS_PER_MESSAGE) {
        this.send(slot, batch.slice(at, Math.min(at + MAX_ITEMS_PER_MESSAGE, end)));
      }
    }
  }

  /** The live slots, least loaded first (a stable sort: equal loads keep their order). */
  private aliveBySpareCapacity(): Slot[] {
    return this.slots.filter((s) => s.alive).sort((a, b) => a.load - b.load);
  }

  private send(slot: Slot, items: Item[]): void {
    const n = items.length;
    const offsets = new Uint32Array(n + 1);
    let total = 0;
    for (let i = 0; i < n; i += 1) {
      offsets[i] = total;
      total += items[i]?.prepared.data.length ?? 0;
    }
    offsets[n] = total;
    const data = new Uint8Array(total);
    const sigs = new Uint8Array(n * SIGNATURE_BYTES);
    const keys = new Uint16Array(n);
    for (let i = 0; i < n; i += 1) {
      const item = items[i];
      if (item === undefined) continue;
      data.set(item.prepared.data, offsets[i]);
      if (item.prepared.signature !== null) sigs.set(item.prepared.signature, i * SIGNATURE_BYTES);
      keys[i] = item.keyIndex;
    }
    const id = this.nextBatchId++;
    slot.inFlight.set(id, items);
    slot.load += n;
    try {
      slot.worker.postMessage({ id, data, offsets, sigs, keys }, [
        data.buffer,
        offsets.buffer,
        sigs.buffer,
        keys.buffer,
      ]);
    } catch {
      slot.inFlight.delete(id);
      slot.load -= n;
      for (const item of items) this.failItem(item, 'signature verification worker unavailable');
    }
  }
}

/**
 * Read backpressure with hysteresis, fed with the number of commands read and still
 * waiting to be handed on (`ArrivalOrder`'s `onWaiting`): `hold(true)` once `limit` wait,
 * `hold(false)` once at most half of it do. Calls `hold` only when the state changes.
 */
export function backpressureGate(
  limit: number,
  hold: (held: boolean) => void,
): (waiting: number) => void {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new RangeError('backpressure limit must be a positive integer');
  }
  let held = false;
  return (waiting) => {
    if (!held && waiting >= limit) {
      held = true;
      hold(true);
    } else if (held && waiting <= limit / 2) {
      held = false;
      hold(false);
    }
  };
}

/**
 * One value in line. What to call is kept as data (no closure per entry): `deliver` with
 * `value`, or `onError` with it when `failed`.
 */
interface OrderEntry {
  ready: boolean;
  failed: boolean;
  value: unknown;
  deliver: (value: never) => void;
  onError: (err: unknown) => void;
}

const noop = (): void => undefined;
const DELIVERED: OrderEntry = {
  ready: true,
  failed: false,
  value: undefined,
  deliver: noop,
  onError: noop,
};

/**
 * Hands values on in the order they were added, though they may become ready out of
 * order (a verification on one worker overtaking one on another). A synchronous value
 * added while nothing is waiting is delivered at once.
 */
export class ArrivalOrder {
  private readonly queue: OrderEntry[] = [];
  private head = 0;
  private draining = false;

  /**
   * @param onWaiting called with `waiting` after each `add` and after each run of
   *   deliveries (the agent's read backpressure watches it)
   */
  constructor(private readonly onWaiting?: (waiting: number) => void) {}

  /**
   * @param value the value, or a promise of it (a rejected promise delivers `onError`)
   * @param deliver called with the value once every earlier entry was delivered
   */
  add<T>(
    value: T | Promise<T>,
    deliver: (value: T) => void,
    onError: (err: unknown) => void,
  ): void {
    if (!(value instanceof Promise)) {
      if (this.head === this.queue.length) {
        deliver(value);
        return;
      }
      this.queue.push({ ready: true, failed: false, value, deliver, onError });
      this.onWaiting?.(this.waiting);
      return;
    }
    const entry: OrderEntry = { ready: false, failed: false, value: undefined, deliver, onError };
    this.queue.push(entry);
    this.onWaiting?.(this.waiting);
    value.then(
      (v) => {
        entry.value = v;
        entry.ready = true;
        this.drain();
      },
      (err: unknown) => {
        entry.value = err;
        entry.failed = true;
        entry.ready = true;
        this.drain();
      },
    );
  }

  /** Entries not yet delivered. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.head < this.queue.length) {
        const entry = this.queue[this.head];
        if (entry === undefined || !entry.ready) break;
        this.queue[this.head] = DELIVERED;
        this.head += 1;
        try {
          // `deliver` was given with this entry's value type (`add<T>`)
          if (entry.failed) entry.onError(entry.value);
          else entry.deliver(entry.value as never);
        } catch {
          // a delivery's own failure must not stop the ones after it
        }
      }
    } finally {
      this.draining = false;
      if (this.head === this.queue.length) {
        this.queue.length = 0;
        this.head = 0;
      } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.onWaiting?.(this.waiting);
    }
  }
}
