/**
 * Second stage of a `command`: everything that must hold before it may reach the queue.
 *
 * Checks, strictly in this order (the first failure is the answer):
 * 1. schema: `EnvelopeSchema` strict parse → `E_SCHEMA`; a kind this protocol does not
 *    know → `E_UNSUPPORTED`;
 * 2. signature: key id not trusted, or Ed25519 over the canonical JSON of the envelope
 *    as received does not verify → `E_SIGNATURE`;
 * 3. addressee: `connectorId` is not ours → `E_CONNECTOR`;
 * 4. time: `issuedAt` more than the skew in the future, `expiresAt` (+ skew) passed,
 *    `expiresAt <= issuedAt`, or a lifetime longer than allowed → `E_EXPIRED`.
 * Duplicates (`E_REPLAY`) are the dispatcher's job: it knows what ran.
 */
import { hash, verify as verifySignature, type KeyObject } from 'node:crypto';
import { LatchkeyError, type ErrorCode } from '../errors.js';
import { canonicalJson } from './canonical.js';
import { envelopeId, describeIssues } from './issues.js';
import { COMMAND_KINDS, EnvelopeSchema, type CommandMessage, type Envelope } from './messages.js';
import { decodeBase64Any } from './der.js';

export interface VerifierOptions {
  connectorId: string;
  /** Trusted Ed25519 public keys by key id. */
  trustedKeys: ReadonlyMap<string, KeyObject>;
  /** Tolerated difference between the control plane's clock and ours. */
  maxClockSkewMs: number;
  /** Longest `expiresAt - issuedAt` accepted. */
  maxCommandLifetimeMs: number;
  now?: () => Date;
}

export type VerifyOutcome =
  | { ok: true; envelope: Envelope; digest: string }
  | { ok: false; commandId: string | null; error: LatchkeyError };

export interface CommandVerifier {
  verify(msg: CommandMessage): VerifyOutcome;
}

/** sha256 hex of the canonical JSON of an envelope: equal digests = same content. */
export function envelopeDigest(envelope: Record<string, unknown>): string {
  // `hash` encodes a string as UTF-8 itself.
  return hash('sha256', canonicalJson(envelope), 'hex');
}

const KNOWN_KINDS: ReadonlySet<string> = new Set(COMMAND_KINDS);

/**
 * True when any object inside `value` has an own `__proto__` member. JSON.parse keeps it as
 * data, but copying parsers (zod records included) drop it or turn it into a prototype, so
 * what a driver would see would differ from what was signed: such envelopes are refused.
 */
function hasProtoKey(value: unknown): boolean {
  // Runs for every command: only objects go on the stack, one by one (no spread copies).
  const stack: object[] = [];
  if (typeof value === 'object' && value !== null) stack.push(value);
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i += 1) {
        const item: unknown = node[i];
        if (typeof item === 'object' && item !== null) stack.push(item);
      }
      continue;
    }
    if (Object.prototype.hasOwnProperty.call(node, '__proto__')) return true;
    const record = node as Record<string, unknown>;
    // Own enumerable string keys, as `Object.values` has them.
    for (const key in record) {
      if (!Object.prototype.hasOwnProperty.call(record, key)) continue;
      const item = record[key];
      if (typeof item === 'object' && item !== null) stack.push(item);
    }
  }
  return false;
}

function checkOptions(opts: VerifierOptions): void {
  for (const [name, value] of [
    ['maxClockSkewMs', opts.maxClockSkewMs],
    ['maxCommandLifetimeMs', opts.maxCommandLifetimeMs],
  ] as const) {
    if (!Number.isFinite(value) || value < 0) {
      throw new RangeError(`${name} must be a finite, non-negative number of milliseconds`);
    }
  }
  if (opts.connectorId.length === 0) throw new RangeError('connectorId must not be empty');
}

/**
 * A command that passed the schema stage and names a trusted key: what is left is the
 * signature (the only expensive step, which `VerifierPool` runs on worker threads), then
 * the addressee and the time window (`complete`).
 */
export interface PreparedCommand {
  /** Tells it from the `done` answer of `prepare`. */
  readonly done: false;
  readonly commandId: string;
  readonly envelope: Envelope;
  readonly digest: string;
  readonly keyId: string;
  /** The trusted key named by `keyId` (Ed25519 unless the map holds something else). */
  readonly key: KeyObject;
  /** The signing input: UTF-8 of the canonical JSON of the envelope as received. */
  readonly data: Buffer;
  /**
   * The 64 signature bytes; `null` when the signature cannot verify whatever the data
   * (another alg, a malformed value, a key that is not Ed25519).
   */
  readonly signature: Buffer | null;
  /** The agent's clock when the command arrived (`now()`, ms): the time window uses it. */
  readonly receivedAtMs: number;
}

/**
 * `prepare`'s answer: the outcome when it is decided already (a failure), else the command
 * itself (one object per command rather than a wrapper around it).
 */
export type PrepareOutcome = { done: true; outcome: VerifyOutcome } | PreparedCommand;

/**
 * The same checks as `verify`, split around the signature so that it can run elsewhere:
 * `verify(msg)` ≡ `complete(p, signatureValid(p))` for `p = prepare(msg)` when not done.
 */
export interface StagedCommandVerifier extends CommandVerifier {
  /** Stage 1 (schema) and the key id check of stage 2; reads the clock (arrival time). */
  prepare(msg: CommandMessage): PrepareOutcome;
  /** Stage 2's answer (`signatureValid`), then stages 3 and 4. */
  complete(prepared: PreparedCommand, signatureValid: boolean): VerifyOutcome;
}

/** Ed25519 check of a prepared command, on this thread. Never throws. */
export function signatureValid(prepared: PreparedCommand): boolean {
  if (prepared.signature === null) return false;
  try {
    return verifySignature(null, prepared.data, prepared.key, prepared.signature);
  } catch {
    return false;
  }
}

