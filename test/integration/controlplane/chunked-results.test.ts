/**
 * Chunked results, seen from an independent control plane: a plain `ws` server that knows
 * only docs/protocol.md ("Chunked results") and docs/schema/protocol-v1.schema.json. It
 * imports nothing of the agent's protocol code: every frame it gets is checked with a
 * validator built from the published JSON Schema, and the result is put back together
 * from the chunks' offsets, sizes and sha256 alone. It withholds acks, drops the
 * connection in the middle of a result and forgets what it held, as a real one may.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { WebSocketServer } from 'ws';
import { z } from 'zod';
import { capturingLogger, makeClient, result, type TestClient } from './helpers.js';
import type { Result } from '../../../src/protocol/messages.js';
// The agent side only (the control plane above imports none of it).
import { Outbox } from '../../../src/controlplane/outbox.js';
import { ResultSpool } from '../../../src/controlplane/spool.js';
import { AgentEvents } from '../../../src/events.js';
import { ResultFrame } from '../../../src/protocol/result-frame.js';
import { StateJournal } from '../../../src/state/journal.js';

// ---- the control plane's view: the published schema only ------------------------------

const schemaDoc = JSON.parse(
  readFileSync(new URL('../../../docs/schema/protocol-v1.schema.json', import.meta.url), 'utf8'),
) as { $defs: Record<string, Record<string, unknown>> };
// zod's JSON Schema reader does not take if/then/else; WireError's `retryable` rule is
// the only one and does not matter here.
delete schemaDoc.$defs.WireError?.allOf;
function validator(name: string): z.ZodType {
  return z.fromJSONSchema({ ...schemaDoc, $ref: `#/$defs/${name}` });
}
const AgentMessage = validator('AgentMessage');
const ResultChunk = validator('ResultChunk');
const ResultMessage = validator('Result');
const Hello = validator('Hello');
const ResultChunkAck = validator('ResultChunkAck');

interface Chunk {
  commandId: string;
  offset: number;
  size: number;
  sha256: string;
  data: string;
}

/** What the control plane holds of one chunked result. */
interface Held {
  size: number;
  sha256: string;
  bytes: Buffer[];
  have: number;
}

interface IndependentCp {
  url: string;
  /** Every agent frame as received (text), in order. */
  frames: string[];
  chunks: Chunk[];
  results: unknown[];
  held: Map<string, Held>;
  acceptChunks: boolean;
  autoAck: boolean;
  sockets: Set<WebSocket>;
  ackChunk(commandId: string, next: number): void;
  ackResult(commandId: string): void;
  waitFor(pred: () => boolean, what: string, ms?: number): Promise<void>;
  close(): Promise<void>;
}

