/**
 * The agent's one outbound link to the control plane.
 *
 * Lifecycle of a connection:
 * 1. WebSocket upgrade with `Authorization: Bearer <token>`, `X-Latchkey-Connector-Id`
 *    and `X-Latchkey-Protocol: 1`. A 401/403 is logged as a refused token (the token is
 *    never logged) and retried with backoff like any other failure.
 * 2. On open the agent sends `hello`; the link is *connected* only once `welcome`
 *    arrives (server time → clock offset). Then every outbox entry is re-sent, in order.
 *    With `trustedKeys`, `hello` carries a fresh nonce and the welcome's key proof is
 *    checked (`keyProof`: proved, failed or not offered; a failure is logged as a warning,
 *    the link stays up).
 * 3. Inbound frames go through `parseControlPlaneFrame` (size limit, JSON, schema):
 *    `command` → `onCommand`, `cancel` → `onCancel`, `result-ack` → outbox ack, a bad
 *    frame → `onInvalidFrame` (the agent answers `rejected`).
 * 4. Heartbeat: a ping every `heartbeatIntervalMs`; when nothing at all (pong or any
 *    frame) arrives within `heartbeatTimeoutMs` of a ping, the socket is terminated.
 * 5. Any close → reconnect after an exponential, fully jittered, capped delay, until
 *    `stop()`.
 * 6. Send backpressure: once more than `maxSendBufferBytes` wait in the socket for the
 *    control plane to take them (`bufferedAmount`), the link stops reading (no new
 *    commands, duplicates or acks produce output) and results stay in the outbox only;
 *    when the socket drains, reading restarts and the held results are sent, in order.
 *    A peer that takes nothing for `heartbeatTimeoutMs` is terminated.
 * 7. Large results: no frame the agent sends exceeds `maxResultFrameBytes`. `hello`
 *    announces `capabilities.resultChunks`; when `welcome.resultChunks` is true, a result
 *    whose frame is larger goes as `result-chunk` frames cut from the outbox's text on
 *    demand, at most `resultChunkWindow` unacknowledged at a time (so memory stays bounded
 *    by the window, not by the result), resumed after a reconnect from the control plane's
 *    last `result-chunk-ack`. Without it such a result is answered by an `E_TOO_LARGE`
 *    error result under the same command id.
 */
import type { Duplex } from 'node:stream';
import { rootCertificates } from 'node:tls';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { LatchkeyError } from '../errors.js';
import type { AgentEvents } from '../events.js';
import type { KeyObject } from 'node:crypto';
import { parseControlPlaneFrame } from '../protocol/frame.js';
import { checkKeyProof, newKeyProofNonce, type KeyProofStatus } from '../protocol/key-proof.js';
import {
  PROTOCOL_VERSION,
  type Accepted,
  type CommandKind,
  type CommandMessage,
  type Hello,
  type Rejected,
  type Result,
  type Welcome,
} from '../protocol/messages.js';
import { Backoff } from './backoff.js';
import type { Outbox } from './outbox.js';
import {
  ResultFrame,
  SpooledResultFrame,
  charIndexOfByte,
  nextChunk,
  type HeldFrame,
  type ResultChunkPiece,
} from '../protocol/result-frame.js';

export const HEADER_CONNECTOR_ID = 'X-Latchkey-Connector-Id';
/** Default of `maxSendBufferBytes`. */
export const DEFAULT_MAX_SEND_BUFFER_BYTES = 4 * 1024 * 1024;
export const HEADER_PROTOCOL = 'X-Latchkey-Protocol';
/** Default of `maxResultFrameBytes`. */
export const DEFAULT_MAX_RESULT_FRAME_BYTES = 1024 * 1024;
/** Default of `resultChunkWindow`. */
export const DEFAULT_RESULT_CHUNK_WINDOW = 4;

/** A chunked result being delivered (kept across reconnects until its `result-ack`). */
interface ChunkTransfer {
  /** An in-memory text, or a spool file (chunks read from it; `sendChar` = `sendByte`). */
  frame: HeldFrame;
  /** Bytes the control plane acknowledged (its last `next`). */
  acked: number;
  /** Where the next chunk starts on this connection (byte offset, UTF-16 index). */
  sendByte: number;
  sendChar: number;
  /** End offsets (byte → UTF-16 index) of chunks sent and not yet acknowledged, in order. */
  inFlight: Map<number, number>;
}

