/**
 * The control-plane client against the reference control plane (real sockets on 127.0.0.1).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import { Outbox } from '../../../src/controlplane/outbox.js';
import { StateJournal } from '../../../src/state/journal.js';
import type { DevControlPlane } from '../../../src/devcp/server.js';
import { AgentEvents } from '../../../src/events.js';
import type { CommandMessage } from '../../../src/protocol/messages.js';
import type { LatchkeyError } from '../../../src/errors.js';
import { SpooledResultFrame, type HeldFrame } from '../../../src/protocol/result-frame.js';
import {
  CONNECTOR,
  TOKEN,
  integration,
  makeClient,
  result,
  startCp,
  type TestClient,
} from './helpers.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(
  cpExtra: Parameters<typeof startCp>[0] = {},
  clientExtra: Parameters<typeof makeClient>[1] = {},
): Promise<{ cp: DevControlPlane; t: TestClient }> {
  const { cp } = await startCp(cpExtra);
  cleanups.push(() => cp.close());
  const t = makeClient(cp.url, clientExtra);
  cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
  return { cp, t };
}

/** Sends a marker through the link and waits for it: everything sent before it has arrived. */
async function barrier(cp: DevControlPlane, t: TestClient, id: string): Promise<void> {
  const seen = cp.waitFor('accepted', (m) => m.commandId === id);
  expect(t.client.send({ type: 'accepted', commandId: id })).toBe(true);
  await seen;
}

