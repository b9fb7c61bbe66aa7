/**
 * The result spool: large `discover` results written to a file while the driver
 * produces them, so that the agent's memory stays bounded whatever their size
 * (docs/protocol.md, section 7a, "Memory").
 *
 * - A driver given `ctx.sink` (`DiscoverSink`) writes its resources and inventory entries
 *   page by page; each page is checked against the output schema, serialized and
 *   appended, and the SHA-256 of the text is computed as it goes. The text stays in
 *   memory until it passes `memoryBytes` (default 1 MiB, the default result frame
 *   bound), then goes to a file of the spool directory; a result that never got there is
 *   an ordinary in-memory `ResultFrame`.
 * - The text is exactly a `result` message: `{"type":"result",…,"output":{…},"timings":…}`
 *   (the output's keys in the order written: the streamed arrays first, then the rest).
 * - The file is complete (and synced) when the command finishes; the outbox then keeps
 *   its reference (`SpooledResultFrame.ref`), the link sends it as `result-chunk` frames
 *   read from the file, and the file is removed after the control plane's `result-ack`.
 * - Directory: `<state dir>/spool` with a state directory (a restart re-sends the spooled
 *   results of its outbox); without one a private directory under `os.tmpdir()`, removed
 *   at stop. Files no outbox entry names are removed at start (`sweep`).
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { close, closeSync, fsync, fsyncSync, open, write, writeSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import type { ZodType } from 'zod';
import { LatchkeyError } from '../errors.js';
import type { DiscoverSink } from '../drivers/driver.js';
import {
  DiscoveredResourceSchema,
  InventoryEntrySchema,
  InventoryPrincipalSchema,
  type CommandKind,
  type Result,
} from '../protocol/messages.js';
import { ResultFrame, SpooledResultFrame, type HeldFrame } from '../protocol/result-frame.js';

/** Default of `ResultSpoolOptions.memoryBytes`. */
export const DEFAULT_SPOOL_MEMORY_BYTES = 1024 * 1024;

export interface ResultSpoolOptions {
  /** The agent's state directory; a private temporary directory when undefined. */
  stateDir?: string | undefined;
  /** Text kept in memory before a result goes to a file. */
  memoryBytes?: number;
  logger: Logger;
}

/** 12 random hex characters, drawn once per process (see `ResultSpool.fileFor`). */
let prefix: string | undefined;
function processPrefix(): string {
  prefix ??= randomBytes(6).toString('hex');
  return prefix;
}

export class ResultSpool {
  /** Files named so far (the counter of `fileFor`). */
  private files = 0;

  private constructor(
    readonly dir: string,
    private readonly temporary: boolean,
    private readonly memoryBytes: number,
    private readonly logger: Logger,
  ) {}

  static async open(opts: ResultSpoolOptions): Promise<ResultSpool> {
    const memoryBytes = opts.memoryBytes ?? DEFAULT_SPOOL_MEMORY_BYTES;
    if (opts.stateDir !== undefined) {
      const dir = join(opts.stateDir, 'spool');
      await mkdir(dir, { recursive: true, mode: 0o700 });
      return new ResultSpool(dir, false, memoryBytes, opts.logger);
    }
    const dir = await mkdtemp(join(tmpdir(), 'latchkey-spool-'));
    return new ResultSpool(dir, true, memoryBytes, opts.logger);
  }

  /** Removes every spool file that `keep` (frames of the outbox) does not name. */
  async sweep(keep: Iterable<HeldFrame>): Promise<number> {
    const names = new Set<string>();
    for (const f of keep) if (f.spooled) names.add(f.path.slice(this.dir.length + 1));
    let removed = 0;
    for (const name of await readdir(this.dir)) {
      if (names.has(name)) continue;
      await rm(join(this.dir, name), { force: true });
      removed++;
    }
    if (removed > 0) this.logger.info({ removed }, 'spool files of acknowledged results removed');
    return removed;
  }

  /**
   * A writer for the result of `commandId` (nothing on disk until it is large). Cheap: its
   * file is named only when the text first goes to disk (`fileFor`).
   */
  begin(commandId: string, kind: CommandKind): SpoolWriter {
    return new SpoolWriter(commandId, kind, this, this.memoryBytes);
  }

