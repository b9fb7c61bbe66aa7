/**
 * Fairness benchmark: many grantees on many integrations, through the agent's Dispatcher
 * (`src/dispatch`) with its default limits, and the `test` driver answering after a
 * simulated target latency.
 *
 *   npx tsx bench/fairness.bench.ts
 *
 * 500 grantees across 50 integrations (10 each), target latency 20 ms. Reported:
 * 1. throughput: every grantee sends grant then revoke, PAIRS times; commands/s, next to
 *    the ceiling the limits allow (min(global, integrations × perIntegration) / latency);
 * 2. revokes under saturation: the 500 grantees keep one grant each queued or running at
 *    all times (500 outstanding against 16 slots), while a revoke for another grantee
 *    arrives every REVOKE_EVERY ms on a random integration; the revoke's queueing (accepted
 *    → driver call starts) p50/p99/max, against the promise that revokes go first
 *    (target: p99 < 2 × the target latency).
 *
 * Knobs (environment): BENCH_FAIR_PAIRS (default 4), BENCH_FAIR_SECONDS (default 5),
 * BENCH_FAIR_REVOKE_EVERY_MS (default 20); the agent's LATCHKEY_CONCURRENCY_GLOBAL and
 * LATCHKEY_CONCURRENCY_PER_INTEGRATION (defaults 16 and 4, as the agent's).
 */
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { Dispatcher } from '../src/dispatch/dispatcher.js';
import { createDriverRegistry } from '../src/drivers/registry.js';
import type { Driver, DriverFactory } from '../src/drivers/driver.js';
import { AgentEvents } from '../src/events.js';
import type { Envelope, Integration, Result } from '../src/protocol/messages.js';
import { createSealer } from '../src/protocol/seal.js';
import { createTestDriver, TEST_DRIVER_TYPE } from '../test/helpers/test-driver.js';
import { BENCH_TIMEOUTS_MS, histogram, loadLine, percentile } from './machine.js';

const GRANTEES = 500;
const INTEGRATIONS = 50;
const LATENCY_MS = 20;
const PAIRS = Number(process.env.BENCH_FAIR_PAIRS ?? 4);
const SECONDS = Number(process.env.BENCH_FAIR_SECONDS ?? 5);
const REVOKE_EVERY_MS = Number(process.env.BENCH_FAIR_REVOKE_EVERY_MS ?? 20);
const GLOBAL = Number(process.env.LATCHKEY_CONCURRENCY_GLOBAL ?? 16);
const PER_INTEGRATION = Number(process.env.LATCHKEY_CONCURRENCY_PER_INTEGRATION ?? 4);

const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));
const ms = (v: number): string => `${v.toFixed(1)} ms`;

const integrations: Integration[] = Array.from({ length: INTEGRATIONS }, (_, i) => ({
  id: `fair-${String(i).padStart(2, '0')}`,
  type: TEST_DRIVER_TYPE,
  config: { delayMs: LATENCY_MS },
}));

/** Driver call start times by command id (the end of the command's queueing). */
const started = new Map<string, number>();
const control = createTestDriver({ record: false });
const timedFactory: DriverFactory = (services) => {
  const inner: Driver = control.factory(services);
  return {
    ...inner,
    grant: (ctx, params) => {
      started.set(ctx.commandId, performance.now());
      return inner.grant(ctx, params);
    },
    revoke: (ctx, params) => {
      started.set(ctx.commandId, performance.now());
      return inner.revoke(ctx, params);
    },
  };
};

function makeDispatcher(): {
  send: (
    kind: 'grant' | 'revoke',
    integ: Integration,
    email: string,
    ids?: string[],
  ) => Promise<Result>;
  submittedAt: Map<string, number>;
  close: () => Promise<void>;
} {
  const logger = pino({ level: 'silent' });
  const registry = createDriverRegistry(
    { [TEST_DRIVER_TYPE]: timedFactory },
    {
      logger,
      secrets: { resolve: () => Promise.reject(new Error('no secrets in this benchmark')) },
      aws: {
        client: () => {
          throw new Error('no AWS in this benchmark');
        },
      },
      sealer: createSealer({ allowPlaintext: true }),
      tagPrefix: 'latchkey',
      now: () => new Date(),
    },
  );
  const dispatcher = new Dispatcher({
    registry,
    concurrency: { global: GLOBAL, perIntegration: PER_INTEGRATION, perAwsService: 4 },
    queueSize: 10_000,
    timeoutsMs: BENCH_TIMEOUTS_MS,
    events: new AgentEvents(),
    logger,
  });
  const waiting = new Map<string, (r: Result) => void>();
  const submittedAt = new Map<string, number>();
  dispatcher.onResult((r) => {
    const w = waiting.get(r.commandId);
    waiting.delete(r.commandId);
    w?.(r);
  });
  let seq = 0;
  const send = (
    kind: 'grant' | 'revoke',
    integ: Integration,
    email: string,
    ids?: string[],
  ): Promise<Result> => {
    const id = `fair-${kind}-${seq++}`;
    ids?.push(id);
    const now = new Date();
    const grantId = `g-${email}`;
    const resources = [{ type: 'table', id: 'table:demo/public/orders' }];
    const params = { grantId, grantee: { email }, resources, permission: 'read' };
    const envelope = {
      id,
      kind,
      connectorId: 'bench',
      issuedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + 10 * 60_000).toISOString(),
      integration: integ,
      params,
    } as Envelope;
    return new Promise<Result>((resolve, reject) => {
      waiting.set(id, resolve);
      submittedAt.set(id, performance.now());
      const outcome = dispatcher.submit(envelope, id, now);
      if (outcome.status === 'rejected') reject(new Error(outcome.error.code));
    }).then((r) => {
      if (r.status !== 'ok') throw new Error(`${kind} ${id} failed: ${JSON.stringify(r)}`);
      return r;
    });
  };
  return {
    send,
    submittedAt,
    close: async () => {
      await dispatcher.drain(10_000);
      await registry.closeAll();
    },
  };
}

