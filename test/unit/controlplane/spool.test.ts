/**
 * The result spool on the agent's result path (dispatcher with `spool`): a driver writes
 * a large discover page by page through `ctx.sink`; the pages go to a file as they come
 * (memory holds at most about one page), the result is the same as the one built in
 * memory, and no file is left behind by a failed, malformed or small result, nor after
 * the result is acknowledged; a start sweeps files no outbox entry names.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentEvents } from '../../../src/events.js';
import { Outbox } from '../../../src/controlplane/outbox.js';
import { ResultSpool } from '../../../src/controlplane/spool.js';
import type { CallContext } from '../../../src/drivers/driver.js';
import { LatchkeyError } from '../../../src/errors.js';
import type { InventoryEntry, Result } from '../../../src/protocol/messages.js';
import {
  ResultFrame,
  SpooledResultFrame,
  type HeldFrame,
} from '../../../src/protocol/result-frame.js';
import { StateJournal } from '../../../src/state/journal.js';
import {
  FakeDriver,
  envelope,
  harness,
  registryOf,
  silentLogger,
  submit,
  type Harness,
} from '../dispatch/fakes.js';

const PAGES = 40;
const PER_PAGE = 100;

function entry(page: number, i: number): InventoryEntry {
  return {
    principalId: `role:r${i}`,
    resourceId: `table:db/app/t-${page}-${i}`,
    permission: 'read',
    privileges: ['SELECT'],
    via: 'direct',
    managedByAgent: false,
  };
}

function pageOf(page: number): InventoryEntry[] {
  return Array.from({ length: PER_PAGE }, (_, i) => entry(page, i));
}

const principals: {
  id: string;
  kind: 'role';
  name: string;
  canLogin: boolean;
  managedByAgent: boolean;
  flags: string[];
}[] = [
  {
    id: 'role:r0',
    kind: 'role',
    name: 'r0 "é" 🙂',
    canLogin: false,
    managedByAgent: false,
    flags: [],
  },
];
const resources = [
  { id: 'database:db', name: 'db', type: 'database', metadata: { owner: 'svc' } },
  { id: 'schema:db/app', name: 'app', type: 'schema', parentId: 'database:db', metadata: {} },
];

/**
 * A discover driver: with a sink it writes resources, then the inventory page by page
 * (calling `beforePage` before producing each); without one it returns everything.
 */
