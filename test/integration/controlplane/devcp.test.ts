/**
 * The reference control plane: auth of the upgrade, signing, round robin, hand-over and
 * its HTTP API.
 */
import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { DevControlPlane } from '../../../src/devcp/server.js';
import { EnvelopeSchema, type CommandMessage } from '../../../src/protocol/messages.js';
import { parsePublicKey, verifyEnvelopeSignature } from '../../../src/protocol/signing.js';
import {
  CONNECTOR,
  TOKEN,
  integration,
  makeClient,
  result,
  startCp,
  type TestClient,
} from './helpers.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function cpAndKeys(): Promise<Awaited<ReturnType<typeof startCp>>> {
  const started = await startCp();
  cleanups.push(() => started.cp.close());
  return started;
}

async function connectedClient(
  cp: DevControlPlane,
): Promise<TestClient & { commands: CommandMessage[] }> {
  const t = makeClient(cp.url);
  cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
  const commands: CommandMessage[] = [];
  t.client.onCommand((m) => commands.push(m));
  const connected = t.next('link:connected');
  t.client.start();
  await connected;
  return Object.assign(t, { commands });
}

/** GET with an explicit Host header (fetch cannot set it); resolves with the status. */
function rawGet(base: string, path: string, host: string): Promise<number> {
  const u = new URL(base);
  return new Promise<number>((resolve, reject) => {
    const req = httpRequest(
      { host: u.hostname, port: u.port, path, method: 'GET', headers: { host } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Raw upgrade attempt; resolves with the HTTP status of a refusal or 101. */
function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      resolve(101);
      ws.close();
    });
    ws.on('error', (err) => reject(err));
  }).catch((err: unknown) => {
    if (err instanceof Error && /closed before the connection/.test(err.message)) return 0;
    throw err;
  });
}

describe('dev control plane: upgrade auth', () => {
  it('accepts the right token and connector id, refuses anything else', async () => {
    const { cp } = await cpAndKeys();
    const good = {
      Authorization: `Bearer ${TOKEN}`,
      'X-Latchkey-Connector-Id': CONNECTOR,
      'X-Latchkey-Protocol': '1',
    };
    expect(await upgradeStatus(cp.url, good)).toBe(101);
    expect(await upgradeStatus(cp.url, { ...good, Authorization: 'Bearer nope' })).toBe(401);
    expect(await upgradeStatus(cp.url, { ...good, Authorization: TOKEN })).toBe(401);
    expect(
      await upgradeStatus(cp.url, {
        'X-Latchkey-Connector-Id': CONNECTOR,
        'X-Latchkey-Protocol': '1',
      }),
    ).toBe(401);
    expect(await upgradeStatus(cp.url, { ...good, 'X-Latchkey-Connector-Id': 'other' })).toBe(403);
    expect(await upgradeStatus(cp.url, { ...good, 'X-Latchkey-Protocol': '2' })).toBe(400);
  });
});

