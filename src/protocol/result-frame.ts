/**
 * A result serialized once, when it is produced: the exact text that is sent on the link,
 * re-sent until acknowledged, persisted in the outbox file and kept for duplicates.
 *
 * Holding the text instead of the result object keeps one string per unacknowledged or
 * remembered result instead of a tree of objects (a discover output is dozens of them):
 * after a burst of thousands of commands that is most of what the agent holds.
 */
import { ResultSchema, type Result } from './messages.js';

export class ResultFrame {
  private constructor(
    readonly commandId: string,
    /** `JSON.stringify` of the result: the frame's text. */
    readonly text: string,
  ) {}

  static of(result: Result): ResultFrame {
    return new ResultFrame(result.commandId, JSON.stringify(result));
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
    return parsed.success ? new ResultFrame(parsed.data.commandId, text) : undefined;
  }

  /** The result as an object (a copy; for inspection and tests). */
  result(): Result {
    return ResultSchema.parse(JSON.parse(this.text));
  }
}
