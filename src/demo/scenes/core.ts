/**
 * Demo scene "core": the agent's side of the protocol, with no database involved.
 * - the agent connected, said hello (what it serves) and is ready;
 * - a command whose envelope was changed after signing is refused with `E_SIGNATURE`;
 * - an expired command is refused with `E_EXPIRED`;
 * - a command for an integration type the agent does not serve gets `E_UNSUPPORTED`.
 * Each refusal reaches no driver; the agent stays connected and counts it in a metric.
 */
import type { Hello, Integration, Rejected } from '../../protocol/messages.js';
import { check } from './expect.js';
import type { DemoContext, DemoScene } from '../types.js';

/** What the core scene needs beyond `DemoContext`: raw frames, as only a test peer sends them. */
export interface CoreDemoTools {
  /** The agent's `hello`. */
  hello(): Promise<Hello>;
  /** GET on the agent's local HTTP port: `/readyz`, `/metrics`… */
  agentHttp(path: string): Promise<{ status: number; body: string }>;
  /** A fresh, correctly signed `command` frame (an object, so it can be tampered with). */
  signedCommand(
    kind: string,
    integration: Integration,
    params: Record<string, unknown>,
    times?: { issuedAt: Date; expiresAt: Date },
  ): { commandId: string; frame: { envelope: Record<string, unknown> } & Record<string, unknown> };
  /** Sends a frame to the agent as is. */
  sendFrame(frame: unknown): void;
  /** The agent's `rejected` answer to a command id. */
  waitForRejection(commandId: string): Promise<Rejected>;
}

function rejectionCount(metrics: string, code: string): number {
  const line = metrics
    .split('\n')
    .find((l) => l.startsWith('latchkey_rejections_total{') && l.includes(`code="${code}"`));
  return line === undefined ? 0 : Number(line.trim().split(/\s+/).pop());
}

export function coreScene(tools: CoreDemoTools): DemoScene {
  const demoIntegration: Integration = {
    id: 'demo-db',
    type: 'postgres',
    config: { host: '127.0.0.1', port: 5432, database: 'postgres' },
  };
  return {
    name: 'core',
    async run(ctx: DemoContext) {
      ctx.step('The agent connects and says hello');
      const hello = await tools.hello();
      ctx.info(
        `connector ${hello.connectorId}, instance ${hello.instanceId}, version ${hello.version}`,
      );
      ctx.info(
        `serves integration types: ${hello.capabilities.integrationTypes.join(', ') || '(none yet)'}; kinds: ${hello.capabilities.kinds.join(', ') || '(none)'}`,
      );
      const ready = await tools.agentHttp('/readyz');
      check(ready.status === 200, `/readyz answered ${ready.status}`);
      ctx.info(`/readyz → ${ready.status} (connected and configured)`);

      ctx.step('A command changed after it was signed is refused');
      const tampered = tools.signedCommand('check', demoIntegration, {});
      ctx.info(
        `signed command ${tampered.commandId}, then its integration.config.host is changed in transit`,
      );
      const integration = tampered.frame.envelope.integration as Integration;
      tampered.frame.envelope.integration = {
        ...integration,
        config: { ...integration.config, host: 'attacker.example' },
      };
      tools.sendFrame(tampered.frame);
      const r1 = await tools.waitForRejection(tampered.commandId);
      ctx.info(`agent answered: rejected ${r1.error.code} — ${r1.error.message}`);
      check(r1.error.code === 'E_SIGNATURE', `expected E_SIGNATURE, got ${r1.error.code}`);

      ctx.step('An expired command is refused');
      const issuedAt = new Date(Date.now() - 10 * 60_000);
      const expired = tools.signedCommand(
        'check',
        demoIntegration,
        {},
        {
          issuedAt,
          expiresAt: new Date(issuedAt.getTime() + 5 * 60_000),
        },
      );
      ctx.info(`command ${expired.commandId}: validly signed, but it expired 5 minutes ago`);
      tools.sendFrame(expired.frame);
      const r2 = await tools.waitForRejection(expired.commandId);
      ctx.info(`agent answered: rejected ${r2.error.code} — ${r2.error.message}`);
      check(r2.error.code === 'E_EXPIRED', `expected E_EXPIRED, got ${r2.error.code}`);

      ctx.step('A command for an integration type this agent does not serve is refused');
      const unknown: Integration = { id: 'demo-mainframe', type: 'mainframe', config: {} };
      try {
        const result = await ctx.send('check', unknown, {});
        throw new Error(`unexpected: a result (${result.status}) for an unknown integration type`);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        ctx.info(`agent answered: rejected ${String(code)} — ${(err as Error).message}`);
        check(code === 'E_UNSUPPORTED', `expected E_UNSUPPORTED, got ${String(code)}`);
      }

      ctx.step('Every refusal is counted, and the agent is still connected');
      const metrics = (await tools.agentHttp('/metrics')).body;
      for (const code of ['E_SIGNATURE', 'E_EXPIRED', 'E_UNSUPPORTED']) {
        const n = rejectionCount(metrics, code);
        ctx.info(`latchkey_rejections_total{code="${code}"} ${n}`);
        check(n >= 1, `no ${code} rejection counted`);
      }
      const still = await tools.agentHttp('/readyz');
      check(still.status === 200, `/readyz answered ${still.status}`);
      ctx.info('/readyz → 200');
    },
  };
}
