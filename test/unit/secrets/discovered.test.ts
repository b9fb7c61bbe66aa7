/** Discovered secret pairings kept in the state journal across a restart (src/secrets/discovered.ts). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DiscoveredPairings, PAIRING_KEY_PREFIX } from '../../../src/secrets/discovered.js';
import { StateJournal } from '../../../src/state/journal.js';
import { silentLogger } from '../dispatch/fakes.js';
import { testClock } from './aws-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'latchkey-pairings-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => join(root, `state-${n++}`);
const open = (dir: string) => StateJournal.open({ dir, logger: silentLogger });

const DB = 'arn:aws:rds:eu-west-1:111111111111:db:orders-pg';
const DB2 = 'arn:aws:rds:eu-west-1:111111111111:db:billing';
const SECRET = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:team-a/orders-AbCdEf';
const HOST = 'orders-pg.abcdefghijkl.eu-west-1.rds.amazonaws.com';

describe('DiscoveredPairings in the state journal', () => {
  it('a restarted agent keeps the pairing, with the time it was discovered', async () => {
    const dir = freshDir();
    const clock = testClock();
    const first = new DiscoveredPairings({ now: clock.now, ttlMs: 3600_000 });
    let journal = await open(dir);
    expect(await first.attach(journal)).toBe(0);
    first.record({ databaseArn: DB, secretArn: SECRET, host: HOST, port: 5432 });
    first.record({ databaseArn: DB2, secretArn: SECRET, host: 'billing.internal', port: 3306 });
    first.forget(DB2);
    await journal.close();

    clock.advance(30 * 60_000);
    journal = await open(dir);
    const again = new DiscoveredPairings({ now: clock.now, ttlMs: 3600_000 });
    expect(await again.attach(journal)).toBe(1);
    expect(again.find(SECRET, HOST, 5432)?.databaseArn).toBe(DB);
    expect(again.find(SECRET, 'billing.internal', 3306)).toBeUndefined();
    expect([...journal.entries(PAIRING_KEY_PREFIX)].map(([k]) => k)).toEqual([
      PAIRING_KEY_PREFIX + DB,
    ]);
    // The TTL runs from the discovery, not from the restart.
    clock.advance(31 * 60_000);
    expect(again.find(SECRET, HOST, 5432)).toBeUndefined();
    await journal.close();

    journal = await open(dir);
    expect(await new DiscoveredPairings({ now: clock.now, ttlMs: 3600_000 }).attach(journal)).toBe(
      0,
    );
    // The expired record was deleted at load.
    expect([...journal.entries(PAIRING_KEY_PREFIX)]).toEqual([]);
    await journal.close();
  });

  it('drops malformed records and records under another key than their database', async () => {
    const dir = freshDir();
    const clock = testClock();
    let journal = await open(dir);
    const good = {
      databaseArn: DB,
      secretArn: SECRET,
      host: HOST,
      port: 5432,
      recordedAt: clock.now().toISOString(),
    };
    await journal.put(PAIRING_KEY_PREFIX + DB, good);
    await journal.put(PAIRING_KEY_PREFIX + DB2, good);
    await journal.put(`${PAIRING_KEY_PREFIX}x`, { ...good, databaseArn: 'x', port: 0 });
    await journal.put(`${PAIRING_KEY_PREFIX}y`, { ...good, databaseArn: 'y', extra: true });
    await journal.close();

    journal = await open(dir);
    const pairings = new DiscoveredPairings({ now: clock.now });
    expect(await pairings.attach(journal)).toBe(1);
    expect(pairings.list().map((p) => p.databaseArn)).toEqual([DB]);
    expect([...journal.entries(PAIRING_KEY_PREFIX)].map(([k]) => k)).toEqual([
      PAIRING_KEY_PREFIX + DB,
    ]);
    await journal.close();
  });
});
