/**
 * The in-process idempotency store: command id → digest of its envelope, state, result.
 *
 * Replay safety comes first, memory second:
 * - every id is remembered at least until its `retainUntil` (the command's `expiresAt`
 *   plus the allowed clock skew: after that the verifier refuses it as `E_EXPIRED`, so it
 *   can never run again whatever this store remembers);
 * - at most `capacity` finished commands keep their full result (the most recently
 *   finished), as its serialized frame; older ones still inside their window keep only their digest (state
 *   `forgotten`: it ran, its result is no longer held);
 * - at most `maxEntries` ids are remembered in all. When that many are still inside their
 *   window, `hasRoom()` is false and the dispatcher refuses new work with `E_BUSY` instead
 *   of forgetting an id that could still be replayed.
 * Running commands are never forgotten (their number is bounded by the queue size).
 *
 * With a state journal the record survives restarts (keys `c:<commandId>`): a finished
 * command's digest, `retainUntil` and, while held, its result frame (as is, so a
 * re-delivered command gets its original result byte for byte); a forgotten one keeps its
 * digest until its window passes. Running commands are not recorded: a command that was
 * running when the process died has no result anywhere, and if the control plane
 * re-delivers it, it runs again (drivers are idempotent: grant twice = granted once).
 * Journal writes are not awaited here: the outbox's write of the same result, made in
 * the same event-loop turn, shares their fsync, and the result is sent only after it.
 */
import { z } from 'zod';
import { ResultFrame, type HeldFrame } from '../protocol/result-frame.js';
import type { StateJournal } from '../state/journal.js';

/** Journal key prefix of command-id records. */
export const COMMAND_KEY_PREFIX = 'c:';

const RecordSchema = z.object({
  d: z.string(),
  s: z.enum(['done', 'forgotten']),
  /** retainUntil, epoch ms; null: never forgotten. */
  u: z.number().nullable(),
  /** The result frame (state done). */
  r: z.unknown().optional(),
});

export type IdempotencyEntry =
  | { digest: string; state: 'running' }
  | { digest: string; state: 'done'; result: HeldFrame }
  | { digest: string; state: 'forgotten' };

/**
 * One remembered command id, changed in place as its command goes running → done →
 * forgotten: one object per id for its whole life, and no Map write after the first.
 */
class Entry<R> {
  /** Neighbours in the list of entries holding their result (`held`), oldest first. */
  older: Entry<R> | undefined = undefined;
  newer: Entry<R> | undefined = undefined;
  /** Whether it is in that list. */
  linked = false;

  constructor(
    readonly id: string,
    public digest: string,
    public state: IdempotencyEntry['state'],
    /** Epoch ms until which the id must not be forgotten (`+Infinity`: never). */
    readonly retainUntil: number,
    /** The result frame while `state` is `done`. */
    public result: HeldFrame | undefined,
    /** What the owner keeps with a running command (see `markRunning`). */
    public running: R | undefined,
  ) {}
}

export interface IdempotencyStoreOptions {
  /** Hard bound on remembered ids (with or without result); default `10 × capacity`. */
  maxEntries?: number;
  /** Clock in ms (tests). */
  now?: () => number;
  /** Keeps the record across restarts; read at construction. */
  journal?: StateJournal;
}

/**
 * @typeParam R what the owner keeps with each running command id (the dispatcher: its
 *   job), found again with `runningOf`: no second map from command id to it.
 */
export class IdempotencyStore<R = undefined> {
  private readonly entries = new Map<string, Entry<R>>();
  /**
   * Finished entries that still hold their result, oldest finished first, as a list linked
   * through the entries: evicting the oldest and unlinking any is O(1), with no iterator
   * (iterating a Set from its start walks past the slots its deletions left there).
   */
  private oldest: Entry<R> | undefined = undefined;
  private newest: Entry<R> | undefined = undefined;
  private held = 0;
  private readonly maxEntries: number;
  private readonly now: () => number;
  /** No remembered entry expires before this: no need to scan until then. */
  private nextExpiry = 0;
  private readonly journal: StateJournal | undefined;

