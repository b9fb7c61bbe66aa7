/**
 * wss:// with a private CA (refused without the CA bundle, accepted with it) and the
 * HTTPS proxy (CONNECT tunnel), against the reference control plane served over TLS.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DevControlPlane } from '../../../src/devcp/server.js';
import { makeClient, startCp } from './helpers.js';

let dir: string;
let caPem: string;
let certPem: string;
let keyPem: string;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'latchkey-tls-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=Latchkey Test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '1',
    '-extfile',
    'ext.cnf',
  );
  caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
  certPem = readFileSync(join(dir, 'server.pem'), 'utf8');
  keyPem = readFileSync(join(dir, 'server.key'), 'utf8');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

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
  const targets: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((_req, res) => res.writeHead(405).end());
  server.on('connect', (req, client: Socket) => {
    const target = req.url ?? '';
    targets.push(target);
    const [host, port] = target.split(':');
    const upstream = connect(Number(port), host ?? '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(client).add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, targets };
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
