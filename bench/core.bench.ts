/**
 * Core benchmark: what the agent itself adds to a command, with a no-op driver.
 *
 * Path measured: signed command frame → loopback WebSocket → frame parse → Ed25519
 * verify → dispatcher queue → `test` driver (returns at once) → result → outbox →
 * WebSocket → control plane.
 *
 * The agent runs in a child process (this same file with LATCHKEY_BENCH_CHILD=1: the
 * real agent wiring, plus the `test` driver), so its RSS is its own; the reference
 * control plane runs here. Reported:
 * - unloaded latency: one command at a time, send → result, p50/p99, once the agent is
 *   warm (after a burst and BENCH_SEQ_WARMUP commands one at a time, whose own figures
 *   are printed as well: a command alone takes a path the burst does not, and until V8
 *   has optimized it its compiler threads compete with the agent and the peer);
 * - burst: 20,000 pre-signed commands sent at once: commands/s (first send → last
 *   result) and send → result p50/p99 under that load (mostly queueing);
 * - agent RSS idle (once V8's memory reducer has shrunk the heap loading grew, at most 20 s
 *   after the agent connected; the figure at 1.5 s is printed too), at once / 2 s / 10 s
 *   after the burst, and its peak (VmHWM);
 * - CPU per command during the burst: the agent's main thread, its other threads (the
 *   signature workers) and this process (the peer), from /proc and `process.cpuUsage`:
 *   on a shared machine these hold better than commands/s. With 2 cores the burst rate
 *   can reach at most 2 s / (the sum of the three) per second;
 * - where the unloaded tail comes from: each command slower than 1 ms is split at the
 *   agent's own timestamps (frame read, result sent, result written to the socket) and
 *   matched with the agent's GC pauses (reported by the child over IPC) and with the
 *   same-run reference of a bare loopback WebSocket echo (a child that answers each
 *   command at once, without any check): what the echo shows too is the machine
 *   (scheduling), not the agent. The agent's CPU per command one at a time is printed
 *   too (its main thread, in the kernel, and each other thread).
 *
 * Knobs: BENCH_BURST (default 20000), BENCH_SEQUENTIAL (default 2000), BENCH_SEQ_WARMUP
 * (commands one at a time before those are measured, default 3000), BENCH_IDLE_SETTLE_MS
 * (longest wait for the idle RSS, default 20000 ms after the agent connected), and
 * BENCH_CPU_PROF=<dir> to write a V8 CPU profile of the agent process, BENCH_HEAP_PROF=<dir>
 * a V8 sampling heap profile (what is live when it is written, by function),
 * BENCH_ALLOC_PROF=<file> a sampling profile of everything allocated (collected objects
 * included: what the GC has to deal with), BENCH_DUMP=<file> the unloaded run's spans (peer
 * and agent timestamps, GC pauses) as JSON, BENCH_ECHO_SPIN_MS=<ms> an echo that first
 * busy-waits that long (as slow as the agent's turnaround), BENCH_NODE_ARGS extra node
 * flags for the agent
 * (e.g. `--trace-gc`, which NODE_OPTIONS does not take). The agent's own
 * settings pass through: LATCHKEY_VERIFY_WORKERS, LATCHKEY_HEAP_GROWING_PERCENT.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, randomUUID, sign, verify } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { readdirSync } from 'node:fs';
import { Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { createAgent } from '../src/agent.js';
import { applyHeapGrowing } from '../src/cli/heap.js';
import { loadConfig } from '../src/config/index.js';
import {
  generateSigningKeyPair,
  parsePrivateKey,
  signEnvelope,
  type SigningKeyPair,
} from '../src/protocol/index.js';
import { harnessEnv } from '../test/helpers/agent-harness.js';
import { createTestDriver, TEST_DRIVER_TYPE } from '../test/helpers/test-driver.js';
import { PROC_TICK_MS, histogram, loadLine, percentile, procStat } from './machine.js';

/** NODE_OPTIONS of the container image (the Dockerfile's ENV), given to the agent here. */
function imageNodeOptions(): string {
  const dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8');
  const m = /NODE_OPTIONS="([^"]*)"/.exec(dockerfile);
  if (m?.[1] === undefined)
    throw new Error('Dockerfile: no NODE_OPTIONS="…" to run the agent with');
  return m[1];
}

const BURST = Number(process.env.BENCH_BURST ?? 20_000);
const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 2_000);
const WARMUP = 1_000;
/** Commands sent one at a time before the unloaded latency is measured (BENCH_SEQ_WARMUP). */
const SEQ_WARMUP = Number(process.env.BENCH_SEQ_WARMUP ?? 3_000);
/** Longest wait for the idle RSS, ms after the agent connected (BENCH_IDLE_SETTLE_MS). */
const IDLE_SETTLE_MS = Math.max(1500, Number(process.env.BENCH_IDLE_SETTLE_MS ?? 20_000));