describe('control-plane link', () => {
  it('authenticates, says hello and becomes connected on welcome', async () => {
    const { cp, t } = await setup();
    const connected = t.next('link:connected');
    const hello = cp.waitFor('hello');
    expect(t.client.connected).toBe(false);
    t.client.start();
    const h = await hello;
    expect(h).toMatchObject({
      type: 'hello',
      protocol: 1,
      connectorId: CONNECTOR,
      version: '0.0.0-test',
      capabilities: { kinds: ['check', 'grant'], integrationTypes: ['postgres'] },
    });
    await connected;
    expect(t.client.connected).toBe(true);
    expect(Number.isFinite(t.client.clockOffsetMs)).toBe(true);
    expect(Math.abs(t.client.clockOffsetMs)).toBeLessThan(60_000);
    expect(cp.connectedAgents()).toEqual([{ connectorId: CONNECTOR, instanceId: h.instanceId }]);
    expect(t.lines.join('\n')).not.toContain(TOKEN);
  });

  it('is refused with a bad token, logs it without the token, and retries with backoff', async () => {
    const { cp, t } = await setup({}, { token: 'wrong-token-value-123' });
    let connectedEvents = 0;
    t.events.on('link:connected', () => connectedEvents++);
    const scheduled: number[] = [];
    const thirdRetry = new Promise<void>((resolve) => {
      t.events.on('link:reconnect-scheduled', ({ attempt }) => {
        scheduled.push(attempt);
        if (attempt === 3) resolve();
      });
    });
    t.client.start();
    await thirdRetry;
    expect(scheduled.slice(0, 3)).toEqual([1, 2, 3]);
    expect(connectedEvents).toBe(0);
    expect(t.client.connected).toBe(false);
    expect(cp.connectedAgents()).toEqual([]);
    const log = t.lines.join('\n');
    expect(log).toContain('refused the connector token');
    expect(log).toContain('"status":401');
    expect(log).not.toContain('wrong-token-value-123');
  });

  it('writes a result only after the code that queued it has returned', async () => {
    // As when a command ends inside Dispatcher.submit (expired before it could start): its
    // result is queued before the agent sends the command's `accepted`, yet must follow it.
    const { cp, t } = await setup();
    const connected = t.next('link:connected');
    t.client.start();
    await connected;
    const since = cp.received.length;
    const queued = t.client.sendResult(result('cmd-order'));
    expect(t.client.send({ type: 'accepted', commandId: 'cmd-order' })).toBe(true);
    await queued;
    await cp.waitForResult('cmd-order');
    const types = cp.received
      .slice(since)
      .filter((m) => 'commandId' in m && m.commandId === 'cmd-order')
      .map((m) => m.type);
    expect(types).toEqual(['accepted', 'result']);
  });

  it('writes a result only once the outbox says it is durable (journal before send)', async () => {
    let makeDurable = (): void => undefined;
    const durable = new Promise<void>((resolve) => (makeDurable = resolve));
    // An outbox whose journal write is still under way until `makeDurable`.
    class SlowJournalOutbox extends Outbox {
      override put(frame: HeldFrame): Promise<void> | undefined {
        void super.put(frame);
        return durable;
      }
    }
    const outbox = new SlowJournalOutbox({
      logger: pino({ level: 'silent' }),
      events: new AgentEvents(),
    });
    const { cp, t } = await setup({}, { outbox });
    const connected = t.next('link:connected');
    t.client.start();
    await connected;
    const sent = t.client.sendResult(result('cmd-durable'));
    await barrier(cp, t, 'marker-durable'); // what was written before it has arrived
    expect(cp.resultsFor('cmd-durable')).toHaveLength(0);
    makeDurable();
    await sent;
    await cp.waitForResult('cmd-durable');
  });

  it('a result that cannot be read is logged and stays in the outbox; the next ones go on', async () => {
    const { cp, t } = await setup({ withholdAcks: true });
    const connected = t.next('link:connected');
    t.client.start();
    await connected;
    // A spooled result whose file is gone: reading it to send it throws.
    const lost = new SpooledResultFrame(
      'cmd-lost',
      'check',
      result('cmd-lost').timings,
      join(tmpdir(), `latchkey-missing-${Date.now()}.json`),
      10,
      '0'.repeat(64),
    );
    await t.client.sendResult(lost);
    await t.client.sendResult(result('cmd-after-lost'));
    await cp.waitForResult('cmd-after-lost');
    expect(cp.resultsFor('cmd-lost')).toHaveLength(0);
    expect(t.outbox.has('cmd-lost')).toBe(true);
    expect(t.lines.join('\n')).toContain('could not send result');
  });

  it('re-sends unacknowledged results after every reconnect until acked', async () => {
    const { cp, t } = await setup({ withholdAcks: true });
    let connected = t.next('link:connected');
    t.client.start();
    await connected;

    await t.client.sendResult(result('cmd-1'));
    await t.client.sendResult(result('cmd-2'));
    await cp.waitForResult('cmd-2');
    expect(t.outbox.size).toBe(2);

    // Connection cut: both results come again, in order, after the reconnect.
    connected = t.next('link:connected');
    let since = cp.received.length;
    cp.dropConnections();
    await connected;
    const again1 = await cp.waitFor('result', (r) => r.commandId === 'cmd-1', 5000, since);
    const again2 = await cp.waitFor('result', (r) => r.commandId === 'cmd-2', 5000, since);
    expect(cp.received.indexOf(again1)).toBeLessThan(cp.received.indexOf(again2));
    expect(cp.resultsFor('cmd-1')).toHaveLength(2);
    expect(t.outbox.size).toBe(2);

    // Now acks flow: the next re-send is acked and the outbox drains.
    cp.setWithholdAcks(false);
    connected = t.next('link:connected');
    since = cp.received.length;
    cp.dropConnections();
    await connected;
    await t.outbox.whenEmpty();
    expect(cp.resultsFor('cmd-1')).toHaveLength(3);
    expect(cp.resultsFor('cmd-2')).toHaveLength(3);

    // Acked results are not sent again.
    connected = t.next('link:connected');
    cp.dropConnections();
    await connected;
    await barrier(cp, t, 'marker-1');
    expect(cp.resultsFor('cmd-1')).toHaveLength(3);
    expect(cp.resultsFor('cmd-2')).toHaveLength(3);
    void since;
  });

  it('redelivers a pending command after a reconnect, and not once its result arrived', async () => {
    const { cp, t } = await setup();
    const deliveries: CommandMessage[] = [];
    let onDelivery: (() => void) | null = null;
    t.client.onCommand((msg) => {
      deliveries.push(msg);
      onDelivery?.();
    });
    const waitDelivery = (n: number): Promise<void> =>
      new Promise((resolve) => {
        if (deliveries.length >= n) return resolve();
        onDelivery = () => deliveries.length >= n && resolve();
      });

    // Sent while no agent is connected: kept and delivered on connect.
    const { commandId, envelope } = await cp.sendCommand(CONNECTOR, {
      kind: 'check',
      integration,
      params: {},
    });
    expect(cp.pendingCommands()).toEqual([commandId]);
    t.client.start();
    await waitDelivery(1);
    expect(deliveries[0]?.envelope).toEqual(envelope);

    // The agent went away before answering: delivered again on reconnect.
    const connected = t.next('link:connected');
    cp.dropConnections();
    await connected;
    await waitDelivery(2);
    expect(deliveries[1]?.envelope).toEqual(envelope);
    expect(deliveries[1]?.signature).toEqual(deliveries[0]?.signature);

    await t.client.sendResult(result(commandId));
    await t.outbox.whenEmpty();
    expect(cp.pendingCommands()).toEqual([]);

    const again = t.next('link:connected');
    cp.dropConnections();
    await again;
    await barrier(cp, t, 'marker-2');
    expect(deliveries).toHaveLength(2);
  });

  it('refuses an oversized or malformed frame through onInvalidFrame and keeps the link', async () => {
    const { cp, t } = await setup({}, { maxFrameBytes: 2000 });
    const invalid: { commandId: string | null; error: LatchkeyError }[] = [];
    let notify: (() => void) | null = null;
    t.client.onInvalidFrame((r) => {
      invalid.push(r);
      notify?.();
    });
    const commands: CommandMessage[] = [];
    const gotCommand = new Promise<void>((resolve) =>
      t.client.onCommand((m) => {
        commands.push(m);
        resolve();
      }),
    );
    const waitInvalid = (n: number): Promise<void> =>
      new Promise((resolve) => {
        if (invalid.length >= n) return resolve();
        notify = () => invalid.length >= n && resolve();
      });
    const connected = t.next('link:connected');
    t.client.start();
    await connected;

    cp.sendRaw(CONNECTOR, JSON.stringify({ type: 'cancel', commandId: 'x'.repeat(3000) }));
    await waitInvalid(1);
    expect(invalid[0]?.error.code).toBe('E_TOO_LARGE');

    cp.sendRaw(CONNECTOR, '{"type":"command","envelope":{"id":"cmd-bad"},"signature":{}}');
    await waitInvalid(2);
    expect(invalid[1]?.error.code).toBe('E_SCHEMA');
    expect(invalid[1]?.commandId).toBe('cmd-bad');

    cp.sendRaw(CONNECTOR, 'not json');
    await waitInvalid(3);
    expect(invalid[2]).toMatchObject({ commandId: null });
    expect(invalid[2]?.error.code).toBe('E_SCHEMA');

    // Still connected: a valid command goes through on the same socket.
    expect(t.client.connected).toBe(true);
    await cp.sendCommand(CONNECTOR, { kind: 'check', integration, params: {} });
    await gotCommand;
    expect(commands).toHaveLength(1);
  });

  it('passes cancel to onCancel', async () => {
    const { cp, t } = await setup();
    const cancelled = new Promise<string>((resolve) => t.client.onCancel(resolve));
    const connected = t.next('link:connected');
    t.client.start();
    await connected;
    cp.sendRaw(CONNECTOR, JSON.stringify({ type: 'cancel', commandId: 'cmd-9' }));
    expect(await cancelled).toBe('cmd-9');
  });

  it('stop() flushes the outbox, closes with 1000 and does not reconnect', async () => {
    const { cp, t } = await setup({ withholdAcks: true });
    const connected = t.next('link:connected');
    t.client.start();
    await connected;
    await t.client.sendResult(result('cmd-s'));
    await cp.waitForResult('cmd-s');

    // Acks withheld: stop gives up after the flush timeout, still closing cleanly.
    const disconnected = t.next('link:disconnected');
    let reconnects = 0;
    t.events.on('link:reconnect-scheduled', () => reconnects++);
    await t.client.stop({ flushTimeoutMs: 50 });
    expect(await disconnected).toMatchObject({ code: 1000 });
    expect(t.client.connected).toBe(false);
    expect(t.outbox.size).toBe(1);
    expect(reconnects).toBe(0);
    expect(cp.connectedAgents()).toEqual([]);
  });

  it('stop() waits for the ack of the last result', async () => {
    const { cp, t } = await setup({ withholdAcks: true });
    const connected = t.next('link:connected');
    t.client.start();
    await connected;
    await t.client.sendResult(result('cmd-t'));
    await cp.waitForResult('cmd-t');
    // The ack only comes after a reconnect (acks turned on again): stop must wait for it.
    cp.setWithholdAcks(false);
    const stopping = t.client.stop({ flushTimeoutMs: 20_000 });
    cp.dropConnections();
    await stopping;
    expect(t.outbox.size).toBe(0);
    expect(cp.resultsFor('cmd-t')).toHaveLength(2);
  });
});

