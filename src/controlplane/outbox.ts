/**
 * The outbox: every `result` the agent produced and the control plane has not yet
 * acknowledged with `result-ack`.
 *
 * - Ordered by insertion; one entry per command id. Adding a result for a command id
 *   already present replaces it (and moves it to the end: it is the newest).
 * - An entry is the result's serialized frame (`ResultFrame`), not the object: one string
 *   per unacknowledged result, however large the output.
 * - Kept in memory always; with a state directory also persisted to
 *   `<stateDir>/outbox.json`, written atomically (temp file in the same directory,
 *   fsync, rename, fsync of the directory), so a crash leaves either the old or the new
 *   file, never a torn one.
 * - A file that cannot be read or parsed is logged, moved aside
 *   (`outbox.json.corrupt-<time>`) and start-up continues with an empty outbox.
 * - A failed write is logged and the in-memory outbox stays authoritative: results are
 *   still re-sent for as long as the process lives.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AgentEvents } from '../events.js';
import { ResultSchema, type Result } from '../protocol/messages.js';
import { ResultFrame } from '../protocol/result-frame.js';

export const OUTBOX_FILE = 'outbox.json';

const OutboxFileSchema = z.object({
  version: z.literal(1),
  entries: z.array(z.unknown()),
});

export interface OutboxOptions {
  /** Directory for `outbox.json`; in memory only when absent. */
  stateDir?: string;
  logger: Logger;
  events: AgentEvents;
}

export class Outbox {
  private readonly stateDir: string | undefined;
  private readonly logger: Logger;
  private readonly events: AgentEvents;
  private readonly items = new Map<string, ResultFrame>();
  /** Serializes writes so the file always reflects the latest state, in order. */
  private writeChain: Promise<void> = Promise.resolve();
  private readonly emptyWaiters = new Set<() => void>();

  constructor(opts: OutboxOptions) {
    this.stateDir = opts.stateDir;
    this.logger = opts.logger;
    this.events = opts.events;
  }

  get size(): number {
    return this.items.size;
  }

  /** Results not yet acknowledged, oldest first (copies, parsed from their frames). */
  entries(): Result[] {
    return [...this.items.values()].map((frame) => frame.result());
  }

  /** The frames of the results not yet acknowledged, oldest first: what is (re-)sent. */
  frames(): ResultFrame[] {
    return [...this.items.values()];
  }

  /** True while the result of `commandId` is unacknowledged. */
  has(commandId: string): boolean {
    return this.items.has(commandId);
  }

  /** Reads the persisted outbox (no-op without a state directory). Never throws on a bad file. */
  async load(): Promise<void> {
    if (this.stateDir === undefined) return;
    const dir = this.stateDir;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await this.removeStaleTempFiles(dir);
    const file = join(dir, OUTBOX_FILE);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.emitSize();
        return;
      }
      this.logger.error({ err, file }, 'outbox file unreadable; moving it aside');
      await this.moveAside(file);
      this.emitSize();
      return;
    }

    let parsed: z.infer<typeof OutboxFileSchema>;
    try {
      parsed = OutboxFileSchema.parse(JSON.parse(text));
    } catch (err) {
      this.logger.error(
        { file, reason: err instanceof Error ? err.message.slice(0, 200) : 'unknown' },
        'outbox file corrupt; moving it aside and starting with an empty outbox',
      );
      await this.moveAside(file);
      this.emitSize();
      return;
    }

    let dropped = 0;
    for (const raw of parsed.entries) {
      const entry = ResultSchema.safeParse(raw);
      if (!entry.success) {
        dropped += 1;
        continue;
      }
      this.items.delete(entry.data.commandId);
      this.items.set(entry.data.commandId, ResultFrame.of(entry.data));
    }
    if (dropped > 0) {
      this.logger.warn({ file, dropped }, 'outbox file held malformed entries; they were dropped');
    }
    this.logger.info({ size: this.items.size }, 'outbox loaded');
    this.emitSize();
  }

  /**
   * Adds (or replaces) the result of a command and persists the outbox.
   * @returns the frame held (the result serialized, unless it already was)
   */
  async add(result: Result | ResultFrame): Promise<ResultFrame> {
    const frame = result instanceof ResultFrame ? result : ResultFrame.of(result);
    this.items.delete(frame.commandId);
    this.items.set(frame.commandId, frame);
    this.emitSize();
    await this.persist();
    return frame;
  }

  /** Resolves once every change made so far is on disk (at once without a state directory). */
  flush(): Promise<void> {
    return this.writeChain;
  }

  /** Removes an acknowledged result. Returns false when the command id was not in the outbox. */
  async ack(commandId: string): Promise<boolean> {
    if (!this.items.delete(commandId)) return false;
    this.emitSize();
    await this.persist();
    this.notifyIfEmpty();
    return true;
  }

  /**
   * Resolves when the outbox is empty and that state is persisted (at once if it already
   * is empty), or when `signal` aborts. Used by a graceful stop to flush results.
   */
  whenEmpty(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    if (this.items.size === 0) return this.writeChain;
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

  private persist(): Promise<void> {
    const dir = this.stateDir;
    if (dir === undefined) return Promise.resolve();
    const next = this.writeChain.then(() => this.writeNow(dir));
    this.writeChain = next;
    return next;
  }

  private async writeNow(dir: string): Promise<void> {
    const file = join(dir, OUTBOX_FILE);
    // The file's JSON, assembled from the frames' texts (each already a result's JSON).
    let body = '{"version":1,"entries":[';
    let first = true;
    for (const frame of this.items.values()) {
      body += first ? frame.text : `,${frame.text}`;
      first = false;
    }
    body += ']}';
    let tmp = '';
    try {
      const handle = await openNewTempFile(dir);
      tmp = handle.path;
      try {
        await handle.writeFile(body, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, file);
      await this.syncDir(dir);
    } catch (err) {
      this.logger.error({ err, file }, 'could not persist the outbox; results stay in memory');
      if (tmp !== '') await rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  private async syncDir(dir: string): Promise<void> {
    // Makes the rename durable. Not supported everywhere (e.g. Windows): best effort.
    try {
      const handle = await open(dir, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch {
      // ignore
    }
  }

  private async moveAside(file: string): Promise<void> {
    const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    try {
      await rename(file, aside);
      this.logger.warn({ file: aside }, 'corrupt outbox file kept for inspection');
    } catch (err) {
      this.logger.error({ err, file }, 'could not move the corrupt outbox file aside');
    }
  }

  private async removeStaleTempFiles(dir: string): Promise<void> {
    try {
      const names = await readdir(dir);
      await Promise.all(
        names
          .filter((n) => n.startsWith(`${OUTBOX_FILE}.`) && n.endsWith('.tmp'))
          .map((n) => rm(join(dir, n), { force: true })),
      );
    } catch {
      // a missing or unreadable directory shows up on the next write
    }
  }
}

/**
 * Creates a fresh temp file for an atomic write: `O_CREAT | O_EXCL` (flag `wx`), so a file
 * or symlink planted at the name is never opened or followed; mode 0600.
 */
async function openNewTempFile(dir: string): Promise<FileHandle & { path: string }> {
  for (let attempt = 0; ; attempt++) {
    const path = join(dir, `${OUTBOX_FILE}.${process.pid}.${randomBytes(8).toString('hex')}.tmp`);
    try {
      const handle = await open(path, 'wx', 0o600);
      return Object.assign(handle, { path });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 4) throw err;
    }
  }
}