  constructor(
    private readonly capacity: number,
    opts: IdempotencyStoreOptions = {},
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError('idempotency capacity must be a positive integer');
    }
    this.maxEntries = opts.maxEntries ?? capacity * 10;
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < capacity) {
      throw new RangeError('idempotency maxEntries must be an integer of at least capacity');
    }
    this.now = opts.now ?? Date.now;
    this.journal = opts.journal;
    if (this.journal !== undefined) this.load(this.journal);
  }

  /** Restores finished and forgotten ids from the journal, dropping expired ones. */
  private load(journal: StateJournal): void {
    const now = this.now();
    const drop: string[] = [];
    for (const [key, text] of journal.entries(COMMAND_KEY_PREFIX)) {
      const id = key.slice(COMMAND_KEY_PREFIX.length);
      const entry = parseRecord<R>(id, text);
      if (entry === undefined || entry.retainUntil <= now) {
        drop.push(key);
        continue;
      }
      const previous = this.entries.get(id);
      if (previous !== undefined) this.unlink(previous);
      this.entries.set(id, entry);
      if (entry.state === 'done') this.link(entry);
    }
    for (const key of drop) void journal.delete(key);
    this.evict();
  }

  private record(e: Entry<R>, removed: boolean): void {
    const journal = this.journal;
    if (journal === undefined) return;
    const key = COMMAND_KEY_PREFIX + e.id;
    if (removed || e.state === 'running') {
      void journal.delete(key);
      return;
    }
    const u = Number.isFinite(e.retainUntil) ? e.retainUntil : null;
    const head = `{"d":${JSON.stringify(e.digest)},"s":"${e.state}","u":${JSON.stringify(u)}`;
    if (e.state !== 'done' || e.result === undefined) {
      void journal.putRaw(key, `${head}}`);
    } else if (e.result.spooled) {
      // A spooled result is kept once, by the outbox: after a restart its id is
      // remembered as run (E_REPLAY for a duplicate), never run again.
      const d = JSON.stringify(e.digest);
      void journal.putRaw(key, `{"d":${d},"s":"forgotten","u":${JSON.stringify(u)}}`);
    } else {
      void journal.putRaw(key, `${head},"r":${e.result.text}}`);
    }
  }

  get(commandId: string): IdempotencyEntry | undefined {
    const e = this.entries.get(commandId);
    if (e === undefined) return undefined;
    switch (e.state) {
      case 'running':
        return { digest: e.digest, state: 'running' };
      case 'done':
        // A spooled result whose file is gone (acknowledged) is no longer held.
        if (e.result === undefined || !e.result.held) {
          return { digest: e.digest, state: 'forgotten' };
        }
        return { digest: e.digest, state: 'done', result: e.result };
      case 'forgotten':
        return { digest: e.digest, state: 'forgotten' };
    }
  }

  /** What `markRunning` was given with `commandId`, while it is running. */
  runningOf(commandId: string): R | undefined {
    const e = this.entries.get(commandId);
    return e?.state === 'running' ? e.running : undefined;
  }

  /**
   * True when a new id may be remembered. Forgets ids whose window has passed first;
   * false when `maxEntries` ids are all still inside their window.
   */
  hasRoom(): boolean {
    if (this.entries.size < this.maxEntries) return true;
    this.purgeExpired();
    return this.entries.size < this.maxEntries;
  }

  /**
   * @param retainUntil epoch ms until which the id must not be forgotten (the command's
   *   `expiresAt` + clock skew); default: never forgotten.
   * @param running kept with the id until it is done (`runningOf`).
   */
  markRunning(
    commandId: string,
    digest: string,
    retainUntil = Number.POSITIVE_INFINITY,
    running?: R,
  ): void {
    const previous = this.entries.get(commandId);
    if (previous !== undefined) this.unlink(previous);
    this.entries.set(
      commandId,
      new Entry<R>(commandId, digest, 'running', retainUntil, undefined, running),
    );
  }

  markDone(commandId: string, digest: string, result: HeldFrame): void {
    let e = this.entries.get(commandId);
    if (e === undefined) {
      e = new Entry<R>(commandId, digest, 'done', Number.POSITIVE_INFINITY, result, undefined);
      this.entries.set(commandId, e);
    } else {
      // Re-linked as the newest: the most recently finished are kept longest.
      this.unlink(e);
      e.digest = digest;
      e.state = 'done';
      e.result = result;
      e.running = undefined;
    }
    this.link(e);
    this.nextExpiry = Math.min(this.nextExpiry, e.retainUntil);
    this.record(e, false);
    this.evict();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Finished commands whose result is still held. */
  get resultsHeld(): number {
    return this.held;
  }

  /** Appends `e` to the held list as its newest. */
  private link(e: Entry<R>): void {
    e.older = this.newest;
    e.newer = undefined;
    if (this.newest === undefined) this.oldest = e;
    else this.newest.newer = e;
    this.newest = e;
    e.linked = true;
    this.held += 1;
  }

  /** Takes `e` out of the held list (a no-op when it is not in it). */
  private unlink(e: Entry<R>): void {
    if (!e.linked) return;
    if (e.older === undefined) this.oldest = e.newer;
    else e.older.newer = e.newer;
    if (e.newer === undefined) this.newest = e.older;
    else e.newer.older = e.older;
    e.older = undefined;
    e.newer = undefined;
    e.linked = false;
    this.held -= 1;
  }

  /** Drops the results beyond `capacity` (oldest first); keeps their digest while valid. */
  private evict(): void {
    if (this.held <= this.capacity) return;
    const now = this.now();
    while (this.held > this.capacity && this.oldest !== undefined) {
      const e = this.oldest;
      this.unlink(e);
      e.result = undefined;
      if (e.retainUntil <= now) {
        this.entries.delete(e.id);
        this.record(e, true);
      } else {
        e.state = 'forgotten';
        this.record(e, false);
      }
    }
  }

  /** Forgets finished ids whose window has passed. */
  private purgeExpired(): void {
    const now = this.now();
    if (now < this.nextExpiry) return;
    let next = Number.POSITIVE_INFINITY;
    for (const [id, e] of this.entries) {
      if (e.state === 'running') continue;
      if (e.retainUntil <= now) {
        this.entries.delete(id);
        this.unlink(e);
        this.record(e, true);
      } else if (e.retainUntil < next) {
        next = e.retainUntil;
      }
    }
    this.nextExpiry = next;
  }
}

function parseRecord<R>(commandId: string, text: string): Entry<R> | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const rec = RecordSchema.safeParse(json);
  if (!rec.success) return undefined;
  const retainUntil = rec.data.u ?? Number.POSITIVE_INFINITY;
  if (rec.data.s === 'forgotten') {
    return new Entry<R>(commandId, rec.data.d, 'forgotten', retainUntil, undefined, undefined);
  }
  // The frame's text exactly as written: the part of the record after `"r":`.
  const at = text.indexOf(',"r":');
  const frame = at === -1 ? undefined : ResultFrame.parse(text.slice(at + 5, -1));
  if (frame === undefined || frame.commandId !== commandId) return undefined;
  return new Entry<R>(commandId, rec.data.d, 'done', retainUntil, frame, undefined);
}
