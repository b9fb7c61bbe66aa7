/**
 * The state journal: an append-only, checksummed key → value log on local disk, with
 * group commit and background compaction. It keeps what must survive a restart (the
 * outbox, the command-id record, the known integrations; see `src/state/index.ts`).
 *
 * Glossary
 * - **record**: one line, `<checksum>\t<key as JSON string>\t<value JSON>\n`; a value of
 *   `""` (nothing after the second tab) deletes the key. The checksum is the first 16 hex
 *   digits of SHA-256 over `<key JSON>\t<value JSON>`. Keys and values are JSON texts, so
 *   neither ever holds a raw tab or newline.
 * - **live record**: the latest record of a key that is not a delete. The live set is
 *   held in memory (key → line) and is the state; the file is its durable history.
 * - **torn record**: a last line without its newline or with a bad checksum, left by a
 *   crash in the middle of a write. It is dropped (the file is cut back to the last good
 *   record) and start-up goes on; its change was never acknowledged to anyone.
 * - **group commit**: every change made in one event-loop turn (and while a write is under
 *   way) goes to disk in one `write` + one `fdatasync`. `put`/`delete` return a promise
 *   that resolves when that batch is durable; callers that must not act before the
 *   change is on disk (a result is sent only once it is) await it.
 * - **compaction**: when dead records dominate the file (file > `compactRatio` × live
 *   bytes and > `compactMinBytes`), the live set is written to a new file in the
 *   background, the records appended meanwhile are copied after it, and the new file
 *   replaces the old one by an atomic rename followed by an fsync of the directory. A
 *   crash at any step leaves the old file or the new one, both complete; a leftover
 *   temp file is removed at the next start.
 *
 * A failed write is logged and counted (`state:write-failed`); the file is cut back to
 * its last good size, the in-memory state stays authoritative and the promise resolves
 * all the same: losing durability must not stop results from being delivered.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AgentEvents } from '../events.js';

export const JOURNAL_FILE = 'state.journal';
const TEMP_PREFIX = `${JOURNAL_FILE}.compact-`;

export interface JournalOptions {
  dir: string;
  logger: Logger;
  events?: AgentEvents;
  /** No compaction below this file size; default 1 MiB. */
  compactMinBytes?: number;
  /** Compact when the file exceeds this multiple of the live bytes; default 2. */
  compactRatio?: number;
}

export interface JournalLoadReport {
  records: number;
  live: number;
  /** Bytes cut from the end (a torn last record). */
  tornBytes: number;
  /** Records with a bad checksum before the end (skipped). */
  corrupt: number;
}

/** JSON text of a value, as stored. */
export type JsonText = string;

export class StateJournal {
  /** key → its live line (with newline). Insertion order = order of last write. */
  private readonly live = new Map<string, string>();
  private liveBytes = 0;
  private fileBytes = 0;
  private handle: FileHandle | undefined;
  private pending: string[] = [];
  private pendingWaiters: (() => void)[] = [];
  private scheduled = false;
  private flushing: Promise<void> | undefined;
  /** Serializes batch writes and the compaction's switch of files. */
  private lock: Promise<void> = Promise.resolve();
  /** Lines written since a compaction took its snapshot (undefined: none under way). */
  private sinceSnapshot: string[] | undefined;
  private compacting: Promise<void> | undefined;
  private closed = false;
  private closing = false;
  private readonly compactMinBytes: number;
  private readonly compactRatio: number;

  private constructor(
    private readonly opts: JournalOptions,
    readonly report: JournalLoadReport,
  ) {
    this.compactMinBytes = opts.compactMinBytes ?? 1024 * 1024;
    this.compactRatio = opts.compactRatio ?? 2;
  }

  get file(): string {
    return join(this.opts.dir, JOURNAL_FILE);
  }

  /** Size of the journal file in bytes (what is durable or being written). */
  get sizeBytes(): number {
    return this.fileBytes;
  }

  /** Number of live keys. */
  get size(): number {
    return this.live.size;
  }

