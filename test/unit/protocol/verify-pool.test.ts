import { afterEach, describe, expect, it } from 'vitest';
import type { CommandMessage } from '../../../src/protocol/messages.js';
import { ArrivalOrder, VerifierPool, backpressureGate } from '../../../src/protocol/verify-pool.js';
import { VERIFY_WORKER_SOURCE } from '../../../src/protocol/verify-worker.js';
import { createCommandVerifier, type VerifyOutcome } from '../../../src/protocol/verify.js';
import {
  CONNECTOR_ID,
  NOW,
  grantEnvelope,
  makeSigner,
  signedCommand,
  type TestSigner,
} from './helpers.js';

const SKEW = 30_000;
const LIFETIME = 15 * 60_000;

const signer = makeSigner();
const stranger = makeSigner();

const pools: VerifierPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

function options(s: TestSigner = signer) {
  return {
    connectorId: CONNECTOR_ID,
    trustedKeys: new Map([[s.keyId, s.publicKey]]),
    maxClockSkewMs: SKEW,
    maxCommandLifetimeMs: LIFETIME,
    now: () => NOW,
  };
}

function pool(workers: number, workerSource?: string): VerifierPool {
  const p = new VerifierPool({
    ...options(),
    workers,
    // every signature to the workers (the inline shortcut for a lone command is tested apart)
    inlineWhenAlone: false,
    ...(workerSource === undefined ? {} : { workerSource }),
  });
  pools.push(p);
  return p;
}

function cmd(id: string, overrides: Record<string, unknown> = {}): CommandMessage {
  return signedCommand(grantEnvelope({ id, ...overrides }), signer);
}

/** Comparable form of an outcome: ok + id, or the code, message and command id. */
function summary(o: VerifyOutcome): Record<string, unknown> {
  return o.ok
    ? { ok: true, id: o.envelope.id, digest: o.digest }
    : { ok: false, code: o.error.code, message: o.error.message, commandId: o.commandId };
}

/** The outcome as a promise, whether the pool answered at once or not. */
const settle = (o: VerifyOutcome | Promise<VerifyOutcome>): Promise<VerifyOutcome> =>
  o instanceof Promise ? o : Promise.resolve(o);

const at = (ms: number): string => new Date(NOW.getTime() + ms).toISOString();

/** One command for every outcome of the verifier, in its check order. */
function everyCase(): [string, CommandMessage][] {
  const tampered = cmd('c-tampered');
  tampered.envelope = { ...tampered.envelope, connectorId: 'someone-else' };
  const badSig = cmd('c-badsig');
  badSig.signature = { ...badSig.signature, value: 'AAAA' };
  const badSigAndExpired = signedCommand(
    grantEnvelope({
      id: 'c-badsig-expired',
      expiresAt: at(-10 * 60_000),
      issuedAt: at(-11 * 60_000),
    }),
    signer,
  );
  badSigAndExpired.signature = { ...badSigAndExpired.signature, value: 'A'.repeat(86) };
  return [
    ['ok', cmd('c-ok')],
    ['unknown kind', cmd('c-kind', { kind: 'teleport', params: {} })],
    ['schema', cmd('c-schema', { priority: 'high' })],
    ['schema before signature', signedCommand(grantEnvelope({ id: 'c-s2', extra: 1 }), stranger)],
    ['untrusted key', signedCommand(grantEnvelope({ id: 'c-untrusted' }), stranger)],
    [
      'forged with a trusted key id',
      signedCommand(grantEnvelope({ id: 'c-forged' }), stranger, signer.keyId),
    ],
    ['tampered after signing', tampered],
    ['malformed signature', badSig],
    ['signature before time', badSigAndExpired],
    ['other connector', cmd('c-conn', { connectorId: 'conn-us-1' })],
    [
      'connector before time',
      cmd('c-conn-exp', {
        connectorId: 'conn-us-1',
        expiresAt: at(-10 * 60_000),
        issuedAt: at(-11 * 60_000),
      }),
    ],
    ['expired', cmd('c-expired', { expiresAt: at(-SKEW - 1), issuedAt: at(-60_000) })],
    ['future', cmd('c-future', { issuedAt: at(SKEW + 1000), expiresAt: at(SKEW + 60_000) })],
    ['too long', cmd('c-long', { issuedAt: at(0), expiresAt: at(LIFETIME + 1) })],
    ['inverted', cmd('c-inverted', { issuedAt: at(0), expiresAt: at(-1) })],
  ];
}

