/**
 * A result serialized once, when it is produced: the exact text that is sent on the link,
 * re-sent until acknowledged, persisted in the outbox file and kept for duplicates.
 *
 * Holding the text instead of the result object keeps one string per unacknowledged or
 * remembered result instead of a tree of objects (a discover output is dozens of them):
 * after a burst of thousands of commands that is most of what the agent holds.
 *
 * A text larger than the link's frame bound is sent as `result-chunk` frames, cut from
 * this text on demand (`nextChunk`): no copy of the whole result is made for it.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { ResultSchema, type CommandKind, type Result } from './messages.js';

export class ResultFrame {
  private byteSize: number | undefined;
  private digest: string | undefined;

  private constructor(
    readonly commandId: string,
    /** `JSON.stringify` of the result: the frame's text. */
    readonly text: string,
    /** The result's kind: with its timings, enough to answer in its place (`tooLarge`). */
    readonly kind: CommandKind,
  ) {}

  /**
   * The result's timings, read from the text when asked (rarely: `tooLarge`). Not kept as
   * an object: thousands of frames are held (outbox, duplicates), and each object they
   * keep is work for every garbage collection.
   */
  get timings(): Result['timings'] {
    return (JSON.parse(this.text) as Pick<Result, 'timings'>).timings;
  }

  /** Always false: the text is in memory (see `SpooledResultFrame`). */
  readonly spooled = false;
  /** Always true: an in-memory frame is held until dropped. */
  readonly held = true;

  static of(result: Result): ResultFrame {
    return new ResultFrame(result.commandId, JSON.stringify(result), result.kind);
  }

  /** A frame of a text serialized elsewhere (a result spool that never left memory). */
  static fromText(commandId: string, text: string, kind: CommandKind): ResultFrame {
    return new ResultFrame(commandId, text, kind);
  }

  /** A stored frame, kept byte for byte; undefined when the text is not a valid result. */
  static parse(text: string): ResultFrame | undefined {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return undefined;
    }
    const parsed = ResultSchema.safeParse(json);
    return parsed.success
      ? new ResultFrame(parsed.data.commandId, text, parsed.data.kind)
      : undefined;
  }

  /** UTF-8 bytes of the text (computed once). */
  get bytes(): number {
    this.byteSize ??= Buffer.byteLength(this.text, 'utf8');
    return this.byteSize;
  }

  /** SHA-256 (hex) of the text's UTF-8 bytes (computed once). */
  get sha256(): string {
    this.digest ??= createHash('sha256').update(this.text, 'utf8').digest('hex');
    return this.digest;
  }

  /** The result as an object (a copy; for inspection and tests). */
  result(): Result {
    return ResultSchema.parse(JSON.parse(this.text));
  }

  /**
   * The error result sent instead of this one when it does not fit in one frame and the
   * control plane does not take chunks: `E_TOO_LARGE`, same command id, kind and timings.
   */
  tooLarge(maxFrameBytes: number): ResultFrame {
    return tooLargeFrame(this, maxFrameBytes);
  }
}

function tooLargeFrame(
  frame: { commandId: string; kind: CommandKind; timings: Result['timings']; bytes: number },
  maxFrameBytes: number,
): ResultFrame {
  return ResultFrame.of({
    type: 'result',
    commandId: frame.commandId,
    kind: frame.kind,
    status: 'error',
    error: {
      code: 'E_TOO_LARGE',
      message: `result of ${frame.bytes} bytes exceeds the frame limit of ${maxFrameBytes} bytes and the control plane did not accept result chunks (welcome.resultChunks)`,
      retryable: false,
    },
    timings: frame.timings,
  });
}

const SpoolRefSchema = z.object({
  spool: z.object({
    file: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/),
    commandId: z.string(),
    kind: z.string(),
    timings: ResultSchema.shape.timings,
    bytes: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  }),
});

/**
 * A result serialized to a file (a spool, `src/controlplane/spool.ts`) while it was
 * produced: a discover output too large to hold in memory. Its size and SHA-256 are known
 * once the file is complete; `result-chunk` frames are read from the file on demand
 * (`chunkAt`). The outbox and the state journal keep its reference (`ref`), never its
 * text; `release` removes the file (after the control plane's `result-ack`).
 */
