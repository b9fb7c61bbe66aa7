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
import { ResultSchema, type CommandKind, type Result } from './messages.js';

export class ResultFrame {
  private byteSize: number | undefined;
  private digest: string | undefined;

  private constructor(
    readonly commandId: string,
    /** `JSON.stringify` of the result: the frame's text. */
    readonly text: string,
    /** The result's kind and timings: enough to answer in its place (`tooLarge`). */
    readonly kind: CommandKind,
    readonly timings: Result['timings'],
  ) {}

  static of(result: Result): ResultFrame {
    return new ResultFrame(result.commandId, JSON.stringify(result), result.kind, result.timings);
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
      ? new ResultFrame(parsed.data.commandId, text, parsed.data.kind, parsed.data.timings)
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
    return ResultFrame.of({
      type: 'result',
      commandId: this.commandId,
      kind: this.kind,
      status: 'error',
      error: {
        code: 'E_TOO_LARGE',
        message: `result of ${this.bytes} bytes exceeds the frame limit of ${maxFrameBytes} bytes and the control plane did not accept result chunks (welcome.resultChunks)`,
        retryable: false,
      },
      timings: this.timings,
    });
  }
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
  const head = {
    type: 'result-chunk',
    commandId: frame.commandId,
    offset: startByte,
    size: frame.bytes,
    sha256: frame.sha256,
    data: '',
  };
  const overhead = Buffer.byteLength(JSON.stringify(head), 'utf8');
  const budget = maxFrameBytes - overhead;
  const text = frame.text;
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
  if (i === startChar) {
    throw new RangeError(`a result chunk does not fit in ${maxFrameBytes} bytes`);
  }
  const data = text.slice(startChar, i);
  return {
    text: JSON.stringify({ ...head, data }),
    endByte: startByte + raw,
    endChar: i,
  };
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
