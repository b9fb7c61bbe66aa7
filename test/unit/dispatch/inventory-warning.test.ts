import { describe, expect, it } from 'vitest';
import { EnvelopeSchema } from '../../../src/protocol/messages.js';
import {
  ALL_KINDS,
  FakeDriver,
  OK_OUTPUT,
  envelope,
  harness,
  registryOf,
  submit,
} from './fakes.js';

function discoverWith(include: string[] | undefined): ReturnType<typeof envelope> {
  const base = envelope('discover');
  return EnvelopeSchema.parse({ ...base, params: include ? { include } : {} });
}

const INVENTORY = { principals: [], entries: [] };

describe('Dispatcher: discover with include privileges', () => {
  it('warns E_UNSUPPORTED when the driver returns no inventory', async () => {
    const driver = new FakeDriver('fake', ALL_KINDS, (kind) => Promise.resolve(OK_OUTPUT[kind]));
    const h = harness(registryOf(driver));
    const env = discoverWith(['privileges']);
    submit(h, env);
    const r = await h.resultOf(env.id);
    expect(r.status).toBe('ok');
    expect(r.output).toEqual({
      ...OK_OUTPUT.discover,
      warnings: [
        {
          code: 'E_UNSUPPORTED',
          message: 'the fake driver does not produce an access inventory (include: privileges)',
        },
      ],
    });
  });

  it('adds nothing when the inventory is there, or was not asked for', async () => {
    const driver = new FakeDriver('fake', ALL_KINDS, (kind) =>
      Promise.resolve(
        kind === 'discover' ? { ...OK_OUTPUT.discover, inventory: INVENTORY } : OK_OUTPUT[kind],
      ),
    );
    const plain = new FakeDriver('plain', ALL_KINDS, (kind) => Promise.resolve(OK_OUTPUT[kind]));
    const h = harness(registryOf(driver, plain));
    const withInventory = discoverWith(['privileges']);
    submit(h, withInventory);
    expect((await h.resultOf(withInventory.id)).output).toEqual({
      ...OK_OUTPUT.discover,
      inventory: INVENTORY,
    });
    const notAsked = EnvelopeSchema.parse({
      ...envelope('discover', { type: 'plain' }),
      params: {},
    });
    submit(h, notAsked);
    expect((await h.resultOf(notAsked.id)).output).toEqual(OK_OUTPUT.discover);
  });
});