export class SpooledResultFrame {
  readonly spooled = true;
  private released = false;

  constructor(
    readonly commandId: string,
    readonly kind: CommandKind,
    readonly timings: Result['timings'],
    /** The spool file. */
    readonly path: string,
    readonly bytes: number,
    readonly sha256: string,
  ) {}

  /** The record kept for it in the outbox journal (JSON, small). */
  ref(): string {
    return JSON.stringify({
      spool: {
        file: basename(this.path),
        commandId: this.commandId,
        kind: this.kind,
        timings: this.timings,
        bytes: this.bytes,
        sha256: this.sha256,
      },
    });
  }

  /**
   * The frame a reference (`ref`) names, its file in `dir`; undefined when the text is
   * not a reference, or the file is missing or not of the size recorded.
   */
  static fromRef(text: string, dir: string): SpooledResultFrame | undefined {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return undefined;
    }
    const parsed = SpoolRefSchema.safeParse(json);
    if (!parsed.success) return undefined;
    const r = parsed.data.spool;
    const kind = ResultSchema.shape.kind.safeParse(r.kind);
    if (!kind.success) return undefined;
    const path = join(dir, r.file);
    try {
      if (statSync(path).size !== r.bytes) return undefined;
    } catch {
      return undefined;
    }
    return new SpooledResultFrame(r.commandId, kind.data, r.timings, path, r.bytes, r.sha256);
  }

  /** True until `release`: the file is there. */
  get held(): boolean {
    return !this.released;
  }

  /** Removes the file (the result was acknowledged). Never throws. */
  release(): void {
    this.released = true;
    try {
      rmSync(this.path, { force: true });
    } catch {
      // swept at the next start
    }
  }

  /** The whole text (for a result that fits one frame after all, and for tests). */
  readText(): string {
    return readFileSync(this.path, 'utf8');
  }

  /** The result as an object (reads the file; for inspection and tests). */
  result(): Result {
    return ResultSchema.parse(JSON.parse(this.readText()));
  }

  tooLarge(maxFrameBytes: number): ResultFrame {
    return tooLargeFrame(this, maxFrameBytes);
  }

  /** True when byte `offset` starts a character (or is the end). */
  isBoundary(offset: number): boolean {
    if (offset === 0 || offset === this.bytes) return true;
    if (offset < 0 || offset > this.bytes) return false;
    const b = Buffer.alloc(1);
    const fd = openSync(this.path, 'r');
    try {
      readSync(fd, b, 0, 1, offset);
    } finally {
      closeSync(fd);
    }
    return ((b[0] ?? 0) & 0xc0) !== 0x80;
  }

  /** The next `result-chunk` from byte `startByte` (a character boundary), read from the file. */
  chunkAt(startByte: number, maxFrameBytes: number): ResultChunkPiece {
    const overhead = chunkOverhead(this, startByte);
    const budget = maxFrameBytes - overhead;
    // A character takes at least as many bytes escaped as raw: `budget` raw bytes suffice.
    const want = Math.max(0, Math.min(budget, this.bytes - startByte));
    const buf = Buffer.alloc(want);
    const fd = openSync(this.path, 'r');
    let got = 0;
    try {
      while (got < want) {
        const n = readSync(fd, buf, got, want - got, startByte + got);
        if (n === 0) break;
        got += n;
      }
    } finally {
      closeSync(fd);
    }
    const text = buf.subarray(0, completeUtf8(buf, got)).toString('utf8');
    const { endChar, raw } = fit(text, 0, budget);
    if (endChar === 0) {
      throw new RangeError(`a result chunk does not fit in ${maxFrameBytes} bytes`);
    }
    const endByte = startByte + raw;
    return {
      text: chunkText(this, startByte, text.slice(0, endChar)),
      endByte,
      endChar: endByte,
    };
  }
}

/** A result held until acknowledged: its text in memory, or in a spool file. */
export type HeldFrame = ResultFrame | SpooledResultFrame;

