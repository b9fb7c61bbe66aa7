/**
 * `LATCHKEY_CA_BUNDLE_FILE` reaches the database drivers, and AWS endpoints trust the RDS
 * bundle by default (docs/drivers/postgres.md, "TLS"). A local server speaks the start of
 * the PostgreSQL protocol (SSLRequest → 'S') and then TLS with a certificate from a test
 * CA made here; whether the driver's handshake with it succeeds is what is asserted.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { TLSSocket, rootCertificates } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { driverFactory as postgresFactory } from '../../../src/drivers/postgres/index.js';
import { driverFactory as redshiftFactory } from '../../../src/drivers/redshift/index.js';
import { caFor } from '../../../src/drivers/mysql/connection.js';
import { parseMysqlConfig } from '../../../src/drivers/mysql/config.js';
import { isAwsDatabaseHost, rdsCaCertificates, trustedCas } from '../../../src/drivers/sql/tls.js';
import { generateKeyPairSync } from 'node:crypto';
import pino from 'pino';
import { buildDriverServices } from '../../../src/agent.js';
import { loadConfig } from '../../../src/config/load.js';
import { AgentEvents } from '../../../src/events.js';
import { ctxFor, staticSecrets, testServices } from '../../helpers/pg.js';
import { makeTestCertificates, type TestCertificates } from '../../helpers/tls.js';

let certs: TestCertificates;
let caPem: string;
let certPem: string;
let keyPem: string;

beforeAll(() => {
  certs = makeTestCertificates('Latchkey DB Test CA', 'IP:127.0.0.1,DNS:localhost');
  ({ caPem, certPem, keyPem } = certs);
});

afterAll(() => certs.remove());

/** A PostgreSQL-shaped TLS endpoint: answers SSLRequest with 'S', handshakes, then hangs up. */
async function pgTlsServer(): Promise<{
  port: number;
  handshakes: () => number;
  close: () => Promise<void>;
}> {
  let handshakes = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', (first) => {
      // SSLRequest: length 8, code 80877103
      if (first.length !== 8 || first.readInt32BE(4) !== 80877103) {
        socket.destroy();
        return;
      }
      socket.write('S');
      const tls = new TLSSocket(socket, { isServer: true, key: keyPem, cert: certPem });
      tls.on('error', () => undefined);
      tls.on('secure', () => {
        handshakes++;
        tls.destroy();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    handshakes: () => handshakes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const secrets = staticSecrets({ username: 'svc', password: 'not-used' });

describe('database TLS trust', () => {
  it.each([
    ['postgres', postgresFactory],
    ['redshift', redshiftFactory],
  ] as const)(
    '%s verify-full: the LATCHKEY_CA_BUNDLE_FILE CA reaches the driver',
    async (type, factory) => {
      const server = await pgTlsServer();
      try {
        const integration = {
          id: `tls-${type}`,
          type,
          config: { host: '127.0.0.1', port: server.port, sslMode: 'verify-full' },
          secret: { store: 'env' as const, prefix: 'LATCHKEY_SECRET_TLS' },
        };
        // Without the extra CA: the handshake is refused by the client.
        const without = factory(testServices(secrets));
        const refused = await without.check(ctxFor(integration));
        expect(refused.ok).toBe(false);
        expect(JSON.stringify(refused.checks)).toMatch(/certificate|self.signed|verify/i);
        expect(server.handshakes()).toBe(0);
        await without.close();

        // With it (as DriverServices.caBundle, which the agent fills from the file).
        const withCa = factory({ ...testServices(secrets), caBundle: caPem });
        await withCa.check(ctxFor(integration));
        expect(server.handshakes()).toBeGreaterThanOrEqual(1);
        await withCa.close();
      } finally {
        await server.close();
      }
    },
  );
});

describe('LATCHKEY_CA_BUNDLE_FILE', () => {
  it('is handed to the drivers as DriverServices.caBundle', () => {
    const key = generateKeyPairSync('ed25519')
      .publicKey.export({ format: 'der', type: 'spki' })
      .subarray(12)
      .toString('base64url');
    const env = {
      LATCHKEY_CONTROL_PLANE_URL: 'wss://cp.example.com/connect',
      LATCHKEY_CONNECTOR_ID: 'acme-prod',
      LATCHKEY_CONNECTOR_TOKEN: 'lk_tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0',
      LATCHKEY_TRUSTED_KEYS: `k1=${key}`,
      LATCHKEY_STATE_DIR: 'off',
    };
    const withFile = loadConfig({ env: { ...env, LATCHKEY_CA_BUNDLE_FILE: certs.caFile } });
    const built = buildDriverServices(withFile, pino({ level: 'silent' }), new AgentEvents());
    expect(built.services.caBundle).toBe(caPem);
    built.close();
    const none = buildDriverServices(
      loadConfig({ env }),
      pino({ level: 'silent' }),
      new AgentEvents(),
    );
    expect(none.services.caBundle).toBeUndefined();
    none.close();
  });
});

describe('trustedCas', () => {
  it('AWS database endpoints trust the public roots and the RDS bundle by default', () => {
    const rds = rdsCaCertificates();
    expect(rds.length).toBeGreaterThan(20);
    for (const host of [
      'orders.abcdefghijkl.eu-west-1.rds.amazonaws.com',
      'events.cluster-abcdefghijkl.us-east-1.rds.amazonaws.com',
      'wh.c1a2b3c4d5e6.us-east-1.redshift.amazonaws.com',
      'wg.123456789012.eu-west-1.redshift-serverless.amazonaws.com',
      'db.abc.cn-north-1.rds.amazonaws.com.cn',
    ]) {
      expect(isAwsDatabaseHost(host)).toBe(true);
      const ca = trustedCas({ configured: undefined, host, extra: undefined });
      expect(ca).toEqual([...rootCertificates, ...rds]);
    }
    expect(isAwsDatabaseHost('rds.amazonaws.com.evil.example')).toBe(false);
    expect(trustedCas({ configured: undefined, host: 'db.internal', extra: undefined })).toBe(
      undefined,
    );
    expect(trustedCas({ configured: undefined, host: 'db.internal', extra: caPem })).toEqual([
      ...rootCertificates,
      caPem,
    ]);
    expect(trustedCas({ configured: 'PEM', host: 'x.rds.amazonaws.com', extra: caPem })).toEqual([
      'PEM',
      caPem,
    ]);
  });

  it('postgres accepts caBundle "aws-rds"; verify-ca to an RDS host needs no file', async () => {
    const { parsePostgresConfig } = await import('../../../src/drivers/postgres/config.js');
    const secret = { store: 'env' as const, prefix: 'LATCHKEY_SECRET_X' };
    const cfg = parsePostgresConfig({
      id: 'p',
      type: 'postgres',
      config: { host: 'db.internal', sslMode: 'verify-full', caBundle: 'aws-rds' },
      secret,
    });
    expect(cfg.ca).toEqual(rdsCaCertificates());
    const rds = parsePostgresConfig({
      id: 'p',
      type: 'postgres',
      config: { host: 'x.abc.eu-west-1.rds.amazonaws.com', sslMode: 'verify-ca' },
      secret,
    });
    expect(rds.ca).toBeUndefined();
  });

  it('mysql: the extra CA is added; an RDS host trusts the RDS bundle without caBundle', async () => {
    const rdsHost = 'billing.abcdefghijkl.eu-west-1.rds.amazonaws.com';
    const plain = parseMysqlConfig({ host: rdsHost, sslMode: 'verify-full' });
    expect(await caFor(plain)).toEqual([...rootCertificates, ...rdsCaCertificates()]);
    expect(await caFor({ ...plain, extraCa: caPem })).toEqual([
      ...rootCertificates,
      ...rdsCaCertificates(),
      caPem,
    ]);
    const local = parseMysqlConfig({ host: '127.0.0.1', sslMode: 'verify-full' });
    expect(await caFor(local)).toBeUndefined();
    expect(await caFor({ ...local, extraCa: caPem })).toEqual([...rootCertificates, caPem]);
  });
});
