/**
 * Randomized races between completion, deadlines, cancels and a drain, with drivers that
 * honour the abort late or not at all: every accepted command gets exactly one result,
 * and the limits hold for what really runs in the drivers (not only for what the
 * dispatcher counts).
 */
import { describe, expect, it } from 'vitest';
import type { CommandKind, Result } from '../../../src/protocol/messages.js';
import {
  ALL_KINDS,
  ConcurrencyTracker,
  FakeDriver,
  OK_OUTPUT,
  envelope,
  harness,
  registryOf,
  sleep,
  submit,
} from './fakes.js';

/** Small deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('Dispatcher: randomized races', () => {
  for (const seed of [1, 2, 3]) {
    it(`exactly one result per accepted command, limits hold in the drivers (seed ${seed})`, async () => {
      const random = rng(seed);
      const tracker = new ConcurrencyTracker();
      /** Per grantee: the driver calls that are under way at once. */
      const perGrantee = new Map<string, number>();
      let granteeOverlap = 0;
      const behaviour = async (
        kind: CommandKind,
        ctx: { signal: AbortSignal; commandId: string; integration: { id: string } },
      ): Promise<unknown> => {
        const key = `${ctx.integration.id}/${grantees.get(ctx.commandId) ?? ctx.commandId}`;
        const ordered = grantees.has(ctx.commandId);
        if (ordered) {
          const n = (perGrantee.get(key) ?? 0) + 1;
          perGrantee.set(key, n);
          if (n > 1) granteeOverlap++;
        }
        try {
          const ms = Math.floor(random() * 40);
          const mode = random();
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(resolve, ms);
            if (mode < 0.5) {
              // honours the abort at once
              ctx.signal.addEventListener('abort', () => {
                clearTimeout(timer);
                reject(ctx.signal.reason as Error);
              });
            }
            // else: ignores it and ends on its own
          });
          if (random() < 0.1) throw new Error('driver failure');
          return OK_OUTPUT[kind];
        } finally {
          if (ordered) perGrantee.set(key, (perGrantee.get(key) ?? 1) - 1);
        }
      };
      const grantees = new Map<string, string>();
      const driver = new FakeDriver('fake', ALL_KINDS, behaviour, tracker);
      const aws = new FakeDriver('aws-iam', ALL_KINDS, behaviour, tracker);
      const h = harness(registryOf(driver, aws), {
        concurrency: { global: 3, perIntegration: 2, perAwsService: 1 },
        queueSize: 20,
        timeoutsMs: { discover: 15, grant: 15, revoke: 15, rotate: 15, cleanup: 15, check: 15 },
        abandonedCallLingerMs: 1_000,
      });
      const accepted: string[] = [];
      const kinds: CommandKind[] = ['grant', 'revoke', 'check', 'discover', 'rotate'];
      for (let i = 0; i < 60; i++) {
        const kind = kinds[Math.floor(random() * kinds.length)] ?? 'check';
        const email = `u${Math.floor(random() * 3)}@example.com`;
        const env = envelope(kind, {
          email,
          integrationId: `int-${Math.floor(random() * 2)}`,
          type: random() < 0.3 ? 'aws-iam' : 'fake',
        });
        if (kind === 'grant' || kind === 'revoke' || kind === 'rotate') grantees.set(env.id, email);
        const out = submit(h, env);
        if (out.status === 'accepted') accepted.push(env.id);
        if (random() < 0.2 && accepted.length > 0) {
          h.dispatcher.cancel(accepted[Math.floor(random() * accepted.length)] ?? '');
        }
        if (random() < 0.3) await sleep(Math.floor(random() * 10));
      }
      await h.dispatcher.drain(30);
      await sleep(60); // let calls that ignored the abort end
      const byId = new Map<string, Result[]>();
      for (const r of h.results) byId.set(r.commandId, [...(byId.get(r.commandId) ?? []), r]);
      expect(accepted.length).toBeGreaterThan(0);
      for (const id of accepted) expect(byId.get(id), id).toHaveLength(1);
      expect(h.results).toHaveLength(accepted.length);
      expect(h.dispatcher.running + h.dispatcher.depth).toBe(0);
      expect(tracker.max).toBeLessThanOrEqual(3);
      for (const n of tracker.maxPerIntegration.values()) expect(n).toBeLessThanOrEqual(2);
      expect(tracker.maxPerType.get('aws-iam') ?? 0).toBeLessThanOrEqual(1);
      expect(granteeOverlap).toBe(0);
    });
  }
});