describe('outbox across restarts', () => {
  it('re-sends a persisted, unacknowledged result from a new process after welcome', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'latchkey-link-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const { cp } = await startCp({ withholdAcks: true });
    cleanups.push(() => cp.close());

    const logger = pino({ level: 'silent' });
    const firstEvents = new AgentEvents();
    const firstJournal = await StateJournal.open({ dir, logger });
    const first = makeClient(cp.url, {
      outbox: new Outbox({ journal: firstJournal, logger, events: firstEvents }),
    });
    await first.outbox.load();
    const connected = first.next('link:connected');
    first.client.start();
    await connected;
    await first.client.sendResult(result('cmd-persisted'));
    await cp.waitForResult('cmd-persisted');
    await first.client.stop({ flushTimeoutMs: 0 });
    await firstJournal.close();

    // "Restart": a new outbox on the same directory, a new client; acks flow again.
    cp.setWithholdAcks(false);
    const journal = await StateJournal.open({ dir, logger });
    const outbox = new Outbox({ journal, logger, events: new AgentEvents() });
    await outbox.load();
    expect(outbox.entries().map((r) => r.commandId)).toEqual(['cmd-persisted']);
    const second = makeClient(cp.url, { outbox });
    cleanups.push(() => second.client.stop({ flushTimeoutMs: 0 }));
    second.client.start();
    await outbox.whenEmpty();
    expect(cp.resultsFor('cmd-persisted')).toHaveLength(2);
    await outbox.flush();
    await journal.close();
    const reopened = await StateJournal.open({ dir, logger });
    cleanups.push(() => reopened.close());
    const reloaded = new Outbox({ journal: reopened, logger, events: new AgentEvents() });
    await reloaded.load();
    expect(reloaded.size).toBe(0);
  });
});