// ---------------------------------------------------------------------------------------
// child: the agent

/**
 * Time spent inside the agent per command, as [its socket's 'message' event for a command,
 * its send of the result, the socket write that carries the result] (epoch ms), served to
 * the parent over IPC: what the agent's own code and event loop take (and how long the
 * result waited in the corked socket), without the loopback hops and the wake-ups of
 * either process.
 */
function timeInsideAgent(): () => [number, number, number][] {
  const spans: [number, number, number][] = [];
  let arrived: number | undefined;
  const proto = WebSocket.prototype as unknown as {
    emit: (event: string | symbol, ...args: unknown[]) => boolean;
    send: (data: unknown, ...rest: unknown[]) => void;
  };
  const emit = proto.emit;
  const send = proto.send;
  proto.emit = function (this: unknown, event, ...args) {
    if (event === 'message' && arrived === undefined) {
      const data = args[0];
      if (Buffer.isBuffer(data) && data.toString('latin1', 0, 16) === '{"type":"command') {
        arrived = performance.now();
      }
    }
    return emit.call(this, event, ...args);
  };
  let sentAt: number | undefined;
  proto.send = function (this: unknown, data, ...rest) {
    if (typeof data === 'string' && data.startsWith('{"type":"result"') && arrived !== undefined) {
      sentAt = performance.now();
    }
    send.call(this, data, ...rest);
  };
  const sock = Socket.prototype as unknown as {
    _writev: (...a: unknown[]) => unknown;
    _write: (...a: unknown[]) => unknown;
  };
  const wv = sock._writev;
  const w = sock._write;
  const atWrite = (): void => {
    if (sentAt !== undefined && arrived !== undefined) {
      const now = performance.now();
      spans.push([
        performance.timeOrigin + arrived,
        performance.timeOrigin + sentAt,
        performance.timeOrigin + now,
      ]);
      arrived = undefined;
      sentAt = undefined;
    }
  };
  sock._writev = function (this: unknown, ...a: unknown[]) {
    atWrite();
    return wv.apply(this, a);
  };
  sock._write = function (this: unknown, ...a: unknown[]) {
    atWrite();
    return w.apply(this, a);
  };
  return () => spans.splice(0);
}

/** GC pauses of this process (epoch ms), served to the parent over IPC. */
function reportGcOverIpc(): void {
  const inside = timeInsideAgent();
  const pauses: { at: number; ms: number; kind: number }[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind ?? 0;
      pauses.push({ at: performance.timeOrigin + e.startTime, ms: e.duration, kind });
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  process.on('message', (m: unknown) => {
    if (m === 'gc') process.send?.({ gc: pauses.splice(0), inside: inside() });
    if (m === 'mem') process.send?.({ mem: process.memoryUsage() });
    if (m === 'mem-gc') {
      // A full collection first (diagnostic only, after the measurements): what is live.
      setFlagsFromString('--expose-gc');
      (runInNewContext('gc') as () => void)();
      process.send?.({ mem: process.memoryUsage() });
    }
  });
  // The IPC channel must not keep a finished agent alive.
  process.channel?.unref();
}

/** The echo reference: a bare WebSocket peer that answers each command at once. */
async function echoChild(): Promise<void> {
  const spinMs = Number(process.env.BENCH_ECHO_SPIN_MS ?? 0);
  const ws = new WebSocket(process.env.LATCHKEY_CONTROL_PLANE_URL ?? '', {
    headers: { authorization: `Bearer ${process.env.LATCHKEY_CONNECTOR_TOKEN ?? ''}` },
    perMessageDeflate: false,
  });
  ws.on('open', () => ws.send(JSON.stringify({ type: 'hello' })));
  ws.on('message', (data) => {
    const msg = JSON.parse((data as Buffer).toString('utf8')) as {
      type: string;
      envelope?: { id: string };
    };
    if (msg.type !== 'command' || msg.envelope === undefined) return;
    const until = performance.now() + spinMs;
    while (performance.now() < until) {
      // busy: as long as the agent's median turnaround
    }
    ws.send(
      JSON.stringify({
        type: 'result',
        commandId: msg.envelope.id,
        kind: 'discover',
        status: 'ok',
      }),
    );
  });
  await new Promise<void>((resolve) => process.once('SIGTERM', resolve));
  ws.terminate();
  process.exit(0);
}

/**
 * BENCH_ALLOC_PROF=<file>: a sampling heap profile of everything the agent allocates,
 * collected objects included (what the garbage collector has to deal with), written at
 * stop. `--heap-prof` (BENCH_HEAP_PROF) shows only what is still live when it is written.
 */
async function allocationProfile(file: string): Promise<() => Promise<void>> {
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  } as never);
  return async () => {
    const { profile } = (await session.post('HeapProfiler.stopSampling')) as { profile: unknown };
    writeFileSync(file, JSON.stringify(profile));
  };
}

