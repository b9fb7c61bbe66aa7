/**
 * The built agent (`node dist/src/main.js run`) as a child process connected to a
 * reference control plane, for e2e tests that end it (SIGTERM, kill -9) and start it again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { DevControlPlane } from '../../src/devcp/server.js';
import { baseEnv, exited, MAIN, ROOT } from './build.js';

export interface AgentProcess {
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  logs(): string;
  /** True while the process has neither exited nor been killed. */
  alive(): boolean;
  /** Ends it with a signal and resolves with its exit code (null when killed by a signal). */
  stop(signal: NodeJS.Signals): Promise<number | null>;
}

export interface AgentProcessOptions {
  cp: DevControlPlane;
  connectorId: string;
  token: string;
  signing: { keyId: string; publicKey: string };
  /** Extra environment (secrets of the `env` store, LATCHKEY_STATE_DIR, …). */
  env?: Record<string, string>;
  /** How long to wait for the agent's `hello` (ms). */
  helloTimeoutMs?: number;
}

/** Starts the agent and resolves once it said `hello` to the control plane. */
export async function startAgentProcess(opts: AgentProcessOptions): Promise<AgentProcess> {
  const since = opts.cp.received.length;
  const child = spawn(process.execPath, [MAIN, 'run'], {
    cwd: ROOT,
    env: baseEnv({
      LATCHKEY_CONTROL_PLANE_URL: opts.cp.url,
      LATCHKEY_CONNECTOR_ID: opts.connectorId,
      LATCHKEY_CONNECTOR_TOKEN: opts.token,
      LATCHKEY_TRUSTED_KEYS: JSON.stringify({ [opts.signing.keyId]: opts.signing.publicKey }),
      LATCHKEY_HTTP_HOST: '127.0.0.1',
      LATCHKEY_HTTP_PORT: '0',
      LATCHKEY_LOG_LEVEL: 'info',
      LATCHKEY_SHUTDOWN_GRACE: '20s',
      ...opts.env,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  child.stdout?.on('data', (b: Buffer) => (logs += b.toString('utf8')));
  child.stderr?.on('data', (b: Buffer) => (logs += b.toString('utf8')));
  const agent: AgentProcess = {
    child,
    logs: () => logs,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop(signal) {
      if (!agent.alive()) return child.exitCode;
      child.kill(signal);
      return exited(child);
    },
  };
  const early = exited(child).then((code) => {
    throw new Error(`the agent exited early with code ${String(code)}:\n${logs.slice(-4000)}`);
  });
  early.catch(() => undefined);
  try {
    await Promise.race([
      opts.cp.waitFor(
        'hello',
        (m) => m.connectorId === opts.connectorId,
        opts.helloTimeoutMs ?? 30_000,
        since,
      ),
      early,
    ]);
  } catch (err) {
    await agent.stop('SIGKILL');
    throw err;
  }
  return agent;
}
