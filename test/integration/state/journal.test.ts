/**
 * The state journal on a real filesystem: durability, group commit, torn and corrupt
 * records, compaction under concurrent appends and a crash (kill -9) mid-compaction.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentEvents } from '../../../src/events.js';
import { JOURNAL_FILE, StateJournal } from '../../../src/state/journal.js';

const logger = pino({ level: 'silent' });

describe('StateJournal', () => {
  let dir: string;
  const open: StateJournal[] = [];
  const openJournal = async (
    opts: Partial<Parameters<typeof StateJournal.open>[0]> = {},
  ): Promise<StateJournal> => {
    const j = await StateJournal.open({ dir, logger, ...opts });
    open.push(j);
    return j;
  };
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-journal-'));
  });
  afterEach(async () => {
    for (const j of open.splice(0)) await j.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps puts and deletes across a reopen, in order of last write, values byte for byte', async () => {
    const a = await openJournal();
    const raw = '{"b":1,"a":"tab\\there","n":1e21,"u":"\\u00e9"}';
    await a.putRaw('x:1', raw);
    await a.put('x:2', { two: 2 });
    await a.put('y:1', 'other prefix');
    await a.put('x:3', [3]);
    await a.delete('x:2');
    await a.put('x:1', { one: 'again' }); // moves to the end
    await a.putRaw('x:4', raw);
    await a.close();
    expect((await stat(join(dir, JOURNAL_FILE))).mode & 0o777).toBe(0o600);

    const b = await openJournal();
    expect([...b.entries('x:')]).toEqual([
      ['x:3', '[3]'],
      ['x:1', '{"one":"again"}'],
      ['x:4', raw],
    ]);
    expect(b.get('y:1')).toBe('"other prefix"');
    expect(b.report).toMatchObject({ records: 7, live: 4, tornBytes: 0, corrupt: 0 });
  });

  it('group commit: what is appended in one event-loop turn shares one write and one fsync', async () => {
    const events = new AgentEvents();
    const commits: number[] = [];
    events.on('state:fsync', (e) => commits.push(e.records));
    const j = await openJournal({ events });
    await Promise.all(Array.from({ length: 200 }, (_, i) => j.put(`k:${i}`, { i })));
    expect(commits).toEqual([200]);
    await j.put('k:last', 1);
    expect(commits).toEqual([200, 1]);
  });

  it('a put resolves only once its record is in the file', async () => {
    const j = await openJournal();
    const done = j.put('k:1', { v: 1 });
    expect(readFileSync(join(dir, JOURNAL_FILE), 'utf8')).toBe('');
    await done;
    expect(await readFile(join(dir, JOURNAL_FILE), 'utf8')).toContain('"k:1"\t{"v":1}\n');
  });

  it('drops a torn last record (a crash mid-write) and goes on appending after the good ones', async () => {
    const a = await openJournal();
    await a.put('k:1', 'one');
    await a.put('k:2', 'two');
    await a.close();
    const file = join(dir, JOURNAL_FILE);
    const good = (await stat(file)).size;
    // Half a record, then a whole line whose checksum does not match (torn differently).
    await appendFile(file, '0123456789abcdef\t"k:3"\t"thr');
    const b = await openJournal();
    expect(b.report.tornBytes).toBeGreaterThan(0);
    expect(b.report.corrupt).toBe(0);
    expect((await stat(file)).size).toBe(good);
    expect([...b.entries('k:')].map(([k]) => k)).toEqual(['k:1', 'k:2']);
    await b.put('k:3', 'three');
    await b.close();

    await appendFile(file, 'ffffffffffffffff\t"k:4"\t"four"\n');
    const c = await openJournal();
    expect(c.report.tornBytes).toBe(30);
    expect([...c.entries('k:')].map(([k, v]) => `${k}=${v}`)).toEqual([
      'k:1="one"',
      'k:2="two"',
      'k:3="three"',
    ]);
  });

  it('skips a corrupt record inside the file, keeps the rest and compacts it away', async () => {
    const a = await openJournal();
    await a.put('k:1', 'one');
    await a.put('k:2', 'two');
    await a.put('k:3', 'three');
    await a.close();
    const file = join(dir, JOURNAL_FILE);
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('"two"', '"tw0"'));
    const events = new AgentEvents();
    const compacted = new Promise((r) => events.on('state:compacted', r));
    const b = await openJournal({ events });
    expect(b.report.corrupt).toBe(1);
    expect([...b.entries('k:')].map(([k]) => k)).toEqual(['k:1', 'k:3']);
    expect(await compacted).toEqual({ outcome: 'ok' });
    expect(await readFile(file, 'utf8')).not.toContain('tw0');
  });

  it('compacts in the background while appends go on; nothing is lost or resurrected', async () => {
    const events = new AgentEvents();
    let compactions = 0;
    events.on('state:compacted', (e) => {
      if (e.outcome === 'ok') compactions += 1;
    });
    const j = await openJournal({ events, compactMinBytes: 4096 });
    const model = new Map<string, string>();
    const writes: Promise<void>[] = [];
    for (let round = 0; round < 60; round++) {
      for (let i = 0; i < 40; i++) {
        const key = `k:${(round * 7 + i) % 50}`;
        if ((round + i) % 5 === 0) {
          writes.push(j.delete(key));
          model.delete(key);
        } else {
          const value = JSON.stringify({ round, i, pad: 'x'.repeat(40) });
          writes.push(j.putRaw(key, value));
          model.set(key, value);
        }
      }
      if (round % 10 === 5) writes.push(j.compactNow());
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(writes);
    // A compaction under way took its snapshot while appends went on (they follow it as
    // its tail); one started now sees them all.
    await j.compactNow();
    await j.compactNow();
    await j.close();
    expect(compactions).toBeGreaterThan(1);
    const size = (await stat(join(dir, JOURNAL_FILE))).size;
    const reopened = await openJournal();
    expect(new Map(reopened.entries('k:'))).toEqual(model);
    // Dead records were dropped: 2400 records of ~100 bytes were written, 50 keys at most live.
    expect(size).toBeLessThan(50 * 120);
    expect((await readdir(dir)).sort()).toEqual([JOURNAL_FILE]);
  });

  it('removes the temp file of an interrupted compaction and keeps the journal it would have replaced', async () => {
    const a = await openJournal();
    await a.put('k:1', 'kept');
    await a.close();
    await writeFile(join(dir, `${JOURNAL_FILE}.compact-123.abcdef`), 'partial\tgarbage');
    const b = await openJournal();
    expect(b.get('k:1')).toBe('"kept"');
    expect(await readdir(dir)).toEqual([JOURNAL_FILE]);
  });

  it('survives kill -9 at any point of appends and compactions: every durable write is there', async () => {
    // A child appends and compacts in a loop, reporting each write once it is durable.
    const script = `
      import { StateJournal } from ${JSON.stringify(new URL('../../../src/state/journal.ts', import.meta.url).pathname)};
      import { pino } from ${JSON.stringify(createRequire(import.meta.url).resolve('pino'))};
      const j = await StateJournal.open({ dir: process.argv[2], logger: pino({ level: 'silent' }), compactMinBytes: 2048 });
      for (let n = 0; ; n++) {
        const batch = [];
        for (let k = 0; k < 10; k++) batch.push(j.put('k:' + ((n * 10 + k) % 37), { n, k, pad: 'p'.repeat(30) }));
        if (n % 7 === 0) void j.compactNow();
        await Promise.all(batch);
        process.stdout.write(n + '\\n');
      }
    `;
    const scriptFile = join(dir, '..', `journal-crash-${process.pid}-${Date.now()}.mts`);
    await writeFile(scriptFile, script);
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        const crashDir = join(dir, `crash-${attempt}`);
        const child = spawn(process.execPath, ['--import', 'tsx', scriptFile, crashDir], {
          stdio: ['ignore', 'pipe', 'inherit'],
          cwd: new URL('../../..', import.meta.url).pathname,
        });
        let out = '';
        child.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
        // Let it run through several compactions, then kill it without warning.
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('child made no progress')), 30_000);
          child.stdout.on('data', () => {
            if (out.split('\n').length > 60 + attempt * 37) {
              clearTimeout(timer);
              resolve();
            }
          });
        });
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        const lines = out.trim().split('\n');
        const lastDurable = Number(lines[lines.length - 1]);

        const j = await StateJournal.open({ dir: crashDir, logger });
        try {
          // Every key's last durable write (batch <= lastDurable) is there, or a later one.
          for (let key = 0; key < 37; key++) {
            let expected = -1;
            for (let n = 0; n <= lastDurable; n++) {
              for (let k = 0; k < 10; k++) if ((n * 10 + k) % 37 === key) expected = n;
            }
            const v = JSON.parse(j.get(`k:${key}`) ?? 'null') as { n: number } | null;
            expect(v?.n ?? -1).toBeGreaterThanOrEqual(expected);
          }
          expect(j.report.corrupt).toBe(0);
        } finally {
          await j.close();
        }
        expect((await readdir(crashDir)).filter((n) => n.includes('.compact-'))).toEqual([]);
      }
    } finally {
      await rm(scriptFile, { force: true });
    }
  }, 90_000);
});
