import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  INTEGRATION_KEY_PREFIX,
  KnownIntegrations,
} from '../../../src/dispatch/known-integrations.js';
import { JOURNAL_FILE, StateJournal } from '../../../src/state/journal.js';
import type { Integration } from '../../../src/protocol/messages.js';
import { silentLogger } from './fakes.js';

const root = mkdtempSync(join(tmpdir(), 'latchkey-known-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => join(root, `state-${n++}`);

const configured: Integration = {
  id: 'orders-db',
  type: 'postgres',
  config: { host: 'orders.internal', port: 5432 },
  secret: { store: 'aws-secrets-manager', secretId: 'latchkey/orders' },
};
const seen: Integration = {
  id: 'billing',
  type: 'mysql',
  config: { host: 'billing.internal' },
  secret: { store: 'kubernetes', name: 'billing-db' },
};

describe('KnownIntegrations', () => {
  it('lists configured integrations, then remembered ones', async () => {
    const known = new KnownIntegrations({ initial: [configured], logger: silentLogger });
    await known.load();
    await known.remember(seen);
    expect(known.list().map((i) => i.id)).toEqual(['orders-db', 'billing']);
  });

  it('keeps remembered integrations in the state journal and reloads them', async () => {
    const dir = freshDir();
    const ja = await StateJournal.open({ dir, logger: silentLogger });
    const a = new KnownIntegrations({ journal: ja, initial: [configured], logger: silentLogger });
    await a.load();
    await a.remember(seen);
    await a.remember({ ...seen, config: { host: 'billing2.internal' } });
    expect(statSync(join(dir, JOURNAL_FILE)).mode & 0o777).toBe(0o600);
    await ja.close();

    const jb = await StateJournal.open({ dir, logger: silentLogger });
    const b = new KnownIntegrations({ journal: jb, initial: [configured], logger: silentLogger });
    await b.load();
    expect(b.list()).toEqual([configured, { ...seen, config: { host: 'billing2.internal' } }]);
    await jb.close();
  });

  it('never lets a remembered integration replace a configured one', async () => {
    const journal = await StateJournal.open({ dir: freshDir(), logger: silentLogger });
    const known = new KnownIntegrations({ journal, initial: [configured], logger: silentLogger });
    await known.remember({ ...configured, config: { host: 'evil.example.com' } });
    expect(known.list()).toEqual([configured]);
    expect([...journal.entries(INTEGRATION_KEY_PREFIX)]).toEqual([]);
    await journal.close();
  });

  it('drops malformed records and starts with the configured ones', async () => {
    const dir = freshDir();
    const j1 = await StateJournal.open({ dir, logger: silentLogger });
    await j1.put(`${INTEGRATION_KEY_PREFIX}x`, { id: 'x' });
    await j1.put(`${INTEGRATION_KEY_PREFIX}other`, seen); // key and id disagree
    await j1.close();
    const j2 = await StateJournal.open({ dir, logger: silentLogger });
    const known = new KnownIntegrations({
      journal: j2,
      initial: [configured],
      logger: silentLogger,
    });
    await known.load();
    expect(known.list()).toEqual([configured]);
    expect([...j2.entries(INTEGRATION_KEY_PREFIX)]).toEqual([]);
    await j2.close();
  });

  it('returns copies: callers cannot change what is known', () => {
    const known = new KnownIntegrations({ initial: [configured], logger: silentLogger });
    const list = known.list();
    (list[0]?.config as Record<string, unknown>).host = 'changed';
    expect(known.list()[0]?.config.host).toBe('orders.internal');
  });

  it('refuses to remember something that is not an integration', async () => {
    const known = new KnownIntegrations({ initial: [], logger: silentLogger });
    await expect(known.remember({ id: 'bad id', type: 'x', config: {} })).rejects.toThrow();
    expect(known.list()).toEqual([]);
  });
});