/**
 * A control plane that welcomes each hello and lets the test push frames; with
 * `autoPong: false` it never answers a ping.
 */
async function rawPeer(opts: { autoPong?: boolean } = {}): Promise<{
  url: string;
  connections: WebSocket[];
  connected: () => Promise<WebSocket>;
}> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    autoPong: opts.autoPong ?? true,
  });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  const connections: WebSocket[] = [];
  const waiting: ((ws: WebSocket) => void)[] = [];
  wss.on('connection', (ws) => {
    connections.push(ws);
    ws.on('message', () =>
      ws.send(JSON.stringify({ type: 'welcome', serverTime: new Date().toISOString() })),
    );
    for (const w of waiting.splice(0)) w(ws);
  });
  cleanups.push(() => {
    for (const c of wss.clients) c.terminate();
    return Promise.resolve();
  });
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`,
    connections,
    connected: () => new Promise((resolve) => waiting.push(resolve)),
  };
}

describe('wire: binary and non-UTF-8 frames', () => {
  it('refuses a binary frame through onInvalidFrame (E_SCHEMA) and never hands it on as a command', async () => {
    const peer = await rawPeer();
    const t = makeClient(peer.url);
    cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
    const commands: CommandMessage[] = [];
    const invalid: { commandId: string | null; code: string; bytes: number }[] = [];
    t.client.onCommand((m) => commands.push(m));
    t.client.onInvalidFrame(({ commandId, error, bytes }) =>
      invalid.push({ commandId, code: error.code, bytes }),
    );
    const connected = t.next('link:connected');
    const socket = peer.connected();
    t.client.start();
    await connected;
    const ws = await socket;
    const frame = JSON.stringify({
      type: 'command',
      envelope: { id: 'cmd-bin', kind: 'check' },
      signature: { alg: 'ed25519', keyId: 'k', value: 'AAAA' },
    });
    ws.send(Buffer.from(frame, 'utf8'), { binary: true });
    ws.send(frame); // the same as text is handed on (then verified by the agent)
    await expect.poll(() => commands.length, { timeout: 5000 }).toBe(1);
    expect(invalid).toEqual([{ commandId: null, code: 'E_SCHEMA', bytes: frame.length }]);
    expect(t.client.connected).toBe(true);
  });

  it('fails the connection with 1007 on a text frame that is not UTF-8, and reconnects', async () => {
    const peer = await rawPeer();
    const t = makeClient(peer.url);
    cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
    const invalid: unknown[] = [];
    t.client.onInvalidFrame((r) => invalid.push(r));
    const connected = t.next('link:connected');
    const socket = peer.connected();
    t.client.start();
    await connected;
    const ws = await socket;
    const peerClosed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    const second = peer.connected();
    ws.send(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]), { binary: false });
    expect(await peerClosed).toBe(1007);
    await second;
    expect(invalid).toEqual([]);
  });
});

describe('dead peer detection', () => {
  it('terminates and reconnects when the peer stops answering pings', async () => {
    // A control plane that completes the handshake and welcomes, but never answers a ping.
    const peer = await rawPeer({ autoPong: false });
    const t = makeClient(peer.url, { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 200 });
    cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
    const first = peer.connected();
    const connected = t.next('link:connected');
    const disconnected = t.next('link:disconnected');
    t.client.start();
    await first;
    const second = peer.connected();
    await connected;
    const d = await disconnected;
    expect(d.code).toBe(1006);
    expect(t.lines.join('\n')).toContain('control plane unresponsive');
    await second;
    expect(peer.connections).toHaveLength(2);
  });

  it('gives up on a peer that accepts the upgrade but never sends welcome', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    let connections = 0;
    let secondConnection: () => void = () => undefined;
    const second = new Promise<void>((resolve) => (secondConnection = resolve));
    wss.on('connection', () => {
      connections++;
      if (connections === 2) secondConnection();
    });
    const port = (wss.address() as AddressInfo).port;
    const t = makeClient(`ws://127.0.0.1:${port}/`, {
      heartbeatIntervalMs: 50,
      heartbeatTimeoutMs: 150,
    });
    cleanups.push(async () => {
      await t.client.stop({ flushTimeoutMs: 0 });
      for (const c of wss.clients) c.terminate();
    });
    let connectedEvents = 0;
    t.events.on('link:connected', () => connectedEvents++);
    t.client.start();
    await second;
    expect(connectedEvents).toBe(0);
    expect(t.lines.join('\n')).toContain('no welcome after hello');
  });
});

