/**
 * The mysql demo scene, run in-process: its `send` calls the driver directly (the full
 * demo runs it through the reference control plane and an agent process).
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { mysqlDemoAgentEnv, mysqlScene } from '../../../../src/demo/scenes/mysql.js';
import type { DemoContext } from '../../../../src/demo/types.js';
import { createMysqlDriver } from '../../../../src/drivers/mysql/driver.js';
import { toWireError } from '../../../../src/errors.js';
import { generateRecipientKeyPair } from '../../../../src/protocol/keys.js';
import type { CommandKind, Integration, Result } from '../../../../src/protocol/messages.js';
import { createSealer, open } from '../../../../src/protocol/seal.js';
import { readEnvSecret } from '../../../../src/secrets/env.js';
import { noAws } from '../../../helpers/mysql.js';

describe('demo scene "mysql"', () => {
  it('runs the whole grant → use → revoke → cleanup story against MariaDB', async () => {
    const keys = generateRecipientKeyPair();
    const driver = createMysqlDriver({
      logger: pino({ level: 'silent' }),
      secrets: {
        resolve: (ref) => {
          if (ref.store !== 'env') throw new Error('env store expected');
          return Promise.resolve(readEnvSecret(ref, { ...mysqlDemoAgentEnv }));
        },
      },
      aws: noAws,
      sealer: createSealer({ allowPlaintext: false }),
      tagPrefix: 'latchkey',
      now: () => new Date(),
    });
    const lines: string[] = [];
    const sent: CommandKind[] = [];
    const ctx: DemoContext = {
      step: (t) => lines.push(`## ${t}`),
      info: (l) => lines.push(l),
      recipientKey: keys.publicKey,
      open: (sealed) => open(keys.privateKeyPem, sealed),
      async send(
        kind: CommandKind,
        integration: Integration,
        params: Record<string, unknown>,
      ): Promise<Result> {
        sent.push(kind);
        const c = {
          commandId: kind,
          integration,
          signal: AbortSignal.timeout(30_000),
          logger: pino({ level: 'silent' }),
        };
        const now = new Date().toISOString();
        const timings = { receivedAt: now, finishedAt: now, queueMs: 0, runMs: 0 };
        try {
          const d = driver as unknown as Record<
            string,
            (c: unknown, p: unknown) => Promise<Record<string, unknown>>
          >;
          const fn = d[kind];
          if (!fn) throw new Error(kind);
          const output = await fn.call(driver, c, params);
          return { type: 'result', commandId: kind, kind, status: 'ok', output, timings };
        } catch (err) {
          return {
            type: 'result',
            commandId: kind,
            kind,
            status: 'error',
            error: toWireError(err),
            timings,
          };
        }
      },
    };
    try {
      await mysqlScene.run(ctx);
    } finally {
      await driver.close();
    }
    expect(sent).toEqual(['check', 'discover', 'grant', 'revoke', 'cleanup']);
    const text = lines.join('\n');
    expect(text).toContain('all checks pass');
    expect(text).toMatch(/INSERT INTO orders → refused: MySQL error 1142: INSERT command denied/);
    expect(text).toMatch(
      /a new login fails: MySQL error (4151|3118): Access denied, this account is locked/,
    );
  });
});
