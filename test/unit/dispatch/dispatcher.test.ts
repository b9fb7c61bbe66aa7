import { describe, expect, it } from 'vitest';
import { LatchkeyError } from '../../../src/errors.js';
import { ResultSchema, type CommandKind, type Result } from '../../../src/protocol/messages.js';
import { DEFAULT_IDEMPOTENCY_CAPACITY } from '../../../src/dispatch/dispatcher.js';
import {
  ALL_KINDS,
  ConcurrencyTracker,
  FakeDriver,
  Gates,
  OK_OUTPUT,
  envelope,
  harness,
  registryOf,
  sleep,
  submit,
} from './fakes.js';

function gatedDriver(gates: Gates, type = 'fake', tracker?: ConcurrencyTracker): FakeDriver {
  return new FakeDriver(
    type,
    ALL_KINDS,
    async (kind, ctx) => {
      await gates.wait(ctx.commandId, ctx.signal);
      return OK_OUTPUT[kind];
    },
    tracker,
  );
}

function errorCode(r: Result): string | undefined {
  return r.error?.code;
}

describe('Dispatcher: acceptance and refusals', () => {
  it('runs an accepted command and delivers one ok result with timings and events', async () => {
    const driver = new FakeDriver('fake', ALL_KINDS, (kind) => Promise.resolve(OK_OUTPUT[kind]));
    const h = harness(registryOf(driver));
    const env = envelope('grant');
    const received = new Date(Date.now() - 5);
    expect(h.dispatcher.submit(env, 'd1', received)).toEqual({ status: 'accepted' });
    const r = await h.resultOf(env.id);
    expect(r).toMatchObject({ type: 'result', commandId: env.id, kind: 'grant', status: 'ok' });
    expect(r.output).toEqual(OK_OUTPUT.grant);
    expect(r.timings.receivedAt).toBe(received.toISOString());
    expect(r.timings.startedAt).toBeDefined();
    expect(r.timings.queueMs).toBeGreaterThanOrEqual(0);
    expect(r.timings.runMs).toBeGreaterThanOrEqual(0);
    expect(h.results).toHaveLength(1);
    const names = h.recorded.map((e) => e.name).filter((n) => n !== 'queue:depth');
    expect(names).toEqual(['command:accepted', 'command:started', 'command:finished']);
    expect(h.recorded.find((e) => e.name === 'command:finished')?.payload).toMatchObject({
      commandId: env.id,
      kind: 'grant',
      integrationType: 'fake',
      outcome: 'ok',
    });
    expect(h.dispatcher.depth).toBe(0);
    expect(h.dispatcher.running).toBe(0);
  });

  it('a check whose probes fail is an ok result with output.ok false, not an error (docs/protocol.md section 4)', async () => {
    const failed = {
      ok: false,
      checks: [{ name: 'connect', ok: false, detail: 'cannot reach db:5432' }],
    };
    const driver = new FakeDriver('fake', ALL_KINDS, () => Promise.resolve(failed));
    const h = harness(registryOf(driver));
    const env = envelope('check');
    expect(h.dispatcher.submit(env, 'd1', new Date())).toEqual({ status: 'accepted' });
    const r = await h.resultOf(env.id);
    expect(r).toMatchObject({ kind: 'check', status: 'ok', output: failed });
    expect(r.error).toBeUndefined();
    expect(ResultSchema.safeParse(r).success).toBe(true);
  });

  it('refuses an unknown integration type or an unsupported kind before queueing', () => {
    const driver = new FakeDriver('fake', ['discover', 'check'], (k) =>
      Promise.resolve(OK_OUTPUT[k]),
    );
    const h = harness(registryOf(driver));
    const a = submit(h, envelope('discover', { type: 'nosuch' }));
    expect(a.status).toBe('rejected');
    expect(a.status === 'rejected' && a.error.code).toBe('E_UNSUPPORTED');
    const b = submit(h, envelope('grant'));
    expect(b.status === 'rejected' && b.error.code).toBe('E_UNSUPPORTED');
    expect(driver.calls).toHaveLength(0);
    expect(h.dispatcher.depth).toBe(0);
    const rejected = h.recorded.filter((e) => e.name === 'command:rejected');
    expect(rejected.map((e) => (e.payload as { code: string }).code)).toEqual([
      'E_UNSUPPORTED',
      'E_UNSUPPORTED',
    ]);
  });

  it('refuses with E_BUSY when queued + running reach the queue size', async () => {
    const gates = new Gates();
    const h = harness(registryOf(gatedDriver(gates)), {
      queueSize: 2,
      concurrency: { global: 1, perIntegration: 1, perAwsService: 1 },
    });
    const e1 = envelope('check');
    const e2 = envelope('check');
    expect(submit(h, e1).status).toBe('accepted');
    expect(submit(h, e2).status).toBe('accepted');
    expect(h.dispatcher.running).toBe(1);
    expect(h.dispatcher.depth).toBe(1);
    const busy = submit(h, envelope('check'));
    expect(busy.status === 'rejected' && busy.error.code).toBe('E_BUSY');
    expect(busy.status === 'rejected' && busy.error.retryable).toBe(true);
    gates.release(e1.id);
    await h.resultOf(e1.id);
    expect(submit(h, envelope('check')).status).toBe('accepted');
    gates.releaseAll();
    await h.resultOf(e2.id);
  });
});

