/**
 * `npm run demo` (`latchkey demo`): the whole loop on one machine.
 *
 * 1. generates a signing key pair (the control plane's) and a recipient key pair (the
 *    requester's, to open sealed credentials);
 * 2. starts the reference control plane in this process;
 * 3. starts the agent as a SEPARATE child process (`latchkey run`, configured by
 *    environment only, logs in `.demo/agent.log`);
 * 4. runs the scenes in a fixed order, printing numbered steps; a scene throws when the
 *    agent does not behave as expected;
 * 5. stops the agent with SIGTERM (as ECS or Kubernetes would) and expects exit 0.
 *
 * Exit code 0 when every scene passed and the agent stopped cleanly, else 1.
 *
 * `DemoContext.send` posts to the control plane's HTTP API (`POST /commands`) and
 * long-polls `GET /commands/<id>/result`; when the agent answers `rejected` instead (no
 * result will ever come), it rejects with a `LatchkeyError` carrying the agent's code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { CliIo } from '../cli/io.js';
import { processIo } from '../cli/io.js';
import { startDevControlPlane, type DevControlPlane } from '../devcp/server.js';
import { LatchkeyError } from '../errors.js';
import {
  generateRecipientKeyPair,
  generateSigningKeyPair,
  open,
  parsePrivateKey,
  signEnvelope,
} from '../protocol/index.js';
import { ResultSchema, type Integration, type Result } from '../protocol/messages.js';
import { coreScene, type CoreDemoTools } from './scenes/core.js';
import { demoPostgres, probeMysql, redactUrl, type DemoPostgres } from './databases.js';
import { stopAllEmbeddedPostgres } from './embedded-postgres.js';
import { mysqlDemoAdminUrl, mysqlDemoAgentEnv, mysqlScene } from './scenes/mysql.js';
import { postgresDemoAdminUrl, postgresDemoAgentEnv, postgresScene } from './scenes/postgres.js';
import type { DemoContext, DemoScene } from './types.js';

/**
 * The database scenes, in this order, with the integration type each needs and the
 * environment the agent process needs for it (its service-account secret, `env` store).
 * A scene whose type the agent does not announce in `hello` (driver not registered in
 * `productionDriverFactories`) is reported as SKIPPED, not run.
 */
// LEAD: the static list of database scenes; add new ones here.
const DATABASE_SCENES: readonly {
  scene: DemoScene;
  type: string;
  agentEnv: Readonly<Record<string, string>>;
}[] = [
  { scene: postgresScene, type: 'postgres', agentEnv: postgresDemoAgentEnv },
  { scene: mysqlScene, type: 'mysql', agentEnv: mysqlDemoAgentEnv },
];

const CONNECTOR_ID = 'demo-connector';
const RESULT_WAIT_MS = 60_000;

