/**
 * The reference control plane, for development, the demo and tests.
 *
 * It speaks protocol v1 to agents over WebSocket and offers a small HTTP API on the same
 * port to send commands and read results. It is deliberately simple but behaves like a
 * real control plane where it matters to an agent:
 * - bearer-token auth of the upgrade (401 for a missing or wrong token);
 * - `welcome` with its clock on `hello`, and the key proof when `hello` asks for it;
 * - commands built, signed (Ed25519 over the canonical envelope) and sent to one connected
 *   agent of the connector, round robin;
 * - a command stays *pending* until a `result` (or `rejected`) arrives for it, and is
 *   redelivered when an agent of the connector (re)connects, or handed to another
 *   connected replica when the socket it went to closes;
 * - every `result` is acknowledged with `result-ack`, unless acks are withheld (tests);
 * - `welcome` accepts chunked results (unless `acceptResultChunks: false`); chunks are
 *   reassembled by offset, each acknowledged with `result-chunk-ack` (unless chunk acks
 *   are withheld), checked against `size` and `sha256`, and the result is then handled
 *   like one sent in one frame.
 *
 * Not for production: state is in memory and the HTTP API has no authentication, which is
 * why it listens on 127.0.0.1 by default.
 */
import { createHash, randomUUID, timingSafeEqual, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import { z } from 'zod';
import {
  AgentMessageSchema,
  CommandKindSchema,
  IntegrationSchema,
  PROTOCOL_VERSION,
  type AgentMessage,
  type CommandKind,
  type Integration,
  type Result,
} from '../protocol/messages.js';
import { parsePrivateKey, signEnvelope } from '../protocol/signing.js';
import { signKeyProof } from '../protocol/key-proof.js';
import type { WireError } from '../errors.js';

/** True when an HTTP `Host` header names an IP literal or localhost (not a DNS name). */
function isDirectHost(host: string | undefined): boolean {
  if (host === undefined) return true; // HTTP/1.0 without Host: not a browser
  let hostname: string;
  try {
    hostname = new URL(`http://${host}`).hostname.toLowerCase();
  } catch {
    return false;
  }
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) return true;
  if (hostname.startsWith('[') && hostname.endsWith(']')) return true;
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(hostname);
}

export interface DevControlPlaneOptions {
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Listen port; default 0 (a random free port). */
  port?: number;
  /** Agents allowed to connect: a connector id and its token. */
  agents: { connectorId: string; token: string }[];
  /** The Ed25519 key that signs commands; agents must trust `keyId`. */
  signingKey: { keyId: string; privateKeyPem: string };
  /** Do not send `result-ack` (tests of the agent's outbox). Default false. */
  withholdAcks?: boolean;
  /** Answer `welcome.resultChunks: true` (take chunked results). Default true. */
  acceptResultChunks?: boolean;
  /** Do not send `result-chunk-ack` (tests of the agent's chunk window). Default false. */
  withholdChunkAcks?: boolean;
  /** Lifetime of a command (`expiresAt - issuedAt`); default 5 minutes. */
  defaultTtlMs?: number;
  /** Serve TLS (`wss://`, `https://`) with this certificate chain and key (PEM). */
  tls?: { certPem: string; keyPem: string };
  /** Largest agent frame accepted; default 4 MiB. */
  maxFrameBytes?: number;
  logger?: Logger;
}

export interface SendCommandInput {
  kind: CommandKind;
  integration: Integration;
  params: Record<string, unknown>;
  /** Command id; default `cmd-<uuid>`. */
  id?: string;
  ttlMs?: number;
  issuedAt?: Date;
}

export type AgentMessageType = AgentMessage['type'];
export type AgentMessageOf<T extends AgentMessageType> = Extract<AgentMessage, { type: T }>;

export interface ConnectedAgent {
  connectorId: string;
  instanceId: string;
}