describe('Dispatcher: idempotency', () => {
  it('answers a duplicate with running, then with the stored result, never running twice', async () => {
    const gates = new Gates();
    const driver = gatedDriver(gates);
    const h = harness(registryOf(driver));
    const env = envelope('grant');
    expect(submit(h, env, 'same')).toEqual({ status: 'accepted' });
    expect(submit(h, env, 'same')).toEqual({ status: 'running' });
    gates.release(env.id);
    const r = await h.resultOf(env.id);
    const again = submit(h, env, 'same');
    expect(again.status).toBe('done');
    // The stored result is its frame: exactly the result's JSON.
    expect(again.status === 'done' && !again.result.spooled && again.result.text).toBe(
      JSON.stringify(r),
    );
    expect(again.status === 'done' && again.result.result()).toEqual(r);
    expect(driver.calls).toHaveLength(1);
    expect(h.results).toHaveLength(1);
    const dups = h.recorded.filter((e) => e.name === 'command:duplicate').map((e) => e.payload);
    expect(dups).toEqual([
      { commandId: env.id, state: 'running' },
      { commandId: env.id, state: 'done' },
    ]);
  });

  it('refuses the same id with another digest as E_REPLAY (running or done)', async () => {
    const gates = new Gates();
    const driver = gatedDriver(gates);
    const h = harness(registryOf(driver));
    const env = envelope('revoke');
    submit(h, env, 'd1');
    const r1 = submit(h, env, 'd2');
    expect(r1.status === 'rejected' && r1.error.code).toBe('E_REPLAY');
    gates.release(env.id);
    await h.resultOf(env.id);
    const r2 = submit(h, env, 'd3');
    expect(r2.status === 'rejected' && r2.error.code).toBe('E_REPLAY');
    expect(driver.calls).toHaveLength(1);
  });

  it('drops old results beyond its capacity but never lets their ids run again while valid', async () => {
    const driver = new FakeDriver('fake', ALL_KINDS, (k) => Promise.resolve(OK_OUTPUT[k]));
    const h = harness(registryOf(driver), { idempotencyCapacity: 2 });
    const envs = [envelope('grant'), envelope('check'), envelope('check')];
    for (const e of envs) {
      submit(h, e, 'd');
      await h.resultOf(e.id);
    }
    // The last is remembered with its result.
    expect(submit(h, envs[2]!, 'd').status).toBe('done');
    // The first lost its result but is still inside its window: it must not run again,
    // with the same digest or another one.
    const same = submit(h, envs[0]!, 'd');
    expect(same.status === 'rejected' && same.error.code).toBe('E_REPLAY');
    const other = submit(h, envs[0]!, 'another');
    expect(other.status === 'rejected' && other.error.code).toBe('E_REPLAY');
    expect(driver.calls).toHaveLength(3);
  });

  it('remembers ten times its result capacity (or the queue size, if larger) before E_BUSY, as docs/protocol.md says', async () => {
    const driver = new FakeDriver('fake', ALL_KINDS, (k) => Promise.resolve(OK_OUTPUT[k]));
    for (const [queueSize, bound] of [
      [5, 20], // 10 × capacity 2
      [25, 25], // the queue size
    ] as const) {
      const h = harness(registryOf(driver), { idempotencyCapacity: 2, queueSize });
      for (let i = 0; i < bound; i++) {
        const e = envelope('check', { expiresInMs: 3_600_000 });
        expect(submit(h, e, 'd').status).toBe('accepted');
        await h.resultOf(e.id);
      }
      const busy = submit(h, envelope('check', { expiresInMs: 3_600_000 }), 'd');
      expect(busy.status === 'rejected' && busy.error.code).toBe('E_BUSY');
    }
    expect(DEFAULT_IDEMPOTENCY_CAPACITY).toBe(10_000);
  });

  it('refuses new work with E_BUSY rather than forget ids still inside their window', async () => {
    let nowMs = Date.now();
    const driver = new FakeDriver('fake', ALL_KINDS, (k) => Promise.resolve(OK_OUTPUT[k]));
    const h = harness(registryOf(driver), {
      idempotencyCapacity: 1,
      idempotencyMaxEntries: 2,
      maxClockSkewMs: 30_000,
      now: () => new Date(nowMs),
    });
    const a = envelope('grant');
    const b = envelope('grant');
    const c = envelope('grant', { expiresInMs: 3_600_000 });
    for (const e of [a, b]) {
      expect(submit(h, e, 'd').status).toBe('accepted');
      await h.resultOf(e.id);
    }
    const busy = submit(h, c, 'd');
    expect(busy.status === 'rejected' && busy.error.code).toBe('E_BUSY');
    // Both remembered ids are still refused as replays: nothing was forgotten.
    for (const e of [a, b]) expect(submit(h, e, 'd').status).not.toBe('accepted');
    expect(driver.calls).toHaveLength(2);
    // Once expiresAt (+60 s in the fixture) + skew has passed, the verifier refuses them
    // as E_EXPIRED: the store may forget them and takes new work again.
    nowMs += 60_000 + 30_000 + 1;
    expect(submit(h, c, 'd').status).toBe('accepted');
    await h.resultOf(c.id);
    expect(driver.calls).toHaveLength(3);
  });
});

