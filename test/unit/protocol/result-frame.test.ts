import { describe, expect, it } from 'vitest';
import type { Result } from '../../../src/protocol/messages.js';
import { ResultFrame } from '../../../src/protocol/result-frame.js';

const result: Result = {
  type: 'result',
  commandId: 'cmd-1',
  kind: 'discover',
  status: 'ok',
  output: { resources: [{ id: 'database:demo', name: 'démo "x"', type: 'database' }] },
  timings: {
    receivedAt: '2026-11-25T20:00:00.000Z',
    finishedAt: '2026-11-25T20:00:01.000Z',
    queueMs: 0,
    runMs: 1000,
  },
};

describe('ResultFrame', () => {
  it('is the result serialized once: its text is the JSON sent on the link', () => {
    const frame = ResultFrame.of(result);
    expect(frame.commandId).toBe('cmd-1');
    expect(frame.text).toBe(JSON.stringify(result));
    expect(JSON.parse(frame.text)).toEqual(result);
  });

  it('does not follow later changes of the object it was made from', () => {
    const mutable = structuredClone(result);
    const frame = ResultFrame.of(mutable);
    mutable.status = 'error';
    expect(frame.result()).toEqual(result);
  });

  it('result() gives back a schema-checked copy', () => {
    const frame = ResultFrame.of(result);
    const a = frame.result();
    const b = frame.result();
    expect(a).toEqual(result);
    expect(a).not.toBe(b);
  });
});
