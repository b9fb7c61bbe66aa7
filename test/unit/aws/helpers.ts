import pino from 'pino';
import { AgentEvents, type AgentEventMap } from '../../../src/events.js';
import { createAwsClientFactory, type AwsClientFactoryOptions } from '../../../src/aws/index.js';
import type { CallContext, CredentialSealer, DriverServices } from '../../../src/drivers/driver.js';
import type { Integration } from '../../../src/protocol/messages.js';
import { LatchkeyError } from '../../../src/errors.js';
import { STATIC_CREDENTIALS } from './fake-http.js';

export const silentLogger = pino({ level: 'silent' });

export function recordAwsCalls(events: AgentEvents): AgentEventMap['aws:call'][] {
  const seen: AgentEventMap['aws:call'][] = [];
  events.on('aws:call', (e) => seen.push(e));
  return seen;
}

/**
 * Await a promise while advancing fake timers, so SDK retry back-off and the adaptive
 * rate limiter do not slow tests down. Call `vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] })` first.
 */
export async function settle<T>(
  promise: Promise<T>,
  advance: (ms: number) => Promise<unknown>,
): Promise<T> {
  let done = false;
  const tracked = promise.finally(() => {
    done = true;
  });
  tracked.catch(() => undefined);
  // Bounded in real time, not in steps: the SDK also waits on real I/O (its shared config
  // files are read from disk), which fake timers do not drive and which a loaded CI machine
  // can make slow. Each step gives that I/O a turn of the real event loop.
  const deadline = performance.now() + 20_000;
  while (!done && performance.now() < deadline) {
    await advance(500);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return tracked;
}

export const NOW = new Date('2026-11-25T20:00:00.000Z');

/** A sealer that marks what it sealed, so tests can see credentials never travel in clear. */
export const fakeSealer: CredentialSealer & { sealed: Record<string, string>[] } = {
  sealed: [],
  seal(recipientKey, credentials) {
    if (recipientKey === undefined) {
      throw new LatchkeyError('E_INVALID', 'recipientKey required');
    }
    fakeSealer.sealed.push(credentials);
    return {
      sealed: { alg: 'X25519-HKDF-SHA256-A256GCM', epk: 'e', iv: 'i', ct: 'sealed', tag: 't' },
    };
  },
};

export function makeServices(
  overrides: Partial<AwsClientFactoryOptions> = {},
): DriverServices & { events: AgentEvents } {
  const events = overrides.events ?? new AgentEvents();
  const aws = createAwsClientFactory({
    defaultRegion: 'eu-west-1',
    events,
    logger: silentLogger,
    baseCredentials: STATIC_CREDENTIALS,
    maxAttempts: 1,
    ...overrides,
  });
  return {
    logger: silentLogger,
    secrets: {
      resolve: () => Promise.reject(new LatchkeyError('E_SECRET', 'no secrets in these tests')),
    },
    aws,
    sealer: fakeSealer,
    tagPrefix: 'latchkey',
    now: () => NOW,
    events,
  };
}

export function makeCtx(
  integration: Omit<Integration, 'id'> & { id?: string },
  signal?: AbortSignal,
): CallContext {
  return {
    commandId: 'cmd-1',
    integration: { id: integration.id ?? 'int-1', ...integration },
    signal: signal ?? new AbortController().signal,
    logger: silentLogger,
  };
}

/** Await a rejection and return it as a LatchkeyError (fails the test otherwise). */
export async function rejection(p: Promise<unknown>): Promise<LatchkeyError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof LatchkeyError) return err;
    throw new Error(`expected a LatchkeyError, got ${String(err)}`, { cause: err });
  }
  throw new Error('expected a rejection, got success');
}
