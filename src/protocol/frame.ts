/**
 * First stage of every inbound frame: size, JSON, and the message schema. The envelope of
 * a `command` stays raw here (its kind may even be unknown); `verify.ts` parses it.
 */
import { LatchkeyError } from '../errors.js';
import {
  ControlPlaneMessageSchema,
  type CommandMessage,
  type ControlPlaneMessage,
} from './messages.js';
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
  const fast = readCommonMessage(value);
  if (fast !== undefined) return { ok: true, message: fast };
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

const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * The two frames of every command, read without zod: a `command` (its envelope is kept
 * raw here anyway, and `verify.ts` parses it strictly) and a `result-ack`. Returns exactly
 * what `ControlPlaneMessageSchema` would (unknown top-level keys dropped, the signature
 * strict), or undefined for anything else, including every frame that schema would
 * refuse: those go through zod, for the same answer and the same issues.
 */
function readCommonMessage(value: unknown): ControlPlaneMessage | undefined {
  if (!isPlainObject(value)) return undefined;
  const type = value.type;
  if (type === 'result-ack') {
    const commandId = value.commandId;
    return typeof commandId === 'string' ? { type, commandId } : undefined;
  }
  if (type !== 'command') return undefined;
  const envelope = value.envelope;
  const sig = value.signature;
  if (!isPlainObject(envelope) || !isPlainObject(sig)) return undefined;
  // SignatureSchema: strict {alg: 'ed25519', keyId: 1..128 chars, value: 1..256 chars}.
  const { alg, keyId, value: sigValue } = sig;
  if (
    ownKeyCount(sig) !== 3 ||
    !own(sig, 'alg') ||
    !own(sig, 'keyId') ||
    !own(sig, 'value') ||
    alg !== 'ed25519' ||
    typeof keyId !== 'string' ||
    keyId.length < 1 ||
    keyId.length > 128 ||
    typeof sigValue !== 'string' ||
    sigValue.length < 1 ||
    sigValue.length > 256
  ) {
    return undefined;
  }
  // `sig` holds exactly these three members: it is what zod's copy would be (one object
  // less per command).
  return { type, envelope, signature: sig as CommandMessage['signature'] };
}

/** `Object.keys(o).length` without the array (this runs for every command frame). */
function ownKeyCount(o: object): number {
  let n = 0;
  for (const key in o) if (own(o, key)) n += 1;
  return n;
}