async function startIndependentCp(acceptChunks: boolean): Promise<IndependentCp> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 64 * 1024 * 1024 });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const cp: IndependentCp = {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`,
    frames: [],
    chunks: [],
    results: [],
    held: new Map(),
    acceptChunks,
    autoAck: true,
    sockets: new Set(),
    ackChunk(commandId, next) {
      const msg = { type: 'result-chunk-ack', commandId, next };
      expect(ResultChunkAck.safeParse(msg).success).toBe(true);
      for (const s of cp.sockets) s.send(JSON.stringify(msg));
    },
    ackResult(commandId) {
      for (const s of cp.sockets) s.send(JSON.stringify({ type: 'result-ack', commandId }));
    },
    async waitFor(pred, what, ms = 10_000) {
      const until = Date.now() + ms;
      while (!pred()) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of cp.sockets) s.terminate();
        wss.close(() => resolve());
      }),
  };
  wss.on('connection', (ws) => {
    cp.sockets.add(ws);
    ws.on('close', () => cp.sockets.delete(ws));
    ws.on('message', (raw) => {
      const text = (raw as Buffer).toString('utf8');
      cp.frames.push(text);
      const msg = JSON.parse(text) as { type: string; commandId?: string };
      expect(AgentMessage.safeParse(msg).success, text.slice(0, 200)).toBe(true);
      if (msg.type === 'hello') {
        expect(Hello.safeParse(msg).success).toBe(true);
        ws.send(
          JSON.stringify({
            type: 'welcome',
            serverTime: new Date().toISOString(),
            ...(cp.acceptChunks ? { resultChunks: true } : {}),
          }),
        );
      } else if (msg.type === 'result') {
        cp.results.push(msg);
        if (cp.autoAck) cp.ackResult(msg.commandId ?? '');
      } else if (msg.type === 'result-chunk') {
        const chunk = ResultChunk.parse(msg) as Chunk;
        cp.chunks.push(chunk);
        onChunk(cp, chunk);
      }
    });
  });
  return cp;
}

/** docs/protocol.md: append the bytes beyond those held; when all are held, check and parse. */
function onChunk(cp: IndependentCp, c: Chunk): void {
  let h = cp.held.get(c.commandId);
  if (h === undefined || h.size !== c.size || h.sha256 !== c.sha256) {
    h = { size: c.size, sha256: c.sha256, bytes: [], have: 0 };
    cp.held.set(c.commandId, h);
  }
  const data = Buffer.from(c.data, 'utf8');
  if (c.offset <= h.have && c.offset + data.length > h.have) {
    h.bytes.push(data.subarray(h.have - c.offset));
    h.have = c.offset + data.length;
  }
  if (h.have === h.size) {
    const whole = Buffer.concat(h.bytes);
    expect(createHash('sha256').update(whole).digest('hex')).toBe(h.sha256);
    cp.held.delete(c.commandId);
    const parsed = JSON.parse(whole.toString('utf8')) as unknown;
    expect(ResultMessage.safeParse(parsed).success).toBe(true);
    cp.results.push(parsed);
    if (cp.autoAck) cp.ackResult(c.commandId);
  } else if (cp.autoAck) {
    cp.ackChunk(c.commandId, h.have);
  }
}

// ---- the agent side --------------------------------------------------------------------

const FRAME = 4096;

/** A result of about `kib` KiB whose text has quotes, backslashes, accents and emoji. */
function bigResult(commandId: string, kib: number): Result {
  const r = result(commandId);
  const rows: string[] = [];
  let i = 0;
  while (rows.join('').length < kib * 1024) {
    rows.push(`row ${i++} "quoted" back\\slash é ü 日本 🙂 \u0001 tab\t`);
  }
  r.kind = 'discover';
  r.output = { resources: [], permissions: [], warnings: [], rows };
  return r;
}

let cp: IndependentCp | undefined;
let tc: TestClient | undefined;
afterEach(async () => {
  await tc?.client.stop({ flushTimeoutMs: 0 });
  await cp?.close();
  tc = undefined;
  cp = undefined;
});

describe('chunked results, reassembled by a control plane written from the docs', () => {
  it('comes in ordered chunks within the frame bound, at most the window unacked, resumed after a drop and after the control plane forgot', async () => {
    cp = await startIndependentCp(true);
    cp.autoAck = false;
    tc = makeClient(cp.url, { maxResultFrameBytes: FRAME, resultChunkWindow: 4 });
    tc.client.start();
    await cp.waitFor(() => cp!.frames.length >= 1, 'hello');
    const hello = JSON.parse(cp.frames[0] ?? '{}') as {
      capabilities: { resultChunks?: { maxFrameBytes: number } };
    };
    expect(hello.capabilities.resultChunks).toEqual({ maxFrameBytes: FRAME });
    await cp.waitFor(() => tc!.client.connected, 'welcome');

    const big = bigResult('cmd-big', 200);
    const text = JSON.stringify(big);
    const size = Buffer.byteLength(text, 'utf8');
    await tc.client.sendResult(big);

    // Acks withheld: the window (4) goes out, then nothing more.
    await cp.waitFor(() => cp!.chunks.length >= 4, 'the first window');
    await new Promise((r) => setTimeout(r, 300));
    expect(cp.chunks).toHaveLength(4);
    expect(cp.chunks.map((c) => c.offset)[0]).toBe(0);
    for (let i = 1; i < 4; i++) {
      const prev = cp.chunks[i - 1]!;
      expect(cp.chunks[i]!.offset).toBe(prev.offset + Buffer.byteLength(prev.data, 'utf8'));
    }
    for (const c of cp.chunks) {
      expect(c.size).toBe(size);
      expect(c.sha256).toBe(createHash('sha256').update(text, 'utf8').digest('hex'));
    }
    for (const f of cp.frames) expect(Buffer.byteLength(f, 'utf8')).toBeLessThanOrEqual(FRAME);

    // Acking two chunks lets exactly two more go.
    const heldAfter2 = cp.held.get('cmd-big')!;
    const end2 = cp.chunks[1]!.offset + Buffer.byteLength(cp.chunks[1]!.data, 'utf8');
    expect(heldAfter2.have).toBeGreaterThanOrEqual(end2);
    cp.ackChunk('cmd-big', end2);
    await cp.waitFor(() => cp!.chunks.length >= 6, 'two more chunks');
    await new Promise((r) => setTimeout(r, 300));
    expect(cp.chunks).toHaveLength(6);

    // The link drops; the agent comes back and goes on from the last ack (end of chunk 2).
    const before = cp.chunks.length;
    const reconnected = tc.next('link:connected');
    for (const s of cp.sockets) s.terminate();
    await reconnected;
    await cp.waitFor(() => cp!.chunks.length > before, 'chunks after the reconnect');
    expect(cp.chunks[before]!.offset).toBe(end2);
    expect(tc.client.chunkProgress().get('cmd-big')).toBe(end2);

    // The control plane lost what it held: an ack of 0 makes the agent start over.
    cp.held.delete('cmd-big');
    await cp.waitFor(() => cp!.chunks.length >= before + 4, 'the window after the reconnect');
    await new Promise((r) => setTimeout(r, 200));
    expect(cp.chunks).toHaveLength(before + 4);
    const beforeReset = cp.chunks.length;
    cp.ackChunk('cmd-big', 0);
    await cp.waitFor(
      () => cp!.chunks.slice(beforeReset).some((c) => c.offset === 0),
      'offset 0 again',
    );

    // From now on the control plane acks each chunk; the result comes back whole.
    cp.autoAck = true;
    const last = cp.chunks.at(-1)!;
    onChunk(cp, last); // ack what it holds so far
    await cp.waitFor(() => cp!.results.length === 1, 'the whole result', 20_000);
    expect(cp.results[0]).toEqual(big);
    await cp.waitFor(() => tc!.outbox.size === 0, 'the outbox to empty');
    expect(tc.client.chunkProgress().size).toBe(0);
    for (const f of cp.frames) expect(Buffer.byteLength(f, 'utf8')).toBeLessThanOrEqual(FRAME);
  });

  it('keeps small results in one frame even when chunks are accepted', async () => {
    cp = await startIndependentCp(true);
    tc = makeClient(cp.url, { maxResultFrameBytes: FRAME });
    tc.client.start();
    await cp.waitFor(() => tc!.client.connected, 'welcome');
    await tc.client.sendResult(result('cmd-small'));
    await cp.waitFor(() => cp!.results.length === 1, 'the result');
    expect(cp.chunks).toHaveLength(0);
    expect(cp.results[0]).toMatchObject({ commandId: 'cmd-small', status: 'ok' });
    expect(cp.frames.filter((f) => f.includes('cmd-small'))).toHaveLength(1);
  });

  it('answers E_TOO_LARGE in one frame to a control plane that does not take chunks', async () => {
    cp = await startIndependentCp(false);
    tc = makeClient(cp.url, { maxResultFrameBytes: FRAME });
    tc.client.start();
    await cp.waitFor(() => tc!.client.connected, 'welcome');
    const big = bigResult('cmd-big2', 50);
    await tc.client.sendResult(big);
    await tc.client.sendResult(result('cmd-small2'));
    await cp.waitFor(() => cp!.results.length === 2, 'both results');
    expect(cp.chunks).toHaveLength(0);
    const [first, second] = cp.results as Result[];
    expect(first).toMatchObject({
      type: 'result',
      commandId: 'cmd-big2',
      kind: 'discover',
      status: 'error',
      error: { code: 'E_TOO_LARGE', retryable: false },
      timings: big.timings,
    });
    expect(second).toMatchObject({ commandId: 'cmd-small2', status: 'ok' });
    for (const f of cp.frames) expect(Buffer.byteLength(f, 'utf8')).toBeLessThanOrEqual(FRAME);
    await cp.waitFor(() => tc!.outbox.size === 0, 'the outbox to empty');
  });

  it('a spooled result (written page by page to a file) is read back in chunks, re-sent after an agent restart from its journal reference, and its file goes after the result-ack', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lk-chunk-spool-'));
    try {
      const { logger } = capturingLogger();
      // The agent's spool: resources with quotes, backslashes, accents, emoji and control
      // characters, written in 60 pages.
      const spool = await ResultSpool.open({ stateDir: dir, memoryBytes: 2048, logger });
      const writer = spool.begin('cmd-spooled', 'discover');
      const all: { id: string; name: string; type: string; metadata: Record<string, unknown> }[] =
        [];
      for (let p = 0; p < 60; p++) {
        const page = Array.from({ length: 20 }, (_, i) => ({
          id: `table:db/s/t${p}-${i}`,
          name: `row "${p}" \\ é 日本 🙂 \u0001\t${i}`,
          type: 'table',
          metadata: { p, i },
        }));
        all.push(...page);
        await writer.resources(page);
      }
      const tail = { resources: [], permissions: [], warnings: [] };
      await writer.complete(tail);
      const timings = result('x').timings;
      const frame = writer.finish(timings);
      expect(frame.spooled).toBe(true);
      if (!frame.spooled) return;
      // Built in memory instead, the same result has the same bytes.
      const whole: Result = {
        type: 'result',
        commandId: 'cmd-spooled',
        kind: 'discover',
        status: 'ok',
        output: { ...tail, resources: all },
        timings,
      };
      expect(frame.sha256).toBe(ResultFrame.of(whole).sha256);
      expect(frame.bytes).toBeGreaterThan(FRAME * 10);

      // Agent 1 sends a few chunks; the control plane holds them but acks only two; the
      // agent process ends (no flush).
      cp = await startIndependentCp(true);
      cp.autoAck = false;
      const j1 = await StateJournal.open({ dir, logger });
      const events1 = new AgentEvents();
      const o1 = new Outbox({ journal: j1, spoolDir: spool.dir, logger, events: events1 });
      tc = makeClient(cp.url, { maxResultFrameBytes: FRAME, resultChunkWindow: 4, outbox: o1 });
      tc.client.start();
      await cp.waitFor(() => tc!.client.connected, 'welcome');
      await tc.client.sendResult(frame);
      await cp.waitFor(() => cp!.chunks.length >= 4, 'the first window');
      const end2 = cp.chunks[1]!.offset + Buffer.byteLength(cp.chunks[1]!.data, 'utf8');
      cp.ackChunk('cmd-spooled', end2);
      await cp.waitFor(() => cp!.chunks.length >= 6, 'two more chunks');
      await tc.client.stop({ flushTimeoutMs: 0 });
      tc = undefined;
      await j1.close();
      const held = cp.held.get('cmd-spooled')!.have;
      expect(held).toBeGreaterThan(end2);

      // Agent 2: a new process on the same state directory; a stray file is swept.
      const stray = join(spool.dir, 'stray.json');
      writeFileSync(stray, '{');
      const j2 = await StateJournal.open({ dir, logger });
      const spool2 = await ResultSpool.open({ stateDir: dir, logger });
      const o2 = new Outbox({
        journal: j2,
        spoolDir: spool2.dir,
        logger,
        events: new AgentEvents(),
      });
      await o2.load();
      await spool2.sweep(o2.frames());
      expect(existsSync(stray)).toBe(false);
      expect(o2.frames().map((f) => [f.commandId, f.spooled, f.sha256])).toEqual([
        ['cmd-spooled', true, frame.sha256],
      ]);
      const before = cp.chunks.length;
      cp.autoAck = true;
      tc = makeClient(cp.url, { maxResultFrameBytes: FRAME, outbox: o2 });
      tc.client.start();
      await cp.waitFor(() => cp!.results.length === 1, 'the whole result', 20_000);
      // It started from offset 0 and went on from where the control plane stood.
      expect(cp.chunks[before]!.offset).toBe(0);
      expect(cp.chunks.slice(before).some((c) => c.offset === held)).toBe(true);
      expect(cp.results[0]).toEqual(whole);
      for (const f of cp.frames) expect(Buffer.byteLength(f, 'utf8')).toBeLessThanOrEqual(FRAME);
      await cp.waitFor(() => tc!.outbox.size === 0, 'the outbox to empty');
      await cp.waitFor(() => !existsSync(frame.path), 'the spool file to go');
      await j2.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