async function child(): Promise<void> {
  reportGcOverIpc();
  const stopProfile =
    process.env.BENCH_ALLOC_PROF === undefined
      ? undefined
      : await allocationProfile(process.env.BENCH_ALLOC_PROF);
  const config = loadConfig({ env: process.env });
  // As `latchkey run` does at start.
  applyHeapGrowing(config.heapGrowingPercent);
  const driver = createTestDriver({ record: false });
  const agent = await createAgent({
    config,
    logger: pino({ level: 'silent' }),
    driverFactories: { [TEST_DRIVER_TYPE]: driver.factory },
  });
  process.once('SIGTERM', () => {
    void agent
      .stop('bench done')
      .then(() => stopProfile?.())
      .then(() => process.exit(0));
  });
  await agent.start();
}

// ---------------------------------------------------------------------------------------
// parent: control plane and measurements

/**
 * The agent child runs as compiled JavaScript on plain node, as in production, not
 * through tsx (whose transpiler would add its own memory and CPU to what is measured).
 * The whole project (src, the test driver, this file) is compiled once into .bench-build/.
 */
function compiledSelf(): string {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const outDir = join(root, '.bench-build');
  execFileSync(
    process.execPath,
    [
      join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      join(root, 'tsconfig.json'),
      '--noEmit',
      'false',
      '--sourceMap',
      'false',
      '--outDir',
      outDir,
    ],
    { stdio: 'inherit' },
  );
  return join(outDir, 'bench', 'core.bench.js');
}

function rssKb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/**
 * CPU time (ms) of a process's threads from /proc: its main thread, all the others, and
 * each of the others by `name:tid` (Node 20 names them all `node`; the signature worker is
 * the one with most CPU, V8's GC helpers the next).
 */
function cpuMs(pid: number): {
  main: number;
  mainSys: number;
  others: number;
  byName: Map<string, number>;
} {
  let main = 0;
  let mainSys = 0;
  let others = 0;
  const byName = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = procStat(`/proc/${pid}/task/${tid}/stat`);
    if (stat === undefined) continue; // a thread that ended meanwhile
    const { name, fields: f } = stat;
    const ms = (Number(f[11]) + Number(f[12])) * PROC_TICK_MS; // utime + stime
    if (tid === String(pid)) {
      main += ms;
      mainSys += Number(f[12]) * PROC_TICK_MS;
    } else {
      others += ms;
      byName.set(`${name}:${tid}`, ms);
    }
  }
  return { main, mainSys, others, byName };
}

/** The agent's other threads' CPU (ms) between two `cpuMs` readings, busiest first. */
function threadDeltas(
  before: ReturnType<typeof cpuMs>,
  after: ReturnType<typeof cpuMs>,
): (readonly [string, number])[] {
  return [...after.byName]
    .map(([name, t]) => [name, t - (before.byName.get(name) ?? 0)] as const)
    .filter(([, t]) => t > 0)
    .sort((a, b) => b[1] - a[1]);
}

/** CPU milliseconds spread over `commands`, as µs per command. */
const perCommand = (ms: number, commands: number): string =>
  `${((ms * 1000) / commands).toFixed(0)} µs`;

/** The agent child's GC pauses since the last call (over IPC). */
function gcPauses(agent: ChildProcess): Promise<{
  gc: { at: number; ms: number; kind: number }[];
  inside: [number, number, number][];
}> {
  return new Promise((resolve) => {
    const on = (m: unknown): void => {
      const r = m as {
        gc?: { at: number; ms: number; kind: number }[];
        inside?: [number, number, number][];
      };
      if (r.gc === undefined) return;
      agent.off('message', on);
      resolve({ gc: r.gc, inside: r.inside ?? [] });
    };
    agent.on('message', on);
    agent.send('gc');
  });
}

/** The agent child's `process.memoryUsage()` over IPC (after a forced full GC with `afterGc`). */
function memoryOf(agent: ChildProcess, afterGc = false): Promise<NodeJS.MemoryUsage> {
  return new Promise((resolve) => {
    const on = (m: unknown): void => {
      const mem = (m as { mem?: NodeJS.MemoryUsage }).mem;
      if (mem === undefined) return;
      agent.off('message', on);
      resolve(mem);
    };
    agent.on('message', on);
    agent.send(afterGc ? 'mem-gc' : 'mem');
  });
}

function formatMemory(mem: NodeJS.MemoryUsage): string {
  const f = (n: number): string => (n / 1048576).toFixed(1);
  return `rss ${f(mem.rss)}, V8 heap ${f(mem.heapUsed)} used of ${f(mem.heapTotal)}, external ${f(mem.external)} (array buffers ${f(mem.arrayBuffers)}) MiB`;
}

/** The same, as one line of MiB. */
async function memoryLine(agent: ChildProcess, afterGc = false): Promise<string> {
  return formatMemory(await memoryOf(agent, afterGc));
}