describe('Dispatcher: what crosses the wire', () => {
  it('never sends a password literal a driver error echoes, and keeps messages within the protocol limit', async () => {
    const secret = 'Pl4nted-S3cret-91d2';
    const messages: Record<string, string> = {
      a: `CREATE USER failed near 'IDENTIFIED BY '${secret}'`,
      b: `could not connect to postgres://svc:${secret}@db:5432/app`,
      c: `permission denied: ${'x'.repeat(5000)}`,
    };
    const driver = new FakeDriver('fake', ALL_KINDS, (_kind, ctx) =>
      Promise.reject(new LatchkeyError('E_PRIVILEGE', messages[ctx.commandId] ?? 'no')),
    );
    const h = harness(registryOf(driver));
    for (const id of Object.keys(messages)) {
      submit(h, envelope('grant', { id }));
      const r = await h.resultOf(id);
      expect(r.status).toBe('error');
      expect(r.error?.code).toBe('E_PRIVILEGE');
      expect(r.error?.message).not.toContain(secret);
      expect(ResultSchema.safeParse(r).success).toBe(true);
    }
    expect((await h.resultOf('c')).error?.message.length).toBeLessThanOrEqual(2000);
  });
});

describe('Dispatcher: ordering', () => {
  it('starts by priority: revoke > rotate > grant > cleanup > check/discover', async () => {
    const gates = new Gates();
    const driver = gatedDriver(gates);
    const h = harness(registryOf(driver), {
      concurrency: { global: 1, perIntegration: 1, perAwsService: 1 },
    });
    const blocker = envelope('check');
    submit(h, blocker);
    const order: CommandKind[] = ['discover', 'cleanup', 'check', 'grant', 'rotate', 'revoke'];
    const envs = order.map((kind, i) =>
      envelope(kind, { email: `user${i}@example.com`, integrationId: 'int-1' }),
    );
    for (const e of envs) expect(submit(h, e).status).toBe('accepted');
    expect(h.dispatcher.depth).toBe(6);
    // Release each as soon as it starts.
    gates.release(blocker.id);
    for (const e of envs) gates.release(e.id);
    await Promise.all(envs.map((e) => h.resultOf(e.id)));
    expect(driver.calls.map((c) => c.kind)).toEqual([
      'check',
      'revoke',
      'rotate',
      'grant',
      'cleanup',
      'discover',
      'check',
    ]);
  });

  it('never lets a later command overtake an earlier one with the same key', async () => {
    const gates = new Gates();
    const driver = gatedDriver(gates);
    const h = harness(registryOf(driver), {
      concurrency: { global: 1, perIntegration: 4, perAwsService: 4 },
    });
    const blocker = envelope('discover');
    submit(h, blocker);
    const grantA = envelope('grant', { email: 'a@example.com' });
    const grantB = envelope('grant', { email: 'b@example.com' });
    const revokeA = envelope('revoke', { email: 'A@example.com' }); // same key as grantA
    const revokeC = envelope('revoke', { email: 'c@example.com' });
    for (const e of [grantA, grantB, revokeA, revokeC]) submit(h, e);
    gates.releaseAll();
    for (const e of [blocker, grantA, grantB, revokeA, revokeC]) gates.release(e.id);
    await Promise.all([grantA, grantB, revokeA, revokeC].map((e) => h.resultOf(e.id)));
    expect(driver.calls.map((c) => c.commandId)).toEqual([
      blocker.id,
      revokeC.id, // highest priority with nothing before it
      grantA.id, // revokeA must wait for it
      revokeA.id,
      grantB.id,
    ]);
  });

  it('keeps per-key arrival order under concurrency with random delays', async () => {
    const tracker = new ConcurrencyTracker();
    const runningKeys = new Set<string>();
    let overlap = false;
    const keyOf = (id: string): string => keys.get(id) ?? '';
    const keys = new Map<string, string>();
    const completion = new Map<string, string[]>();
    const driver = new FakeDriver(
      'fake',
      ALL_KINDS,
      async (kind, ctx) => {
        const key = keyOf(ctx.commandId);
        if (runningKeys.has(key)) overlap = true;
        runningKeys.add(key);
        await sleep(Math.floor(Math.random() * 4));
        runningKeys.delete(key);
        const list = completion.get(key) ?? [];
        list.push(ctx.commandId);
        completion.set(key, list);
        return OK_OUTPUT[kind];
      },
      tracker,
    );
    const h = harness(registryOf(driver), {
      concurrency: { global: 6, perIntegration: 3, perAwsService: 3 },
      queueSize: 1000,
    });
    const arrival = new Map<string, string[]>();
    const kinds: CommandKind[] = ['grant', 'revoke', 'rotate', 'grant', 'revoke'];
    const ids: string[] = [];
    for (let i = 0; i < 150; i++) {
      const integrationId = `int-${i % 3}`;
      const email = `u${Math.floor(Math.random() * 4)}@example.com`;
      const kind = kinds[Math.floor(Math.random() * kinds.length)] ?? 'grant';
      const e = envelope(kind, { integrationId, email });
      const key = `${integrationId}/${email}`;
      keys.set(e.id, key);
      arrival.set(key, [...(arrival.get(key) ?? []), e.id]);
      expect(submit(h, e).status).toBe('accepted');
      ids.push(e.id);
      if (i % 10 === 0) await sleep(1);
    }
    await Promise.all(ids.map((id) => h.resultOf(id)));
    expect(overlap).toBe(false);
    expect(completion).toEqual(arrival);
    expect(tracker.max).toBeLessThanOrEqual(6);
    for (const n of tracker.maxPerIntegration.values()) expect(n).toBeLessThanOrEqual(3);
    expect(h.results.every((r) => r.status === 'ok')).toBe(true);
  });
});

