/**
 * kill -9 end to end (issue 10, "Done when"): the built agent, with a state directory,
 * runs 210 grants on the real PostgreSQL for 70 grantees (three grants each), driven by
 * the reference control plane; it is killed with SIGKILL at three seeded-random points
 * and started again with the same state directory each time. The control plane
 * re-delivers every command that has no result when the agent says hello again. Then:
 *
 * 1. every grant command has exactly one result: at least one copy, and every copy the
 *    same (an outbox retransmission is a copy; running the command again after a restart
 *    and answering something else is not), and no command was rejected;
 * 2. every user the database holds is either unusable (cannot log in, or has no password)
 *    or its password, checked against the SCRAM verifier in `pg_authid` (the shared
 *    server runs with trust auth, so a login would prove nothing), is in exactly one
 *    delivered result, opened with the recipient's private key;
 * 3. nothing fails forever: a grant whose result is an error must have a retryable one,
 *    and sending it again (a new command id, the same grant id) succeeds within three
 *    tries; afterwards every grant's role exists and is granted to its user.
 *
 * The kill points come from a seed (`LATCHKEY_CRASH_SEED`, printed on failure) so a run
 * can be repeated; failures list the offending grant ids and users.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevControlPlane, type DevControlPlane } from '../../src/devcp/server.js';
import { tableId } from '../../src/drivers/sql/resources.js';
import {
  generateSigningKeyPair,
  open,
  type Result,
  type SigningKeyPair,
} from '../../src/protocol/index.js';
import { createPgTestEnv, scramMatches, type PgTestEnv } from '../helpers/pg.js';
import { startAgentProcess, type AgentProcess } from './agent-process.js';
import { ensureBuilt } from './build.js';

const GRANTS = 210;
const GRANTEES = 70;
const KILLS = 3;
const SEED = Number(process.env.LATCHKEY_CRASH_SEED ?? 0x10c4ed);
/** Longest wait for all results after the last restart. */
const SETTLE_MS = 60_000;

/** mulberry32: a small seeded PRNG, so kill points repeat for one seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface GrantCase {
  grantId: string;
  email: string;
  params: Record<string, unknown>;
  /** Every command id sent for this grant: the original, then retries. */
  commandIds: string[];
}

let cp: DevControlPlane;
let signing: SigningKeyPair;
let env: PgTestEnv;
let agent: AgentProcess | undefined;
let agentEnv: Record<string, string>;
let stateDir: string;
const connectorId = `e2e-kill-${randomUUID().slice(0, 8)}`;
const token = `tok-${randomBytes(24).toString('base64url')}`;
const cases: GrantCase[] = [];
/** Logs of every agent process this file started, for failure messages. */
const logs: string[] = [];

beforeAll(async () => {
  const [, pgEnv] = await Promise.all([ensureBuilt(), createPgTestEnv({ databases: 1 })]);
  env = pgEnv;
  const db = env.databases[0] ?? '';
  await env.asService(db, async (c) => {
    await c.query('CREATE SCHEMA shop');
    await c.query('CREATE TABLE shop.orders (id int PRIMARY KEY)');
  });
  const ref = env.integration.secret;
  if (ref?.store !== 'env') throw new Error('the pg test env uses the env secret store');
  stateDir = mkdtempSync(join(tmpdir(), 'latchkey-crash-'));
  agentEnv = {
    [`${ref.prefix}USERNAME`]: env.serviceAccount,
    [`${ref.prefix}PASSWORD`]: `Svc-${randomBytes(12).toString('hex')}`, // trust auth
    LATCHKEY_STATE_DIR: stateDir,
    LATCHKEY_SWEEP_INTERVAL: '0',
  };
  signing = generateSigningKeyPair();
  cp = await startDevControlPlane({
    agents: [{ connectorId, token }],
    signingKey: { keyId: signing.keyId, privateKeyPem: signing.privateKeyPem },
    defaultTtlMs: 10 * 60_000,
    logger: pino({ level: 'silent' }),
  });
  const random = prng(SEED ^ 0x5a5a);
  const order = Array.from({ length: GRANTS }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j] ?? 0, order[i] ?? 0];
  }
  for (const i of order) {
    const grantId = `cg${i}`;
    const email = `crash.user${i % GRANTEES}@example.com`;
    cases.push({
      grantId,
      email,
      commandIds: [],
      params: {
        grantId,
        grantee: { email },
        resources: [{ type: 'table', id: tableId(db, 'shop', 'orders') }],
        permission: 'read',
        recipientKey: env.recipient.publicKey,
      },
    });
  }
}, 240_000);