/** Send → result of `frames` one at a time: latencies (ms) and [start, end] epoch ms. */
async function oneAtATime(
  cp: BenchPeer,
  list: { id: string; frame: string }[],
): Promise<{ lat: number[]; spans: [number, number][] }> {
  const lat: number[] = [];
  const spans: [number, number][] = [];
  for (const f of list) {
    const t0 = performance.now();
    cp.send(f.frame);
    await cp.all([f.id]);
    const t1 = cp.time(f.id);
    lat.push(t1 - t0);
    spans.push([performance.timeOrigin + t0, performance.timeOrigin + t1]);
  }
  return { lat, spans };
}

const mib = (kb: number): string => `${(kb / 1024).toFixed(1)} MiB`;

const ms = (v: number): string => `${v.toFixed(2)} ms`;
const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));

/**
 * The control plane of this benchmark: a lean loopback peer that does only what any
 * control plane must (check the bearer token, answer hello with welcome, read each
 * result and ack it), so the figures are what the agent adds, not the cost of the
 * reference control plane's own validation and bookkeeping. It writes as a control plane
 * with many messages to send would: the burst's commands a few dozen per write, and the
 * acks of one event-loop turn in one write (every frame still parsed, every result acked).
 */
class BenchPeer {
  private readonly at = new Map<string, number>();
  readonly failures: string[] = [];
  private waiting: { ids: Set<string>; resolve: () => void } | undefined;
  private socket: WebSocket | undefined;
  private tcp: Duplex | undefined;
  private corked = false;
  private helloSeen: (() => void) | undefined;
  readonly hello: Promise<void>;

  private constructor(
    private readonly server: WebSocketServer,
    readonly url: string,
  ) {
    this.hello = new Promise((resolve) => (this.helloSeen = resolve));
  }

  static async start(token: string): Promise<BenchPeer> {
    const server = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      verifyClient: (info: { req: IncomingMessage }) =>
        info.req.headers.authorization === `Bearer ${token}`,
    });
    await new Promise<void>((resolve) => server.once('listening', resolve));
    const address = server.address() as AddressInfo;
    const peer = new BenchPeer(server, `ws://127.0.0.1:${address.port}/`);
    server.on('connection', (ws, req) => peer.attach(ws, req.socket));
    return peer;
  }

  private attach(ws: WebSocket, socket: Duplex): void {
    this.socket = ws;
    this.tcp = socket;
    ws.on('message', (data) => {
      const msg = JSON.parse((data as Buffer).toString('utf8')) as {
        type: string;
        commandId?: string;
        status?: string;
        error?: { code?: string };
      };
      if (msg.type === 'hello') {
        ws.send(JSON.stringify({ type: 'welcome', serverTime: new Date().toISOString() }));
        this.helloSeen?.();
      } else if (msg.type === 'result' && msg.commandId !== undefined) {
        this.arrived(msg.commandId, msg.status === 'ok' ? undefined : (msg.error?.code ?? '?'));
        // The acks of one turn leave in one write, as a control plane would batch them.
        this.corkForThisTurn();
        ws.send(`{"type":"result-ack","commandId":${JSON.stringify(msg.commandId)}}`);
      } else if (msg.type === 'rejected') {
        const id = msg.commandId ?? 'unknown';
        this.arrived(id, msg.error?.code ?? '?');
      }
    });
  }

  private arrived(id: string, failure: string | undefined): void {
    this.at.set(id, performance.now());
    if (failure !== undefined) this.failures.push(`${id}: ${failure}`);
    const w = this.waiting;
    if (w) {
      w.ids.delete(id);
      if (w.ids.size === 0) {
        this.waiting = undefined;
        w.resolve();
      }
    }
  }

  send(frame: string): void {
    if (!this.socket) throw new Error('no agent connected');
    this.socket.send(frame);
  }

  /** Sends many frames, a few dozen per write (as a control plane sending a backlog would). */
  sendAll(frames: readonly string[], each?: (i: number) => void): void {
    const ws = this.socket;
    const tcp = this.tcp;
    if (!ws || !tcp) throw new Error('no agent connected');
    for (let i = 0; i < frames.length; i += 64) {
      tcp.cork();
      for (let j = i; j < Math.min(i + 64, frames.length); j++) {
        each?.(j);
        ws.send(frames[j] ?? '');
      }
      tcp.uncork();
    }
  }

  private corkForThisTurn(): void {
    const tcp = this.tcp;
    if (tcp === undefined || this.corked) return;
    this.corked = true;
    tcp.cork();
    setImmediate(() => {
      this.corked = false;
      tcp.uncork();
    });
  }

  time(id: string): number {
    const t = this.at.get(id);
    if (t === undefined) throw new Error(`no result for ${id}`);
    return t;
  }

  all(ids: string[]): Promise<void> {
    const missing = new Set(ids.filter((id) => !this.at.has(id)));
    if (missing.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiting = { ids: missing, resolve };
    });
  }

  close(): Promise<void> {
    for (const client of this.server.clients) client.terminate();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * The machine's reference for the core figures: raw Ed25519 verifications per second on
 * one thread (`crypto.verify` in a loop, nothing else), over the canonical bytes of a
 * command like the burst's, for about `seconds`.
 */
function rawVerifyRate(signing: SigningKeyPair, seconds = 1.5): { wall: number; cpu: number } {
  const key = parsePrivateKey(signing.privateKeyPem);
  const pub = createPublicKey(key);
  const data = Buffer.from(frames(1, 'bench-connector', signing)[0]?.frame ?? '', 'utf8');
  const sig = sign(null, data, key);
  let n = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const until = t0 + seconds * 1000;
  while (performance.now() < until) {
    for (let i = 0; i < 200; i++) if (verify(null, data, pub, sig)) n += 1;
  }
  const c = process.cpuUsage(c0);
  // Per second of wall time (the target's reference), and per second of CPU time (what
  // holds when other processes share the cores).
  return {
    wall: n / ((performance.now() - t0) / 1000),
    cpu: n / ((c.user + c.system) / 1e6),
  };
}

function frames(
  n: number,
  connectorId: string,
  signing: SigningKeyPair,
): { id: string; frame: string }[] {
  const key = parsePrivateKey(signing.privateKeyPem);
  const now = Date.now();
  const out: { id: string; frame: string }[] = [];
  for (let i = 0; i < n; i += 1) {
    const envelope: Record<string, unknown> = {
      id: `bench-${randomUUID()}`,
      kind: 'discover',
      connectorId,
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 10 * 60_000).toISOString(),
      integration: { id: `it-${i % 16}`, type: TEST_DRIVER_TYPE, config: {} },
      params: {},
    };
    out.push({
      id: envelope.id as string,
      frame: JSON.stringify({
        type: 'command',
        envelope,
        signature: signEnvelope(envelope, key, signing.keyId),
      }),
    });
  }
  return out;
}