  /**
   * A new file name for `commandId`: the id (made safe), this process's random prefix and
   * a counter, so that two writers (a retried command id included) never share a file,
   * in this process or across restarts of the same state directory.
   */
  fileFor(commandId: string): string {
    const safe = commandId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120);
    return join(this.dir, `${safe}-${processPrefix()}${(this.files++).toString(36)}.json`);
  }

  /** Removes a temporary spool directory (a state directory's spool stays). */
  async close(): Promise<void> {
    if (this.temporary) await rm(this.dir, { recursive: true, force: true });
  }
}

type Section = 'start' | 'resources' | 'entries' | 'done';

/**
 * One result being written (`DiscoverSink`). The dispatcher calls `complete` with what
 * the driver returned, then `finish` with the timings; or `discard` on failure.
 */
export class SpoolWriter implements DiscoverSink {
  /**
   * SHA-256 of the text written to the file so far: fed as the text goes to disk, so a
   * result that stays in memory is never hashed here (its frame hashes it on demand).
   */
  private hash: Hash | undefined;
  /** The spool file, named when the text first goes to disk. */
  private filePath: string | undefined;
  private bytes = 0;
  /** Text not yet on disk (all of it while under `memoryBytes`). */
  private pending: string[] = [];
  private pendingBytes = 0;
  /** The spool file's descriptor, once the text went there. */
  private file: number | undefined;
  private section: Section = 'start';
  private keys = 0;
  private firstItem = true;
  private readonly streamed = new Set<string>();
  private closed = false;
  /** `complete` was called: pages written later are refused. */
  private completing = false;
  /** Writes in order (a page resolves once it is on disk or held). */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly commandId: string,
    readonly kind: CommandKind,
    private readonly spool: { fileFor(commandId: string): string },
    private readonly memoryBytes: number,
  ) {
    this.append(
      `{"type":"result","commandId":${JSON.stringify(commandId)},"kind":${JSON.stringify(kind)},"status":"ok","output":{`,
    );
  }

  /** True once the driver wrote a page: the result is this writer's. */
  get used(): boolean {
    return this.streamed.size > 0;
  }

  /** Bytes written so far (in memory or on disk). */
  get size(): number {
    return this.bytes;
  }

  /** The spool file; undefined while the text is in memory only. */
  get path(): string | undefined {
    return this.filePath;
  }

  /** True when the text went to a file. */
  get onDisk(): boolean {
    return this.file !== undefined;
  }

  resources(page: readonly unknown[]): Promise<void> {
    return this.run(() => {
      if (this.section === 'start') this.openArray('resources', 'resources');
      else if (this.section !== 'resources') throw misuse('resources after the inventory');
      this.items(page, DiscoveredResourceSchema);
    });
  }

  inventory(principals: readonly unknown[]): Promise<void> {
    return this.run(() => {
      if (this.section === 'entries' || this.section === 'done') {
        throw misuse('a second inventory');
      }
      this.closeArray();
      this.key('inventory');
      this.streamed.add('inventory');
      this.append('{"principals":[');
      this.firstItem = true;
      this.items(principals, InventoryPrincipalSchema);
      this.append('],"entries":[');
      this.firstItem = true;
      this.section = 'entries';
    });
  }

  entries(page: readonly unknown[]): Promise<void> {
    return this.run(() => {
      if (this.section !== 'entries') throw misuse('inventory entries out of order');
      this.items(page, InventoryEntrySchema);
    });
  }

  /**
   * Writes the rest of the output (`tail`: what the driver returned, already checked; its
   * streamed keys are left out) and closes it. Resolves once the text is on disk.
   */
  complete(tail: Record<string, unknown>): Promise<void> {
    // From now on a page (a driver writing after it returned) is refused.
    this.completing = true;
    return this.run(async () => {
      this.closeArray();
      for (const [k, v] of Object.entries(tail)) {
        if (this.streamed.has(k) || v === undefined) continue;
        this.key(k);
        this.append(JSON.stringify(v));
      }
      this.append('}');
      if (this.file !== undefined) {
        await this.flush();
        await fsyncFd(this.file);
      }
    }, false);
  }

  /**
   * The frame of the completed result, with its timings (the last bytes). Synchronous:
   * the dispatcher finishes a command in one turn. In memory when it stayed small.
   */
  finish(timings: Result['timings']): HeldFrame {
    if (this.closed) throw misuse('finish after discard');
    this.closed = true;
    this.append(`,"timings":${JSON.stringify(timings)}}`);
    const file = this.file;
    if (file === undefined) {
      return ResultFrame.fromText(this.commandId, this.pending.join(''), this.kind);
    }
    const restText = this.pending.join('');
    this.digestOf(restText);
    const rest = Buffer.from(restText, 'utf8');
    this.pending = [];
    try {
      let off = 0;
      while (off < rest.length) off += writeSync(file, rest, off, rest.length - off);
      fsyncSync(file);
    } finally {
      closeSync(file);
    }
    return new SpooledResultFrame(
      this.commandId,
      this.kind,
      timings,
      this.filePath ?? '',
      this.bytes,
      this.digestOf('').digest('hex'),
    );
  }

  /** Drops the result (the command failed): closes and removes the file. Never throws. */
  async discard(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    await this.queue.catch(() => undefined);
    if (this.file !== undefined) {
      await closeFd(this.file).catch(() => undefined);
      if (this.filePath !== undefined) {
        await rm(this.filePath, { force: true }).catch(() => undefined);
      }
    }
  }

  private run(step: () => void | Promise<void>, page = true): Promise<void> {
    if (page && this.completing) return Promise.reject(misuse('a page after it returned'));
    const next = this.queue.then(async () => {
      if (this.closed) throw new LatchkeyError('E_INTERNAL', 'the result was already finished');
      await step();
      if (this.file === undefined ? this.pendingBytes > this.memoryBytes : this.pendingBytes > 0) {
        await this.flush();
      }
    });
    // A failed step fails the call; the writer is discarded by the dispatcher.
    this.queue = next.catch(() => undefined);
    return next;
  }

  private openArray(key: string, section: Section): void {
    this.key(key);
    this.streamed.add(key);
    this.append('[');
    this.firstItem = true;
    this.section = section;
  }

  private closeArray(): void {
    if (this.section === 'resources') this.append(']');
    else if (this.section === 'entries') this.append(']}');
  }

  private key(k: string): void {
    this.append(`${this.keys > 0 ? ',' : ''}${JSON.stringify(k)}:`);
    this.keys++;
  }

  private items(page: readonly unknown[], schema: ZodType): void {
    const parts: string[] = [];
    for (const item of page) {
      const checked = schema.safeParse(item);
      if (!checked.success) {
        throw new LatchkeyError('E_INTERNAL', `driver returned a malformed ${this.kind} output`);
      }
      parts.push(JSON.stringify(checked.data));
    }
    if (parts.length === 0) return;
    this.append(`${this.firstItem ? '' : ','}${parts.join(',')}`);
    this.firstItem = false;
  }

  private append(text: string): void {
    const n = Buffer.byteLength(text, 'utf8');
    this.bytes += n;
    this.pending.push(text);
    this.pendingBytes += n;
  }

  /** The hash of what went to disk, fed with `text` (which is about to go there). */
  private digestOf(text: string): Hash {
    const hash = (this.hash ??= createHash('sha256'));
    if (text.length > 0) hash.update(text, 'utf8');
    return hash;
  }

  private async flush(): Promise<void> {
    if (this.file === undefined) {
      this.filePath ??= this.spool.fileFor(this.commandId);
      this.file = await openFd(this.filePath, 'wx', 0o600);
    }
    const fd = this.file;
    const text = this.pending.join('');
    this.digestOf(text);
    const buf = Buffer.from(text, 'utf8');
    this.pending = [];
    this.pendingBytes = 0;
    let off = 0;
    while (off < buf.length) off += (await writeFd(fd, buf, off, buf.length - off)).bytesWritten;
  }
}

const openFd = promisify(open);
const writeFd = promisify(write);
const fsyncFd = promisify(fsync);
const closeFd = promisify(close);

function misuse(what: string): LatchkeyError {
  return new LatchkeyError('E_INTERNAL', `driver wrote ${what} (discover sink)`);
}
