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
 * - unloaded latency: one command at a time, send → result, p50/p99;
 * - burst: 20,000 pre-signed commands sent at once: commands/s (first send → last
 *   result) and send → result p50/p99 under that load (mostly queueing);
 * - agent RSS idle, at once / 2 s / 10 s after the burst, and its peak (VmHWM).
 *
 * Knobs: BENCH_BURST (default 20000), BENCH_SEQUENTIAL (default 2000), and
 * BENCH_CPU_PROF=<dir> to write a V8 CPU profile of the agent process. The agent's own
 * settings pass through: LATCHKEY_VERIFY_WORKERS, LATCHKEY_HEAP_GROWING_PERCENT.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, randomUUID, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { performance } from 'node:perf_hooks';
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
import { histogram, loadLine, percentile } from './machine.js';

const BURST = Number(process.env.BENCH_BURST ?? 20_000);
const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 2_000);
const WARMUP = 1_000;

// ---------------------------------------------------------------------------------------
// child: the agent

async function child(): Promise<void> {
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
    void agent.stop('bench done').then(() => process.exit(0));
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

const mib = (kb: number): string => `${(kb / 1024).toFixed(1)} MiB`;

const ms = (v: number): string => `${v.toFixed(2)} ms`;
const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));

/**
 * The control plane of this benchmark: a lean loopback peer that does only what any
 * control plane must (check the bearer token, answer hello with welcome, read each
 * result and ack it), so the figures are what the agent adds, not the cost of the
 * reference control plane's own validation and bookkeeping.
 */
class BenchPeer {
  private readonly at = new Map<string, number>();
  readonly failures: string[] = [];
  private waiting: { ids: Set<string>; resolve: () => void } | undefined;
  private socket: WebSocket | undefined;
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
    server.on('connection', (ws) => peer.attach(ws));
    return peer;
  }

  private attach(ws: WebSocket): void {
    this.socket = ws;
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
        ws.send(JSON.stringify({ type: 'result-ack', commandId: msg.commandId }));
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
function rawVerifyRate(signing: SigningKeyPair, seconds = 1.5): number {
  const key = parsePrivateKey(signing.privateKeyPem);
  const pub = createPublicKey(key);
  const data = Buffer.from(frames(1, 'bench-connector', signing)[0]?.frame ?? '', 'utf8');
  const sig = sign(null, data, key);
  let n = 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  while (performance.now() < until) {
    for (let i = 0; i < 200; i++) if (verify(null, data, pub, sig)) n += 1;
  }
  return n / ((performance.now() - t0) / 1000);
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
  const prof = process.env.BENCH_CPU_PROF
    ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF]
    : [];
  const agent: ChildProcess = spawn(process.execPath, [...prof, compiledSelf()], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...process.env,
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
    const idle = rssKb(pid);

    // warm-up
    const warm = frames(WARMUP, connectorId, signing);
    for (const f of warm) cp.send(f.frame);
    await arrivals.all(warm.map((f) => f.id));

    // unloaded latency
    const seq = frames(SEQUENTIAL, connectorId, signing);
    const lat: number[] = [];
    for (const f of seq) {
      const t0 = performance.now();
      cp.send(f.frame);
      await arrivals.all([f.id]);
      lat.push(arrivals.time(f.id) - t0);
    }
    lat.sort((a, b) => a - b);

    // burst
    const burst = frames(BURST, connectorId, signing);
    const sentAt = new Map<string, number>();
    const tStart = performance.now();
    for (const f of burst) {
      sentAt.set(f.id, performance.now());
      cp.send(f.frame);
    }
    await arrivals.all(burst.map((f) => f.id));
    const tEnd = Math.max(...burst.map((f) => arrivals.time(f.id)));
    const after = rssKb(pid);
    // The peak is V8's high-water mark; what the agent keeps shows once it has been idle.
    await sleep(2_000);
    const after2s = rssKb(pid);
    await sleep(8_000);
    const after10s = rssKb(pid);
    const burstLat = burst
      .map((f) => arrivals.time(f.id) - (sentAt.get(f.id) ?? tStart))
      .sort((a, b) => a - b);
    const rate = BURST / ((tEnd - tStart) / 1000);
    // Again once the agent is idle: the reference is the better of the two, so that a
    // busy moment of the shared machine does not flatter the ratio.
    const verifyAfter = rawVerifyRate(signing);
    const verifyRate = Math.max(verifyBefore, verifyAfter);

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
      `  burst of ${BURST}                       ${rate.toFixed(0)} commands/s  (${((tEnd - tStart) / 1000).toFixed(2)} s)`,
    );
    console.log(
      `  raw Ed25519 verify, one thread        ${verifyRate.toFixed(0)} verifications/s (before the agent ${verifyBefore.toFixed(0)}, after the burst ${verifyAfter.toFixed(0)})`,
    );
    console.log(
      `  burst / raw verify                    ${(rate / verifyRate).toFixed(2)}  (target ≥ 0.8)`,
    );
    console.log(
      `  burst send → result                 p50 ${ms(percentile(burstLat, 50))}  p99 ${ms(percentile(burstLat, 99))}`,
    );
    console.log(
      `  agent RSS idle ${mib(idle.rss)} (target < 80 MiB); after the burst: at once ${mib(after.rss)}, +2 s ${mib(after2s.rss)}, +10 s ${mib(after10s.rss)}; peak ${mib(after10s.hwm)} (target < 150 MiB after the burst)`,
    );
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
} else {
  await parent();
}