describe('read backpressure (holdReading)', () => {
  it('leaves frames unread while held, loses none, keeps their order, and the heartbeat spares the peer', async () => {
    const peer = await rawPeer();
    const t = makeClient(peer.url, { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 200 });
    cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
    const cancels: string[] = [];
    t.client.onCancel((id) => cancels.push(id));
    let disconnects = 0;
    t.events.on('link:disconnected', () => disconnects++);
    const reading: boolean[] = [];
    t.events.on('link:reading', (e) => reading.push(e.held));

    const connected = t.next('link:connected');
    const socket = peer.connected();
    t.client.start();
    await connected;
    const ws = await socket;

    t.client.holdReading(true);
    t.client.holdReading(true); // idempotent: one event
    expect(t.client.readingIsHeld).toBe(true);
    for (let i = 1; i <= 5; i += 1) ws.send(JSON.stringify({ type: 'cancel', commandId: `c${i}` }));
    // Three heartbeat timeouts: nothing read, and the peer, whose pongs wait unread behind
    // the frames, is not declared dead.
    await new Promise((r) => setTimeout(r, 600));
    expect(cancels).toEqual([]);
    expect(disconnects).toBe(0);
    expect(t.client.connected).toBe(true);
    expect(t.lines.join('\n')).not.toContain('unresponsive');

    t.client.holdReading(false);
    await expect.poll(() => cancels.length, { timeout: 5000 }).toBe(5);
    expect(cancels).toEqual(['c1', 'c2', 'c3', 'c4', 'c5']);
    expect(reading).toEqual([true, false]);
    expect(disconnects).toBe(0);
  });

  it('once released, a peer that stays silent is declared dead as usual', async () => {
    // Welcomes, then never answers a ping.
    const peer = await rawPeer({ autoPong: false });
    const t = makeClient(peer.url, { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 200 });
    cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
    const connected = t.next('link:connected');
    t.client.start();
    await connected;
    let disconnectedAt = 0;
    t.events.on('link:disconnected', () => (disconnectedAt ||= Date.now()));
    t.client.holdReading(true);
    await new Promise((r) => setTimeout(r, 500));
    expect(disconnectedAt).toBe(0);
    const releasedAt = Date.now();
    t.client.holdReading(false);
    await expect.poll(() => disconnectedAt, { timeout: 5000 }).toBeGreaterThan(0);
    // within about one heartbeat timeout of the release
    expect(disconnectedAt - releasedAt).toBeLessThan(1000);
    expect(t.lines.join('\n')).toContain('control plane unresponsive');
  });

  it('outlasts a reconnect: the new connection is not read (not even its welcome) until released', async () => {
    const peer = await rawPeer();
    const t = makeClient(peer.url);
    cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
    let connectedEvents = 0;
    t.events.on('link:connected', () => connectedEvents++);
    const first = peer.connected();
    t.client.start();
    await expect.poll(() => connectedEvents, { timeout: 5000 }).toBe(1);

    t.client.holdReading(true);
    const second = peer.connected();
    (await first).terminate();
    await second;
    await new Promise((r) => setTimeout(r, 300));
    expect(connectedEvents).toBe(1);
    expect(t.client.connected).toBe(false);

    t.client.holdReading(false);
    await expect.poll(() => connectedEvents, { timeout: 5000 }).toBe(2);
    expect(t.client.connected).toBe(true);
  });
});

