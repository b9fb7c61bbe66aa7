/**
 * The outbox's atomic write never follows a symlink planted in the state directory at
 * the name of its temp file (a local attacker with write access to a shared directory).
 */
import type * as NodeCrypto from 'node:crypto';
import { lstat, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
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

const { Outbox, OUTBOX_FILE } = await import('../../../src/controlplane/outbox.js');
const { KnownIntegrations, KNOWN_INTEGRATIONS_FILE } =
  await import('../../../src/dispatch/known-integrations.js');
const { AgentEvents } = await import('../../../src/events.js');

const logger = pino({ level: 'silent' });
const VICTIM_TEXT = 'do not overwrite me\n';

describe('state files: symlinks planted at the temp name', () => {
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

  it('the outbox writes a fresh 0600 file and leaves the symlink target alone', async () => {
    const outbox = new Outbox({ stateDir: dir, logger, events: new AgentEvents() });
    await outbox.load();
    const name = 'aaaaaaaaaaaaaaaa';
    await symlink(victim, join(dir, `${OUTBOX_FILE}.${process.pid}.${name}.tmp`));
    planted.next.push(name);
    await outbox.add({
      type: 'result',
      commandId: 'c1',
      kind: 'check',
      status: 'ok',
      output: { ok: true, checks: [] },
      timings: {
        receivedAt: '2026-11-25T20:00:00.000Z',
        finishedAt: '2026-11-25T20:00:01.000Z',
        queueMs: 0,
        runMs: 1000,
      },
    });
    expect(await readFile(victim, 'utf8')).toBe(VICTIM_TEXT);
    const file = join(dir, OUTBOX_FILE);
    expect((await lstat(file)).isSymbolicLink()).toBe(false);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({
      version: 1,
      entries: [{ commandId: 'c1' }],
    });
  });

  it('the known-integrations file is never written through a planted symlink', async () => {
    const known = new KnownIntegrations({ stateDir: dir, initial: [], logger });
    await known.load();
    const name = 'bbbbbbbbbbbbbbbb';
    await symlink(victim, join(dir, `${KNOWN_INTEGRATIONS_FILE}.${process.pid}.${name}.tmp`));
    planted.next.push(name);
    await known.remember({ id: 'pg-1', type: 'postgres', config: { host: 'db' } });
    expect(await readFile(victim, 'utf8')).toBe(VICTIM_TEXT);
    const file = join(dir, KNOWN_INTEGRATIONS_FILE);
    // The write was refused (logged); nothing points at the victim.
    await expect(lstat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(known.list().map((i) => i.id)).toEqual(['pg-1']);
  });
});
