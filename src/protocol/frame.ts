/**
 * First stage of every inbound frame: size, JSON, and the message schema. The envelope of
 * a `command` stays raw here (its kind may even be unknown); `verify.ts` parses it.
 */
import { LatchkeyError } from '../errors.js';
import { ControlPlaneMessageSchema, type ControlPlaneMessage } from './messages.js';
import { describeIssues, recoverCommandId } from './issues.js';
import { MAX_JSON_DEPTH, jsonDepthExceeds } from './json-depth.js';

export type FrameOutcome =
  | { ok: true; message: ControlPlaneMessage }
  | { ok: false; commandId: string | null; error: LatchkeyError };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads one control-plane frame. Never throws.
 * - more than `maxBytes` bytes (UTF-8) → `E_TOO_LARGE`
 * - not UTF-8 → `E_SCHEMA`
 * - nested deeper than `MAX_JSON_DEPTH` (64) → `E_SCHEMA`, found by a linear pre-scan:
 *   such a frame is never given to `JSON.parse` (which would block the event loop)
 * - not JSON → `E_SCHEMA`
 * - not a valid control-plane message → `E_SCHEMA`
 * `commandId` is `envelope.id` whenever it can be read, so the rejection can be correlated.
 */
export function parseControlPlaneFrame(data: string | Buffer, maxBytes: number): FrameOutcome {
  const size = typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.length;
  if (size > maxBytes) {
    return {
      ok: false,
      commandId: null,
      error: new LatchkeyError(
        'E_TOO_LARGE',
        `frame of ${size} bytes exceeds the limit of ${maxBytes} bytes`,
        {
          details: { size, maxBytes },
        },
      ),
    };
  }
  let text: string;
  if (typeof data === 'string') {
    text = data;
  } else {
    try {
      text = utf8.decode(data);
    } catch (err) {
      return {
        ok: false,
        commandId: null,
        error: new LatchkeyError('E_SCHEMA', 'frame is not valid UTF-8', { cause: err }),
      };
    }
  }
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
    return {
      ok: false,
      commandId: null,
      error: new LatchkeyError(
        'E_SCHEMA',
        `frame nests arrays or objects deeper than ${MAX_JSON_DEPTH} levels`,
        { details: { size, maxDepth: MAX_JSON_DEPTH } },
      ),
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return {
      ok: false,
      commandId: null,
      error: new LatchkeyError('E_SCHEMA', 'frame is not valid JSON', { cause: err }),
    };
  }
  const parsed = ControlPlaneMessageSchema.safeParse(value);
  if (!parsed.success) {
    return {
      ok: false,
      commandId: recoverCommandId(value),
      error: new LatchkeyError('E_SCHEMA', describeIssues('invalid message', parsed.error.issues)),
    };
  }
  const message = parsed.data;
  if (message.type === 'command') {
    // Keep the envelope exactly as received (zod's record parse copies it): the signature is
    // over the raw object, and an exact copy keeps the canonical bytes identical.
    message.envelope = (value as { envelope: Record<string, unknown> }).envelope;
  }
  return { ok: true, message };
}