/** Bytes of `buf[0, len)` that end on a complete UTF-8 character. */
function completeUtf8(buf: Buffer, len: number): number {
  let i = len;
  let back = 0;
  while (i > 0 && back < 4) {
    const b = buf[i - 1] ?? 0;
    if ((b & 0xc0) !== 0x80) {
      const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
      return back + 1 >= need ? len : i - 1;
    }
    i--;
    back++;
  }
  return i;
}

interface ChunkHead {
  commandId: string;
  bytes: number;
  sha256: string;
}

function chunkOverhead(frame: ChunkHead, startByte: number): number {
  return Buffer.byteLength(chunkText(frame, startByte, ''), 'utf8');
}

function chunkText(frame: ChunkHead, offset: number, data: string): string {
  return JSON.stringify({
    type: 'result-chunk',
    commandId: frame.commandId,
    offset,
    size: frame.bytes,
    sha256: frame.sha256,
    data,
  });
}

/** One `result-chunk` cut from a frame's text. */
export interface ResultChunkPiece {
  /** The `result-chunk` frame's text. */
  text: string;
  /** UTF-8 byte offset just after this piece (the `next` the control plane acks with it). */
  endByte: number;
  /** UTF-16 index in the result text just after this piece. */
  endChar: number;
}

/** Bytes `JSON.stringify` writes for a string's code unit `c` (not a surrogate). */
function escapedBytes(c: number): number {
  if (c === 0x22 || c === 0x5c) return 2; // \" \\
  if (c < 0x20) return c === 8 || c === 9 || c === 10 || c === 12 || c === 13 ? 2 : 6;
  if (c < 0x80) return 1;
  if (c < 0x800) return 2;
  return 3;
}

/** UTF-8 bytes of code unit `c` in the raw text (not a surrogate pair). */
function rawBytes(c: number): number {
  return c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
}

/**
 * The next chunk of `frame`, starting at UTF-16 index `startChar` (UTF-8 byte
 * `startByte`), as large as fits in `maxFrameBytes` once the chunk frame is serialized.
 * Never cuts a surrogate pair. Throws a RangeError when not even one character fits.
 */
export function nextChunk(
  frame: ResultFrame,
  startChar: number,
  startByte: number,
  maxFrameBytes: number,
): ResultChunkPiece {
  const budget = maxFrameBytes - chunkOverhead(frame, startByte);
  const { endChar, raw } = fit(frame.text, startChar, budget);
  if (endChar === startChar) {
    throw new RangeError(`a result chunk does not fit in ${maxFrameBytes} bytes`);
  }
  return {
    text: chunkText(frame, startByte, frame.text.slice(startChar, endChar)),
    endByte: startByte + raw,
    endChar,
  };
}

/**
 * How much of `text` from `startChar` fits in `budget` bytes once written as a JSON
 * string: the UTF-16 index after it and its raw UTF-8 bytes. Never cuts a surrogate pair.
 */
function fit(text: string, startChar: number, budget: number): { endChar: number; raw: number } {
  let i = startChar;
  let used = 0;
  let raw = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    let units = 1;
    let esc: number;
    let r: number;
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        units = 2;
        esc = 4;
        r = 4;
      } else {
        esc = 6; // a lone surrogate is written as \udxxx
        r = 3;
      }
    } else if (c >= 0xd800 && c <= 0xdfff) {
      esc = 6;
      r = 3;
    } else {
      esc = escapedBytes(c);
      r = rawBytes(c);
    }
    if (used + esc > budget) break;
    used += esc;
    raw += r;
    i += units;
  }
  return { endChar: i, raw };
}

/**
 * The UTF-16 index of UTF-8 byte `offset` of `text`, or undefined when `offset` falls
 * inside a character or beyond the end. O(n): used only when the control plane names an
 * offset the agent did not just send (after a restart).
 */
export function charIndexOfByte(text: string, offset: number): number | undefined {
  let bytes = 0;
  let i = 0;
  while (bytes < offset && i < text.length) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        bytes += 4;
        i += 2;
        continue;
      }
    }
    bytes += c >= 0xd800 && c <= 0xdfff ? 3 : rawBytes(c);
    i += 1;
  }
  return bytes === offset ? i : undefined;
}
