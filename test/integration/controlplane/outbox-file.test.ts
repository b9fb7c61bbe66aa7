import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox, OUTBOX_KEY_PREFIX } from '../../../src/controlplane/outbox.js';
import { AgentEvents } from '../../../src/events.js';
import { JOURNAL_FILE, LOCK_FILE, openState, StateJournal } from '../../../src/state/index.js';
import { checkResult as result } from '../../helpers/results.js';

const logger = pino({ level: 'silent' });

describe('Outbox in the state journal', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-outbox-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('survives a restart with order, replacements and frames (byte for byte) intact', async () => {
    const j1 = await StateJournal.open({ dir, logger });
    const first = new Outbox({ journal: j1, logger, events: new AgentEvents() });
    await first.load();
    await first.add(result('a'));
    await first.add(result('b'));
    await first.add(result('c'));
    await first.ack('a');
    await first.add(result('b', 'error'));
    const texts = first.frames().map((f) => (f.spooled ? f.readText() : f.text));
    await j1.close();

    const events = new AgentEvents();
    const sizes: number[] = [];
    events.on('outbox:size', ({ size }) => sizes.push(size));
    const j2 = await StateJournal.open({ dir, logger });
    const second = new Outbox({ journal: j2, logger, events });
    await second.load();
    expect(second.entries()).toEqual([result('c'), result('b', 'error')]);
    expect(second.frames().map((f) => (f.spooled ? f.readText() : f.text))).toEqual(texts);
    expect(sizes).toEqual([2]);
    await j2.close();
  });

  it('drops records that are not results (or name another command id)', async () => {
    const j1 = await StateJournal.open({ dir, logger });
    await j1.put(`${OUTBOX_KEY_PREFIX}good`, result('good'));
    await j1.put(`${OUTBOX_KEY_PREFIX}bad`, { type: 'result', commandId: 'bad' });
    await j1.put(`${OUTBOX_KEY_PREFIX}other`, result('not-other'));
    await j1.close();
    const j2 = await StateJournal.open({ dir, logger });
    const outbox = new Outbox({ journal: j2, logger, events: new AgentEvents() });
    await outbox.load();
    expect(outbox.entries().map((e) => e.commandId)).toEqual(['good']);
    expect([...j2.entries(OUTBOX_KEY_PREFIX)].map(([k]) => k)).toEqual([
      `${OUTBOX_KEY_PREFIX}good`,
    ]);
    await j2.close();
  });
});

describe('openState', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-state-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('migrates outbox.json and integrations.json of an older agent into the journal, once', async () => {
    await writeFile(
      join(dir, 'outbox.json'),
      JSON.stringify({ version: 1, entries: [result('old-1'), { junk: true }, result('old-2')] }),
    );
    await writeFile(
      join(dir, 'integrations.json'),
      JSON.stringify({
        version: 1,
        integrations: [{ id: 'pg-1', type: 'postgres', config: { host: 'db' } }],
      }),
    );
    const state = await openState({ dir, explicit: true, logger, events: new AgentEvents() });
    const journal = state.journal;
    expect(journal).toBeDefined();
    const outbox = new Outbox({
      ...(journal ? { journal } : {}),
      logger,
      events: new AgentEvents(),
    });
    await outbox.load();
    expect(outbox.entries()).toEqual([result('old-1'), result('old-2')]);
    expect(journal?.get('i:pg-1')).toBe('{"id":"pg-1","type":"postgres","config":{"host":"db"}}');
    expect((await readdir(dir)).sort()).toEqual([LOCK_FILE, JOURNAL_FILE].sort());
    await state.close();
    expect(await readdir(dir)).toEqual([JOURNAL_FILE]);
  });

  it('moves a corrupt old outbox.json aside instead of migrating it', async () => {
    await writeFile(join(dir, 'outbox.json'), '{"version":1,"entries":[{"type":"res');
    const state = await openState({ dir, explicit: true, logger, events: new AgentEvents() });
    expect(state.journal?.size).toBe(0);
    expect((await readdir(dir)).some((n) => n.startsWith('outbox.json.corrupt-'))).toBe(true);
    await state.close();
  });

  it('falls back to memory with a metric when the directory is in use by another live agent', async () => {
    await writeFile(join(dir, LOCK_FILE), `${process.ppid}\n`); // a live process, not us
    const events = new AgentEvents();
    const enabled: boolean[] = [];
    events.on('state:enabled', (e) => enabled.push(e.enabled));
    const lines: string[] = [];
    const capture = pino({ level: 'info' }, { write: (l: string) => lines.push(l) });
    const state = await openState({ dir, explicit: false, logger: capture, events });
    expect(state.journal).toBeUndefined();
    expect(enabled).toEqual([false]);
    expect(lines.some((l) => l.includes('in memory only') && l.includes('in use'))).toBe(true);
    expect(await readdir(dir)).toEqual([LOCK_FILE]); // the other agent's journal untouched
  });

  it('takes over a stale lock (a dead process) and falls back to memory when the directory is not usable', async () => {
    await writeFile(join(dir, LOCK_FILE), '2147483646\n');
    const a = await openState({ dir, explicit: true, logger, events: new AgentEvents() });
    expect(a.journal).toBeDefined();
    await a.close();

    const file = join(dir, 'not-a-dir');
    await writeFile(file, 'x');
    const events = new AgentEvents();
    const enabled: boolean[] = [];
    events.on('state:enabled', (e) => enabled.push(e.enabled));
    const b = await openState({ dir: join(file, 'state'), explicit: false, logger, events });
    expect(b.journal).toBeUndefined();
    expect(enabled).toEqual([false]);
  });
});