export interface ControlPlaneClientOptions {
  /** `wss://…` (or `ws://…` for local development). */
  url: string;
  /** Connector token, sent as a bearer token in the upgrade request. Never logged. */
  token: string;
  connectorId: string;
  /** Identifies this replica (several may serve one connector). */
  instanceId: string;
  version: string;
  capabilities: { kinds: CommandKind[]; integrationTypes: string[] };
  heartbeatIntervalMs: number;
  /** Time after a ping without any inbound frame or pong before the peer is declared dead. */
  heartbeatTimeoutMs: number;
  backoff: { initialMs: number; maxMs: number; stableAfterMs: number };
  /** Inbound frames above this are refused with `E_TOO_LARGE`. */
  maxFrameBytes: number;
  /**
   * Largest frame the agent sends; a larger result goes in chunks (or fails with
   * `E_TOO_LARGE` when the control plane does not take chunks). Default 1 MiB.
   */
  maxResultFrameBytes?: number;
  /** Unacknowledged `result-chunk` frames per result. Default 4. */
  resultChunkWindow?: number;
  /**
   * Bytes written and not yet taken by the control plane (`bufferedAmount`) above which
   * the link stops reading and holds results in the outbox. Default
   * `DEFAULT_MAX_SEND_BUFFER_BYTES` (4 MiB).
   */
  maxSendBufferBytes?: number;
  /** PEM text of extra trusted CAs, added to Node's default roots. */
  caBundle?: string;
  /** HTTP(S) proxy for the connection (CONNECT tunnel). */
  proxyUrl?: string;
  /** NO_PROXY-style list; defaults to `NO_PROXY`/`no_proxy` from the environment. */
  noProxy?: string;
  outbox: Outbox;
  events: AgentEvents;
  logger: Logger;
  /** Injectable randomness for the backoff jitter (tests). */
  random?: () => number;
  /**
   * The agent's trusted command keys. When given, `hello` asks the control plane to
   * prove its key and `keyProof` tells the outcome of each welcome.
   */
  trustedKeys?: ReadonlyMap<string, KeyObject>;
}

type CommandHandler = (msg: CommandMessage) => void;
type CancelHandler = (commandId: string) => void;
/**
 * A frame refused at the frame stage: `commandId` when it could be read, `bytes` the
 * frame's size. The link does not log it: the handler answers and logs it, once.
 */
type InvalidFrameHandler = (r: {
  commandId: string | null;
  error: LatchkeyError;
  bytes: number;
}) => void;

/** True when `host` matches a NO_PROXY list (`*`, exact names, `.suffix` or `suffix`, optional `:port`). */
export function bypassesProxy(host: string, port: string, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  for (const raw of noProxy.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    let name = entry;
    let entryPort: string | null = null;
    const m = /^(.*?):(\d+)$/.exec(entry);
    if (m && !entry.includes(']') && (m[1] ?? '').split(':').length === 1) {
      name = m[1] ?? '';
      entryPort = m[2] ?? null;
    }
    if (entryPort !== null && entryPort !== port) continue;
    name = name.replace(/^\*?\./, '');
    if (h === name || h.endsWith(`.${name}`)) return true;
  }
  return false;
}

const TLS_VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
]);

function isTlsVerificationError(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code !== undefined && TLS_VERIFY_CODES.has(code);
}

