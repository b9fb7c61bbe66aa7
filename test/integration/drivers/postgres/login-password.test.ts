/**
 * Logins against the run's password-checking PostgreSQL 15 (`scram-sha-256` for every
 * connection, test/helpers/pg-password-server.ts): the shared server trusts 127.0.0.1
 * and cannot prove that the issued password is the one that works, nor that
 * `VALID UNTIL` ends logins at expiry with no agent running.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresDriver } from '../../../../src/drivers/postgres/driver.js';
import type { Integration } from '../../../../src/protocol/messages.js';
import { createSealer, open } from '../../../../src/protocol/seal.js';
import { generateRecipientKeyPair } from '../../../../src/protocol/keys.js';
import { schemaId } from '../../../../src/drivers/sql/resources.js';
import { pgPasswordUrl } from '../../../helpers/pg-password-server.js';
import { ctxFor, q, randomSuffix, staticSecrets, testServices } from '../../../helpers/pg.js';

const url = new URL(pgPasswordUrl());
const host = url.hostname;
const port = Number(url.port);
const prefix = `lk_p${randomSuffix()}_`;
const serviceAccount = `${prefix}svc`;
const servicePassword = randomBytes(18).toString('base64url');
const db = `${prefix}db`;
const recipient = generateRecipientKeyPair();
let driver: PostgresDriver;
let integration: Integration;

async function admin<T>(fn: (c: pg.Client) => Promise<T>, database?: string): Promise<T> {
  const u = new URL(pgPasswordUrl());
  if (database !== undefined) u.pathname = `/${database}`;
  const c = new pg.Client({ connectionString: u.toString() });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function login(user: string, password: string): Promise<pg.Client> {
  const c = new pg.Client({ host, port, user, password, database: db });
  c.on('error', () => undefined);
  try {
    await c.connect();
  } catch (err) {
    // A client that refuses mid-handshake (empty password) leaves the socket open, and
    // the server backend waits in authentication for a minute: close it.
    await c.end().catch(() => undefined);
    throw err;
  }
  return c;
}

/** The SQLSTATE of a refused login (`client` when the client refused first), or undefined when it worked. */
async function loginFails(user: string, password: string): Promise<string | undefined> {
  try {
    const c = await login(user, password);
    await c.end();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code ?? 'client';
  }
}

function creds(sealed: unknown): Record<string, string> {
  return open(
    recipient.privateKeyPem,
    (sealed as { sealed: unknown }).sealed as Parameters<typeof open>[1],
  );
}

beforeAll(async () => {
  await admin(async (c) => {
    await c.query(
      `CREATE ROLE ${q(serviceAccount)} LOGIN CREATEROLE PASSWORD '${servicePassword}'`,
    );
    await c.query(`GRANT pg_signal_backend TO ${q(serviceAccount)}`);
    await c.query(`CREATE DATABASE ${q(db)} OWNER ${q(serviceAccount)}`);
  });
  const svc = new pg.Client({
    host,
    port,
    user: serviceAccount,
    password: servicePassword,
    database: db,
  });
  await svc.connect();
  await svc.query('CREATE SCHEMA app');
  await svc.query(`CREATE TABLE app.t (v text); INSERT INTO app.t VALUES ('ok')`);
  await svc.end();
  integration = {
    id: `pgpw-${prefix}`,
    type: 'postgres',
    config: {
      host,
      port,
      database: db,
      sslMode: 'disable',
      userPrefix: prefix,
      databases: [db],
    },
    secret: { store: 'env', prefix: `LATCHKEY_SECRET_P${prefix.toUpperCase()}` },
  };
  driver = new PostgresDriver({
    ...testServices(staticSecrets({ username: serviceAccount, password: servicePassword })),
    sealer: createSealer({ allowPlaintext: false }),
  });
});

afterAll(async () => {
  await driver?.close();
  await admin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${q(db)} WITH (FORCE)`);
    const roles = await c.query<{ rolname: string }>(
      `SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)
        ORDER BY rolname = $2, starts_with(rolname, $3)`,
      [prefix, serviceAccount, `${prefix}g_`],
    );
    for (const r of roles.rows) await c.query(`DROP OWNED BY ${q(r.rolname)}`);
    for (const r of roles.rows) await c.query(`DROP ROLE IF EXISTS ${q(r.rolname)}`);
  });
});

describe('logins on a server that checks passwords', () => {
  it('the issued password logs in and reads what was granted; a wrong one does not log in', async () => {
    const out = await driver.grant(ctxFor(integration), {
      grantId: 'pw_1',
      grantee: { email: 'pw.user@example.com' },
      resources: [{ type: 'schema', id: schemaId(db, 'app') }],
      permission: 'read',
      recipientKey: recipient.publicKey,
    });
    const c = creds(out.credentials);
    expect(c.username).toBe(out.username);
    const s = await login(out.username, c.password ?? '');
    try {
      expect((await s.query('SELECT v FROM app.t')).rows).toEqual([{ v: 'ok' }]);
    } finally {
      await s.end();
    }
    expect(await loginFails(out.username, `${c.password ?? ''}x`)).toBe('28P01');
    expect(await loginFails(out.username, '')).toBeDefined();
    await driver.revoke(ctxFor(integration), {
      grantId: 'pw_1',
      grantee: { email: 'pw.user@example.com' },
      resources: [],
      permission: 'read',
    });
    // After revoke the same password no longer logs in (NOLOGIN).
    expect(await loginFails(out.username, c.password ?? '')).toBe('28000');
  });

  it('check warns when the service account is a superuser, and not otherwise', async () => {
    const ours = await driver.check(ctxFor(integration));
    expect(ours.checks.find((c) => c.name === 'not-superuser')).toMatchObject({ ok: true });
    const superDriver = new PostgresDriver(
      testServices(
        staticSecrets({ username: 'postgres', password: decodeURIComponent(url.password) }),
      ),
    );
    try {
      const out = await superDriver.check(ctxFor(integration));
      expect(out.ok).toBe(false);
      expect(out.checks.find((c) => c.name === 'not-superuser')).toMatchObject({
        ok: false,
        detail: expect.stringContaining('superuser') as string,
      });
    } finally {
      await superDriver.close();
    }
  });

  it('at expiry (VALID UNTIL) new logins fail with no agent involved; a session opened before lasts until the sweep', async () => {
    const expiresAt = new Date(Date.now() + 3000);
    const email = 'short.lived@example.com';
    const out = await driver.grant(ctxFor(integration), {
      grantId: 'pw_2',
      grantee: { email },
      resources: [{ type: 'schema', id: schemaId(db, 'app') }],
      permission: 'read',
      recipientKey: recipient.publicKey,
      expiresAt: expiresAt.toISOString(),
    });
    const password = creds(out.credentials).password ?? '';
    const early = await login(out.username, password);
    try {
      await new Promise((r) => setTimeout(r, Math.max(0, expiresAt.getTime() - Date.now() + 500)));
      // The server itself refuses the login now: no sweep has run.
      expect(await loginFails(out.username, password)).toBe('28P01');
      // What VALID UNTIL does not do (docs/drivers/sql-access-model.md, threat model):
      // a session opened before expiry goes on until a sweep ends it.
      expect((await early.query('SELECT v FROM app.t')).rows).toEqual([{ v: 'ok' }]);
      const swept = await driver.sweep(ctxFor(integration));
      expect(swept.revoked).toEqual(['pw_2']);
      await expect(early.query('SELECT 1')).rejects.toBeDefined();
    } finally {
      await early.end().catch(() => undefined);
    }
  });
});
