/**
 * The outbox: every `result` the agent produced and the control plane has not yet
 * acknowledged with `result-ack`.
 *
 * - Ordered by insertion; one entry per command id. Adding a result for a command id
 *   already present replaces it (and moves it to the end: it is the newest).
 * - An entry is the result's serialized frame (`ResultFrame`), not the object: one string
 *   per unacknowledged result, however large the output.
 * - Kept in memory always; with a state journal (`src/state/`) also recorded there under
 *   `o:<commandId>` (the frame's text as is). `add` resolves only once the record is
 *   durable, so a result is never sent before it would survive a crash; many results
 *   finished in one event-loop turn share one write and one fsync (group commit).
 *   An ack writes a delete record.
 * - A result spooled to a file (`SpooledResultFrame`, `src/controlplane/spool.ts`) is
 *   held as its reference: the journal record is the reference, not the text; the file
 *   is removed when the result is acknowledged (or replaced). At load, a reference whose
 *   file is missing or of the wrong size is dropped like a malformed record.
 * - Records that do not parse as a result are dropped at load (logged).
 * - A failed write is logged by the journal and the in-memory outbox stays
 *   authoritative: results are still re-sent for as long as the process lives.
 */
import type { Logger } from 'pino';
import type { AgentEvents } from '../events.js';
import type { Result } from '../protocol/messages.js';
import { ResultFrame, SpooledResultFrame, type HeldFrame } from '../protocol/result-frame.js';
import type { StateJournal } from '../state/journal.js';

/** Journal key prefix of outbox entries. */
export const OUTBOX_KEY_PREFIX = 'o:';

export interface OutboxOptions {
  /** Where entries survive a restart; in memory only when absent. */
  journal?: StateJournal;
  /** The spool directory, where the files of spooled results are (for `load`). */
  spoolDir?: string;
  logger: Logger;
  events: AgentEvents;
}

export class Outbox {
  private readonly journal: StateJournal | undefined;
  private readonly logger: Logger;
  private readonly events: AgentEvents;
  private readonly items = new Map<string, HeldFrame>();
  private readonly spoolDir: string | undefined;
  private readonly emptyWaiters = new Set<() => void>();

  constructor(opts: OutboxOptions) {
    this.journal = opts.journal;
    this.logger = opts.logger;
    this.events = opts.events;
    this.spoolDir = opts.spoolDir;
  }

  get size(): number {
    return this.items.size;
  }

  /** Results not yet acknowledged, oldest first (copies, parsed from their frames). */
  entries(): Result[] {
    return [...this.items.values()].map((frame) => frame.result());
  }

  /** The frames of the results not yet acknowledged, oldest first: what is (re-)sent. */
  frames(): HeldFrame[] {
    return [...this.items.values()];
  }

  /** True while the result of `commandId` is unacknowledged. */
  has(commandId: string): boolean {
    return this.items.has(commandId);
  }

  /** The held frame of `commandId`, if unacknowledged. */
  get(commandId: string): HeldFrame | undefined {
    return this.items.get(commandId);
  }

  /** Reads the entries kept in the journal (no-op without one). Never throws on a bad record. */
  async load(): Promise<void> {
    const journal = this.journal;
    if (journal === undefined) return;
    const bad: string[] = [];
    for (const [key, text] of journal.entries(OUTBOX_KEY_PREFIX)) {
      const commandId = key.slice(OUTBOX_KEY_PREFIX.length);
      const frame =
        ResultFrame.parse(text) ??
        (this.spoolDir === undefined ? undefined : SpooledResultFrame.fromRef(text, this.spoolDir));
      if (frame === undefined || frame.commandId !== commandId) {
        bad.push(key);
        continue;
      }
      this.items.set(commandId, frame);
    }
    if (bad.length > 0) {
      this.logger.warn({ dropped: bad.length }, 'outbox records were malformed; dropped');
      await Promise.all(bad.map((k) => journal.delete(k)));
    }
    this.logger.info({ size: this.items.size }, 'outbox loaded');
    this.emitSize();
  }

  /**
   * Adds (or replaces) the result of a command; resolves once it is durable.
   * @returns the frame held (the result serialized, unless it already was)
   */
  async add(result: Result | ResultFrame): Promise<ResultFrame>;
  async add(result: SpooledResultFrame): Promise<SpooledResultFrame>;
  async add(result: Result | HeldFrame): Promise<HeldFrame>;
  async add(result: Result | HeldFrame): Promise<HeldFrame> {
    const frame =
      result instanceof ResultFrame || result instanceof SpooledResultFrame
        ? result
        : ResultFrame.of(result);
    await this.put(frame);
    return frame;
  }

  /**
   * Adds (or replaces) a frame: `add` for the link's hot path. Returns undefined when it
   * is as durable as it gets at once (no journal: memory only), else a promise that
   * resolves once the journal holds it. Without a journal no promise is made per result.
   */
  put(frame: HeldFrame): Promise<void> | undefined {
    const before = this.items.get(frame.commandId);
    if (before !== undefined) this.items.delete(frame.commandId); // a replacement is the newest
    this.items.set(frame.commandId, frame);
    if (before !== undefined && before !== frame && before.spooled) before.release();
    this.emitSize();
    const journal = this.journal;
    if (journal === undefined) return undefined;
    try {
      return journal.putRaw(
        OUTBOX_KEY_PREFIX + frame.commandId,
        frame.spooled ? frame.ref() : frame.text,
      );
    } catch (err) {
      // As from an async function: the caller learns of it through the promise.
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Resolves once every change made so far is on disk (at once without a journal). */
  flush(): Promise<void> {
    return this.journal?.flush() ?? Promise.resolve();
  }

  /**
   * Removes an acknowledged result: false when the command id was not in the outbox, else
   * true, or with a journal a promise of true that resolves once the removal is durable
   * (no promise per ack without a journal: the link's hot path).
   */
  ack(commandId: string): boolean | Promise<boolean> {
    const frame = this.items.get(commandId);
    if (frame === undefined) return false;
    this.items.delete(commandId);
    this.emitSize();
    this.notifyIfEmpty();
    const journal = this.journal;
    if (journal === undefined) {
      if (frame.spooled) frame.release();
      return true;
    }
    // The file goes once its reference is gone from the journal (a crash in between
    // leaves a file that the next start sweeps, never a reference without its file).
    return journal.delete(OUTBOX_KEY_PREFIX + commandId).then(() => {
      if (frame.spooled) frame.release();
      return true;
    });
  }

  /**
   * Resolves when the outbox is empty and that state is persisted (at once if it already
   * is empty), or when `signal` aborts. Used by a graceful stop to flush results.
   */
  whenEmpty(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    if (this.items.size === 0) return this.flush();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.emptyWaiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.emptyWaiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private emitSize(): void {
    this.events.emit('outbox:size', { size: this.items.size });
  }

  private notifyIfEmpty(): void {
    if (this.items.size === 0) {
      for (const waiter of [...this.emptyWaiters]) waiter();
    }
  }
}
