/**
 * wss:// with a private CA (refused without the CA bundle, accepted with it) and the
 * HTTPS proxy (CONNECT tunnel), against the reference control plane served over TLS.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DevControlPlane } from '../../../src/devcp/server.js';
import {
  makeTestCertificates,
  startConnectProxy,
  type TestCertificates,
} from '../../helpers/tls.js';
import { makeClient, startCp } from './helpers.js';

let certs: TestCertificates;
let caPem: string;
let certPem: string;
let keyPem: string;

beforeAll(() => {
  certs = makeTestCertificates('Latchkey Test CA', 'IP:127.0.0.1,DNS:localhost');
  ({ caPem, certPem, keyPem } = certs);
});

afterAll(() => certs.remove());

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tlsCp(): Promise<DevControlPlane> {
  const { cp } = await startCp({ tls: { certPem, keyPem } });
  cleanups.push(() => cp.close());
  expect(cp.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/$/);
  return cp;
}

/** A minimal HTTP CONNECT proxy that records the targets it tunnels to. */
async function startProxy(): Promise<{ url: string; targets: string[] }> {
  const proxy = await startConnectProxy();
  cleanups.push(() => proxy.close());
  return proxy;
}

describe('wss with a private CA', () => {
  it('refuses a certificate signed by an unknown CA (verification is always on)', async () => {
    const cp = await tlsCp();
    const t = makeClient(cp.url);
    cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
    let connected = 0;
    t.events.on('link:connected', () => connected++);
    const retried = new Promise<void>((resolve) =>
      t.events.on('link:reconnect-scheduled', ({ attempt }) => attempt === 2 && resolve()),
    );
    t.client.start();
    await retried;
    expect(connected).toBe(0);
    expect(cp.connectedAgents()).toEqual([]);
    const log = t.lines.join('\n');
    expect(log).toContain('TLS certificate not trusted');
    expect(log).toContain('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('keeps verifying even with NODE_TLS_REJECT_UNAUTHORIZED=0 in the environment', async () => {
    const cp = await tlsCp();
    const saved = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
    cleanups.push(() => {
      if (saved === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = saved;
      return Promise.resolve();
    });
    for (const proxied of [false, true]) {
      const proxy = proxied ? await startProxy() : undefined;
      const t = makeClient(cp.url, proxy ? { proxyUrl: proxy.url, noProxy: '' } : {});
      cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
      let connected = 0;
      t.events.on('link:connected', () => connected++);
      const retried = new Promise<void>((resolve) =>
        t.events.on('link:reconnect-scheduled', ({ attempt }) => attempt === 2 && resolve()),
      );
      t.client.start();
      await retried;
      await t.client.stop({ flushTimeoutMs: 0 });
      expect(connected, proxied ? 'through the proxy' : 'direct').toBe(0);
      expect(t.lines.join('\n')).toContain('TLS certificate not trusted');
    }
    expect(cp.connectedAgents()).toEqual([]);
  });

  it('connects when the CA is given as caBundle', async () => {
    const cp = await tlsCp();
    const t = makeClient(cp.url, { caBundle: caPem });
    cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
    const connected = t.next('link:connected');
    t.client.start();
    await connected;
    expect(cp.connectedAgents()).toHaveLength(1);
  });
});

describe('proxy', () => {
  it('tunnels through proxyUrl with CONNECT, TLS verified end to end', async () => {
    const cp = await tlsCp();
    const proxy = await startProxy();
    const port = new URL(cp.url).port;
    const t = makeClient(cp.url, { caBundle: caPem, proxyUrl: proxy.url, noProxy: '' });
    cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
    const connected = t.next('link:connected');
    t.client.start();
    await connected;
    expect(proxy.targets).toEqual([`127.0.0.1:${port}`]);
  });

  it('connects directly when the host matches NO_PROXY', async () => {
    const cp = await tlsCp();
    const proxy = await startProxy();
    const t = makeClient(cp.url, {
      caBundle: caPem,
      proxyUrl: proxy.url,
      noProxy: 'example.com, 127.0.0.1',
    });
    cleanups.push(() => t.client.stop({ flushTimeoutMs: 0 }));
    const connected = t.next('link:connected');
    t.client.start();
    await connected;
    expect(proxy.targets).toEqual([]);
  });
});