afterAll(async () => {
  if (agent) logs.push(agent.logs());
  await agent?.stop('SIGKILL');
  await cp?.close();
  await env?.teardown();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
}, 60_000);

async function startAgent(): Promise<AgentProcess> {
  return startAgentProcess({ cp, connectorId, token, signing, env: agentEnv });
}

/** Grants whose every command has a result or a rejection. */
function answered(c: GrantCase): boolean {
  const pending = new Set(cp.pendingCommands());
  return c.commandIds.every((id) => !pending.has(id));
}

function resultsOf(c: GrantCase): Result[] {
  return c.commandIds.flatMap((id) => cp.resultsFor(id));
}

function countAnswered(): number {
  const pending = new Set(cp.pendingCommands());
  return cases.filter((c) => c.commandIds.length > 0 && !pending.has(c.commandIds[0] ?? '')).length;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Stable text of a result, for comparing copies. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
        )
      : x,
  );
}

/** Paths (`output.alreadyGranted`, `timings`, …) where two results differ. */
function differingPaths(a: unknown, b: unknown, path = ''): string[] {
  if (canonical(a) === canonical(b)) return [];
  const isObj = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(a) || !isObj(b) || path.split('.').length > 2) return [path || '(whole)'];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].flatMap((k) => differingPaths(a[k], b[k], path ? `${path}.${k}` : k));
}

/** Username and password of a grant result's sealed credentials, if it has any. */
function credentialsOf(result: Result): { username: string; password: string } | null {
  const creds = (result.output as { credentials?: { sealed?: unknown } } | undefined)?.credentials;
  if (creds?.sealed === undefined) return null;
  const opened = open(env.recipient.privateKeyPem, creds.sealed as Parameters<typeof open>[1]);
  if (opened.username === undefined || opened.password === undefined) return null;
  return { username: opened.username, password: opened.password };
}

function explain(what: string, offenders: unknown[]): string {
  return `${what} (seed ${SEED}): ${JSON.stringify(offenders.slice(0, 40))}${offenders.length > 40 ? ` … and ${offenders.length - 40} more` : ''}`;
}

