/**
 * Key proof at welcome over a real WebSocket: the reference control plane signs the
 * agent's nonce; the link and `latchkey check` tell a proved key, a wrong trusted key, and
 * a control plane without key proof (an older one: plain welcome, nonce ignored).
 */
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { checkControlPlane } from '../../../src/cli/check.js';
import { loadConfig } from '../../../src/config/load.js';
import { generateSigningKeyPair } from '../../../src/protocol/keys.js';
import { HelloSchema } from '../../../src/protocol/messages.js';
import { parsePublicKey } from '../../../src/protocol/signing.js';
import { CONNECTOR, TOKEN, makeClient, startCp } from './helpers.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Keys = ReturnType<typeof generateSigningKeyPair>;
const trust = (k: Keys) => new Map([[k.keyId, parsePublicKey(k.publicKey)]]);

async function connect(url: string, trusted: Keys) {
  const t = makeClient(url, { trustedKeys: trust(trusted) });
  cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
  const connected = t.next('link:connected');
  t.client.start();
  await connected;
  return t;
}

function configFor(url: string, trusted: Keys) {
  return loadConfig({
    env: {
      LATCHKEY_CONTROL_PLANE_URL: url,
      LATCHKEY_CONNECTOR_ID: CONNECTOR,
      LATCHKEY_CONNECTOR_TOKEN: TOKEN,
      LATCHKEY_TRUSTED_KEYS: `${trusted.keyId}=${trusted.publicKey}`,
      LATCHKEY_STATE_DIR: 'off',
    },
  });
}

describe('key proof at welcome', () => {
  it('the reference control plane proves the trusted key; check says so', async () => {
    const { cp, keys } = await startCp();
    cleanups.push(() => cp.close());
    const t = await connect(cp.url, keys);
    expect(t.client.keyProof).toEqual({ status: 'proved', keyId: keys.keyId });
    const line = t.lines.find((l) => l.includes('connected to the control plane'));
    expect(JSON.parse(line ?? '{}')).toMatchObject({ keyProof: 'proved', keyId: keys.keyId });

    const res = await checkControlPlane(configFor(cp.url, keys), 5000);
    expect(res.ok).toBe(true);
    expect(res.detail).toContain(`the control plane proved the trusted key "${keys.keyId}"`);
  });

  it('a wrong trusted key is caught at connect: a warning in the log, a failed check', async () => {
    const { cp } = await startCp();
    cleanups.push(() => cp.close());
    const wrong = generateSigningKeyPair();
    const t = await connect(cp.url, wrong);
    expect(t.client.keyProof).toMatchObject({ status: 'failed' });
    // Still connected: an older or misconfigured pairing is reported, not cut off.
    expect(t.client.connected).toBe(true);
    const warn = t.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.level === 40);
    expect(warn?.msg).toBe(
      'the control plane did not prove a trusted key: the commands it signs will be refused with E_SIGNATURE',
    );

    const res = await checkControlPlane(configFor(cp.url, wrong), 5000);
    expect(res.ok).toBe(false);
    expect(res.detail).toContain("which is not among this agent's trusted keys");
    expect(res.detail).toContain('E_SIGNATURE');
  });

  it('a control plane without key proof: the nonce is sent and ignored, the link works, check says the key was not proved', async () => {
    const hellos: unknown[] = [];
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    wss.on('connection', (ws) => {
      ws.on('message', (data) => {
        const msg = JSON.parse(Buffer.from(data as Buffer).toString('utf8')) as { type?: string };
        if (msg.type !== 'hello') return;
        hellos.push(msg);
        ws.send(JSON.stringify({ type: 'welcome', serverTime: new Date().toISOString() }));
      });
    });
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    cleanups.push(() => new Promise((resolve) => wss.close(resolve)));
    const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
    const keys = generateSigningKeyPair();
    const t = await connect(url, keys);
    expect(t.client.keyProof).toEqual({ status: 'not-offered' });
    const hello = HelloSchema.parse(hellos[0]);
    expect(hello.keyProof?.nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const res = await checkControlPlane(configFor(url, keys), 5000);
    expect(res.ok).toBe(true);
    expect(res.detail).toContain('did not prove its key');
    // Each connection has its own nonce.
    const second = HelloSchema.parse(hellos.at(-1));
    expect(second.keyProof?.nonce).not.toBe(hello.keyProof?.nonce);
  });
});
