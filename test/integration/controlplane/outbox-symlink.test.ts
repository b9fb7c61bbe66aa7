/**
 * The state journal never follows a symlink planted in the state directory, at its own
 * name or at the name of a compaction's temp file (a local attacker with write access
 * to a shared directory).
 */
import type * as NodeCrypto from 'node:crypto';
import { lstat, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const planted = vi.hoisted(() => ({ next: [] as string[] }));
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof NodeCrypto>();
  return {
    ...real,
    randomBytes: (n: number) => {
      const hex = planted.next.shift();
      return hex === undefined ? real.randomBytes(n) : Buffer.from(hex.padEnd(n * 2, '0'), 'hex');
    },
  };
});

const { JOURNAL_FILE, StateJournal, openState } = await import('../../../src/state/index.js');
const { AgentEvents } = await import('../../../src/events.js');

const logger = pino({ level: 'silent' });
const VICTIM_TEXT = 'do not overwrite me\n';

describe('state journal: planted symlinks', () => {
  let dir: string;
  let victim: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-symlink-'));
    victim = join(dir, 'victim.txt');
    await writeFile(victim, VICTIM_TEXT);
  });
  afterEach(async () => {
    planted.next = [];
    await rm(dir, { recursive: true, force: true });
  });

  it('a symlink at the journal name is not opened: state falls back to memory', async () => {
    await symlink(victim, join(dir, JOURNAL_FILE));
    const state = await openState({ dir, explicit: true, logger, events: new AgentEvents() });
    expect(state.journal).toBeUndefined();
    expect(await readFile(victim, 'utf8')).toBe(VICTIM_TEXT);
    expect((await lstat(join(dir, JOURNAL_FILE))).isSymbolicLink()).toBe(true);
  });

  it('a compaction never writes through a symlink planted at its temp name', async () => {
    const journal = await StateJournal.open({ dir, logger });
    await journal.put('k:1', 'one');
    await journal.put('k:1', 'two');
    const name = 'aaaaaaaaaaaa';
    await symlink(victim, join(dir, `${JOURNAL_FILE}.compact-${process.pid}.${name}`));
    planted.next.push(name);
    await journal.compactNow(); // refused (logged), the journal goes on
    expect(await readFile(victim, 'utf8')).toBe(VICTIM_TEXT);
    await journal.put('k:2', 'three');
    await journal.close();
    const again = await StateJournal.open({ dir, logger });
    expect([...again.entries('k:')]).toEqual([
      ['k:1', '"two"'],
      ['k:2', '"three"'],
    ]);
    await again.close();
  });
});
