/**
 * The agent's state directory: opening it, locking it, migrating older files into the
 * journal, and falling back to memory when it cannot be used.
 *
 * What lives in the journal (`state.journal`, see `journal.ts`), by key prefix:
 * - `o:<commandId>`: the outbox (results until `result-ack`), `src/controlplane/outbox.ts`;
 * - `c:<commandId>`: the command-id record, `src/dispatch/idempotency.ts`;
 * - `i:<integrationId>`: the integrations seen in commands, `src/dispatch/known-integrations.ts`.
 * - `sp:<database ARN>`: secret pairings found by aws-discovery, `src/secrets/discovered.ts`.
 *
 * One agent per directory: `state.lock` holds the pid of the agent using it. A lock whose
 * pid is not alive (or is our own pid: a restarted container is pid 1 again) is stale and
 * taken over; a live one makes this agent run without state (logged, metric
 * `latchkey_state_enabled` 0) rather than corrupt another agent's journal.
 *
 * Migration (agents before the journal): `outbox.json` and `integrations.json` are read
 * once, their entries written to the journal, and the files removed after the journal is
 * durable. A file that does not parse is moved aside (`<name>.corrupt-<time>`).
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { OUTBOX_KEY_PREFIX } from '../controlplane/outbox.js';
import { INTEGRATION_KEY_PREFIX } from '../dispatch/known-integrations.js';
import type { AgentEvents } from '../events.js';
import { IntegrationSchema, ResultSchema } from '../protocol/messages.js';
import { StateJournal } from './journal.js';

export { StateJournal, JOURNAL_FILE } from './journal.js';

export const LOCK_FILE = 'state.lock';
/** Files of agents before the journal, migrated on first start. */
export const LEGACY_OUTBOX_FILE = 'outbox.json';
export const LEGACY_INTEGRATIONS_FILE = 'integrations.json';

export interface AgentState {
  /** Undefined: memory only. */
  readonly journal: StateJournal | undefined;
  readonly dir: string | undefined;
  /** Flushes and closes the journal, releases the lock. */
  close(): Promise<void>;
}

export interface OpenStateOptions {
  /** Undefined: state off (memory only). */
  dir: string | undefined;
  /** True when the operator named the directory (a failure is an error, not a warning). */
  explicit: boolean;
  logger: Logger;
  events: AgentEvents;
  compactMinBytes?: number;
}

export async function openState(opts: OpenStateOptions): Promise<AgentState> {
  const { dir, logger, events } = opts;
  const memoryOnly: AgentState = { journal: undefined, dir: undefined, close: async () => {} };
  if (dir === undefined) {
    events.emit('state:enabled', { enabled: false });
    logger.info('no state directory: results and command ids do not survive a restart');
    return memoryOnly;
  }
  let lock: string | undefined;
  let journal: StateJournal | undefined;
  try {
    // The lock first: never touch (or cut a torn end off) another live agent's journal.
    await mkdir(dir, { recursive: true, mode: 0o700 });
    lock = await takeLock(dir);
    journal = await StateJournal.open({
      dir,
      logger,
      events,
      ...(opts.compactMinBytes === undefined ? {} : { compactMinBytes: opts.compactMinBytes }),
    });
    await migrate(dir, journal, logger);
  } catch (err) {
    await journal?.close().catch(() => undefined);
    if (lock !== undefined) await rm(lock, { force: true }).catch(() => undefined);
    const level = opts.explicit ? 'error' : 'warn';
    logger[level](
      { err, stateDir: dir },
      'state directory not usable; running with state in memory only (results and command ids are lost on restart, remembered integrations are not swept after one)',
    );
    events.emit('state:enabled', { enabled: false });
    return memoryOnly;
  }
  events.emit('state:enabled', { enabled: true });
  logger.info(
    { stateDir: dir, records: journal.size, bytes: journal.sizeBytes },
    'state journal opened',
  );
  const j = journal;
  const lockFile = lock;
  let closing: Promise<void> | undefined;
  return {
    journal: j,
    dir,
    close() {
      closing ??= (async () => {
        await j.close();
        await rm(lockFile, { force: true }).catch(() => undefined);
      })();
      return closing;
    },
  };
}

class StateDirInUse extends Error {}

async function takeLock(dir: string): Promise<string> {
  const file = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const h = await open(file, 'wx', 0o600);
      try {
        await h.writeFile(`${process.pid}\n`);
        await h.sync();
      } finally {
        await h.close();
      }
      return file;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number.parseInt((await readFile(file, 'utf8').catch(() => '')).trim(), 10);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new StateDirInUse(`state directory is in use by process ${pid}`);
    }
    await rm(file, { force: true });
  }
  throw new StateDirInUse('could not take the state directory lock');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const LegacyOutboxSchema = z.object({ version: z.literal(1), entries: z.array(z.unknown()) });
const LegacyIntegrationsSchema = z.object({
  version: z.literal(1),
  integrations: z.array(z.unknown()),
});

async function migrate(dir: string, journal: StateJournal, logger: Logger): Promise<void> {
  const outbox = await readLegacy(join(dir, LEGACY_OUTBOX_FILE), LegacyOutboxSchema, logger);
  if (outbox !== undefined) {
    let n = 0;
    for (const raw of outbox.entries) {
      const r = ResultSchema.safeParse(raw);
      if (!r.success) continue;
      void journal.putRaw(OUTBOX_KEY_PREFIX + r.data.commandId, JSON.stringify(raw));
      n += 1;
    }
    await journal.flush();
    await rm(join(dir, LEGACY_OUTBOX_FILE), { force: true });
    logger.info({ results: n }, 'outbox.json migrated to the state journal');
  }
  const known = await readLegacy(
    join(dir, LEGACY_INTEGRATIONS_FILE),
    LegacyIntegrationsSchema,
    logger,
  );
  if (known !== undefined) {
    let n = 0;
    for (const raw of known.integrations) {
      const i = IntegrationSchema.safeParse(raw);
      if (!i.success) continue;
      void journal.put(INTEGRATION_KEY_PREFIX + i.data.id, i.data);
      n += 1;
    }
    await journal.flush();
    await rm(join(dir, LEGACY_INTEGRATIONS_FILE), { force: true });
    logger.info({ integrations: n }, 'integrations.json migrated to the state journal');
  }
}

async function readLegacy<T>(
  file: string,
  schema: z.ZodType<T>,
  logger: Logger,
): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return schema.parse(JSON.parse(text));
  } catch {
    const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    logger.error({ file, aside }, 'old state file corrupt; moved aside, not migrated');
    await rename(file, aside);
    return undefined;
  }
}