describe('VerifierPool', () => {
  it.each([0, 1, 2])(
    'every outcome (codes, messages, order of checks) is the synchronous verifier’s, with %i workers',
    async (workers) => {
      const sync = createCommandVerifier(options());
      const p = pool(workers);
      const cases = everyCase();
      const outcomes = await Promise.all(cases.map(([, m]) => settle(p.verify(m))));
      const codes = outcomes.map((o) => (o.ok ? 'ok' : o.error.code));
      expect(codes).toEqual([
        'ok',
        'E_UNSUPPORTED',
        'E_SCHEMA',
        'E_SCHEMA',
        'E_SIGNATURE',
        'E_SIGNATURE',
        'E_SIGNATURE',
        'E_SIGNATURE',
        'E_SIGNATURE',
        'E_CONNECTOR',
        'E_CONNECTOR',
        'E_EXPIRED',
        'E_EXPIRED',
        'E_EXPIRED',
        'E_EXPIRED',
      ]);
      cases.forEach(([name, m], i) => {
        const o = outcomes[i];
        expect(o && summary(o), name).toEqual(summary(sync.verify(m)));
      });
    },
  );

  it('with workers, a signature check is asynchronous; inline (0 workers) it is not', async () => {
    expect(pool(0).verify(cmd('c-inline'))).not.toBeInstanceOf(Promise);
    const pending = pool(1).verify(cmd('c-worker'));
    expect(pending).toBeInstanceOf(Promise);
    expect((await pending).ok).toBe(true);
  });

  it('a lone command is checked inline, the others of its turn by the workers, unless the caller is busy', async () => {
    let busy = false;
    const p = new VerifierPool({ ...options(), workers: 1, busy: () => busy });
    pools.push(p);
    // the worker starts when a signature first goes to it, not before
    expect(p.size).toBe(1);
    expect(p.running).toBe(0);
    const first = p.verify(cmd('c-lone'));
    expect(p.running).toBe(0);
    const second = p.verify(cmd('c-next'));
    expect(p.running).toBe(1);
    expect(first).not.toBeInstanceOf(Promise);
    expect(second).toBeInstanceOf(Promise);
    expect(summary(first as VerifyOutcome)).toMatchObject({ ok: true });
    expect((await second).ok).toBe(true);
    await new Promise((r) => setImmediate(r));
    busy = true;
    const whileBusy = p.verify(cmd('c-busy'));
    expect(whileBusy).toBeInstanceOf(Promise);
    expect((await whileBusy).ok).toBe(true);
    // a forged signature stays forged on either path
    busy = false;
    await new Promise((r) => setImmediate(r));
    const forged = p.verify(signedCommand(grantEnvelope({ id: 'c-f' }), stranger, signer.keyId));
    expect(forged).not.toBeInstanceOf(Promise);
    expect(summary(forged as VerifyOutcome)).toMatchObject({ ok: false, code: 'E_SIGNATURE' });
  });

  it('with a full backlog the caller thread checks inline (bounded memory, same verdicts)', async () => {
    const p = new VerifierPool({
      ...options(),
      workers: 1,
      inlineWhenAlone: false,
      maxQueuedPerWorker: 2,
    });
    pools.push(p);
    const outcomes = ['q-1', 'q-2', 'q-3', 'q-4'].map((id) => p.verify(cmd(id)));
    expect(outcomes.map((o) => o instanceof Promise)).toEqual([true, true, false, false]);
    expect((await Promise.all(outcomes.map(settle))).map((o) => o.ok)).toEqual([
      true,
      true,
      true,
      true,
    ]);
  });

  it('judges the time window by the arrival time, not by when the worker answered', async () => {
    let now = NOW;
    const p = new VerifierPool({
      ...options(),
      now: () => now,
      workers: 1,
      inlineWhenAlone: false,
    });
    pools.push(p);
    // valid on arrival (expires 1 s after the skew), expired by the time the worker answers
    const pending = p.verify(cmd('c-edge', { issuedAt: at(-60_000), expiresAt: at(-SKEW + 1000) }));
    now = new Date(NOW.getTime() + 60_000);
    expect((await pending).ok).toBe(true);
    // and the other way round: not yet valid on arrival stays refused
    now = NOW;
    const early = p.verify(cmd('c-early', { issuedAt: at(SKEW + 5000), expiresAt: at(60_000) }));
    now = new Date(NOW.getTime() + 60_000);
    expect(summary(await early)).toMatchObject({ ok: false, code: 'E_EXPIRED' });
  });

  it('a worker crash fails its verifications closed (E_INTERNAL, never accepted), then a new worker serves', async () => {
    const crashing = VERIFY_WORKER_SOURCE.replace(
      "parentPort.on('message', (m) => {",
      "parentPort.on('message', (m) => {\n  if (Buffer.from(m.data).includes('crash-me')) process.exit(7);",
    );
    expect(crashing).not.toBe(VERIFY_WORKER_SOURCE);
    const p = pool(1, crashing);
    // one batch (same turn): every command in it was in flight when the worker died,
    // the validly signed ones included
    const batch = ['c-1', 'crash-me', 'c-3'].map((id) => settle(p.verify(cmd(id))));
    const outcomes = await Promise.all(batch);
    for (const o of outcomes) {
      expect(summary(o)).toMatchObject({ ok: false, code: 'E_INTERNAL' });
    }
    expect(outcomes.map((o) => (o.ok ? null : o.commandId))).toEqual(['c-1', 'crash-me', 'c-3']);
    // replaced: the next commands verify again
    const after = await Promise.all([settle(p.verify(cmd('c-4'))), settle(p.verify(cmd('c-5')))]);
    expect(after.map((o) => o.ok)).toEqual([true, true]);
    expect(p.size).toBe(1);
  });

  it('close() fails pending verifications closed, and every later one', async () => {
    const p = pool(1);
    const first = settle(p.verify(cmd('c-a')));
    const second = settle(p.verify(cmd('c-b')));
    await p.close();
    for (const o of await Promise.all([first, second])) {
      expect(summary(o)).toMatchObject({ ok: false, code: 'E_INTERNAL' });
    }
    const late = await p.verify(cmd('c-late'));
    expect(summary(late)).toMatchObject({ ok: false, code: 'E_INTERNAL', commandId: 'c-late' });
  });

  it('a worker answering "valid" for a bad signature is impossible: the answer is per item, by position', async () => {
    // the real worker, two workers, a batch mixing good and forged signatures
    const p = pool(2);
    const forged = (id: string): CommandMessage =>
      signedCommand(grantEnvelope({ id }), stranger, signer.keyId);
    const msgs = [cmd('g-1'), forged('f-1'), cmd('g-2'), forged('f-2'), cmd('g-3'), forged('f-3')];
    const outcomes = await Promise.all(msgs.map((m) => settle(p.verify(m))));
    expect(outcomes.map((o) => (o.ok ? 'ok' : o.error.code))).toEqual([
      'ok',
      'E_SIGNATURE',
      'ok',
      'E_SIGNATURE',
      'ok',
      'E_SIGNATURE',
    ]);
  });
});