/** GC pauses of this process (the peer) from now until `stop()`, as epoch-ms spans. */
function peerGcPauses(): { stop: () => { at: number; ms: number }[] } {
  const pauses: { at: number; ms: number }[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      pauses.push({ at: performance.timeOrigin + e.startTime, ms: e.duration });
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return {
    stop: () => {
      obs.disconnect();
      return pauses;
    },
  };
}

/**
 * Where each command of the unloaded run that took ≥ 1 ms lost its time. Its round trip
 * (peer send → peer receive, epoch ms) splits at the agent's own timestamps (frame read,
 * result written) into: before the agent read the frame (loopback, waking the agent,
 * anything the agent's event loop did first), inside the agent, and after it wrote the
 * result (loopback, waking the peer). Each slow command counts under its largest part,
 * and separately when it overlaps a GC pause of the agent or of the peer.
 */
function attributeTail(
  spans: [number, number][],
  inside: [number, number, number][],
  agentGc: { at: number; ms: number }[],
  peerGc: { at: number; ms: number }[],
): string[] {
  if (inside.length !== spans.length) {
    return [
      `  tail attribution: not available (${inside.length} agent spans for ${spans.length} commands)`,
    ];
  }
  const overlaps = (p: { at: number; ms: number }[], a: number, b: number): boolean =>
    p.some((g) => g.at < b && g.at + g.ms > a);
  const parts = {
    before: [] as number[],
    inside: [] as number[],
    toWrite: [] as number[],
    after: [] as number[],
  };
  const largest = { before: 0, inside: 0, toWrite: 0, after: 0 };
  let withAgentGc = 0;
  let withPeerGc = 0;
  let slow = 0;
  spans.forEach(([a, b], i) => {
    if (b - a < 1) return;
    const [x, s, y] = inside[i] ?? [a, a, a];
    slow += 1;
    const part = { before: x - a, inside: s - x, toWrite: y - s, after: b - y };
    parts.before.push(part.before);
    parts.inside.push(part.inside);
    parts.toWrite.push(part.toWrite);
    parts.after.push(part.after);
    const top = (Object.keys(part) as (keyof typeof part)[]).reduce((m, k) =>
      part[k] > part[m] ? k : m,
    );
    largest[top] += 1;
    if (overlaps(agentGc, a, b)) withAgentGc += 1;
    if (overlaps(peerGc, a, b)) withPeerGc += 1;
  });
  const med = (v: number[]): string =>
    ms(
      percentile(
        [...v].sort((p, q) => p - q),
        50,
      ),
    );
  return [
    `  tail attribution (${slow} commands ≥ 1 ms): largest part before the agent read the frame ${largest.before}, inside the agent until it sent the result ${largest.inside}, from that send to its socket write ${largest.toWrite}, after the write ${largest.after}`,
    `    medians of those: before ${med(parts.before)}, inside ${med(parts.inside)}, to the write ${med(parts.toWrite)}, after ${med(parts.after)}; overlapping a GC pause of the agent ${withAgentGc}, of the peer ${withPeerGc}`,
  ];
}

async function parent(): Promise<void> {
  const connectorId = 'bench-connector';
  const token = `tok-${randomUUID()}`;
  const signing = generateSigningKeyPair();
  const cp = await BenchPeer.start(token);
  const arrivals = cp;
  const loadBefore = loadLine();
  // Before the agent starts, so that it competes with nothing of ours.
  const verifyBefore = rawVerifyRate(signing);
  // BENCH_CPU_PROF=<dir>: write a V8 CPU profile of the agent there (see the file header).
  const prof = [
    ...(process.env.BENCH_CPU_PROF
      ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF]
      : []),
    ...(process.env.BENCH_HEAP_PROF
      ? ['--heap-prof', '--heap-prof-dir', process.env.BENCH_HEAP_PROF]
      : []),
  ];
  if (process.env.BENCH_NODE_ARGS) prof.push(...process.env.BENCH_NODE_ARGS.split(' '));
  const self = compiledSelf();

  // The same-run reference for latency: a bare loopback WebSocket echo (no agent).
  const echoPeer = await BenchPeer.start(token);
  const echo = spawn(process.execPath, [self], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...process.env,
      LATCHKEY_BENCH_CHILD: 'echo',
      LATCHKEY_CONTROL_PLANE_URL: echoPeer.url,
      LATCHKEY_CONNECTOR_TOKEN: token,
    },
  });
  let echoLat: number[];
  try {
    await echoPeer.hello;
    await oneAtATime(echoPeer, frames(WARMUP, connectorId, signing));
    echoLat = (await oneAtATime(echoPeer, frames(SEQUENTIAL, connectorId, signing))).lat;
    echoLat.sort((a, b) => a - b);
  } finally {
    echo.kill('SIGTERM');
    await echoPeer.close();
  }

  const agent: ChildProcess = spawn(process.execPath, [...prof, self], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: {
      ...process.env,
      // The agent runs with the node options of the image (Dockerfile), as deployed.
      NODE_OPTIONS: [process.env.NODE_OPTIONS, imageNodeOptions()].filter(Boolean).join(' '),
      ...harnessEnv({ url: cp.url, connectorId, token, signing }),
      LATCHKEY_BENCH_CHILD: '1',
      // Memory only unless the environment names a state directory (bench/delivery.bench.ts
      // measures what the state journal costs).
      LATCHKEY_STATE_DIR: process.env.LATCHKEY_STATE_DIR ?? 'off',
      LATCHKEY_QUEUE_SIZE: String(BURST + WARMUP + 1000),
      LATCHKEY_CONCURRENCY_GLOBAL: '64',
      LATCHKEY_CONCURRENCY_PER_INTEGRATION: '64',
    },
  });
  const pid = agent.pid;
  if (pid === undefined) throw new Error('could not start the agent');
  try {
    await cp.hello;
    await sleep(1500);
    const connected = rssKb(pid);
    const connectedMem = await memoryOf(agent);
    // Idle is what an agent that waits for commands holds: V8 keeps the heap it grew while
    // loading (the young generation at 8 MiB with a 4 MiB semi-space) until its memory
    // reducer runs, no sooner than 8 s after start (--gc-memory-reducer-start-delay-ms),
    // and shrinks it (the young generation to 1 MiB). Read once V8's heap has shrunk, or
    // at IDLE_SETTLE_MS if it has not by then.
    const shrunk = (mem: NodeJS.MemoryUsage): boolean =>
      mem.heapTotal < connectedMem.heapTotal * 0.8;
    const settleStart = performance.now();
    let idleMem = connectedMem;
    while (!shrunk(idleMem) && performance.now() - settleStart < IDLE_SETTLE_MS - 1500) {
      await sleep(500);
      idleMem = await memoryOf(agent);
    }
    const idle = rssKb(pid);
    const idleAfterS = (1.5 + (performance.now() - settleStart) / 1000).toFixed(1);
    const idleShrunk = shrunk(idleMem);

    // warm-up
    const warm = frames(WARMUP, connectorId, signing);
    for (const f of warm) cp.send(f.frame);
    await arrivals.all(warm.map((f) => f.id));

    // Warm-up one at a time: a command that arrives alone is checked inline (see
    // VerifierPool), a path the burst above does not take. Until V8 has optimized it, its
    // compiler threads run next to the agent and the peer (about 120 µs of CPU per
    // command here) and the tail shows that, not a warm agent. Measured and printed too.
    const jitWarm = await oneAtATime(cp, frames(SEQ_WARMUP, connectorId, signing));
    const jitLat = [...jitWarm.lat].sort((a, b) => a - b);

    // unloaded latency
    const seq = frames(SEQUENTIAL, connectorId, signing);
    await gcPauses(agent); // forget the warm-up's
    const peerGc = peerGcPauses();
    const seqCpu0 = cpuMs(pid);
    const { lat: seqLat, spans } = await oneAtATime(cp, seq);
    const seqCpu1 = cpuMs(pid);
    const seqThreads = threadDeltas(seqCpu0, seqCpu1);
    const peerPauses = peerGc.stop();
    const { gc, inside: insideSpans } = await gcPauses(agent);
    const inside = insideSpans.map(([x, , y]) => y - x).sort((a, b) => a - b);
    const tailParts = attributeTail(spans, insideSpans, gc, peerPauses);
    if (process.env.BENCH_DUMP) {
      writeFileSync(process.env.BENCH_DUMP, JSON.stringify({ spans, insideSpans, gc, peerPauses }));
    }
    const slow = spans.filter(([a, b]) => b - a >= 1);
    const slowWithGc = slow.filter(([a, b]) => gc.some((g) => g.at < b && g.at + g.ms > a));
    const gcInSeq = gc.filter((g) => g.at >= (spans[0]?.[0] ?? 0));
    const lat = [...seqLat].sort((a, b) => a - b);

    // burst
    const burst = frames(BURST, connectorId, signing);
    const sentAt = new Map<string, number>();
    const cpuAgent0 = cpuMs(pid);
    const cpuPeer0 = process.cpuUsage();
    const tStart = performance.now();
    cp.sendAll(
      burst.map((f) => f.frame),
      (i) => sentAt.set(burst[i]?.id ?? '', performance.now()),
    );
    await arrivals.all(burst.map((f) => f.id));
    const tEnd = Math.max(...burst.map((f) => arrivals.time(f.id)));
    const cpuAgent1 = cpuMs(pid);
    const cpuPeer = process.cpuUsage(cpuPeer0);
    const perCmd = (ms: number): string => perCommand(ms, BURST);
    const agentMainMs = cpuAgent1.main - cpuAgent0.main;
    const agentOtherMs = cpuAgent1.others - cpuAgent0.others;
    const peerMs = (cpuPeer.user + cpuPeer.system) / 1000;
    const after = rssKb(pid);
    // The peak is V8's high-water mark; what the agent keeps shows once it has been idle.
    await sleep(2_000);
    const after2s = rssKb(pid);
    await sleep(8_000);
    const after10s = rssKb(pid);
    const after10sMem = await memoryLine(agent);
    // Last: a forced full GC changes what the agent holds.
    const liveMem = await memoryLine(agent, true);
    const burstLat = burst
      .map((f) => arrivals.time(f.id) - (sentAt.get(f.id) ?? tStart))
      .sort((a, b) => a - b);
    const rate = BURST / ((tEnd - tStart) / 1000);
    // Again once the agent is idle: the reference is the better of the two, so that a
    // busy moment of the shared machine does not flatter the ratio.
    const verifyAfter = rawVerifyRate(signing);
    const verifyRate = Math.max(verifyBefore.wall, verifyAfter.wall);
    const verifyCpuRate = Math.max(verifyBefore.cpu, verifyAfter.cpu);

    if (arrivals.failures.length > 0) {
      throw new Error(
        `${arrivals.failures.length} commands failed, e.g. ${arrivals.failures[0] ?? ''}`,
      );
    }
    console.log(
      'core: signed command → verify → queue → no-op driver → result, loopback WebSocket',
    );
    console.log(`  machine: at the start ${loadBefore}; at the end ${loadLine()}`);
    console.log(
      `  unloaded latency (${SEQUENTIAL} one at a time)  p50 ${ms(percentile(lat, 50))}  p99 ${ms(percentile(lat, 99))}  max ${ms(lat[lat.length - 1] ?? NaN)}  (target p99 < 2 ms)`,
    );
    for (const line of histogram(lat, 0.25, 8)) console.log(line);
    console.log(
      `  before it, the first ${SEQ_WARMUP} one at a time after start and burst warm-up (V8 still optimizing that path)  p50 ${ms(percentile(jitLat, 50))}  p99 ${ms(percentile(jitLat, 99))}  max ${ms(jitLat[jitLat.length - 1] ?? NaN)}`,
    );
    const gcMs = gcInSeq.reduce((n, g) => n + g.ms, 0);
    const gcMax = gcInSeq.reduce((n, g) => Math.max(n, g.ms), 0);
    console.log(
      `  tail: ${slow.length} commands ≥ 1 ms, ${slowWithGc.length} of them during an agent GC pause (${gcInSeq.length} pauses, ${gcMs.toFixed(1)} ms in all, longest ${gcMax.toFixed(2)} ms)`,
    );
    for (const line of tailParts) console.log(line);
    console.log(
      `  CPU per command one at a time: agent main thread ${perCommand(seqCpu1.main - seqCpu0.main, SEQUENTIAL)} (in the kernel ${perCommand(seqCpu1.mainSys - seqCpu0.mainSys, SEQUENTIAL)}); other threads (name:tid) ${seqThreads.map(([n, t]) => `${n} ${perCommand(t, SEQUENTIAL)}`).join(', ')}`,
    );
    console.log(
      `  inside the agent (command frame read → result frame written), same commands  p50 ${ms(percentile(inside, 50))}  p99 ${ms(percentile(inside, 99))}  max ${ms(inside[inside.length - 1] ?? NaN)}`,
    );
    console.log(
      `  reference, bare loopback WebSocket echo (${SEQUENTIAL} one at a time, same run)  p50 ${ms(percentile(echoLat, 50))}  p99 ${ms(percentile(echoLat, 99))}  max ${ms(echoLat[echoLat.length - 1] ?? NaN)}`,
    );
    for (const line of histogram(echoLat, 0.25, 8)) console.log(line);
    console.log(
      `  burst of ${BURST}                       ${rate.toFixed(0)} commands/s  (${((tEnd - tStart) / 1000).toFixed(2)} s)`,
    );
    console.log(
      `  raw Ed25519 verify, one thread        ${verifyRate.toFixed(0)} verifications/s (before the agent ${verifyBefore.wall.toFixed(0)}, after the burst ${verifyAfter.wall.toFixed(0)}); ${verifyCpuRate.toFixed(0)} per CPU-second`,
    );
    console.log(
      `  burst / raw verify                    ${(rate / verifyRate).toFixed(2)}  (target ≥ 0.8)`,
    );
    console.log(
      `  burst send → result                 p50 ${ms(percentile(burstLat, 50))}  p99 ${ms(percentile(burstLat, 99))}`,
    );
    const cores = availableParallelism();
    const ceiling = (cores * 1000 * BURST) / (agentMainMs + agentOtherMs + peerMs);
    console.log(
      `  CPU per command in the burst: agent main thread ${perCmd(agentMainMs)}, agent other threads ${perCmd(agentOtherMs)}, peer ${perCmd(peerMs)}; one raw verify ${(1e6 / verifyCpuRate).toFixed(0)} µs of CPU`,
    );
    const threads = threadDeltas(cpuAgent0, cpuAgent1);
    console.log(
      `    agent other threads, each (name:tid): ${threads.map(([n, t]) => `${n} ${perCmd(t)}`).join(', ')}`,
    );
    console.log(
      `  CPU-bound ceiling of the burst on ${cores} cores (agent + peer): ${ceiling.toFixed(0)} commands/s = ${(ceiling / verifyCpuRate).toFixed(2)} × raw verify per CPU-second (what the ratio reaches when nothing else runs)`,
    );
    console.log(
      `  agent RSS idle ${mib(idle.rss)} ${idleAfterS} s after connecting, ${idleShrunk ? 'once V8 had shrunk its heap' : 'V8 had not shrunk its heap yet'} (target < 80 MiB; at 1.5 s: ${mib(connected.rss)}); after the burst: at once ${mib(after.rss)}, +2 s ${mib(after2s.rss)}, +10 s ${mib(after10s.rss)}; peak ${mib(after10s.hwm)} (target < 150 MiB after the burst; the agent runs with the image's NODE_OPTIONS: ${imageNodeOptions()})`,
    );
    console.log(`  agent memory 1.5 s after connecting: ${formatMemory(connectedMem)}`);
    console.log(`  agent memory idle (${idleAfterS} s after connecting): ${formatMemory(idleMem)}`);
    console.log(`  agent memory 10 s after the burst: ${after10sMem}`);
    console.log(`  agent memory after a forced full GC (what is live): ${liveMem}`);
    console.log(
      `  V8 heap: LATCHKEY_HEAP_GROWING_PERCENT=${process.env.LATCHKEY_HEAP_GROWING_PERCENT ?? '(default)'} (0 = V8's own growth, up to 4× on this host)`,
    );
    console.log(
      `  signature checks: LATCHKEY_VERIFY_WORKERS=${process.env.LATCHKEY_VERIFY_WORKERS ?? '(default: min(2, cores - 1))'} (0 = on the agent's main thread)`,
    );
    console.log(
      '  (agent child: compiled JavaScript on plain node; a lean loopback control-plane peer in this process)',
    );
  } finally {
    agent.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => {
      if (agent.exitCode !== null) r(agent.exitCode);
      else agent.once('exit', (c) => r(c));
    });
    await cp.close();
    if (code !== 0) {
      console.error(`agent exited with ${String(code)}`);
      process.exitCode = 1;
    }
  }
}

if (process.env.LATCHKEY_BENCH_CHILD === '1') {
  await child();
} else if (process.env.LATCHKEY_BENCH_CHILD === 'echo') {
  await echoChild();
} else {
  await parent();
}