describe('dev control plane: commands', () => {
  it('signs envelopes that verify with the public key and match the schema', async () => {
    const { cp, keys } = await cpAndKeys();
    const t = await connectedClient(cp);
    const issuedAt = new Date('2026-11-25T20:00:00.000Z');
    const { commandId, envelope } = await cp.sendCommand(CONNECTOR, {
      kind: 'check',
      integration,
      params: {},
      id: 'cmd-fixed',
      ttlMs: 60_000,
      issuedAt,
    });
    expect(commandId).toBe('cmd-fixed');
    expect(envelope).toMatchObject({
      id: 'cmd-fixed',
      kind: 'check',
      connectorId: CONNECTOR,
      issuedAt: '2026-11-25T20:00:00.000Z',
      expiresAt: '2026-11-25T20:01:00.000Z',
    });
    expect(EnvelopeSchema.safeParse(envelope).success).toBe(true);
    await expect.poll(() => t.commands.length).toBe(1);
    const msg = t.commands[0];
    if (!msg) throw new Error('no command');
    const trusted = new Map([[keys.keyId, parsePublicKey(keys.publicKeyPem)]]);
    expect(msg.signature.keyId).toBe(keys.keyId);
    expect(verifyEnvelopeSignature(msg.envelope, msg.signature, trusted)).toBe(true);
    expect(
      verifyEnvelopeSignature({ ...msg.envelope, kind: 'discover' }, msg.signature, trusted),
    ).toBe(false);
  });

  it('spreads commands over replicas round robin and hands pending ones over when a replica leaves', async () => {
    const { cp } = await cpAndKeys();
    const a = await connectedClient(cp);
    const b = await connectedClient(cp);
    expect(cp.connectedAgents()).toHaveLength(2);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push(
        (await cp.sendCommand(CONNECTOR, { kind: 'check', integration, params: {} })).commandId,
      );
    }
    await expect.poll(() => a.commands.length + b.commands.length).toBe(4);
    expect(a.commands).toHaveLength(2);
    expect(b.commands).toHaveLength(2);

    // a answers one of its commands, then leaves: its other pending command goes to b.
    const [answered, left] = a.commands.map((c) => String(c.envelope.id));
    await a.client.sendResult(result(answered ?? ''));
    await a.outbox.whenEmpty();
    await a.client.stop({ flushTimeoutMs: 0 });
    await expect.poll(() => b.commands.length).toBe(3);
    expect(b.commands[2]?.envelope.id).toBe(left);
    expect(cp.pendingCommands().sort()).toEqual(ids.filter((id) => id !== answered).sort());
  });

  it('records every copy of a result and acks each one', async () => {
    const { cp } = await cpAndKeys();
    const t = await connectedClient(cp);
    await t.client.sendResult(result('cmd-dup'));
    await t.outbox.whenEmpty();
    await t.client.sendResult(result('cmd-dup'));
    await t.outbox.whenEmpty();
    expect(cp.resultsFor('cmd-dup')).toHaveLength(2);
    expect((await cp.waitForResult('cmd-dup')).commandId).toBe('cmd-dup');
  });

  it('a rejected command stops being pending', async () => {
    const { cp } = await cpAndKeys();
    const t = await connectedClient(cp);
    const { commandId } = await cp.sendCommand(CONNECTOR, {
      kind: 'check',
      integration,
      params: {},
    });
    await expect.poll(() => t.commands.length).toBe(1);
    t.client.send({
      type: 'rejected',
      commandId,
      error: { code: 'E_EXPIRED', message: 'expired', retryable: false },
    });
    await cp.waitFor('rejected', (r) => r.commandId === commandId);
    expect(cp.pendingCommands()).toEqual([]);
    const res = await fetch(`${cp.httpUrl}/commands/${commandId}/result`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: 'no result yet',
      pending: false,
      rejected: { code: 'E_EXPIRED', message: 'expired', retryable: false },
    });
  });
});

describe('dev control plane: HTTP API', () => {
  it('POST /commands, GET /commands/:id/result (long poll), GET /agents', async () => {
    const { cp } = await cpAndKeys();
    const t = await connectedClient(cp);
    t.client.onCommand((m) => {
      void t.client.sendResult(result(String(m.envelope.id)));
    });

    const agents = (await (await fetch(`${cp.httpUrl}/agents`)).json()) as unknown[];
    expect(agents).toEqual(cp.connectedAgents());
    expect(agents).toHaveLength(1);

    const missing = await fetch(`${cp.httpUrl}/commands/nope/result`);
    expect(missing.status).toBe(404);

    const post = await fetch(`${cp.httpUrl}/commands`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        connectorId: CONNECTOR,
        kind: 'check',
        integration,
        params: {},
        ttlMs: 30_000,
      }),
    });
    expect(post.status).toBe(201);
    const { commandId } = (await post.json()) as { commandId: string };
    expect(commandId).toMatch(/^cmd-/);

    const got = await fetch(
      `${cp.httpUrl}/commands/${encodeURIComponent(commandId)}/result?waitMs=10000`,
    );
    expect(got.status).toBe(200);
    expect(await got.json()).toMatchObject({ type: 'result', commandId, status: 'ok' });

    const bad = await fetch(`${cp.httpUrl}/commands`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ connectorId: CONNECTOR, kind: 'explode', integration, params: {} }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { issues: string[] }).issues.join(' ')).toContain('kind');
    const notJson = await fetch(`${cp.httpUrl}/commands`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{',
    });
    expect(notJson.status).toBe(400);
  });

  it('refuses requests a web page could make: cross-origin, DNS-rebound Host, non-JSON POST', async () => {
    const { cp } = await cpAndKeys();
    const t = await connectedClient(cp);
    const command = JSON.stringify({
      connectorId: CONNECTOR,
      kind: 'check',
      integration,
      params: {},
    });
    // A form or no-cors fetch from a page: text/plain, with an Origin.
    const csrf = await fetch(`${cp.httpUrl}/commands`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', origin: 'https://evil.example' },
      body: command,
    });
    expect(csrf.status).toBe(403);
    const plain = await fetch(`${cp.httpUrl}/commands`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: command,
    });
    expect(plain.status).toBe(415);
    const rebound = await rawGet(cp.httpUrl, '/agents', 'evil.example:80');
    expect(rebound).toBe(403);
    expect(await rawGet(cp.httpUrl, '/agents', '127.0.0.1')).toBe(200);
    expect(t.commands).toHaveLength(0);
  });
});