describe('Dispatcher: limits', () => {
  it('holds the global, per-integration and per-AWS-service limits', async () => {
    const gates = new Gates();
    const tracker = new ConcurrencyTracker();
    const pg = gatedDriver(gates, 'postgres', tracker);
    const iam = gatedDriver(gates, 'aws-iam', tracker);
    const ssm = gatedDriver(gates, 'aws-ssm', tracker);
    const h = harness(registryOf(pg, iam, ssm), {
      concurrency: { global: 4, perIntegration: 2, perAwsService: 1 },
    });
    const envs = [
      ...[1, 2, 3].map(() => envelope('discover', { integrationId: 'pg-1', type: 'postgres' })),
      ...[1, 2].map(() => envelope('discover', { integrationId: 'acct-1', type: 'aws-iam' })),
      ...[1, 2].map(() => envelope('discover', { integrationId: 'acct-2', type: 'aws-iam' })),
      ...[1, 2].map(() => envelope('discover', { integrationId: 'acct-1-ssm', type: 'aws-ssm' })),
      ...[1, 2].map(() => envelope('discover', { integrationId: 'pg-2', type: 'postgres' })),
    ];
    for (const e of envs) submit(h, e);
    // pg-1 ×2 (per integration), aws-iam ×1, aws-ssm ×1: global 4 reached.
    expect(h.dispatcher.running).toBe(4);
    expect(h.dispatcher.depth).toBe(envs.length - 4);
    expect(tracker.now).toBe(4);
    // Release in random order until all are done.
    while (h.results.length < envs.length) {
      const waiting = envs.filter((e) => gates.isWaiting(e.id));
      const pick = waiting[Math.floor(Math.random() * waiting.length)];
      if (pick) gates.release(pick.id);
      await sleep(1);
    }
    expect(tracker.max).toBe(4);
    expect(tracker.maxPerIntegration.get('pg-1')).toBe(2);
    expect(tracker.maxPerType.get('aws-iam')).toBe(1);
    expect(tracker.maxPerType.get('aws-ssm')).toBe(1);
    expect(h.results.every((r) => r.status === 'ok')).toBe(true);
  });
});

