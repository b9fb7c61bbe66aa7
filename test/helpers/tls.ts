/**
 * TLS material and a CONNECT proxy for tests: a private CA and a server certificate made
 * with the machine's `openssl` (EC P-256, valid one day) in a temporary directory, and a
 * minimal HTTP CONNECT proxy that records the targets it is asked for.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCertificates {
  /** The CA certificate, also as a file (`caFile`) for settings that take a path. */
  caPem: string;
  caFile: string;
  certPem: string;
  keyPem: string;
  /** Removes the temporary directory. */
  remove(): void;
}

/**
 * A CA named `caName` and a certificate for `subjectAltName` (e.g.
 * `IP:127.0.0.1,DNS:localhost` or `DNS:*.amazonaws.com`) signed by it.
 */
export function makeTestCertificates(caName: string, subjectAltName: string): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-tls-'));
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    ...['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1'],
    ...['-subj', `/CN=${caName}`],
    ...['-addext', 'basicConstraints=critical,CA:TRUE'],
    ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  );
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=server');
  writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=${subjectAltName}\n`);
  openssl(
    ...['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key'],
    ...['-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'ext.cnf'],
  );
  return {
    caPem: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    caFile: join(dir, 'ca.pem'),
    certPem: readFileSync(join(dir, 'server.pem'), 'utf8'),
    keyPem: readFileSync(join(dir, 'server.key'), 'utf8'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface ConnectProxy {
  url: string;
  /** `host:port` of every CONNECT, in order. */
  targets: string[];
  close(): Promise<void>;
}

/**
 * An HTTP CONNECT proxy on 127.0.0.1. Each tunnel goes to the requested target, or to
 * `route(target)` when given (e.g. every AWS host to one local fake).
 */
export async function startConnectProxy(
  route?: (target: string) => { host: string; port: number },
): Promise<ConnectProxy> {
  const targets: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((_req, res) => res.writeHead(405).end());
  server.on('connect', (req, client: Socket) => {
    const target = req.url ?? '';
    targets.push(target);
    const [host, port] = target.split(':');
    const to = route ? route(target) : { host: host ?? '127.0.0.1', port: Number(port) };
    const upstream = connect(to.port, to.host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(client).add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    targets,
    async close() {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