  /**
   * Opens (creating the directory, mode 0700, and the file, mode 0600) and reads the
   * journal. Throws only when the directory or file cannot be created or opened.
   */
  static async open(opts: JournalOptions): Promise<StateJournal> {
    await mkdir(opts.dir, { recursive: true, mode: 0o700 });
    await removeTempFiles(opts.dir);
    const report: JournalLoadReport = { records: 0, live: 0, tornBytes: 0, corrupt: 0 };
    const journal = new StateJournal(opts, report);
    // O_NOFOLLOW: a symlink planted at the journal's name is never followed.
    const handle = await open(journal.file, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
    try {
      const data = await handle.readFile();
      const good = journal.replay(data);
      if (good < data.length) {
        report.tornBytes = data.length - good;
        await handle.truncate(good);
        await handle.datasync();
        opts.logger.warn(
          { file: journal.file, droppedBytes: report.tornBytes },
          'state journal ended with a torn record (a crash mid-write); it was dropped',
        );
      }
      journal.fileBytes = good;
    } catch (err) {
      await handle.close();
      throw err;
    }
    journal.handle = handle;
    report.live = journal.live.size;
    if (report.corrupt > 0) {
      opts.logger.error(
        { file: journal.file, corrupt: report.corrupt },
        'state journal held records with a bad checksum; they were skipped',
      );
    }
    journal.emitSize();
    if (report.corrupt > 0) journal.compactSoon(true);
    return journal;
  }

  /** Live keys starting with `prefix` and their value texts, oldest write first. */
  *entries(prefix: string): IterableIterator<[string, JsonText]> {
    for (const [key, line] of this.live) {
      if (key.startsWith(prefix)) yield [key, valueOf(line)];
    }
  }

  get(key: string): JsonText | undefined {
    const line = this.live.get(key);
    return line === undefined ? undefined : valueOf(line);
  }

  /** Sets `key` to a value given as JSON text (not checked here). Resolves once durable. */
  putRaw(key: string, json: JsonText): Promise<void> {
    if (json === '' || /[\t\n]/.test(json)) {
      throw new RangeError('journal value must be non-empty JSON text without raw tab/newline');
    }
    return this.append(key, json);
  }

  /** Sets `key` to `JSON.stringify(value)`. Resolves once durable. */
  put(key: string, value: unknown): Promise<void> {
    return this.append(key, JSON.stringify(value));
  }

  /** Removes `key` (no-op when absent). Resolves once durable. */
  delete(key: string): Promise<void> {
    if (!this.live.has(key)) return this.flush();
    return this.append(key, '');
  }

  /** Resolves once every change made so far is durable. */
  flush(): Promise<void> {
    if (this.pending.length === 0 && this.flushing === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => {
      if (this.pending.length > 0) this.pendingWaiters.push(resolve);
      else void this.flushing?.then(resolve);
    });
  }

  /** Starts a compaction now if none is under way (tests, and after corrupt records). */
  compactNow(): Promise<void> {
    this.compactSoon(true);
    return this.compacting ?? Promise.resolve();
  }

  /** Flushes, waits for a compaction under way and closes the file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    await this.flush();
    while (this.compacting !== undefined) await this.compacting;
    this.closed = true;
    await this.withLock(async () => {
      await this.handle?.close();
      this.handle = undefined;
    });
  }

  // -------------------------------------------------------------------------------------

  private append(key: string, json: JsonText): Promise<void> {
    if (this.closed) return Promise.resolve();
    const line = encodeLine(key, json);
    const old = this.live.get(key);
    if (old !== undefined) {
      this.live.delete(key);
      this.liveBytes -= Buffer.byteLength(old);
    }
    if (json !== '') {
      this.live.set(key, line);
      this.liveBytes += Buffer.byteLength(line);
    }
    this.pending.push(line);
    const done = new Promise<void>((resolve) => this.pendingWaiters.push(resolve));
    this.schedule();
    return done;
  }

  private schedule(): void {
    if (this.scheduled || this.flushing !== undefined) return;
    this.scheduled = true;
    // After the I/O callbacks of this turn: everything appended in the turn is one batch.
    setImmediate(() => {
      this.scheduled = false;
      this.flushing = this.flushLoop().finally(() => {
        this.flushing = undefined;
        if (this.pending.length > 0) this.schedule();
      });
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      const waiters = this.pendingWaiters;
      this.pending = [];
      this.pendingWaiters = [];
      await this.withLock(() => this.writeBatch(batch));
      for (const w of waiters) w();
      this.maybeCompact();
    }
  }

  private async writeBatch(lines: string[]): Promise<void> {
    const handle = this.handle;
    if (handle === undefined) return;
    const buf = Buffer.from(lines.join(''), 'utf8');
    const at = this.fileBytes;
    const t0 = process.hrtime.bigint();
    try {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await handle.write(buf, off, buf.length - off, at + off);
        off += bytesWritten;
      }
      await handle.datasync();
      this.fileBytes = at + buf.length;
      this.sinceSnapshot?.push(...lines);
      this.opts.events?.emit('state:fsync', {
        seconds: Number(process.hrtime.bigint() - t0) / 1e9,
        records: lines.length,
      });
    } catch (err) {
      this.opts.logger.error(
        { err, file: this.file, records: lines.length },
        'could not write the state journal; the state stays in memory',
      );
      this.opts.events?.emit('state:write-failed', {});
      await handle.truncate(at).catch(() => undefined);
    }
    this.emitSize();
  }

  private maybeCompact(): void {
    this.compactSoon(false);
  }

  private compactSoon(force: boolean): void {
    if (this.compacting !== undefined || this.closed || this.closing) return;
    if (
      !force &&
      (this.fileBytes < this.compactMinBytes ||
        this.fileBytes <= this.compactRatio * this.liveBytes)
    ) {
      return;
    }
    this.compacting = this.compact().finally(() => {
      this.compacting = undefined;
      // Records appended during the compaction may have made dead ones dominate again.
      this.compactSoon(false);
    });
  }

  /** Rewrites the live set to a new file (in the background) and swaps it in. */
  private async compact(): Promise<void> {
    const dir = this.opts.dir;
    const t0 = Date.now();
    const before = this.fileBytes;
    // The snapshot: every live line (including lines not yet flushed; they are written
    // again after it by the flush, harmlessly: the later record of a key wins).
    this.sinceSnapshot = [];
    const snapshot = Buffer.from([...this.live.values()].join(''), 'utf8');
    const tmp = join(dir, `${TEMP_PREFIX}${process.pid}.${randomBytes(6).toString('hex')}`);
    let tmpHandle: FileHandle | undefined;
    try {
      // `wx`: never opens or follows a file or symlink planted at the temp name.
      tmpHandle = await open(tmp, 'wx', 0o600);
      await writeAll(tmpHandle, snapshot, 0);
      await tmpHandle.datasync();
      const th = tmpHandle;
      await this.withLock(async () => {
        if (this.closed || this.handle === undefined) throw new Error('journal closed');
        const tail = Buffer.from((this.sinceSnapshot ?? []).join(''), 'utf8');
        await writeAll(th, tail, snapshot.length);
        await th.datasync();
        await rename(tmp, this.file);
        await syncDir(dir);
        const old = this.handle;
        this.handle = th;
        tmpHandle = undefined;
        this.fileBytes = snapshot.length + tail.length;
        this.sinceSnapshot = undefined;
        await old.close().catch(() => undefined);
      });
      this.opts.logger.info(
        { beforeBytes: before, afterBytes: this.fileBytes, durationMs: Date.now() - t0 },
        'state journal compacted',
      );
      this.opts.events?.emit('state:compacted', { outcome: 'ok' });
    } catch (err) {
      this.opts.logger.error({ err, file: this.file }, 'state journal compaction failed');
      this.opts.events?.emit('state:compacted', { outcome: 'failed' });
      await tmpHandle?.close().catch(() => undefined);
      await rm(tmp, { force: true }).catch(() => undefined);
    } finally {
      this.sinceSnapshot = undefined;
      this.emitSize();
    }
  }

  private withLock(fn: () => Promise<void>): Promise<void> {
    const run = this.lock.then(fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /** Reads records; returns the byte offset after the last good record. */
  private replay(data: Buffer): number {
    let pos = 0;
    let good = 0;
    while (pos < data.length) {
      const nl = data.indexOf(0x0a, pos);
      if (nl === -1) break; // no newline: torn
      const line = data.toString('utf8', pos, nl + 1);
      pos = nl + 1;
      const parsed = decodeLine(line);
      if (parsed === undefined) {
        this.report.corrupt += 1;
        continue;
      }
      this.report.records += 1;
      good = pos;
      const old = this.live.get(parsed.key);
      if (old !== undefined) {
        this.live.delete(parsed.key);
        this.liveBytes -= Buffer.byteLength(old);
      }
      if (parsed.value !== '') {
        this.live.set(parsed.key, line);
        this.liveBytes += Buffer.byteLength(line);
      }
    }
    // Bad records after the last good one are the torn end, not corruption inside.
    let trailingBad = 0;
    for (let p = good; p < data.length;) {
      const nl = data.indexOf(0x0a, p);
      if (nl === -1) break;
      trailingBad += 1;
      p = nl + 1;
    }
    this.report.corrupt -= trailingBad;
    return good;
  }

  private emitSize(): void {
    this.opts.events?.emit('state:size', { bytes: this.fileBytes, records: this.live.size });
  }
}

function checksum(body: string): string {
  return createHash('sha256').update(body).digest('hex').slice(0, 16);
}

function encodeLine(key: string, json: JsonText): string {
  const body = `${JSON.stringify(key)}\t${json}`;
  return `${checksum(body)}\t${body}\n`;
}

function decodeLine(line: string): { key: string; value: JsonText } | undefined {
  if (!line.endsWith('\n')) return undefined;
  const t1 = line.indexOf('\t');
  if (t1 !== 16) return undefined;
  const body = line.slice(t1 + 1, -1);
  if (checksum(body) !== line.slice(0, t1)) return undefined;
  const t2 = body.indexOf('\t');
  if (t2 === -1) return undefined;
  let key: unknown;
  try {
    key = JSON.parse(body.slice(0, t2));
  } catch {
    return undefined;
  }
  if (typeof key !== 'string') return undefined;
  return { key, value: body.slice(t2 + 1) };
}

function valueOf(line: string): JsonText {
  const t1 = line.indexOf('\t');
  const t2 = line.indexOf('\t', t1 + 1);
  return line.slice(t2 + 1, -1);
}

async function writeAll(handle: FileHandle, buf: Buffer, at: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await handle.write(buf, off, buf.length - off, at + off);
    off += bytesWritten;
  }
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename durable. Not supported everywhere: best effort.
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

async function removeTempFiles(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(
    names.filter((n) => n.startsWith(TEMP_PREFIX)).map((n) => rm(join(dir, n), { force: true })),
  );
}
