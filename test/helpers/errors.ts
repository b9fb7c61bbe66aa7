import { expect } from 'vitest';
import { LatchkeyError } from '../../src/errors.js';

/** The LatchkeyError `p` rejects with; fails the test when it resolves or throws anything else. */
export async function errorOf(p: Promise<unknown>): Promise<LatchkeyError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(LatchkeyError);
    return err as LatchkeyError;
  }
  throw new Error('expected a rejection');
}
