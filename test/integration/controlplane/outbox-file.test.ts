import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox, OUTBOX_FILE } from '../../../src/controlplane/outbox.js';
import { AgentEvents } from '../../../src/events.js';
import { checkResult as result } from '../../helpers/results.js';
import type { Result } from '../../../src/protocol/messages.js';

const logger = pino({ level: 'silent' });

describe('Outbox persisted', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-outbox-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('survives a restart with order and replacements intact', async () => {
    const first = new Outbox({ stateDir: dir, logger, events: new AgentEvents() });
    await first.load();
    await first.add(result('a'));
    await first.add(result('b'));
    await first.add(result('c'));
    await first.ack('a');
    await first.add(result('b', 'error'));

    const onDisk = JSON.parse(await readFile(join(dir, OUTBOX_FILE), 'utf8')) as {
      version: number;
      entries: Result[];
    };
    expect(onDisk.version).toBe(1);
    expect(onDisk.entries.map((e) => e.commandId)).toEqual(['c', 'b']);

    const events = new AgentEvents();
    const sizes: number[] = [];
    events.on('outbox:size', ({ size }) => sizes.push(size));
    const second = new Outbox({ stateDir: dir, logger, events });
    await second.load();
    expect(second.entries()).toEqual([result('c'), result('b', 'error')]);
    expect(sizes).toEqual([2]);
  });

  it('writes atomically: no temp files remain and concurrent writes end in the latest state', async () => {
    const outbox = new Outbox({ stateDir: dir, logger, events: new AgentEvents() });
    await outbox.load();
    await Promise.all(Array.from({ length: 20 }, (_, i) => outbox.add(result(`cmd-${i}`))));
    await Promise.all(Array.from({ length: 10 }, (_, i) => outbox.ack(`cmd-${i * 2}`)));
    expect((await readdir(dir)).sort()).toEqual([OUTBOX_FILE]);
    const onDisk = JSON.parse(await readFile(join(dir, OUTBOX_FILE), 'utf8')) as {
      entries: Result[];
    };
    expect(onDisk.entries.map((e) => e.commandId)).toEqual(
      outbox.entries().map((e) => e.commandId),
    );
    expect(onDisk.entries).toHaveLength(10);
  });

  it('removes stale temp files of an interrupted write on load, keeping the last complete file', async () => {
    await writeFile(
      join(dir, OUTBOX_FILE),
      JSON.stringify({ version: 1, entries: [result('kept')] }),
    );
    await writeFile(join(dir, `${OUTBOX_FILE}.123.abcd.tmp`), '{"version":1,"entr');
    const outbox = new Outbox({ stateDir: dir, logger, events: new AgentEvents() });
    await outbox.load();
    expect(outbox.entries().map((e) => e.commandId)).toEqual(['kept']);
    expect(await readdir(dir)).toEqual([OUTBOX_FILE]);
  });

  it('moves a corrupt file aside and starts empty', async () => {
    await writeFile(join(dir, OUTBOX_FILE), '{"version":1,"entries":[{"type":"res');
    const lines: string[] = [];
    const capture = pino({ level: 'info' }, { write: (l: string) => lines.push(l) });
    const outbox = new Outbox({ stateDir: dir, logger: capture, events: new AgentEvents() });
    await expect(outbox.load()).resolves.toBeUndefined();
    expect(outbox.size).toBe(0);
    const names = await readdir(dir);
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^outbox\.json\.corrupt-/);
    expect(lines.some((l) => l.includes('outbox file corrupt'))).toBe(true);

    // and it works normally afterwards
    await outbox.add(result('x'));
    expect((await readdir(dir)).sort()).toContain(OUTBOX_FILE);
  });

  it('moves aside a file of the wrong shape, and drops single malformed entries', async () => {
    await writeFile(join(dir, OUTBOX_FILE), JSON.stringify({ version: 7, entries: [] }));
    const a = new Outbox({ stateDir: dir, logger, events: new AgentEvents() });
    await a.load();
    expect(a.size).toBe(0);
    expect((await readdir(dir)).some((n) => n.startsWith('outbox.json.corrupt-'))).toBe(true);

    await writeFile(
      join(dir, OUTBOX_FILE),
      JSON.stringify({
        version: 1,
        entries: [result('good'), { type: 'result', commandId: 'bad' }],
      }),
    );
    const b = new Outbox({ stateDir: dir, logger, events: new AgentEvents() });
    await b.load();
    expect(b.entries().map((e) => e.commandId)).toEqual(['good']);
  });

  it('creates the state directory when missing', async () => {
    const nested = join(dir, 'a', 'b');
    const outbox = new Outbox({ stateDir: nested, logger, events: new AgentEvents() });
    await outbox.load();
    await outbox.add(result('z'));
    expect(await readdir(nested)).toEqual([OUTBOX_FILE]);
  });
});