describe('send backpressure (a control plane that stops reading)', () => {
  const KIB = 1024;
  const BOUND = 1024 * KIB;
  /** A result whose frame is about `bytes` long. */
  function bigResult(commandId: string, bytes = 100 * KIB): ReturnType<typeof result> {
    const r = result(commandId);
    return {
      ...r,
      output: { ok: true, checks: [{ name: 'pad', ok: true, detail: 'x'.repeat(bytes) }] },
    };
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('stops reading and keeps results in the outbox above the bound; the heartbeat drops the peer', async () => {
    const peer = await rawPeer();
    const t = makeClient(peer.url, {
      heartbeatIntervalMs: 100,
      heartbeatTimeoutMs: 1500,
      maxSendBufferBytes: BOUND,
    });
    cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
    let handled = 0;
    let maxBuffered = 0;
    const sample = (): void => {
      maxBuffered = Math.max(maxBuffered, t.client.bufferedBytes);
    };
    const sampler = setInterval(sample, 2);
    cleanups.push(() => Promise.resolve(clearInterval(sampler)));
    // As the agent does for a duplicate of a finished, acknowledged command: its result again.
    t.client.onCancel((id) => {
      handled += 1;
      void t.client.sendResult(bigResult(id)).then(sample);
    });
    const sending: boolean[] = [];
    t.events.on('link:sending', (e) => sending.push(e.held));
    let disconnects = 0;
    t.events.on('link:disconnected', () => disconnects++);

    const connected = t.next('link:connected');
    const socket = peer.connected();
    const rss0 = process.memoryUsage().rss;
    t.client.start();
    await connected;
    const ws = await socket;
    ws.pause(); // the control plane stops reading; it still sends

    // 600 paced duplicate + ack pairs: about 60 MiB of results if all were answered.
    const n = 600;
    for (let i = 0; i < n && disconnects === 0; i += 1) {
      ws.send(JSON.stringify({ type: 'cancel', commandId: `dup-${i}` }));
      // the ack of an earlier one (one in the same read would find its result unsent)
      if (i >= 50) ws.send(JSON.stringify({ type: 'result-ack', commandId: `dup-${i - 50}` }));
      if (i % 20 === 19) await sleep(2);
    }
    await sleep(300);
    expect(maxBuffered).toBeLessThan(BOUND + 110 * KIB);
    await expect.poll(() => sending[0], { timeout: 5000 }).toBe(true);
    const handledWhenHeld = handled;
    const holdEvents = sending.length;
    await sleep(500);
    // reading is held: no more duplicates read, nothing more piled into the socket (unless
    // the kernel's socket buffers took some and the hold was lifted meanwhile)
    if (disconnects === 0 && sending.length === holdEvents) expect(handled).toBe(handledWhenHeld);
    expect(handled).toBeLessThan(n);
    expect(maxBuffered).toBeGreaterThan(0);
    expect(maxBuffered).toBeLessThan(BOUND + 110 * KIB);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(150 * 1024 * KIB);

    // the peer that takes nothing is dropped within about a heartbeat timeout
    await expect.poll(() => disconnects, { timeout: 5000 }).toBeGreaterThan(0);
    expect(t.lines.join('\n')).toContain('took nothing the agent sent');
    expect(sending[0]).toBe(true);
  });

  it('sends every held result, once and in order, when the peer reads again', async () => {
    const peer = await rawPeer();
    const t = makeClient(peer.url, {
      heartbeatIntervalMs: 100,
      heartbeatTimeoutMs: 5000,
      maxSendBufferBytes: BOUND / 2,
    });
    cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
    let disconnects = 0;
    t.events.on('link:disconnected', () => disconnects++);
    const connected = t.next('link:connected');
    const socket = peer.connected();
    t.client.start();
    await connected;
    const ws = await socket;
    const received: string[] = [];
    ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString('utf8')) as { type: string; commandId?: string };
      if (m.type === 'result' && m.commandId !== undefined) received.push(m.commandId);
    });
    ws.pause();

    const ids = Array.from({ length: 100 }, (_, i) => `r-${i}`);
    let maxBuffered = 0;
    for (const id of ids) {
      await t.client.sendResult(bigResult(id));
      maxBuffered = Math.max(maxBuffered, t.client.bufferedBytes);
    }
    expect(t.client.sendIsHeld).toBe(true);
    expect(t.client.unsentResults).toBeGreaterThan(0);
    expect(t.outbox.size).toBe(100);
    expect(maxBuffered).toBeLessThan(BOUND / 2 + 110 * KIB);

    ws.resume();
    await expect.poll(() => received.length, { timeout: 10_000 }).toBe(100);
    expect(received).toEqual(ids);
    expect(t.client.sendIsHeld).toBe(false);
    expect(t.client.unsentResults).toBe(0);
    expect(disconnects).toBe(0);
  });
});