/** The URL without credentials, query or fragment: safe to log. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '<invalid url>';
  }
}

export class ControlPlaneClient {
  private readonly opts: ControlPlaneClientOptions;
  private readonly logger: Logger;
  private readonly backoff: Backoff;
  private readonly logUrl: string;
  private readonly agent: HttpsProxyAgent<string> | undefined;
  private readonly ca: string[] | undefined;

  private commandHandler: CommandHandler = () => undefined;
  private cancelHandler: CancelHandler = () => undefined;
  private invalidFrameHandler: InvalidFrameHandler = () => undefined;

  private ws: WebSocket | null = null;
  /** The socket under `ws` (from its `upgrade` response), corked for one turn by sendText. */
  private socket: Duplex | null = null;
  /** The socket corked for this turn (uncorked by `uncorkTurn`), if any. */
  private corked: Duplex | null = null;
  /** Reading held back by the agent (`holdReading`): inbound frames wait in the socket. */
  private readingHeld = false;
  /** Sending held: the control plane has not taken `maxSendBufferBytes` already written. */
  private sendHeld = false;
  /** When `sendHeld` last became true (ms since epoch). */
  private sendHeldSince = 0;
  private readonly maxSendBuffer: number;
  /**
   * Results of the outbox still to write on this connection, oldest first (references
   * to the outbox's frames): filled at `welcome` and by `sendResult`, emptied as the
   * socket takes them.
   */
  private readonly unsent = new Map<string, HeldFrame>();
  /**
   * Results queued in this microtask checkpoint (no journal), handed to the link together
   * once the code that produced them has returned (see `queueResult`).
   */
  private fresh: HeldFrame[] = [];
  private readonly maxResultFrame: number;
  private readonly chunkWindow: number;
  /** The control plane of this connection takes `result-chunk` frames. */
  private chunksAccepted = false;
  /** Chunked results not yet acknowledged, by command id (outlive a connection). */
  private readonly transfers = new Map<string, ChunkTransfer>();
  private isConnected = false;
  private started = false;
  private stopped = false;
  private offsetMs = 0;
  private helloSentAt = 0;
  /** Nonce sent in this connection's hello (key proof), if any. */
  private helloNonce: string | undefined;
  private lastKeyProof: KeyProofStatus | undefined;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private deadTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private closedWaiters: (() => void)[] = [];

  constructor(opts: ControlPlaneClientOptions) {
    this.opts = opts;
    this.logger = opts.logger.child({ component: 'controlplane' });
    this.backoff = new Backoff(opts.backoff, opts.random ?? Math.random);
    this.logUrl = safeUrl(opts.url);
    this.maxSendBuffer = opts.maxSendBufferBytes ?? DEFAULT_MAX_SEND_BUFFER_BYTES;
    if (!Number.isFinite(this.maxSendBuffer) || this.maxSendBuffer < 1) {
      throw new RangeError('maxSendBufferBytes must be a positive number');
    }
    this.maxResultFrame = opts.maxResultFrameBytes ?? DEFAULT_MAX_RESULT_FRAME_BYTES;
    this.chunkWindow = opts.resultChunkWindow ?? DEFAULT_RESULT_CHUNK_WINDOW;
    if (!Number.isInteger(this.maxResultFrame) || this.maxResultFrame < 1024) {
      throw new RangeError('maxResultFrameBytes must be an integer of at least 1024');
    }
    if (!Number.isInteger(this.chunkWindow) || this.chunkWindow < 1) {
      throw new RangeError('resultChunkWindow must be a positive integer');
    }
    this.ca = opts.caBundle ? [...rootCertificates, opts.caBundle] : undefined;
    this.agent = this.makeProxyAgent();
  }

  onCommand(h: CommandHandler): void {
    this.commandHandler = h;
  }

  onCancel(h: CancelHandler): void {
    this.cancelHandler = h;
  }

  onInvalidFrame(h: InvalidFrameHandler): void {
    this.invalidFrameHandler = h;
  }

  /**
   * What the last welcome proved about the control plane's key; undefined without
   * `trustedKeys` or before the first welcome.
   */
  get keyProof(): KeyProofStatus | undefined {
    return this.lastKeyProof;
  }

  /** True between `welcome` and the end of that connection. */
  get connected(): boolean {
    return this.isConnected;
  }

  /** Control-plane clock minus ours, estimated at the last `welcome` (ms). */
  get clockOffsetMs(): number {
    return this.offsetMs;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.connect();
  }

  /**
   * Stops (`true`) or restarts (`false`) reading frames from the control plane: the
   * agent's backpressure while it holds as many commands still to be checked as it
   * allows. Unread frames wait in the socket, and TCP flow control slows the control
   * plane down; nothing is dropped. Sending goes on. The hold outlasts a reconnect until
   * lifted. While held, a silent peer is not declared dead: its pongs are unread behind
   * the commands; the heartbeat judges it again once reading restarts.
   */
  holdReading(hold: boolean): void {
    if (this.readingHeld === hold) return;
    this.readingHeld = hold;
    this.applyPause();
    this.opts.events.emit('link:reading', { held: hold });
  }

  /** True while `holdReading(true)` is in force. */
  get readingIsHeld(): boolean {
    return this.readingHeld;
  }

  /** True while sending is held (the control plane is not taking what was written). */
  get sendIsHeld(): boolean {
    return this.sendHeld;
  }

  /** Bytes written on this connection and not yet taken by the socket (0 when none). */
  get bufferedBytes(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  /** Results waiting to be written on this connection (they are in the outbox). */
  get unsentResults(): number {
    return this.unsent.size;
  }

  /** Chunked results under way: command id → bytes acknowledged by the control plane. */
  chunkProgress(): Map<string, number> {
    return new Map([...this.transfers].map(([id, t]) => [id, t.acked]));
  }

  /** Reading is paused while the agent holds it or sending is held. */
  private applyPause(): void {
    const ws = this.ws;
    if (ws === null || ws.readyState !== WebSocket.OPEN) return;
    if (this.readingHeld || this.sendHeld) ws.pause();
    else ws.resume();
  }

  /** Sends `accepted` / `rejected`. Best effort: false when the socket is not open. */
  send(msg: Accepted | Rejected): boolean {
    return this.sendJson(msg);
  }

  /**
   * Stores the result in the outbox (until acked), then sends it if connected, unless
   * sending is held: then it waits (in the outbox) until the socket drains. Resolves once
   * it is durable (see `queueResult`).
   */
  sendResult(result: Result | HeldFrame): Promise<void> {
    try {
      return this.queueResult(result) ?? Promise.resolve();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /**
   * `sendResult` without a promise per result when there is no journal: returns undefined
   * when the result is stored (memory only), else a promise that resolves once the journal
   * holds it. A result is written only once durable; and never within the caller's own
   * synchronous code, but after it (a microtask later), as an awaited `sendResult` always
   * did: a result finished inside `Dispatcher.submit` still leaves after its `accepted`.
   */
  queueResult(result: Result | HeldFrame): Promise<void> | undefined {
    const frame =
      result instanceof ResultFrame || result instanceof SpooledResultFrame
        ? result
        : ResultFrame.of(result);
    const durable = this.opts.outbox.put(frame);
    if (durable !== undefined) return durable.then(() => this.deliver(frame));
    // One microtask for all the results of this checkpoint, not a closure per result.
    if (this.fresh.push(frame) === 1) queueMicrotask(this.deliverFresh);
    return undefined;
  }

  /**
   * Graceful stop: waits until the outbox is empty (the link keeps reconnecting
   * meanwhile) or `flushTimeoutMs` passed, then closes with 1000 and does not reconnect.
   */
  async stop(opts: { flushTimeoutMs: number }): Promise<void> {
    if (this.stopped) return;
    if (this.started && this.opts.outbox.size > 0) {
      const timeout = AbortSignal.timeout(Math.max(0, opts.flushTimeoutMs));
      await this.opts.outbox.whenEmpty(timeout);
      if (this.opts.outbox.size > 0) {
        this.logger.warn(
          { unacked: this.opts.outbox.size },
          'stopping with unacknowledged results in the outbox',
        );
      }
    }
    this.stopped = true;
    this.clearReconnect();
    await this.opts.outbox.flush();
    this.stopHeartbeat();
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate();
    } else {
      ws.close(1000, 'agent stopping');
    }
    const force = setTimeout(() => ws.terminate(), 2000);
    force.unref();
    await closed;
    clearTimeout(force);
  }

  // -------------------------------------------------------------------------------------

  private makeProxyAgent(): HttpsProxyAgent<string> | undefined {
    const proxyUrl = this.opts.proxyUrl;
    if (!proxyUrl) return undefined;
    let target: URL;
    try {
      target = new URL(this.opts.url);
    } catch {
      return undefined;
    }
    const port = target.port || (target.protocol === 'wss:' ? '443' : '80');
    const noProxy = this.opts.noProxy ?? process.env.NO_PROXY ?? process.env.no_proxy;
    if (bypassesProxy(target.hostname, port, noProxy)) {
      this.logger.info(
        { url: this.logUrl },
        'control plane host matches NO_PROXY; connecting directly',
      );
      return undefined;
    }
    // The proxy URL may carry credentials: it is never logged.
    this.logger.info(
      { url: this.logUrl },
      'connecting to the control plane through the configured proxy',
    );
    return new HttpsProxyAgent(proxyUrl, {
      rejectUnauthorized: true,
      ...(this.ca ? { ca: this.ca } : {}),
    });
  }

  private connect(): void {
    if (this.stopped) return;
    const { opts } = this;
    let ws: WebSocket;
    let refusedStatus: number | null = null;
    try {
      ws = new WebSocket(opts.url, {
        headers: {
          Authorization: `Bearer ${opts.token}`,
          [HEADER_CONNECTOR_ID]: opts.connectorId,
          [HEADER_PROTOCOL]: String(PROTOCOL_VERSION),
        },
        // Above our own limit, so a moderately oversized frame reaches the parser and is
        // answered with E_TOO_LARGE instead of killing the socket (ws closes with 1009).
        maxPayload: Math.max(opts.maxFrameBytes * 2, opts.maxFrameBytes + 64 * 1024),
        handshakeTimeout: Math.max(opts.heartbeatTimeoutMs, 1000),
        perMessageDeflate: false,
        followRedirects: false,
        // Explicit, so that NODE_TLS_REJECT_UNAUTHORIZED=0 in the environment cannot
        // turn certificate verification off for the control-plane link.
        rejectUnauthorized: true,
        ...(this.ca ? { ca: this.ca } : {}),
        ...(this.agent ? { agent: this.agent } : {}),
      });
    } catch (err) {
      this.logger.error({ err, url: this.logUrl }, 'invalid control plane URL or options');
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.logger.debug({ url: this.logUrl }, 'connecting to the control plane');

    ws.on('upgrade', (res) => {
      if (this.ws === ws) this.socket = res.socket;
    });

    ws.on('unexpected-response', (_req, res) => {
      refusedStatus = res.statusCode ?? 0;
      res.resume();
      ws.terminate();
    });

    ws.on('open', () => {
      if (this.ws !== ws) return;
      const hello: Hello = {
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        connectorId: opts.connectorId,
        instanceId: opts.instanceId,
        version: opts.version,
        capabilities: {
          ...opts.capabilities,
          resultChunks: { maxFrameBytes: this.maxResultFrame },
        },
      };
      this.helloNonce = opts.trustedKeys !== undefined ? newKeyProofNonce() : undefined;
      if (this.helloNonce !== undefined) hello.keyProof = { nonce: this.helloNonce };
      this.helloSentAt = Date.now();
      if (this.readingHeld || this.sendHeld) ws.pause();
      ws.send(JSON.stringify(hello));
      this.startHeartbeat(ws);
      // The welcome must come within the heartbeat timeout too.
      this.armDeadTimer(ws, 'no welcome after hello');
    });

    ws.on('message', (data, isBinary) => {
      if (this.ws !== ws) return;
      this.seen();
      if (isBinary) {
        // The protocol is JSON in text frames only: a binary frame is refused unread, and
        // never run, whatever it holds. (A text frame that is not UTF-8 never gets here:
        // ws fails the connection with 1007, as RFC 6455 requires.)
        this.refuseBinary(data);
        return;
      }
      const buf = Buffer.isBuffer(data)
        ? data
        : Array.isArray(data)
          ? Buffer.concat(data)
          : Buffer.from(data);
      this.handleFrame(ws, buf);
    });

    ws.on('pong', () => this.ws === ws && this.seen());
    ws.on('ping', () => this.ws === ws && this.seen());

    ws.on('error', (err) => {
      if (refusedStatus === 401 || refusedStatus === 403) {
        this.logger.error(
          { url: this.logUrl, status: refusedStatus, connectorId: opts.connectorId },
          'control plane refused the connector token (check LATCHKEY_CONNECTOR_TOKEN and the connector id)',
        );
      } else if (refusedStatus !== null) {
        this.logger.warn(
          { url: this.logUrl, status: refusedStatus },
          'control plane answered the upgrade with an unexpected HTTP status',
        );
      } else if (isTlsVerificationError(err)) {
        this.logger.error(
          { url: this.logUrl, error: err.message, code: (err as NodeJS.ErrnoException).code },
          'control plane TLS certificate not trusted (add its CA with the CA bundle setting)',
        );
      } else {
        this.logger.warn(
          { url: this.logUrl, error: err.message, code: (err as NodeJS.ErrnoException).code },
          'control plane link error',
        );
      }
    });

    ws.on('close', (code, reasonBuf) => {
      const reason = reasonBuf.toString('utf8').slice(0, 200);
      const wasConnected = this.isConnected && this.ws === ws;
      if (this.ws === ws) {
        this.ws = null;
        this.socket = null;
        this.isConnected = false;
        this.stopHeartbeat();
        this.backoff.disconnected();
        // Everything unsent is in the outbox: re-sent after the next welcome.
        this.unsent.clear();
        this.chunksAccepted = false;
        this.setSendHeld(false);
      }
      if (wasConnected) {
        this.logger.warn({ url: this.logUrl, code, reason }, 'control plane link closed');
        this.opts.events.emit('link:disconnected', { code, reason });
      }
      const waiters = this.closedWaiters;
      this.closedWaiters = [];
      for (const w of waiters) w();
      if (!this.stopped && this.ws === null) this.scheduleReconnect();
    });
  }

  private refuseBinary(data: WebSocket.RawData): void {
    const bytes = Array.isArray(data)
      ? data.reduce((n, b) => n + b.length, 0)
      : data instanceof ArrayBuffer
        ? data.byteLength
        : data.length;
    const error = new LatchkeyError(
      'E_SCHEMA',
      'binary frames are not accepted: send each message as JSON in a text frame',
    );
    this.safeCall(() => this.invalidFrameHandler({ commandId: null, error, bytes }));
  }

  private handleFrame(ws: WebSocket, buf: Buffer): void {
    const parsed = parseControlPlaneFrame(buf, this.opts.maxFrameBytes);
    if (!parsed.ok) {
      const { commandId, error } = parsed;
      this.safeCall(() => this.invalidFrameHandler({ commandId, error, bytes: buf.length }));
      return;
    }
    const msg = parsed.message;
    switch (msg.type) {
      case 'welcome':
        this.onWelcome(ws, msg);
        return;
      case 'command':
        // Not through `safeCall`: no closure per command.
        try {
          this.commandHandler(msg);
        } catch (err) {
          this.logger.error({ err }, 'control plane message handler threw');
        }
        return;
      case 'cancel':
        this.safeCall(() => this.cancelHandler(msg.commandId));
        return;
      case 'result-chunk-ack':
        this.onChunkAck(msg.commandId, msg.next);
        return;
      case 'result-ack': {
        const commandId = msg.commandId;
        this.transfers.delete(commandId);
        const acked = this.opts.outbox.ack(commandId);
        // A promise only with a journal (none per ack otherwise).
        if (typeof acked !== 'boolean') {
          acked.catch((err: unknown) => {
            this.logger.error({ err, commandId }, 'outbox ack failed');
          });
        }
        return;
      }
    }
  }

  private onWelcome(ws: WebSocket, welcome: Welcome): void {
    const chunks = welcome.resultChunks === true;
    this.clearDeadTimer();
    if (this.isConnected) return;
    this.chunksAccepted = chunks;
    const now = Date.now();
    const server = Date.parse(welcome.serverTime);
    if (Number.isFinite(server)) {
      this.offsetMs = Math.round(server - (this.helloSentAt + now) / 2);
    }
    this.isConnected = true;
    this.backoff.connected();
    const trusted = this.opts.trustedKeys;
    this.lastKeyProof =
      trusted !== undefined && this.helloNonce !== undefined
        ? checkKeyProof(welcome.keyProof, this.opts.connectorId, this.helloNonce, trusted)
        : undefined;
    const proof = this.lastKeyProof;
    this.logger.info(
      {
        url: this.logUrl,
        clockOffsetMs: this.offsetMs,
        outbox: this.opts.outbox.size,
        ...(proof !== undefined ? { keyProof: proof.status } : {}),
        ...(proof !== undefined && proof.status !== 'not-offered' ? { keyId: proof.keyId } : {}),
      },
      'connected to the control plane',
    );
    if (proof?.status === 'failed') {
      this.logger.warn(
        { url: this.logUrl, keyId: proof.keyId, error: proof.detail },
        'the control plane did not prove a trusted key: the commands it signs will be refused with E_SIGNATURE',
      );
    }
    this.opts.events.emit('link:connected', { url: this.logUrl });
    this.unsent.clear();
    for (const t of this.transfers.values()) {
      // Resume from what the control plane acknowledged; the rest was lost with the link.
      t.inFlight.clear();
      this.rewind(t, t.acked);
    }
    for (const frame of this.opts.outbox.frames()) this.unsent.set(frame.commandId, frame);
    this.pump();
  }

  private readonly deliverFresh = (): void => {
    const frames = this.fresh;
    this.fresh = [];
    for (const frame of frames) {
      // A failure is this result's alone (e.g. its spool file cannot be read): logged, and
      // the result stays in the outbox; the others go on.
      try {
        this.deliver(frame);
      } catch (err) {
        this.logger.error({ err, commandId: frame.commandId }, 'could not send result');
      }
    }
  };

  /** Hands a stored result to this connection: written now, or after those before it. */
  private deliver(frame: HeldFrame): void {
    if (!this.isConnected) return; // re-sent from the outbox after the next welcome
    if (this.unsent.size === 0 && this.transfers.size === 0 && !this.sendHeld) {
      // Nothing waits before it: written at once, as `pump` would. (Not through `unsent`:
      // a Map that empties at every result allocates a new table each time.)
      this.writeResult(frame);
      return;
    }
    this.unsent.delete(frame.commandId);
    this.unsent.set(frame.commandId, frame);
    this.pump();
  }

  /** Writes held results, oldest first, until none is left or sending is held. */
  private pump(): void {
    const ws = this.ws;
    if (ws === null || !this.isConnected) return;
    for (const [commandId, frame] of this.unsent) {
      if (this.sendHeld || this.ws !== ws) return;
      this.unsent.delete(commandId);
      if (!this.writeResult(frame)) return;
    }
    for (const t of this.transfers.values()) {
      if (this.sendHeld || this.ws !== ws) return;
      this.sendChunks(t);
    }
  }

  /**
   * Writes one result still in the outbox: as one frame, in chunks, or as `E_TOO_LARGE`.
   * False when the socket took nothing (it is not open).
   */
  private writeResult(frame: HeldFrame): boolean {
    const commandId = frame.commandId;
    // Acknowledged meanwhile (e.g. it was also sent on an earlier connection).
    if (!this.opts.outbox.has(commandId)) return true;
    if (frame.bytes > this.maxResultFrame) {
      if (this.chunksAccepted) {
        this.startTransfer(frame);
        return true;
      }
      this.logger.warn(
        { commandId, bytes: frame.bytes, maxResultFrameBytes: this.maxResultFrame },
        'result too large for one frame and the control plane takes no chunks: sending E_TOO_LARGE',
      );
      this.opts.events.emit('link:result-too-large', { commandId, bytes: frame.bytes });
      return this.sendText(frame.tooLarge(this.maxResultFrame).text);
    }
    return this.sendText(frame.spooled ? frame.readText() : frame.text);
  }

  /** Starts (or, for a result already under way, resumes) delivering `frame` in chunks. */
  private startTransfer(frame: HeldFrame): void {
    let t = this.transfers.get(frame.commandId);
    if (t === undefined || t.frame !== frame) {
      // New, or the outbox holds a new result for the command id: start over.
      t = { frame, acked: 0, sendByte: 0, sendChar: 0, inFlight: new Map() };
      this.transfers.set(frame.commandId, t);
    }
    this.sendChunks(t);
  }

  /** Sends chunks of `t` while fewer than the window are unacknowledged. */
  private sendChunks(t: ChunkTransfer): void {
    if (!this.isConnected || !this.chunksAccepted) return;
    if (!this.opts.outbox.has(t.frame.commandId)) {
      this.transfers.delete(t.frame.commandId);
      return;
    }
    while (t.sendByte < t.frame.bytes && t.inFlight.size < this.chunkWindow && !this.sendHeld) {
      const piece = cutChunk(t.frame, t.sendChar, t.sendByte, this.maxResultFrame);
      if (!this.sendText(piece.text)) return;
      t.inFlight.set(piece.endByte, piece.endChar);
      t.sendByte = piece.endByte;
      t.sendChar = piece.endChar;
      this.opts.events.emit('link:chunk-sent', { commandId: t.frame.commandId });
    }
  }

  /** Moves the next chunk of `t` to byte `offset`; false when it is not a character boundary. */
  private rewind(t: ChunkTransfer, offset: number): boolean {
    const f = t.frame;
    const char =
      offset === 0
        ? 0
        : (t.inFlight.get(offset) ??
          (f.spooled
            ? f.isBoundary(offset)
              ? offset
              : undefined
            : charIndexOfByte(f.text, offset)));
    if (char === undefined) return false;
    t.sendByte = offset;
    t.sendChar = char;
    return true;
  }

  private onChunkAck(commandId: string, next: number): void {
    const t = this.transfers.get(commandId);
    if (t === undefined) return; // acknowledged, replaced, or never chunked: nothing to do
    if (next > t.frame.bytes) {
      this.logger.warn(
        { commandId, next },
        'result-chunk-ack beyond the end of the result; ignored',
      );
      return;
    }
    if (next === t.acked) {
      // A repeated ack (a chunk it already held arrived again): nothing new.
    } else if (next < t.acked || next > t.sendByte || !t.inFlight.has(next)) {
      // The control plane holds less than it said before (it lost chunks), or more than
      // was sent on this connection (kept from an earlier connection or process): go on
      // from where it stands.
      t.inFlight.clear();
      if (!this.rewind(t, next)) {
        this.logger.warn(
          { commandId, next },
          'result-chunk-ack inside a character; sending the result again from the start',
        );
        this.rewind(t, 0);
        t.acked = 0;
      } else {
        t.acked = next;
      }
    } else {
      t.acked = next;
      for (const end of [...t.inFlight.keys()]) {
        if (end > next) break;
        t.inFlight.delete(end);
      }
    }
    this.sendChunks(t);
  }

  /**
   * Holds sending (and reading) once more than `maxSendBufferBytes` wait in the socket;
   * the hold is lifted when the socket drains (or, as a fallback, when a heartbeat finds
   * less than half of the bound buffered).
   */
  private checkSendBuffer(ws: WebSocket): void {
    if (this.sendHeld || this.ws !== ws || ws.bufferedAmount < this.maxSendBuffer) return;
    this.setSendHeld(true);
    const socket = this.socket;
    socket?.once('drain', () => {
      if (this.ws === ws) this.releaseSend();
    });
  }

  private releaseSend(): void {
    if (!this.sendHeld) return;
    this.setSendHeld(false);
    this.pump();
  }

  private setSendHeld(held: boolean): void {
    if (this.sendHeld === held) return;
    this.sendHeld = held;
    if (held) this.sendHeldSince = Date.now();
    const bufferedBytes = this.ws?.bufferedAmount ?? 0;
    if (held) {
      this.logger.warn(
        { bufferedBytes, maxSendBufferBytes: this.maxSendBuffer },
        'control plane is not reading: reading held, results kept in the outbox until it does',
      );
    }
    this.applyPause();
    this.opts.events.emit('link:sending', { held, bufferedBytes });
  }

  /** True when sending has been held for a whole heartbeat timeout: the peer takes nothing. */
  private peerStalled(): boolean {
    return this.sendHeld && Date.now() - this.sendHeldSince >= this.opts.heartbeatTimeoutMs;
  }

  /**
   * Frames sent in one event-loop turn (an `accepted` and the results that finished)
   * leave in one write instead of one syscall each: the socket is corked on the first
   * send of a turn and uncorked right after it (cork is counted, so ws's own per-frame
   * cork/uncork nests inside).
   */
  private corkForThisTurn(): void {
    const socket = this.socket;
    if (socket === null || this.corked !== null || socket.destroyed) return;
    this.corked = socket;
    socket.cork();
    setImmediate(this.uncorkTurn);
  }

  /** The end of a turn's cork (one function for all turns: no closure per turn). */
  private readonly uncorkTurn = (): void => {
    const socket = this.corked;
    this.corked = null;
    socket?.uncork();
  };

  private sendJson(msg: unknown): boolean {
    return this.sendText(JSON.stringify(msg));
  }

  private sendText(text: string): boolean {
    const ws = this.ws;
    if (ws?.readyState !== WebSocket.OPEN) return false;
    try {
      this.corkForThisTurn();
      ws.send(text);
      this.checkSendBuffer(ws);
      return true;
    } catch (err) {
      this.logger.warn({ err }, 'send to the control plane failed');
      return false;
    }
  }

  private safeCall(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger.error({ err }, 'control plane message handler threw');
    }
  }

  private startHeartbeat(ws: WebSocket): void {
    this.stopHeartbeat();
    this.heartbeatTimer = setInterval(() => {
      if (this.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      if (this.sendHeld) {
        if (this.peerStalled()) {
          this.terminateStalled(ws);
          return;
        }
        // Fallback for a drain that is not signalled by the socket.
        if (ws.bufferedAmount < this.maxSendBuffer / 2) this.releaseSend();
      }
      try {
        ws.ping();
      } catch {
        return;
      }
      if (!this.deadTimer) this.armDeadTimer(ws, 'no pong or frame within the heartbeat timeout');
    }, this.opts.heartbeatIntervalMs);
    this.heartbeatTimer.unref();
  }

  private armDeadTimer(ws: WebSocket, why: string): void {
    this.clearDeadTimer();
    this.deadTimer = setTimeout(() => {
      this.deadTimer = null;
      if (this.ws !== ws) return;
      if (this.peerStalled()) {
        this.terminateStalled(ws);
        return;
      }
      if (this.readingHeld || this.sendHeld) {
        // The silence is ours (frames wait unread): judge the peer once reading restarts,
        // or, while sending is held, by whether it takes what was sent (peerStalled).
        this.armDeadTimer(ws, why);
        return;
      }
      this.logger.warn(
        { url: this.logUrl, timeoutMs: this.opts.heartbeatTimeoutMs },
        `control plane unresponsive: ${why}`,
      );
      ws.terminate();
    }, this.opts.heartbeatTimeoutMs);
    this.deadTimer.unref();
  }

  private terminateStalled(ws: WebSocket): void {
    this.logger.warn(
      {
        url: this.logUrl,
        timeoutMs: this.opts.heartbeatTimeoutMs,
        bufferedBytes: ws.bufferedAmount,
      },
      'control plane unresponsive: it took nothing the agent sent within the heartbeat timeout',
    );
    ws.terminate();
  }

  /** Any inbound traffic proves the peer alive (but `welcome` is still awaited). */
  private seen(): void {
    if (this.isConnected) this.clearDeadTimer();
  }

  private clearDeadTimer(): void {
    if (this.deadTimer) {
      clearTimeout(this.deadTimer);
      this.deadTimer = null;
    }
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) {
      clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = null;
    }
    this.clearDeadTimer();
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    const attempt = this.backoff.attempt + 1;
    const delayMs = this.backoff.next();
    this.opts.events.emit('link:reconnect-scheduled', { attempt, delayMs });
    this.logger.info({ attempt, delayMs }, 'reconnecting to the control plane');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delayMs);
  }

  private clearReconnect(): void {
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
  }
}

/** The next chunk of a held result: cut from its text, or read from its spool file. */
function cutChunk(
  frame: HeldFrame,
  startChar: number,
  startByte: number,
  maxFrameBytes: number,
): ResultChunkPiece {
  return frame.spooled
    ? frame.chunkAt(startByte, maxFrameBytes)
    : nextChunk(frame, startChar, startByte, maxFrameBytes);
}