describe('Dispatcher: deadlines, cancel, errors', () => {
  it('times out a driver that honours the signal', async () => {
    let sawAbort = false;
    const driver = new FakeDriver('fake', ALL_KINDS, (_k, ctx) => {
      return new Promise((_, reject) => {
        ctx.signal.addEventListener('abort', () => {
          sawAbort = true;
          reject(new Error('aborted by signal'));
        });
      });
    });
    const h = harness(registryOf(driver), { timeoutsMs: { ...timeouts(), grant: 40 } });
    const env = envelope('grant');
    submit(h, env);
    const r = await h.resultOf(env.id);
    expect(r.status).toBe('error');
    expect(r.error).toMatchObject({ code: 'E_TIMEOUT', retryable: true });
    expect(sawAbort).toBe(true);
  });

  it('times out a driver that ignores the signal (the call is raced)', async () => {
    const driver = new FakeDriver('fake', ALL_KINDS, () => new Promise(() => undefined));
    const h = harness(registryOf(driver), {
      timeoutsMs: { ...timeouts(), check: 30 },
      abandonedCallLingerMs: 20,
    });
    const env = envelope('check');
    submit(h, env);
    const r = await h.resultOf(env.id);
    expect(errorCode(r)).toBe('E_TIMEOUT');
    // The abandoned call keeps its slot for at most the linger, then it is released.
    expect(h.dispatcher.running).toBe(1);
    for (let i = 0; i < 200 && h.dispatcher.running > 0; i++) await sleep(5);
    expect(h.dispatcher.running).toBe(0);
  });

  it('a revoke never overtakes a timed-out grant of the same grantee that is still running', async () => {
    const gates = new Gates();
    const order: string[] = [];
    // Ignores the signal: the grant goes on after its deadline until its gate opens.
    const driver = new FakeDriver('fake', ALL_KINDS, async (kind, ctx) => {
      order.push(`${kind}:start`);
      if (kind === 'grant') await gates.wait(ctx.commandId, new AbortController().signal);
      order.push(`${kind}:end`);
      return OK_OUTPUT[kind];
    });
    const h = harness(registryOf(driver), {
      timeoutsMs: { ...timeouts(), grant: 30 },
      concurrency: { global: 4, perIntegration: 4, perAwsService: 4 },
    });
    const grant = envelope('grant', { email: 'bob@example.com' });
    const revoke = envelope('revoke', { email: 'bob@example.com' });
    submit(h, grant);
    submit(h, revoke);
    expect(errorCode(await h.resultOf(grant.id))).toBe('E_TIMEOUT');
    await sleep(50);
    // The grant's call is still applying: the revoke waits behind it.
    expect(order).toEqual(['grant:start']);
    gates.release(grant.id);
    expect((await h.resultOf(revoke.id)).status).toBe('ok');
    expect(order).toEqual(['grant:start', 'grant:end', 'revoke:start', 'revoke:end']);
  });

  it('uses the envelope expiry when it comes before the kind timeout', async () => {
    const driver = new FakeDriver('fake', ALL_KINDS, () => new Promise(() => undefined));
    const h = harness(registryOf(driver));
    const env = envelope('revoke', { expiresInMs: 40 });
    submit(h, env);
    const r = await h.resultOf(env.id);
    expect(errorCode(r)).toBe('E_TIMEOUT');
    expect(r.error?.message).toContain('expiry');
  });

  it('does not call the driver when the command expired while queued', async () => {
    const driver = new FakeDriver('fake', ALL_KINDS, (k) => Promise.resolve(OK_OUTPUT[k]));
    const h = harness(registryOf(driver));
    const env = envelope('grant', { expiresInMs: -10 });
    submit(h, env);
    expect(errorCode(await h.resultOf(env.id))).toBe('E_TIMEOUT');
    expect(driver.calls).toHaveLength(0);
  });

  it('cancels a running command through its signal, and a queued one before it starts', async () => {
    const gates = new Gates();
    let reason: unknown;
    const driver = new FakeDriver('fake', ALL_KINDS, async (kind, ctx) => {
      ctx.signal.addEventListener('abort', () => {
        reason = ctx.signal.reason as unknown;
      });
      await gates.wait(ctx.commandId, ctx.signal);
      return OK_OUTPUT[kind];
    });
    const h = harness(registryOf(driver), {
      concurrency: { global: 1, perIntegration: 1, perAwsService: 1 },
    });
    const running = envelope('discover');
    const queued = envelope('discover');
    submit(h, running);
    submit(h, queued);
    expect(h.dispatcher.cancel(queued.id)).toBe(true);
    expect(errorCode(await h.resultOf(queued.id))).toBe('E_CANCELLED');
    expect(h.dispatcher.cancel(running.id)).toBe(true);
    const r = await h.resultOf(running.id);
    expect(r.error).toMatchObject({ code: 'E_CANCELLED', retryable: true });
    expect(reason).toBeInstanceOf(LatchkeyError);
    expect((reason as LatchkeyError).code).toBe('E_CANCELLED');
    expect(driver.calls.map((c) => c.commandId)).toEqual([running.id]);
    expect(h.dispatcher.cancel(running.id)).toBe(false);
    expect(h.dispatcher.cancel('unknown')).toBe(false);
    expect(h.results).toHaveLength(2);
  });

  it('cancels a command started an instant ago (before its driver call is under way)', async () => {
    const driver = new FakeDriver('fake', ALL_KINDS, () => new Promise(() => undefined));
    const h = harness(registryOf(driver));
    const env = envelope('grant');
    submit(h, env);
    expect(h.dispatcher.running).toBe(1);
    expect(h.dispatcher.cancel(env.id)).toBe(true);
    expect(errorCode(await h.resultOf(env.id))).toBe('E_CANCELLED');
    expect(h.results).toHaveLength(1);
  });

  it('a driver that reads its signal only after a cancel finds it aborted with the cancel', async () => {
    let release: () => void = () => undefined;
    const seen: { aborted: boolean; reason: unknown }[] = [];
    const driver = new FakeDriver('fake', ALL_KINDS, async (kind, ctx) => {
      await new Promise<void>((resolve) => (release = resolve));
      seen.push({ aborted: ctx.signal.aborted, reason: ctx.signal.reason });
      return OK_OUTPUT[kind];
    });
    const h = harness(registryOf(driver), { abandonedCallLingerMs: 5_000 });
    const env = envelope('grant');
    submit(h, env);
    await sleep(5);
    expect(h.dispatcher.cancel(env.id)).toBe(true);
    expect(errorCode(await h.resultOf(env.id))).toBe('E_CANCELLED');
    // The call still holds its slot until it ends; then the slot is freed.
    expect(h.dispatcher.running).toBe(1);
    release();
    await sleep(5);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.aborted).toBe(true);
    expect((seen[0]?.reason as LatchkeyError).code).toBe('E_CANCELLED');
    expect(h.dispatcher.running).toBe(0);
    expect(h.results).toHaveLength(1);
  });

  it('a driver that spreads its context keeps its signal, logger and sink', async () => {
    const copies: Record<string, unknown>[] = [];
    const driver = new FakeDriver('fake', ALL_KINDS, async (kind, ctx) => {
      const copy: Record<string, unknown> = { ...ctx };
      copies.push(copy);
      await new Promise<void>((resolve, reject) => {
        const signal = copy.signal as AbortSignal;
        signal.addEventListener('abort', () => reject(signal.reason as Error));
        if (kind !== 'grant') resolve();
      });
      return OK_OUTPUT[kind];
    });
    const sinks: string[] = [];
    const h = harness(registryOf(driver), {
      spool: {
        begin: (commandId) => {
          sinks.push(commandId);
          return { used: false, discard: () => Promise.resolve() } as never;
        },
      },
    });
    const grant = envelope('grant');
    const discover = envelope('discover');
    submit(h, grant);
    submit(h, discover);
    await h.resultOf(discover.id);
    expect(h.dispatcher.cancel(grant.id)).toBe(true);
    expect(errorCode(await h.resultOf(grant.id))).toBe('E_CANCELLED');
    expect(copies.map((c) => Object.keys(c))).toEqual([
      ['commandId', 'integration', 'signal', 'logger', 'sink'],
      ['commandId', 'integration', 'signal', 'logger', 'sink'],
    ]);
    expect(copies[0]?.commandId).toBe(grant.id);
    expect(copies[0]?.signal).toBeInstanceOf(AbortSignal);
    expect((copies[0]?.signal as AbortSignal).aborted).toBe(true);
    expect(typeof (copies[0]?.logger as { info?: unknown }).info).toBe('function');
    // Only a discover has a sink: reading it (here, by the spread) begins its spool.
    expect(copies[0]?.sink).toBeUndefined();
    expect(copies[1]?.sink).toBeDefined();
    expect(sinks).toEqual([discover.id]);
  });

  it('its last queue:depth event tells the counts once commands are done', async () => {
    const gates = new Gates();
    const h = harness(registryOf(gatedDriver(gates)), {
      concurrency: { global: 1, perIntegration: 1, perAwsService: 1 },
    });
    const envs = [envelope('check'), envelope('check'), envelope('check')];
    for (const e of envs) submit(h, e);
    await sleep(1);
    const depths = (): unknown[] =>
      h.recorded.filter((e) => e.name === 'queue:depth').map((e) => e.payload);
    expect(depths().at(-1)).toEqual({ depth: 2, running: 1 });
    for (const e of envs) {
      gates.release(e.id);
      await h.resultOf(e.id);
    }
    await sleep(1);
    expect(depths().at(-1)).toEqual({ depth: 0, running: 0 });
  });

  it('maps driver errors: LatchkeyError keeps its code, anything else is E_INTERNAL', async () => {
    const driver = new FakeDriver('fake', ALL_KINDS, (kind) => {
      if (kind === 'grant') return Promise.reject(new LatchkeyError('E_CONNECT', 'db unreachable'));
      return Promise.reject(new Error('password=hunter2 in SQL text'));
    });
    const h = harness(registryOf(driver));
    const a = envelope('grant');
    const b = envelope('revoke');
    submit(h, a);
    submit(h, b);
    expect((await h.resultOf(a.id)).error).toEqual({
      code: 'E_CONNECT',
      message: 'db unreachable',
      retryable: true,
    });
    const rb = await h.resultOf(b.id);
    expect(rb.error?.code).toBe('E_INTERNAL');
    expect(JSON.stringify(rb)).not.toContain('hunter2');
    const finished = h.recorded.filter((e) => e.name === 'command:finished').map((e) => e.payload);
    expect(finished).toContainEqual(
      expect.objectContaining({ outcome: 'error', code: 'E_CONNECT' }),
    );
  });

  it('validates driver output: malformed is E_INTERNAL, unknown fields are dropped', async () => {
    const driver = new FakeDriver('fake', ALL_KINDS, (kind) =>
      Promise.resolve(
        kind === 'check'
          ? { ok: 'yes', checks: 'all' }
          : { ...OK_OUTPUT[kind], internalNote: 'not for the wire' },
      ),
    );
    const h = harness(registryOf(driver));
    const bad = envelope('check');
    const good = envelope('discover');
    submit(h, bad);
    submit(h, good);
    expect(errorCode(await h.resultOf(bad.id))).toBe('E_INTERNAL');
    const r = await h.resultOf(good.id);
    expect(r.status).toBe('ok');
    expect(r.output).toEqual(OK_OUTPUT.discover);
  });

  it('survives a throwing result handler and a driver that throws synchronously', async () => {
    const driver = new FakeDriver('fake', ALL_KINDS, () => {
      throw new LatchkeyError('E_INVALID', 'bad params');
    });
    const h = harness(registryOf(driver));
    h.dispatcher.onResult(() => {
      throw new Error('handler bug');
    });
    const env = envelope('grant');
    submit(h, env);
    expect(errorCode(await h.resultOf(env.id))).toBe('E_INVALID');
  });
});