export interface DevControlPlane {
  /** `ws://host:port/` (`wss://` with `tls`) for agents. */
  url: string;
  /** `http://host:port` (`https://` with `tls`) for the HTTP API. */
  httpUrl: string;
  sendCommand(
    connectorId: string,
    cmd: SendCommandInput,
  ): Promise<{ commandId: string; envelope: Record<string, unknown> }>;
  /**
   * Sends a frame as is to one connected agent of the connector (tests: tampered frames).
   * A string goes as a text frame; bytes as a binary frame, or as a text frame with
   * `binary: false` (then not checked for UTF-8: tests of invalid text frames).
   */
  sendRaw(connectorId: string, frame: string | Buffer, opts?: { binary?: boolean }): void;
  /** The first result received for the command (resolves at once if already there). */
  waitForResult(commandId: string, timeoutMs?: number): Promise<Result>;
  /** Every copy of the command's result received so far (duplicates included). */
  resultsFor(commandId: string): Result[];
  /**
   * The first message of `type` matching `predicate` among those received from index
   * `since` (default 0: already received messages count too) or arriving later.
   */
  waitFor<T extends AgentMessageType>(
    type: T,
    predicate?: (msg: AgentMessageOf<T>) => boolean,
    timeoutMs?: number,
    since?: number,
  ): Promise<AgentMessageOf<T>>;
  /** Every valid agent message, in arrival order. */
  readonly received: AgentMessage[];
  /** Agents that completed `hello` and are still connected. */
  connectedAgents(): ConnectedAgent[];
  /** Command ids sent but not yet answered by a result or a rejection. */
  pendingCommands(): string[];
  /** Terminates every agent socket (no close handshake): a network cut as seen by agents. */
  dropConnections(): void;
  setWithholdAcks(on: boolean): void;
  setWithholdChunkAcks(on: boolean): void;
  /** Chunked results being reassembled: command id → bytes held. */
  partialResults(): Map<string, number>;
  /** Forgets the chunks held of unfinished results (a control plane that lost them). */
  forgetPartialResults(): void;
  close(): Promise<void>;
}

const DEFAULT_TTL_MS = 5 * 60_000;
const DEFAULT_WAIT_MS = 30_000;
const MAX_HTTP_WAIT_MS = 60_000;
const MAX_HTTP_BODY = 1024 * 1024;

interface Conn {
  ws: WebSocket;
  connectorId: string;
  instanceId: string | null;
}

interface Pending {
  connectorId: string;
  frame: string;
  deliveredTo: Conn | null;
}

/** A chunked result being reassembled. */
interface Partial {
  size: number;
  sha256: string;
  parts: Buffer[];
  have: number;
}

interface Waiter {
  match: (msg: AgentMessage) => boolean;
  resolve: (msg: AgentMessage) => void;
  cancel: (why: string) => void;
}

const HttpCommandSchema = z.object({
  connectorId: z.string().min(1),
  kind: CommandKindSchema,
  integration: IntegrationSchema,
  params: z.record(z.string(), z.unknown()).default({}),
  ttlMs: z.number().int().positive().max(86_400_000).optional(),
  id: z.string().min(1).max(128).optional(),
});

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroy();
}