describe('kill -9 during 210 grants, restarted three times with the same state directory', () => {
  it('every grant has exactly one result, every usable user has its password in exactly one result, nothing fails forever', async () => {
    const random = prng(SEED);
    agent = await startAgent();
    for (const c of cases) {
      const { commandId } = await cp.sendCommand(connectorId, {
        kind: 'grant',
        integration: env.integration,
        params: c.params,
      });
      c.commandIds.push(commandId);
    }

    // Three kills at seeded points spread over the run: once that many grants have an
    // answer, wait a random few milliseconds (to land inside a command) and kill -9.
    const span = GRANTS / (KILLS + 1);
    for (let k = 0; k < KILLS; k++) {
      const threshold = Math.floor(span * (k + 0.5) + random() * span);
      const delayMs = Math.floor(random() * 40);
      const deadline = Date.now() + SETTLE_MS;
      while (countAnswered() < threshold) {
        if (Date.now() > deadline)
          throw new Error(
            `only ${countAnswered()} of ${GRANTS} grants answered before kill ${k + 1} (seed ${SEED})\n${agent.logs().slice(-3000)}`,
          );
        if (!agent.alive())
          throw new Error(`the agent died by itself:\n${agent.logs().slice(-3000)}`);
        await sleep(2);
      }
      await sleep(delayMs);
      await agent.stop('SIGKILL');
      logs.push(agent.logs());
      agent = await startAgent();
    }

    // The control plane re-delivers what has no result; wait for every answer.
    const deadline = Date.now() + SETTLE_MS;
    while (!cases.every(answered)) {
      if (Date.now() > deadline) {
        const missing = cases.filter((c) => !answered(c)).map((c) => c.grantId);
        throw new Error(
          `${explain('grants without a result', missing)}\n${agent.logs().slice(-3000)}`,
        );
      }
      await sleep(50);
    }

    // 1. exactly one result per command, never a rejection.
    const notOne: {
      grantId: string;
      commandId: string;
      copies: number;
      distinct: number;
      differIn: string[];
    }[] = [];
    const rejected = cp.received.filter(
      (m) => m.type === 'rejected' && cases.some((c) => c.commandIds.includes(m.commandId ?? '')),
    );
    for (const c of cases) {
      const id = c.commandIds[0] ?? '';
      const copies = cp.resultsFor(id);
      const distinct = new Set(copies.map((r) => canonical(r))).size;
      if (copies.length === 0 || distinct !== 1)
        notOne.push({
          grantId: c.grantId,
          commandId: id,
          copies: copies.length,
          distinct,
          differIn: copies.length > 1 ? differingPaths(copies[0], copies.at(-1)) : [],
        });
    }

    // 3. nothing fails forever: a retryable error, and the grant succeeds when sent again.
    const failedForever: { grantId: string; errors: unknown[] }[] = [];
    for (const c of cases) {
      for (
        let attempt = 0;
        attempt < 3 && !resultsOf(c).some((r) => r.status === 'ok');
        attempt++
      ) {
        const last = resultsOf(c).at(-1);
        if (last?.error && !last.error.retryable) break;
        const { commandId } = await cp.sendCommand(connectorId, {
          kind: 'grant',
          integration: env.integration,
          params: c.params,
        });
        c.commandIds.push(commandId);
        await cp.waitForResult(commandId, 30_000).catch(() => undefined);
      }
      if (!resultsOf(c).some((r) => r.status === 'ok'))
        failedForever.push({ grantId: c.grantId, errors: resultsOf(c).map((r) => r.error) });
    }

    // 2. every usable user's password is in exactly one delivered result.
    const delivered = new Map<
      string,
      { username: string; password: string; grantIds: Set<string> }
    >();
    for (const c of cases) {
      for (const r of resultsOf(c)) {
        const creds = credentialsOf(r);
        if (!creds) continue;
        // Copies of one result carry the same password: count it once.
        const key = `${creds.username}\u0000${creds.password}`;
        const seen = delivered.get(key) ?? { ...creds, grantIds: new Set<string>() };
        seen.grantIds.add(c.grantId);
        delivered.set(key, seen);
      }
    }
    const users = await env.asAdmin(undefined, (a) =>
      a.query<{ name: string; login: boolean; pw: string | null; valid: boolean }>(
        `SELECT rolname AS name, rolcanlogin AS login, rolpassword AS pw,
                  (rolvaliduntil IS NULL OR rolvaliduntil > now()) AS valid
             FROM pg_authid WHERE starts_with(rolname, $1) AND rolname <> $2
              AND NOT starts_with(rolname, $3) ORDER BY rolname`,
        [env.prefix, env.serviceAccount, `${env.prefix}g_`],
      ),
    );
    expect(users.rows.length).toBeGreaterThan(0);
    const credentialIssues: {
      user: string;
      resultsWithWorkingPassword: number;
      grantIds: string[];
    }[] = [];
    for (const u of users.rows) {
      const usable = u.login && u.pw !== null && u.valid;
      if (!usable) continue;
      const working = [...delivered.values()].filter(
        (d) => d.username === u.name && scramMatches(u.pw, d.password),
      );
      if (working.length !== 1)
        credentialIssues.push({
          user: u.name,
          resultsWithWorkingPassword: working.length,
          grantIds: [...delivered.values()]
            .filter((d) => d.username === u.name)
            .flatMap((d) => [...d.grantIds]),
        });
    }

    // Every grant that succeeded holds its role, granted to its user.
    const members = await env.asAdmin(undefined, (a) =>
      a.query<{ role: string; member: string }>(
        `SELECT g.rolname AS role, u.rolname AS member FROM pg_auth_members m
             JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
            WHERE starts_with(g.rolname, $1)`,
        [`${env.prefix}g_`],
      ),
    );
    const held = new Set(members.rows.map((r) => `${r.role}\u0000${r.member}`));
    const missingRoles: string[] = [];
    for (const c of cases) {
      const ok = resultsOf(c).find((r) => r.status === 'ok');
      const username = (ok?.output as { username?: string } | undefined)?.username;
      if (username === undefined || !held.has(`${env.prefix}g_${c.grantId}\u0000${username}`))
        missingRoles.push(c.grantId);
    }

    expect
      .soft(
        rejected.map((m) => m.type === 'rejected' && m.commandId),
        explain('rejected commands', rejected),
      )
      .toEqual([]);
    expect.soft(notOne, explain('grant commands without exactly one result', notOne)).toEqual([]);
    expect.soft(failedForever, explain('grants that fail forever', failedForever)).toEqual([]);
    expect
      .soft(
        credentialIssues,
        explain(
          'usable users whose password is not in exactly one delivered result',
          credentialIssues,
        ),
      )
      .toEqual([]);
    expect
      .soft(missingRoles, explain('grants whose role is not held by their user', missingRoles))
      .toEqual([]);
  }, 150_000);
});
