/**
 * A large discover through the whole agent (issue 13): a driver writes its inventory page
 * by page through `ctx.sink`; the agent spools it in `<state dir>/spool`, each page on
 * disk before the driver produces the next, sends it as `result-chunk` frames to the
 * reference control plane, which gets exactly the result the driver described; after
 * the `result-ack` the spool is empty.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CallContext, Driver, DriverFactory } from '../../../src/drivers/driver.js';
import { LatchkeyError } from '../../../src/errors.js';
import type { InventoryEntry } from '../../../src/protocol/messages.js';
import { startAgentHarness, type AgentHarness } from '../../helpers/agent-harness.js';

const PAGES = 30;
const PER_PAGE = 200;

const entry = (p: number, i: number): InventoryEntry => ({
  principalId: `role:r${i}`,
  resourceId: `table:db/app/t${p}-${i} "é" 🙂`,
  permission: 'read',
  privileges: ['SELECT'],
  via: 'direct',
  managedByAgent: false,
});

const unsupported = (): Promise<never> =>
  Promise.reject(new LatchkeyError('E_UNSUPPORTED', 'discover only'));

function pagerFactory(spoolDir: () => string, checked: number[]): DriverFactory {
  return (): Driver => ({
    type: 'pager',
    kinds: ['discover'],
    async discover(ctx: CallContext) {
      const sink = ctx.sink;
      if (sink === undefined) throw new LatchkeyError('E_INTERNAL', 'no sink');
      await sink.resources([{ id: 'database:db', name: 'db', type: 'database', metadata: {} }]);
      await sink.inventory([
        { id: 'role:r0', kind: 'role', name: 'r0', managedByAgent: false, flags: [] },
      ]);
      for (let p = 0; p < PAGES; p++) {
        if (p > 0) {
          const files = readdirSync(spoolDir());
          expect(files).toHaveLength(1);
          const text = readFileSync(join(spoolDir(), files[0] ?? ''), 'utf8');
          expect(text).toContain(JSON.stringify(entry(p - 1, PER_PAGE - 1).resourceId));
          checked.push(p);
        }
        await sink.entries(Array.from({ length: PER_PAGE }, (_, i) => entry(p, i)));
      }
      return { resources: [], permissions: [], warnings: [] };
    },
    grant: unsupported,
    revoke: unsupported,
    rotate: unsupported,
    cleanup: unsupported,
    check: unsupported,
    close: () => Promise.resolve(),
  });
}

let h: AgentHarness | undefined;
let dir: string | undefined;
afterEach(async () => {
  await h?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  h = undefined;
  dir = undefined;
});

describe('a spooled discover through the agent', () => {
  it('is spooled page by page in the state directory, delivered in chunks, and removed after the ack', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lk-agent-spool-'));
    const spoolDir = join(dir, 'spool');
    const checked: number[] = [];
    h = await startAgentHarness({
      env: { LATCHKEY_STATE_DIR: dir, LATCHKEY_MAX_RESULT_FRAME_BYTES: '16KiB' },
      driverFactories: { pager: pagerFactory(() => spoolDir, checked) },
    });
    const id = await h.send(
      'discover',
      {},
      { integration: { id: 'pg-1', type: 'pager', config: {} } },
    );
    const r = await h.cp.waitForResult(id, 20_000);
    expect(checked).toHaveLength(PAGES - 1);
    expect(r).toMatchObject({ type: 'result', commandId: id, kind: 'discover', status: 'ok' });
    const out = r.output as { inventory: { entries: InventoryEntry[] } };
    const expected: InventoryEntry[] = [];
    for (let p = 0; p < PAGES; p++) for (let i = 0; i < PER_PAGE; i++) expected.push(entry(p, i));
    expect(out.inventory.entries).toEqual(expected);
    // The result went in chunks (it is far larger than a frame), and once acknowledged
    // its file is gone.
    expect(JSON.stringify(r).length).toBeGreaterThan(16 * 1024 * 20);
    const deadline = Date.now() + 5000;
    while (readdirSync(spoolDir).length > 0 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 20));
    }
    expect(readdirSync(spoolDir)).toEqual([]);
    expect(existsSync(spoolDir)).toBe(true);
  });
});