export async function startDevControlPlane(opts: DevControlPlaneOptions): Promise<DevControlPlane> {
  const logger = (opts.logger ?? pino({ level: 'silent' })).child({
    component: 'dev-control-plane',
  });
  const signingKey: KeyObject = parsePrivateKey(opts.signingKey.privateKeyPem);
  const keyId = opts.signingKey.keyId;
  const ttlDefault = opts.defaultTtlMs ?? DEFAULT_TTL_MS;
  const tokens = opts.agents.map((a) => ({ connectorId: a.connectorId, token: digest(a.token) }));
  let withholdAcks = opts.withholdAcks ?? false;
  let withholdChunkAcks = opts.withholdChunkAcks ?? false;
  const acceptChunks = opts.acceptResultChunks ?? true;
  const partials = new Map<string, Partial>();

  const conns = new Set<Conn>();
  const pending = new Map<string, Pending>();
  const results = new Map<string, Result[]>();
  const rejections = new Map<string, WireError>();
  const received: AgentMessage[] = [];
  const waiters = new Set<Waiter>();
  const roundRobin = new Map<string, number>();

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handleHttp(req, res).catch((err: unknown) => {
      logger.error({ err }, 'HTTP handler failed');
      if (!res.headersSent) json(res, 500, { error: 'internal error' });
    });
  };
  const server: Server = opts.tls
    ? createHttpsServer({ cert: opts.tls.certPem, key: opts.tls.keyPem }, onRequest)
    : createServer(onRequest);
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: opts.maxFrameBytes ?? 4 * 1024 * 1024,
  });

  // ---- agents ---------------------------------------------------------------------------

  /** The connector id of a valid upgrade, or the HTTP status refusing it (401, 403). */
  function authenticate(req: IncomingMessage): { connectorId: string } | { status: 401 | 403 } {
    const auth = header(req, 'authorization');
    const connectorId = header(req, 'x-latchkey-connector-id');
    const m = auth ? /^Bearer\s+(\S+)\s*$/i.exec(auth) : null;
    if (!m?.[1] || !connectorId) return { status: 401 };
    const presented = digest(m[1]);
    let known = false;
    let allowed = false;
    for (const entry of tokens) {
      // Compare with every entry in constant time; no early exit on the token.
      if (timingSafeEqual(presented, entry.token)) {
        known = true;
        if (entry.connectorId === connectorId) allowed = true;
      }
    }
    if (allowed) return { connectorId };
    return { status: known ? 403 : 401 };
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    const auth = authenticate(req);
    if (!('connectorId' in auth)) {
      const claimed = header(req, 'x-latchkey-connector-id') ?? null;
      if (auth.status === 403) {
        logger.warn({ connectorId: claimed }, 'agent refused: token not valid for this connector');
        refuseUpgrade(socket, 403, 'Forbidden');
      } else {
        logger.warn({ connectorId: claimed }, 'agent refused: bad or missing token');
        refuseUpgrade(socket, 401, 'Unauthorized');
      }
      return;
    }
    const { connectorId } = auth;
    const protocol = header(req, 'x-latchkey-protocol');
    if (protocol !== String(PROTOCOL_VERSION)) {
      logger.warn(
        { connectorId, protocol: protocol ?? null },
        'agent refused: unsupported protocol',
      );
      refuseUpgrade(socket, 400, 'Bad Request');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, connectorId));
  });

  function onConnection(ws: WebSocket, connectorId: string): void {
    const conn: Conn = { ws, connectorId, instanceId: null };
    conns.add(conn);
    logger.info({ connectorId }, 'agent connected');
    ws.on('error', (err) => logger.warn({ err: err.message, connectorId }, 'agent socket error'));
    ws.on('message', (data) =>
      onMessage(
        conn,
        (Buffer.isBuffer(data)
          ? data
          : Array.isArray(data)
            ? Buffer.concat(data)
            : Buffer.from(data)
        ).toString('utf8'),
      ),
    );
    ws.on('close', () => {
      conns.delete(conn);
      logger.info({ connectorId, instanceId: conn.instanceId }, 'agent disconnected');
      // Hand what this socket held to another replica, if any; else wait for a reconnect.
      for (const [, p] of pending) {
        if (p.deliveredTo === conn) {
          p.deliveredTo = null;
          const next = pickAgent(p.connectorId);
          if (next) deliver(p, next);
        }
      }
    });
  }

  function onMessage(conn: Conn, text: string): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      logger.warn({ connectorId: conn.connectorId }, 'agent sent a frame that is not JSON');
      return;
    }
    const parsed = AgentMessageSchema.safeParse(value);
    if (!parsed.success) {
      logger.warn(
        {
          connectorId: conn.connectorId,
          issues: parsed.error.issues.slice(0, 5).map((i) => i.message),
        },
        'agent sent an invalid message',
      );
      return;
    }
    const msg = parsed.data;
    switch (msg.type) {
      case 'hello': {
        if (msg.connectorId !== conn.connectorId) {
          logger.warn(
            { connectorId: conn.connectorId },
            'hello names another connector id; closing',
          );
          conn.ws.close(1008, 'connector id mismatch');
          return;
        }
        conn.instanceId = msg.instanceId;
        conn.ws.send(
          JSON.stringify({
            type: 'welcome',
            serverTime: new Date().toISOString(),
            // Key proof: sign the agent's nonce with the command key.
            ...(msg.keyProof !== undefined
              ? { keyProof: signKeyProof(conn.connectorId, msg.keyProof.nonce, signingKey, keyId) }
              : {}),
            ...(acceptChunks ? { resultChunks: true } : {}),
          }),
        );
        for (const [, p] of pending) {
          if (p.connectorId !== conn.connectorId) continue;
          if (p.deliveredTo === null || p.deliveredTo.ws.readyState !== WebSocket.OPEN)
            deliver(p, conn);
        }
        break;
      }
      case 'result-chunk': {
        received.push(msg);
        const whole = onChunk(conn, msg);
        if (whole !== undefined) onMessage(conn, whole);
        return;
      }
      case 'result': {
        partials.delete(msg.commandId);
        const copies = results.get(msg.commandId) ?? [];
        copies.push(msg);
        results.set(msg.commandId, copies);
        pending.delete(msg.commandId);
        if (!withholdAcks && conn.ws.readyState === WebSocket.OPEN) {
          conn.ws.send(JSON.stringify({ type: 'result-ack', commandId: msg.commandId }));
        }
        break;
      }
      case 'rejected':
        if (msg.commandId !== null) {
          pending.delete(msg.commandId);
          rejections.set(msg.commandId, msg.error);
        }
        break;
      case 'accepted':
        break;
    }
    received.push(msg);
    for (const w of [...waiters]) {
      if (w.match(msg)) w.resolve(msg);
    }
  }

  /**
   * Adds a chunk to its result; returns the result's text once complete and verified.
   * Chunks are taken by offset: the part beyond what is held is appended, a chunk that
   * starts after it is ignored; each is answered with the bytes held.
   */
  function onChunk(conn: Conn, msg: AgentMessageOf<'result-chunk'>): string | undefined {
    if (!acceptChunks) return undefined;
    let p = partials.get(msg.commandId);
    if (p !== undefined && (p.size !== msg.size || p.sha256 !== msg.sha256)) p = undefined;
    if (p === undefined) {
      p = { size: msg.size, sha256: msg.sha256, parts: [], have: 0 };
      partials.set(msg.commandId, p);
    }
    const data = Buffer.from(msg.data, 'utf8');
    const end = msg.offset + data.length;
    if (msg.offset <= p.have && end > p.have && end <= p.size) {
      p.parts.push(data.subarray(p.have - msg.offset));
      p.have = end;
    }
    if (p.have === p.size) {
      partials.delete(msg.commandId);
      const whole = Buffer.concat(p.parts);
      if (createHash('sha256').update(whole).digest('hex') !== p.sha256) {
        logger.warn({ commandId: msg.commandId }, 'chunked result does not match its sha256');
        ack(conn, msg.commandId, 0);
        return undefined;
      }
      return whole.toString('utf8');
    }
    if (!withholdChunkAcks) ack(conn, msg.commandId, p.have);
    return undefined;
  }

  function ack(conn: Conn, commandId: string, next: number): void {
    if (conn.ws.readyState === WebSocket.OPEN) {
      conn.ws.send(JSON.stringify({ type: 'result-chunk-ack', commandId, next }));
    }
  }

  function readyAgents(connectorId: string): Conn[] {
    return [...conns].filter(
      (c) =>
        c.connectorId === connectorId &&
        c.instanceId !== null &&
        c.ws.readyState === WebSocket.OPEN,
    );
  }

  function pickAgent(connectorId: string): Conn | null {
    const ready = readyAgents(connectorId);
    if (ready.length === 0) return null;
    const i = roundRobin.get(connectorId) ?? 0;
    roundRobin.set(connectorId, i + 1);
    return ready[i % ready.length] ?? null;
  }

  function deliver(p: Pending, conn: Conn): void {
    p.deliveredTo = conn;
    conn.ws.send(p.frame);
  }

  // ---- API ------------------------------------------------------------------------------

  function sendCommand(
    connectorId: string,
    cmd: SendCommandInput,
  ): Promise<{ commandId: string; envelope: Record<string, unknown> }> {
    const id = cmd.id ?? `cmd-${randomUUID()}`;
    const issuedAt = cmd.issuedAt ?? new Date();
    const expiresAt = new Date(issuedAt.getTime() + (cmd.ttlMs ?? ttlDefault));
    const envelope: Record<string, unknown> = {
      id,
      kind: cmd.kind,
      connectorId,
      issuedAt: issuedAt.toISOString(),
      expiresAt: expiresAt.toISOString(),
      integration: cmd.integration,
      params: cmd.params,
    };
    const signature = signEnvelope(envelope, signingKey, keyId);
    const p: Pending = {
      connectorId,
      frame: JSON.stringify({ type: 'command', envelope, signature }),
      deliveredTo: null,
    };
    pending.set(id, p);
    const conn = pickAgent(connectorId);
    if (conn) deliver(p, conn);
    else logger.info({ commandId: id, connectorId }, 'no agent connected; command kept pending');
    return Promise.resolve({ commandId: id, envelope });
  }

  function sendRaw(connectorId: string, frame: string | Buffer, opts?: { binary?: boolean }): void {
    const conn = pickAgent(connectorId);
    if (!conn) throw new Error(`no agent of connector ${connectorId} is connected`);
    conn.ws.send(frame, { binary: opts?.binary ?? typeof frame !== 'string' });
  }

  function waitFor<T extends AgentMessageType>(
    type: T,
    predicate?: (msg: AgentMessageOf<T>) => boolean,
    timeoutMs = DEFAULT_WAIT_MS,
    since = 0,
  ): Promise<AgentMessageOf<T>> {
    const match = (m: AgentMessage): boolean =>
      m.type === type && (predicate ? predicate(m as AgentMessageOf<T>) : true);
    const existing = received.slice(since).find(match);
    if (existing) return Promise.resolve(existing as AgentMessageOf<T>);
    return new Promise<AgentMessageOf<T>>((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve: (m) => {
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(m as AgentMessageOf<T>);
        },
        cancel: (why) => {
          clearTimeout(timer);
          waiters.delete(waiter);
          reject(new Error(`dev control plane: ${why}`));
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`dev control plane: no '${type}' message within ${timeoutMs} ms`));
      }, timeoutMs);
      waiters.add(waiter);
    });
  }

  function waitForResult(commandId: string, timeoutMs = DEFAULT_WAIT_MS): Promise<Result> {
    const first = results.get(commandId)?.[0];
    if (first) return Promise.resolve(first);
    return waitFor('result', (r) => r.commandId === commandId, timeoutMs, received.length);
  }

  // ---- HTTP -----------------------------------------------------------------------------

  function json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  }

  async function readBody(req: IncomingMessage): Promise<string | null> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > MAX_HTTP_BODY) return null;
      chunks.push(buf);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  async function handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';

    // The API signs commands with a key agents trust and has no authentication: refuse
    // what a web browser can send (cross-site requests carry `Origin`; a DNS-rebound name
    // shows up in `Host`), so a web page cannot make it sign or read results.
    if (req.headers.origin !== undefined) {
      return json(res, 403, { error: 'cross-origin requests are refused' });
    }
    if (!isDirectHost(req.headers.host)) {
      return json(res, 403, { error: 'Host must be an IP address or localhost' });
    }

    if (req.method === 'POST' && path === '/commands') {
      const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
      if (type !== 'application/json') {
        return json(res, 415, { error: 'content-type must be application/json' });
      }
      const body = await readBody(req);
      if (body === null) return json(res, 413, { error: 'body too large' });
      let value: unknown;
      try {
        value = JSON.parse(body);
      } catch {
        return json(res, 400, { error: 'body is not JSON' });
      }
      const parsed = HttpCommandSchema.safeParse(value);
      if (!parsed.success) {
        return json(res, 400, {
          error: 'invalid command',
          issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
        });
      }
      const { connectorId, ...cmd } = parsed.data;
      const { commandId } = await sendCommand(connectorId, cmd);
      return json(res, 201, { commandId });
    }

    const resultMatch = /^\/commands\/([^/]+)\/result$/.exec(path);
    if (req.method === 'GET' && resultMatch?.[1]) {
      const commandId = decodeURIComponent(resultMatch[1]);
      const waitMs = Math.min(
        Math.max(Number(url.searchParams.get('waitMs') ?? 0) || 0, 0),
        MAX_HTTP_WAIT_MS,
      );
      let result = results.get(commandId)?.[0];
      if (!result && waitMs > 0) {
        result = await waitForResult(commandId, waitMs).catch(() => undefined);
      }
      if (!result) {
        return json(res, 404, {
          error: 'no result yet',
          pending: pending.has(commandId),
          ...(rejections.has(commandId) ? { rejected: rejections.get(commandId) } : {}),
        });
      }
      return json(res, 200, result);
    }

    if (req.method === 'GET' && path === '/agents') {
      return json(res, 200, connectedAgents());
    }

    return json(res, 404, { error: 'not found' });
  }

  function connectedAgents(): ConnectedAgent[] {
    return [...conns]
      .filter((c) => c.instanceId !== null && c.ws.readyState === WebSocket.OPEN)
      .map((c) => ({ connectorId: c.connectorId, instanceId: c.instanceId ?? '' }));
  }

  // ---- start ----------------------------------------------------------------------------

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const hostForUrl = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const secure = opts.tls !== undefined;
  const url = `${secure ? 'wss' : 'ws'}://${hostForUrl}:${addr.port}/`;
  const httpUrl = `${secure ? 'https' : 'http'}://${hostForUrl}:${addr.port}`;
  logger.info({ url, httpUrl, keyId }, 'dev control plane listening');

  return {
    url,
    httpUrl,
    sendCommand,
    sendRaw,
    waitForResult,
    resultsFor: (commandId) => [...(results.get(commandId) ?? [])],
    waitFor,
    received,
    connectedAgents,
    pendingCommands: () => [...pending.keys()],
    dropConnections: () => {
      for (const c of conns) c.ws.terminate();
    },
    setWithholdChunkAcks: (on) => {
      withholdChunkAcks = on;
    },
    partialResults: () => new Map([...partials].map(([id, p]) => [id, p.have])),
    forgetPartialResults: () => partials.clear(),
    setWithholdAcks: (on) => {
      withholdAcks = on;
    },
    close: async () => {
      for (const w of [...waiters]) w.cancel('closed');
      for (const c of conns) c.ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