const integrationOf = (g: number): Integration => integrations[g % INTEGRATIONS] as Integration;

async function throughput(): Promise<{ rate: number; seconds: number; p99: number }> {
  const d = makeDispatcher();
  const lat: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: GRANTEES }, async (_, g) => {
      for (let p = 0; p < PAIRS; p++) {
        for (const kind of ['grant', 'revoke'] as const) {
          const s = performance.now();
          await d.send(kind, integrationOf(g), `t${g}@fair.example`);
          lat.push(performance.now() - s);
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  await d.close();
  lat.sort((a, b) => a - b);
  return { rate: (GRANTEES * PAIRS * 2) / seconds, seconds, p99: percentile(lat, 99) };
}

async function revokesUnderLoad(): Promise<{
  queueing: number[];
  grants: number;
  seconds: number;
}> {
  const d = makeDispatcher();
  let stop = false;
  let grants = 0;
  const t0 = performance.now();
  const load = Promise.all(
    Array.from({ length: GRANTEES }, async (_, g) => {
      while (!stop) {
        await d.send('grant', integrationOf(g), `s${g}@fair.example`);
        grants += 1;
      }
    }),
  );
  await sleep(500); // let the queue fill
  const revokes: Promise<Result>[] = [];
  const ids: string[] = [];
  const until = performance.now() + SECONDS * 1000;
  let k = 0;
  while (performance.now() < until) {
    const integ = integrations[Math.floor(Math.random() * INTEGRATIONS)] as Integration;
    revokes.push(d.send('revoke', integ, `r${k++}@fair.example`, ids));
    await sleep(REVOKE_EVERY_MS);
  }
  await Promise.all(revokes);
  stop = true;
  await load;
  const seconds = (performance.now() - t0) / 1000;
  await d.close();
  const queueing = ids
    .map((id) => (started.get(id) ?? NaN) - (d.submittedAt.get(id) ?? NaN))
    .sort((a, b) => a - b);
  return { queueing, grants, seconds };
}

const ceiling = Math.min(GLOBAL, INTEGRATIONS * PER_INTEGRATION) / (LATENCY_MS / 1000);
console.log(
  `fairness: ${GRANTEES} grantees across ${INTEGRATIONS} integrations, test driver with ${LATENCY_MS} ms target latency, Dispatcher limits global ${GLOBAL} / per integration ${PER_INTEGRATION}`,
);
console.log(`  machine: ${loadLine()}`);
const t = await throughput();
console.log(
  `  throughput, ${GRANTEES} × ${PAIRS} grant+revoke pairs   ${t.rate.toFixed(0)} commands/s (${t.seconds.toFixed(2)} s); ceiling the limits allow ${ceiling.toFixed(0)}/s; ratio ${(t.rate / ceiling).toFixed(2)}; send → result p99 ${ms(t.p99)}`,
);
console.log(`  machine: ${loadLine()}`);
const r = await revokesUnderLoad();
console.log(
  `  revokes while grants saturate (${GRANTEES} grants outstanding, ${(r.grants / r.seconds).toFixed(0)} grants/s done): ${r.queueing.length} revokes, queueing (accepted → driver call) p50 ${ms(percentile(r.queueing, 50))}  p99 ${ms(percentile(r.queueing, 99))}  max ${ms(r.queueing[r.queueing.length - 1] ?? NaN)}  (target p99 < ${2 * LATENCY_MS} ms: ${percentile(r.queueing, 99) < 2 * LATENCY_MS ? 'met' : 'NOT met'})`,
);
for (const line of histogram(r.queueing, 0.5, 8)) console.log(line);
console.log(`  machine: ${loadLine()}`);
