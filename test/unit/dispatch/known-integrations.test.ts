import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KnownIntegrations } from '../../../src/dispatch/known-integrations.js';
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

  it('persists remembered integrations atomically and reloads them', async () => {
    const stateDir = freshDir();
    const a = new KnownIntegrations({ stateDir, initial: [configured], logger: silentLogger });
    await a.load();
    await a.remember(seen);
    await a.remember({ ...seen, config: { host: 'billing2.internal' } });
    const file = join(stateDir, 'integrations.json');
    const json = JSON.parse(readFileSync(file, 'utf8')) as { integrations: Integration[] };
    expect(json.integrations).toEqual([{ ...seen, config: { host: 'billing2.internal' } }]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(stateDir).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const b = new KnownIntegrations({ stateDir, initial: [configured], logger: silentLogger });
    await b.load();
    expect(b.list()).toEqual([configured, { ...seen, config: { host: 'billing2.internal' } }]);
  });

  it('never lets a remembered integration replace a configured one', async () => {
    const stateDir = freshDir();
    const known = new KnownIntegrations({ stateDir, initial: [configured], logger: silentLogger });
    await known.remember({ ...configured, config: { host: 'evil.example.com' } });
    expect(known.list()).toEqual([configured]);
  });

  it('ignores a broken state file and starts with the configured ones', async () => {
    const stateDir = freshDir();
    const first = new KnownIntegrations({ stateDir, initial: [], logger: silentLogger });
    await first.remember(seen); // creates the directory
    writeFileSync(join(stateDir, 'integrations.json'), '{ not json');
    const known = new KnownIntegrations({ stateDir, initial: [configured], logger: silentLogger });
    await known.load();
    expect(known.list()).toEqual([configured]);
    writeFileSync(
      join(stateDir, 'integrations.json'),
      JSON.stringify({ version: 1, integrations: [{ id: 'x' }] }),
    );
    await known.load();
    expect(known.list()).toEqual([configured]);
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
