import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Outbox } from '../../../src/controlplane/outbox.js';
import { AgentEvents } from '../../../src/events.js';
import { checkResult as result } from '../../helpers/results.js';
import { ResultFrame } from '../../../src/protocol/result-frame.js';

const logger = pino({ level: 'silent' });

describe('Outbox in memory', () => {
  it('keeps entries in order, one per command id, and acks remove them', async () => {
    const events = new AgentEvents();
    const sizes: number[] = [];
    events.on('outbox:size', ({ size }) => sizes.push(size));
    const outbox = new Outbox({ logger, events });
    await outbox.load();
    await outbox.add(result('a'));
    await outbox.add(result('b'));
    await outbox.add(result('c'));
    await outbox.add(result('a', 'error'));
    expect(outbox.entries().map((r) => r.commandId)).toEqual(['b', 'c', 'a']);
    expect(outbox.entries()[2]?.status).toBe('error');
    expect(outbox.size).toBe(3);
    expect(await outbox.ack('b')).toBe(true);
    expect(await outbox.ack('b')).toBe(false);
    expect(await outbox.ack('unknown')).toBe(false);
    expect(outbox.entries().map((r) => r.commandId)).toEqual(['c', 'a']);
    expect(sizes).toEqual([1, 2, 3, 3, 2]);
  });

  it('holds each result as its frame: the exact JSON text that is (re-)sent', async () => {
    const outbox = new Outbox({ logger, events: new AgentEvents() });
    await outbox.add(result('a'));
    await outbox.add(ResultFrame.of(result('b', 'error')));
    expect(outbox.frames().map((f) => (f.spooled ? f.readText() : f.text))).toEqual([
      JSON.stringify(result('a')),
      JSON.stringify(result('b', 'error')),
    ]);
    expect(outbox.frames().map((f) => f.commandId)).toEqual(['a', 'b']);
    expect(outbox.has('a')).toBe(true);
    expect(outbox.has('zzz')).toBe(false);
    await outbox.ack('a');
    expect(outbox.has('a')).toBe(false);
    // entries() are parsed copies: changing one changes nothing held
    const [copy] = outbox.entries();
    if (copy) copy.commandId = 'tampered';
    expect(outbox.entries().map((r) => r.commandId)).toEqual(['b']);
  });

  it('whenEmpty resolves once the last entry is acked, or on abort', async () => {
    const outbox = new Outbox({ logger, events: new AgentEvents() });
    await outbox.whenEmpty(); // already empty
    await outbox.add(result('a'));
    let done = false;
    const waiting = outbox.whenEmpty().then(() => {
      done = true;
    });
    await Promise.resolve();
    expect(done).toBe(false);
    await outbox.ack('a');
    await waiting;
    expect(done).toBe(true);

    await outbox.add(result('b'));
    const ctrl = new AbortController();
    const aborted = outbox.whenEmpty(ctrl.signal);
    ctrl.abort();
    await aborted;
    expect(outbox.size).toBe(1);
  });
});