function discoverDriver(
  beforePage: (page: number) => void = () => undefined,
  failAfter?: number,
): FakeDriver {
  return new FakeDriver('fake', ['discover'], async (_kind, ctx: CallContext) => {
    const tail = { permissions: [{ id: 'read', name: 'Read' }], warnings: [] };
    const sink = ctx.sink;
    if (sink === undefined) {
      const entries: InventoryEntry[] = [];
      for (let p = 0; p < PAGES; p++) entries.push(...pageOf(p));
      return { resources, ...tail, inventory: { principals, entries } };
    }
    await sink.resources(resources);
    await sink.inventory(principals);
    for (let p = 0; p < PAGES; p++) {
      if (p === failAfter) throw new LatchkeyError('E_CONNECT', 'database went away');
      beforePage(p);
      await sink.entries(pageOf(p));
    }
    return { resources: [], ...tail };
  });
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lk-spool-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(
  driver: FakeDriver,
  spool: ResultSpool | undefined,
): Promise<{ h: Harness; result: Result; frame: HeldFrame }> {
  const h = harness(registryOf(driver), spool === undefined ? {} : { spool });
  const frames = new Map<string, HeldFrame>();
  h.dispatcher.onResult((r, f) => frames.set(r.commandId, f));
  const env = envelope('discover', { type: 'fake' });
  expect(submit(h, env).status).toBe('accepted');
  const result = await h.resultOf(env.id);
  const frame = frames.get(env.id);
  if (frame === undefined) throw new Error('no frame');
  return { h, result, frame };
}

const files = (d: string): string[] => readdirSync(d);

async function until(pred: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(pred()).toBe(true);
}

describe('result spool on the dispatcher path', () => {
  it('writes each page to the file before the next page is produced, and the result equals the in-memory one', async () => {
    const spool = await ResultSpool.open({
      stateDir: dir,
      memoryBytes: 1024,
      logger: silentLogger,
    });
    const seen: number[] = [];
    const driver = discoverDriver((p) => {
      if (p === 0) return;
      // Before page p is produced, page p - 1 is already in the file on disk.
      const [name] = files(spool.dir);
      const text = readFileSync(join(spool.dir, name ?? 'missing'), 'utf8');
      expect(text).toContain(`"table:db/app/t-${p - 1}-${PER_PAGE - 1}"`);
      expect(text).not.toContain(`t-${p}-0"`);
      seen.push(p);
    });
    const { result, frame } = await run(driver, spool);
    expect(seen).toHaveLength(PAGES - 1);
    expect(result.status).toBe('ok');
    expect(frame).toBeInstanceOf(SpooledResultFrame);
    if (!(frame instanceof SpooledResultFrame)) return;
    // Size and sha256 are those of the file, which is exactly one result message.
    const bytes = readFileSync(frame.path);
    expect(frame.bytes).toBe(bytes.length);
    expect(frame.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    const streamed = frame.result();

    const plain = await run(discoverDriver(), undefined);
    expect(plain.frame).toBeInstanceOf(ResultFrame);
    expect(streamed.output).toEqual(plain.result.output);
    expect(streamed).toEqual({
      ...plain.result,
      commandId: streamed.commandId,
      timings: streamed.timings,
    });
    expect(
      (streamed.output as { inventory: { entries: unknown[] } }).inventory.entries,
    ).toHaveLength(PAGES * PER_PAGE);
  });

  it('a small streamed result stays in memory: one ordinary frame, no file', async () => {
    const spool = await ResultSpool.open({
      stateDir: dir,
      memoryBytes: 64 * 1024 * 1024,
      logger: silentLogger,
    });
    const { frame } = await run(discoverDriver(), spool);
    expect(frame).toBeInstanceOf(ResultFrame);
    expect(files(spool.dir)).toEqual([]);
    const plain = await run(discoverDriver(), undefined);
    expect(frame.result().output).toEqual(plain.result.output);
  });

  it('a writer names its file only when the text goes to disk; two writers of one command id never share a file', async () => {
    const spool = await ResultSpool.open({
      stateDir: dir,
      memoryBytes: 1024,
      logger: silentLogger,
    });
    const small = spool.begin('cmd/1', 'discover');
    await small.resources(resources);
    expect(small.path).toBeUndefined();
    const writers = [spool.begin('cmd/1', 'discover'), spool.begin('cmd/1', 'discover')];
    for (const w of writers) {
      await w.inventory(principals);
      await w.entries(pageOf(0));
      expect(w.onDisk).toBe(true);
    }
    const [a, b] = writers.map((w) => w.path);
    expect(a).toMatch(/[/\\]cmd_1-[0-9a-f]{12}[0-9a-z]+\.json$/);
    expect(a).not.toBe(b);
    expect(files(spool.dir)).toHaveLength(2);
    for (const w of [small, ...writers]) await w.discard();
    expect(files(spool.dir)).toEqual([]);
  });

  it('a driver that fails half way leaves no file and answers its error', async () => {
    const spool = await ResultSpool.open({
      stateDir: dir,
      memoryBytes: 1024,
      logger: silentLogger,
    });
    const { result } = await run(discoverDriver(undefined, 10), spool);
    expect(result.status).toBe('error');
    expect(result.error?.code).toBe('E_CONNECT');
    await until(() => files(spool.dir).length === 0);
  });

  it('a page that does not match the output schema fails the command with E_INTERNAL, no file', async () => {
    const spool = await ResultSpool.open({
      stateDir: dir,
      memoryBytes: 1024,
      logger: silentLogger,
    });
    const driver = new FakeDriver('fake', ['discover'], async (_k, ctx) => {
      await ctx.sink?.resources(resources);
      await ctx.sink?.resources([{ id: 1, name: 'bad' } as never]);
      return { resources: [], permissions: [], warnings: [] };
    });
    const { result } = await run(driver, spool);
    expect(result.error?.code).toBe('E_INTERNAL');
    await until(() => files(spool.dir).length === 0);
  });

  it('the outbox keeps the reference, removes the file on result-ack; a start sweeps files nobody names', async () => {
    const spool = await ResultSpool.open({
      stateDir: dir,
      memoryBytes: 1024,
      logger: silentLogger,
    });
    const { frame } = await run(discoverDriver(), spool);
    if (!(frame instanceof SpooledResultFrame)) throw new Error('not spooled');
    const journal = await StateJournal.open({ dir, logger: silentLogger });
    const outbox = new Outbox({
      journal,
      spoolDir: spool.dir,
      logger: silentLogger,
      events: new AgentEvents(),
    });
    await outbox.add(frame);
    // The journal holds the reference, not the text.
    const record = [...journal.entries('o:')][0]?.[1] ?? '';
    expect(record.length).toBeLessThan(1000);
    expect(JSON.parse(record)).toMatchObject({
      spool: { bytes: frame.bytes, sha256: frame.sha256 },
    });

    const stray = join(spool.dir, 'stray-result.json');
    writeFileSync(stray, '{}');
    expect(await spool.sweep(outbox.frames())).toBe(1);
    expect(existsSync(stray)).toBe(false);
    expect(existsSync(frame.path)).toBe(true);

    expect(await outbox.ack(frame.commandId)).toBe(true);
    expect(existsSync(frame.path)).toBe(false);
    expect(frame.held).toBe(false);
    await journal.close();
  });

  it('an outbox reference whose file is gone or truncated is dropped at load', async () => {
    const spool = await ResultSpool.open({
      stateDir: dir,
      memoryBytes: 1024,
      logger: silentLogger,
    });
    const a = (await run(discoverDriver(), spool)).frame;
    const b = (await run(discoverDriver(), spool)).frame;
    if (!(a instanceof SpooledResultFrame) || !(b instanceof SpooledResultFrame)) {
      throw new Error('not spooled');
    }
    const j1 = await StateJournal.open({ dir, logger: silentLogger });
    const o1 = new Outbox({
      journal: j1,
      spoolDir: spool.dir,
      logger: silentLogger,
      events: new AgentEvents(),
    });
    await o1.add(a);
    await o1.add(b);
    await j1.close();
    writeFileSync(b.path, readFileSync(b.path).subarray(0, 100));
    const j2 = await StateJournal.open({ dir, logger: silentLogger });
    const o2 = new Outbox({
      journal: j2,
      spoolDir: spool.dir,
      logger: silentLogger,
      events: new AgentEvents(),
    });
    await o2.load();
    expect(o2.frames().map((f) => f.commandId)).toEqual([a.commandId]);
    const [again] = o2.frames();
    expect(again?.spooled).toBe(true);
    expect(again?.sha256).toBe(a.sha256);
    expect(statSync(a.path).size).toBe(a.bytes);
    await j2.close();
  });

  it('a duplicate gets the held spooled result until it is acknowledged, then E_REPLAY (never run twice)', async () => {
    const spool = await ResultSpool.open({
      stateDir: dir,
      memoryBytes: 1024,
      logger: silentLogger,
    });
    const driver = discoverDriver();
    const h = harness(registryOf(driver), { spool });
    const frames = new Map<string, HeldFrame>();
    h.dispatcher.onResult((r, f) => frames.set(r.commandId, f));
    const env = envelope('discover', { type: 'fake' });
    expect(submit(h, env).status).toBe('accepted');
    await h.resultOf(env.id);
    const frame = frames.get(env.id);
    expect(frame?.spooled).toBe(true);
    const again = submit(h, env);
    expect(again.status === 'done' && again.result).toBe(frame);
    if (frame?.spooled === true) frame.release(); // what the outbox does on result-ack
    const late = submit(h, env);
    expect(late.status).toBe('rejected');
    expect(late.status === 'rejected' && late.error.code).toBe('E_REPLAY');
    expect(driver.calls).toHaveLength(1);
  });
});