describe('ArrivalOrder with workers finishing out of order', () => {
  it('delivers in arrival order although a later batch finished first', async () => {
    // The first worker's batch (holding the "slow-" command) answers 150 ms late.
    const slow = VERIFY_WORKER_SOURCE.replace(
      'parentPort.postMessage({ id: m.id, ok }, [ok.buffer]);',
      "setTimeout(() => parentPort.postMessage({ id: m.id, ok }, [ok.buffer]), Buffer.from(m.data).includes('slow-') ? 150 : 0);",
    );
    expect(slow).not.toBe(VERIFY_WORKER_SOURCE);
    const p = pool(2, slow);
    const order = new ArrivalOrder();
    const settled: string[] = [];
    const delivered: string[] = [];
    const ids = ['slow-1', 'c-2', 'c-3', 'c-4'];
    const all: Promise<unknown>[] = [];
    for (const id of ids) {
      const outcome = p.verify(cmd(id));
      expect(outcome).toBeInstanceOf(Promise);
      all.push(Promise.resolve(outcome).then(() => settled.push(id)));
      order.add(
        outcome,
        (o) => delivered.push(o.ok ? o.envelope.id : `rejected ${o.commandId ?? ''}`),
        () => delivered.push('error'),
      );
    }
    await Promise.all(all);
    // the workers did finish out of order…
    expect(settled).toEqual(['c-3', 'c-4', 'slow-1', 'c-2']);
    // …and delivery kept the arrival order
    expect(delivered).toEqual(ids);
    expect(order.waiting).toBe(0);
  });

  it('answers a large batch in messages of at most 32: the first verdicts do not wait for the last', async () => {
    // The message holding the "slow-" command answers 400 ms late; the others at once.
    const slow = VERIFY_WORKER_SOURCE.replace(
      'parentPort.postMessage({ id: m.id, ok }, [ok.buffer]);',
      "setTimeout(() => parentPort.postMessage({ id: m.id, ok }, [ok.buffer]), Buffer.from(m.data).includes('slow-') ? 400 : 0);",
    );
    const p = pool(1, slow);
    const ids = Array.from({ length: 64 }, (_, i) => (i === 40 ? 'slow-40' : `c-${i}`));
    const t0 = Date.now();
    const at = new Map<string, number>();
    const all = ids.map((id) =>
      settle(p.verify(cmd(id))).then((o) => {
        expect(o.ok).toBe(true);
        at.set(id, Date.now() - t0);
      }),
    );
    await Promise.all(all);
    // c-0 … c-31 went in the first message, answered long before the slow one's.
    expect(at.get('c-0') ?? Infinity).toBeLessThan(300);
    expect(at.get('c-31') ?? Infinity).toBeLessThan(300);
    expect(at.get('slow-40') ?? 0).toBeGreaterThanOrEqual(390);
    expect(at.get('c-32') ?? 0).toBeGreaterThanOrEqual(390);
  });

  it('a rejection releases its slot; sync values wait behind pending ones; a rejected promise is reported in its turn', async () => {
    const order = new ArrivalOrder();
    const out: string[] = [];
    let resolveA: (v: string) => void = () => undefined;
    let rejectC: (e: Error) => void = () => undefined;
    const a = new Promise<string>((r) => (resolveA = r));
    const c = new Promise<string>((_, j) => (rejectC = j));
    const push = (v: string): number => out.push(v);
    order.add(a, push, () => push('error-a'));
    order.add('b (sync, rejected early)', push, () => push('error-b'));
    order.add(c, push, (e) => push(`error ${(e as Error).message}`));
    order.add('d', push, () => push('error-d'));
    expect(out).toEqual([]);
    rejectC(new Error('c'));
    await Promise.resolve();
    await Promise.resolve();
    expect(out).toEqual([]);
    resolveA('a');
    await new Promise((r) => setImmediate(r));
    expect(out).toEqual(['a', 'b (sync, rejected early)', 'error c', 'd']);
    // nothing waiting: a sync value goes at once
    order.add('e', push, () => push('error-e'));
    expect(out.at(-1)).toBe('e');
    expect(order.waiting).toBe(0);
  });
});