/** @throws RangeError for nonsensical options (a programming or config error). */
export function createCommandVerifier(opts: VerifierOptions): StagedCommandVerifier {
  checkOptions(opts);
  const { now } = opts;
  // Without a clock of the caller's, no Date per command.
  const nowMs = now === undefined ? Date.now : () => now().getTime();
  const skew = opts.maxClockSkewMs;

  const failure = (
    commandId: string | null,
    code: ErrorCode,
    message: string,
    details?: Record<string, unknown>,
  ): VerifyOutcome => ({
    ok: false,
    commandId,
    error: new LatchkeyError(code, message, details === undefined ? undefined : { details }),
  });

  // Hot path (every command): no closures or wrapper objects per call, failures built only
  // when they happen.
  const done = (
    commandId: string | null,
    code: ErrorCode,
    message: string,
    details?: Record<string, unknown>,
  ): PrepareOutcome => ({ done: true, outcome: failure(commandId, code, message, details) });

  function prepare(msg: CommandMessage): PrepareOutcome {
    const raw = msg.envelope;
    const commandId = envelopeId(raw);

    // 1. schema
    const kind = raw.kind;
    if (typeof kind === 'string' && !KNOWN_KINDS.has(kind)) {
      return done(
        commandId,
        'E_UNSUPPORTED',
        `unknown command kind (expected one of ${COMMAND_KINDS.join(', ')})`,
      );
    }
    if (hasProtoKey(raw)) {
      return done(commandId, 'E_SCHEMA', 'invalid envelope: a "__proto__" member is not allowed');
    }
    const parsed = EnvelopeSchema.safeParse(raw);
    if (!parsed.success) {
      return done(commandId, 'E_SCHEMA', describeIssues('invalid envelope', parsed.error.issues));
    }
    const envelope = parsed.data;
    // One canonicalization, encoded once: these bytes are the signing input and what the
    // digest is of.
    let data: Buffer;
    try {
      data = Buffer.from(canonicalJson(raw), 'utf8');
    } catch (err) {
      return {
        done: true,
        outcome: {
          ok: false,
          commandId,
          error:
            err instanceof LatchkeyError
              ? err
              : new LatchkeyError('E_SCHEMA', 'envelope cannot be canonicalized', { cause: err }),
        },
      };
    }
    // One-shot `hash`: no Hash object (a stream) per command.
    const digest = hash('sha256', data, 'hex');

    // 2. signature (over the raw envelope as received): the key id here, the value later
    const signature = msg.signature;
    const keyId = signature.keyId;
    const key = opts.trustedKeys.get(keyId);
    if (key === undefined) {
      return done(
        commandId,
        'E_SIGNATURE',
        `signing key id "${keyId}" is not trusted by this agent`,
        { keyId },
      );
    }
    // What `verifyEnvelopeSignature` refuses before any crypto, refused the same way.
    const sig =
      signature.alg === 'ed25519' && key.asymmetricKeyType === 'ed25519'
        ? decodeBase64Any(signature.value)
        : null;
    return {
      done: false,
      commandId: commandId ?? envelope.id,
      envelope,
      digest,
      keyId,
      key,
      data,
      signature: sig?.length === 64 ? sig : null,
      receivedAtMs: nowMs(),
    };
  }

  function complete(prepared: PreparedCommand, signatureOk: boolean): VerifyOutcome {
    const { envelope, keyId, commandId } = prepared;
    if (!signatureOk) {
      return failure(
        commandId,
        'E_SIGNATURE',
        `signature does not verify with trusted key "${keyId}"`,
        { keyId },
      );
    }

    // 3. addressee
    if (envelope.connectorId !== opts.connectorId) {
      return failure(
        commandId,
        'E_CONNECTOR',
        `command is addressed to connector "${envelope.connectorId}", this agent is "${opts.connectorId}"`,
      );
    }

    // 4. time window, against the arrival time
    const issuedAt = Date.parse(envelope.issuedAt);
    const expiresAt = Date.parse(envelope.expiresAt);
    if (Number.isNaN(issuedAt) || Number.isNaN(expiresAt)) {
      return failure(
        commandId,
        'E_SCHEMA',
        'invalid envelope: issuedAt or expiresAt is not a valid date',
      );
    }
    const arrivedMs = prepared.receivedAtMs;
    if (!Number.isFinite(arrivedMs)) {
      return failure(commandId, 'E_INTERNAL', 'agent clock returned an invalid date');
    }
    if (expiresAt <= issuedAt) {
      return failure(commandId, 'E_EXPIRED', 'expiresAt is not after issuedAt');
    }
    if (expiresAt - issuedAt > opts.maxCommandLifetimeMs) {
      return failure(
        commandId,
        'E_EXPIRED',
        `command lifetime of ${expiresAt - issuedAt} ms exceeds the maximum of ${opts.maxCommandLifetimeMs} ms`,
      );
    }
    if (issuedAt > arrivedMs + skew) {
      return failure(
        commandId,
        'E_EXPIRED',
        `command issued ${issuedAt - arrivedMs} ms in the future (allowed clock skew ${skew} ms)`,
      );
    }
    if (arrivedMs > expiresAt + skew) {
      return failure(
        commandId,
        'E_EXPIRED',
        `command expired ${arrivedMs - expiresAt} ms ago (allowed clock skew ${skew} ms)`,
      );
    }

    return { ok: true, envelope, digest: prepared.digest };
  }

  function verify(msg: CommandMessage): VerifyOutcome {
    const p = prepare(msg);
    return p.done ? p.outcome : complete(p, signatureValid(p));
  }

  return { verify, prepare, complete };
}