describe('Dispatcher: drain', () => {
  it('refuses new work and lets queued and running commands finish within the grace', async () => {
    const driver = new FakeDriver('fake', ALL_KINDS, async (kind) => {
      await sleep(5);
      return OK_OUTPUT[kind];
    });
    const h = harness(registryOf(driver), {
      concurrency: { global: 1, perIntegration: 1, perAwsService: 1 },
    });
    const envs = [envelope('grant'), envelope('check'), envelope('discover')];
    for (const e of envs) submit(h, e);
    const drained = h.dispatcher.drain(10_000);
    const late = submit(h, envelope('check'));
    expect(late.status === 'rejected' && late.error.code).toBe('E_BUSY');
    await drained;
    expect(h.results.map((r) => r.status)).toEqual(['ok', 'ok', 'ok']);
    expect(h.dispatcher.depth + h.dispatcher.running).toBe(0);
  });

  it('cancels what is left after the grace: exactly one result per accepted command', async () => {
    const gates = new Gates();
    const ignoring = new FakeDriver('stubborn', ALL_KINDS, () => new Promise(() => undefined));
    const h = harness(registryOf(gatedDriver(gates), ignoring), {
      concurrency: { global: 2, perIntegration: 1, perAwsService: 1 },
    });
    const envs = [
      envelope('grant'),
      envelope('check', { type: 'stubborn', integrationId: 'int-2' }),
      envelope('revoke', { email: 'x@example.com' }),
      envelope('discover'),
    ];
    for (const e of envs) submit(h, e);
    expect(h.dispatcher.running).toBe(2);
    await h.dispatcher.drain(30);
    expect(h.results).toHaveLength(envs.length);
    expect(new Set(h.results.map((r) => r.commandId)).size).toBe(envs.length);
    expect(h.results.every((r) => r.error?.code === 'E_CANCELLED')).toBe(true);
    // Nothing queued was started after the grace.
    expect(h.dispatcher.depth + h.dispatcher.running).toBe(0);
    await sleep(5);
    expect(h.results).toHaveLength(envs.length);
  });
});

function timeouts(): Record<CommandKind, number> {
  return {
    discover: 10_000,
    grant: 10_000,
    revoke: 10_000,
    rotate: 10_000,
    cleanup: 10_000,
    check: 10_000,
  };
}