describe('read backpressure', () => {
  it('ArrivalOrder reports what waits after each add and after each run of deliveries', async () => {
    const seen: number[] = [];
    const order = new ArrivalOrder((waiting) => seen.push(waiting));
    const resolvers: ((v: number) => void)[] = [];
    const noop = (): void => undefined;
    order.add(0, noop, noop); // delivered at once: nothing waits, nothing to report
    for (let i = 0; i < 3; i += 1) {
      order.add(new Promise<number>((r) => resolvers.push(r)), noop, noop);
    }
    order.add(9, noop, noop); // sync, but behind pending ones
    expect(seen).toEqual([1, 2, 3, 4]);
    resolvers[1]?.(1); // not the head: nothing can be delivered
    await new Promise((r) => setImmediate(r));
    expect(seen.at(-1)).toBe(4);
    resolvers[0]?.(0);
    await new Promise((r) => setImmediate(r));
    expect(seen.at(-1)).toBe(2); // 0 and 1 delivered
    resolvers[2]?.(2);
    await new Promise((r) => setImmediate(r));
    expect(seen.at(-1)).toBe(0);
    expect(order.waiting).toBe(0);
  });

  it('backpressureGate holds at the limit, releases at half, and reports only changes', () => {
    const calls: boolean[] = [];
    const gate = backpressureGate(10, (held) => calls.push(held));
    for (const w of [1, 5, 9]) gate(w);
    expect(calls).toEqual([]);
    gate(10);
    expect(calls).toEqual([true]);
    for (const w of [12, 8, 6]) gate(w); // above half: still held
    expect(calls).toEqual([true]);
    gate(5);
    expect(calls).toEqual([true, false]);
    gate(3);
    gate(9);
    expect(calls).toEqual([true, false]);
    gate(11);
    expect(calls).toEqual([true, false, true]);
    expect(() => backpressureGate(0, () => undefined)).toThrow(RangeError);
    expect(() => backpressureGate(1.5, () => undefined)).toThrow(RangeError);
  });
});
