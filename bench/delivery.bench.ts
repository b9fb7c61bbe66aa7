/**
 * Delivery benchmark: the time from a command's end (its result produced) to the control
 * plane receiving that result, without and with a state directory (issue 10 item 4).
 * With a state directory the result is sent only once its journal record is durable
 * (group commit: one write + one fdatasync for every result of an event-loop turn).
 *
 * The agent runs in this process (the harness, `test` driver returning at once) and the
 * reference control plane too; a burst of `check` commands is sent at once, then the
 * same again one at a time. Reported per mode: finish → delivered p50/p99/max under the
 * burst and one at a time, and, with state, the journal's group commits (records per
 * fsync, fsync p50/p99).
 *
 * Knobs: argv[2] or BENCH_DELIVERY_BURST (default 2000), argv[3] or
 * BENCH_DELIVERY_SEQUENTIAL (default 200).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startAgentHarness } from '../test/helpers/agent-harness.js';

const BURST = Number(process.argv[2] ?? process.env.BENCH_DELIVERY_BURST ?? 2_000);
const SEQUENTIAL = Number(process.argv[3] ?? process.env.BENCH_DELIVERY_SEQUENTIAL ?? 200);

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}
const ms = (v: number): string => `${v.toFixed(2)} ms`;

async function run(mode: 'memory' | 'state'): Promise<void> {
  const dir = mode === 'state' ? mkdtempSync(join(tmpdir(), 'latchkey-bench-state-')) : undefined;
  const h = await startAgentHarness({
    env: {
      LATCHKEY_STATE_DIR: dir ?? 'off',
      LATCHKEY_QUEUE_SIZE: String(BURST + 100),
      LATCHKEY_CONCURRENCY_GLOBAL: '64',
      LATCHKEY_CONCURRENCY_PER_INTEGRATION: '64',
    },
  });
  const finishedAt = new Map<string, number>();
  const deliveredAt = new Map<string, number>();
  const fsyncs: { seconds: number; records: number }[] = [];
  h.agent.events.on('command:finished', (e) => finishedAt.set(e.commandId, performance.now()));
  h.agent.events.on('state:fsync', (e) => fsyncs.push(e));
  const integration = h.integration({});
  const arrive = (id: string): Promise<void> =>
    h.cp.waitForResult(id, 120_000).then(() => {
      deliveredAt.set(id, performance.now());
    });
  const latencies = (ids: string[]): number[] =>
    ids
      .map((id) => (deliveredAt.get(id) ?? Number.NaN) - (finishedAt.get(id) ?? Number.NaN))
      .sort((a, b) => a - b);
  try {
    // Burst: every command signed and sent at once.
    const frames = Array.from({ length: BURST }, () => {
      const env = h.envelope('check', {}, { integration });
      return { id: env.id as string, frame: JSON.stringify(h.frame(env)) };
    });
    const waits = frames.map((f) => arrive(f.id));
    for (const f of frames) h.sendRaw(f.frame);
    await Promise.all(waits);
    const burst = latencies(frames.map((f) => f.id));
    const fsyncBurst = fsyncs.splice(0);

    // One at a time.
    const seqIds: string[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      const env = h.envelope('check', {}, { integration });
      const id = env.id as string;
      seqIds.push(id);
      const w = arrive(id);
      h.sendRaw(h.frame(env));
      await w;
    }
    const seq = latencies(seqIds);
    const fsyncSeq = fsyncs.splice(0);

    console.log(`${mode === 'state' ? 'with a state directory' : 'memory only'}:`);
    console.log(
      `  burst of ${BURST}: finish → delivered p50 ${ms(pct(burst, 50))}, p99 ${ms(pct(burst, 99))}, max ${ms(burst[burst.length - 1] ?? Number.NaN)}`,
    );
    console.log(
      `  one at a time (${SEQUENTIAL}): finish → delivered p50 ${ms(pct(seq, 50))}, p99 ${ms(pct(seq, 99))}`,
    );
    if (mode === 'state') {
      const s = (l: typeof fsyncBurst): number[] =>
        l.map((f) => f.seconds * 1000).sort((a, b) => a - b);
      const perCommit = fsyncBurst.map((f) => f.records).sort((a, b) => a - b);
      console.log(
        `  burst group commits: ${fsyncBurst.length} for ${BURST} results (records/commit p50 ${pct(perCommit, 50)}, max ${perCommit[perCommit.length - 1] ?? 0}), fsync p50 ${ms(pct(s(fsyncBurst), 50))}, p99 ${ms(pct(s(fsyncBurst), 99))}`,
      );
      console.log(
        `  one at a time: fsync p50 ${ms(pct(s(fsyncSeq), 50))}, p99 ${ms(pct(s(fsyncSeq), 99))}`,
      );
    }
  } finally {
    await h.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}

console.log(
  `delivery latency (finish → result at the control plane), node ${process.versions.node}`,
);
await run('memory');
await run('state');