/** The package root (where package.json is), from this file under src/ or dist/src/. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i += 1) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown };
      if (pkg.name === 'latchkey') return dir;
    } catch {
      // keep walking up
    }
    dir = dirname(dir);
  }
  return process.cwd();
}

/** How to start `latchkey` as a child: the built JS directly, the TypeScript through tsx. */
function agentCommand(): { args: string[]; cwd: string } {
  const here = fileURLToPath(import.meta.url);
  const root = packageRoot();
  if (here.endsWith('.ts')) {
    return { args: ['--import', 'tsx', resolve(dirname(here), '..', 'main.ts'), 'run'], cwd: root };
  }
  return { args: [resolve(dirname(here), '..', 'main.js'), 'run'], cwd: root };
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

export async function runDemo(io: CliIo = processIo): Promise<number> {
  let stepNo = 0;
  const ctxStep = (title: string): void => {
    stepNo += 1;
    io.out(`\n${String(stepNo).padStart(2)}. ${title}`);
  };
  const ctxInfo = (line: string): void => io.out(`    ${line}`);

  io.out('Latchkey demo: a reference control plane, a real agent process, signed commands.');

  // Ctrl-C (or a SIGTERM to the demo) still stops the agent and removes the embedded
  // PostgreSQL, also one that is still starting.
  let stopAgent: (() => void) | undefined;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = true;
    io.out(`\n${signal}: stopping the agent and any embedded PostgreSQL…`);
    stopAgent?.();
    void stopAllEmbeddedPostgres().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  ctxStep('Find the databases');
  let pgServer: DemoPostgres | undefined;
  try {
    pgServer = await demoPostgres(postgresDemoAdminUrl());
  } catch (err) {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    io.out(`    FAILED: ${err instanceof Error ? err.message : String(err)}`);
    io.out('\nDemo FAILED: no PostgreSQL to run on.');
    return 1;
  }
  // The scene reads these when it runs.
  process.env.LATCHKEY_DEMO_PG_URL = pgServer.url;
  process.env.LATCHKEY_DEMO_PG_CHECKS_PASSWORDS = pgServer.checksPasswords ? '1' : '0';
  ctxInfo(`PostgreSQL scene on: ${pgServer.description}`);
  const mysqlProbe = await probeMysql(mysqlDemoAdminUrl());
  const mysqlMissing =
    'error' in mysqlProbe
      ? `no MariaDB/MySQL answers at ${redactUrl(mysqlDemoAdminUrl())} (${mysqlProbe.error}); ` +
        'to see that scene: apt-get install mariadb-server (README "Test databases"), or set LATCHKEY_DEMO_MYSQL_URL'
      : null;
  ctxInfo(
    'version' in mysqlProbe
      ? `MariaDB/MySQL scene on: ${mysqlProbe.version} at ${redactUrl(mysqlDemoAdminUrl())}`
      : `MariaDB/MySQL scene: not run: ${mysqlMissing ?? ''}`,
  );
  const unavailable = new Map<string, string>();
  if (mysqlMissing !== null) unavailable.set('mysql', mysqlMissing);

  try {
    return await runWithDatabases(io, ctxStep, ctxInfo, unavailable, (kill) => {
      stopAgent = kill;
      // Interrupted while the agent was being started: it stops at once too.
      if (interrupted) kill();
    });
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (pgServer.embedded) {
      await pgServer.embedded.stop();
      io.out('    (the embedded PostgreSQL was stopped and its directory removed)');
    }
  }
}

async function runWithDatabases(
  io: CliIo,
  ctxStep: (title: string) => void,
  ctxInfo: (line: string) => void,
  unavailable: ReadonlyMap<string, string>,
  onChild: (kill: () => void) => void,
): Promise<number> {
  ctxStep('Generate keys');
  const signing = generateSigningKeyPair();
  const recipient = generateRecipientKeyPair();
  const signingKey = parsePrivateKey(signing.privateKeyPem);
  const token = randomBytes(24).toString('base64url');
  ctxInfo(`control plane signing key (Ed25519), key id ${signing.keyId}`);
  ctxInfo(`requester recipient key (X25519) ${recipient.publicKey.slice(0, 16)}…`);

  ctxStep('Start the reference control plane (in this process)');
  const cp: DevControlPlane = await startDevControlPlane({
    agents: [{ connectorId: CONNECTOR_ID, token }],
    signingKey: { keyId: signing.keyId, privateKeyPem: signing.privateKeyPem },
    logger: pino({ level: 'silent' }),
  });
  ctxInfo(`agents connect to ${cp.url}; HTTP API at ${cp.httpUrl}`);

  const root = packageRoot();
  const logDir = join(root, '.demo');
  mkdirSync(logDir, { recursive: true });
  const logPath = join(logDir, 'agent.log');
  // The agent's state journal, fresh for each demo: results and integrations of an earlier
  // run (whose databases are gone) are not carried into this one.
  const stateDir = join(logDir, 'state');
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const httpPort = await freePort();

  ctxStep('Start the agent as a separate process (latchkey run)');
  const { args, cwd } = agentCommand();
  const log = createWriteStream(logPath);
  const databaseAgentEnv: Record<string, string> = {};
  for (const d of DATABASE_SCENES) Object.assign(databaseAgentEnv, d.agentEnv);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...databaseAgentEnv,
    LATCHKEY_CONTROL_PLANE_URL: cp.url,
    LATCHKEY_CONNECTOR_ID: CONNECTOR_ID,
    LATCHKEY_CONNECTOR_TOKEN: token,
    LATCHKEY_TRUSTED_KEYS: JSON.stringify({ [signing.keyId]: signing.publicKey }),
    LATCHKEY_HTTP_HOST: '127.0.0.1',
    LATCHKEY_HTTP_PORT: String(httpPort),
    LATCHKEY_LOG_LEVEL: process.env.LATCHKEY_LOG_LEVEL ?? 'info',
    LATCHKEY_SHUTDOWN_GRACE: '10s',
    LATCHKEY_STATE_DIR: stateDir,
  };
  delete env.LATCHKEY_CONFIG_FILE;
  const child = spawn(process.execPath, args, {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onChild(() => child.kill('SIGTERM'));
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  ctxInfo(`pid ${child.pid ?? '?'}; its JSON logs go to ${logPath}`);

  const agentHttp = async (path: string): Promise<{ status: number; body: string }> => {
    const res = await fetch(`http://127.0.0.1:${httpPort}${path}`);
    return { status: res.status, body: await res.text() };
  };

  let failed = 0;
  try {
    const earlyExit = exited(child).then((code) => {
      throw new Error(`the agent exited early with code ${String(code)} (see ${logPath})`);
    });
    earlyExit.catch(() => undefined);
    await Promise.race([cp.waitFor('hello', undefined, 30_000), earlyExit]);
    for (let i = 0; i < 100; i += 1) {
      const ok = await agentHttp('/readyz')
        .then((r) => r.status === 200)
        .catch(() => false);
      if (ok) break;
      await sleep(100);
    }

    const rejectionOf = async (commandId: string, since: number): Promise<never> => {
      const r = await cp.waitFor(
        'rejected',
        (m) => m.commandId === commandId,
        RESULT_WAIT_MS,
        since,
      );
      throw new LatchkeyError(r.error.code, r.error.message);
    };

    const ctx: DemoContext = {
      step: ctxStep,
      info: ctxInfo,
      recipientKey: recipient.publicKey,
      open: (sealed) => open(recipient.privateKeyPem, sealed),
      async send(kind, integration, params): Promise<Result> {
        const since = cp.received.length;
        const res = await fetch(`${cp.httpUrl}/commands`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ connectorId: CONNECTOR_ID, kind, integration, params }),
        });
        const body = (await res.json()) as { commandId?: string; error?: string };
        if (res.status !== 201 || typeof body.commandId !== 'string') {
          throw new Error(
            `control plane refused the command: HTTP ${res.status} ${body.error ?? ''}`,
          );
        }
        const commandId = body.commandId;
        const viaHttp = (async (): Promise<Result> => {
          const r = await fetch(
            `${cp.httpUrl}/commands/${encodeURIComponent(commandId)}/result?waitMs=${RESULT_WAIT_MS}`,
          );
          if (r.status !== 200)
            throw new Error(`no result for ${commandId} within ${RESULT_WAIT_MS} ms`);
          return ResultSchema.parse(await r.json());
        })();
        const rejected = rejectionOf(commandId, since);
        rejected.catch(() => undefined);
        viaHttp.catch(() => undefined);
        return Promise.race([viaHttp, rejected]);
      },
    };

    const tools: CoreDemoTools = {
      hello: () => cp.waitFor('hello', undefined, 30_000),
      agentHttp,
      signedCommand(kind, integration: Integration, params, times) {
        const issuedAt = times?.issuedAt ?? new Date();
        const expiresAt = times?.expiresAt ?? new Date(issuedAt.getTime() + 5 * 60_000);
        const envelope: Record<string, unknown> = {
          id: `cmd-${randomUUID()}`,
          kind,
          connectorId: CONNECTOR_ID,
          issuedAt: issuedAt.toISOString(),
          expiresAt: expiresAt.toISOString(),
          integration,
          params,
        };
        return {
          commandId: envelope.id as string,
          frame: {
            type: 'command',
            envelope,
            signature: signEnvelope(envelope, signingKey, signing.keyId),
          },
        };
      },
      sendFrame: (frame) => cp.sendRaw(CONNECTOR_ID, JSON.stringify(frame)),
      waitForRejection: (commandId) =>
        cp.waitFor('rejected', (m) => m.commandId === commandId, RESULT_WAIT_MS),
    };

    const served = new Set((await tools.hello()).capabilities.integrationTypes);
    const plan: { scene: DemoScene; type?: string }[] = [
      { scene: coreScene(tools) },
      ...DATABASE_SCENES.map((d) => ({ scene: d.scene, type: d.type })),
    ];
    for (const { scene, type } of plan) {
      const missing = type !== undefined ? unavailable.get(type) : undefined;
      if (missing !== undefined) {
        io.out(`\n=== Scene: ${scene.name}: NOT RUN: ${missing} ===`);
        continue;
      }
      if (type !== undefined && !served.has(type)) {
        io.out(
          `\n=== Scene: ${scene.name}: SKIPPED (this agent has no ${type} driver registered) ===`,
        );
        continue;
      }
      io.out(`\n=== Scene: ${scene.name} ===`);
      try {
        await scene.run(ctx);
        io.out(`=== ${scene.name}: passed ===`);
      } catch (err) {
        failed += 1;
        io.out(`    FAILED: ${err instanceof Error ? err.message : String(err)}`);
        io.out(`=== ${scene.name}: FAILED ===`);
      }
    }
  } catch (err) {
    failed += 1;
    io.out(`    FAILED: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    ctxStep('Stop the agent with SIGTERM (graceful stop)');
    let code: number | null = child.exitCode;
    if (code === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      code = await exited(child);
      clearTimeout(timer);
    }
    ctxInfo(`agent exited with code ${String(code)}`);
    if (code !== 0) failed += 1;
    await cp.close();
    log.end();
  }

  io.out(
    failed === 0
      ? '\nDemo finished: every step behaved as expected.'
      : `\nDemo FAILED (${failed} problem(s)); agent log: ${logPath}`,
  );
  return failed === 0 ? 0 : 1;
}
