/**
 * The secret-to-target guardrail in every SQL driver: a command pairing the production
 * secret with another server is refused with E_GUARDRAIL before any connection is opened.
 * The "server" is a local TCP listener that counts connections (and hangs up at once), so
 * a driver that connected would be seen doing it.
 */
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CallContext, Driver, DriverServices } from '../../../src/drivers/driver.js';
import { createMysqlDriver } from '../../../src/drivers/mysql/driver.js';
import { createPostgresDriver } from '../../../src/drivers/postgres/driver.js';
import { createRedshiftDriver } from '../../../src/drivers/redshift/driver.js';
import type { Integration, SecretRef } from '../../../src/protocol/messages.js';
import { createSealer } from '../../../src/protocol/seal.js';
import type { SecretResolver, ServiceSecret } from '../../../src/secrets/types.js';
import { noAws } from '../../helpers/pg.js';
import { errorOf } from '../../helpers/errors.js';

const PROD_PASSWORD = 'Prod-Service-Account-Pa55!';
const PROD_REF: SecretRef = {
  store: 'aws-secrets-manager',
  secretId: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/orders-db',
};

let server: Server;
let port: number;
let connections = 0;
const sockets = new Set<Socket>();

beforeAll(async () => {
  server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  connections = 0;
});

function servicesWith(secret: ServiceSecret, binding?: SecretResolver['binding']): DriverServices {
  const secrets: SecretResolver = {
    resolve: () => Promise.resolve({ ...secret, extra: { ...secret.extra } }),
    ...(binding ? { binding } : {}),
  };
  return {
    logger: pino({ level: 'silent' }),
    secrets,
    aws: noAws,
    sealer: createSealer({ allowPlaintext: false }),
    tagPrefix: 'latchkey',
    now: () => new Date(),
  };
}

function ctx(integration: Integration): CallContext {
  return {
    commandId: 'cmd-binding',
    integration,
    signal: AbortSignal.timeout(20_000),
    logger: pino({ level: 'silent' }),
  };
}

const ENGINES: {
  type: string;
  make: (s: DriverServices) => Driver;
  config: () => Record<string, unknown>;
}[] = [
  {
    type: 'postgres',
    make: (s) => createPostgresDriver(s),
    config: () => ({ host: '127.0.0.1', port, sslMode: 'disable', connectTimeoutMs: 2000 }),
  },
  {
    type: 'redshift',
    make: (s) => createRedshiftDriver(s),
    config: () => ({ host: '127.0.0.1', port, sslMode: 'disable', connectTimeoutMs: 2000 }),
  },
  {
    type: 'mysql',
    make: (s) => createMysqlDriver(s),
    config: () => ({ host: '127.0.0.1', port, sslMode: 'disable', connectTimeoutMs: 2000 }),
  },
];

describe.each(ENGINES)('$type driver: secret-to-target binding', (engine) => {
  const integration = (secret: SecretRef = PROD_REF): Integration => ({
    id: `binding-${engine.type}`,
    type: engine.type,
    config: engine.config(),
    secret,
  });

  async function attempt(secret: ServiceSecret, binding?: SecretResolver['binding']) {
    const driver = engine.make(servicesWith(secret, binding));
    try {
      return await errorOf(driver.discover(ctx(integration())));
    } finally {
      await driver.close();
    }
  }

  it('refuses a secret bound to another host, before opening any connection', async () => {
    const err = await attempt({
      username: 'svc',
      password: PROD_PASSWORD,
      host: 'orders.prod.internal',
      extra: {},
    });
    expect(err.code).toBe('E_GUARDRAIL');
    expect(err.message).toContain('another host');
    expect(err.message).toContain('127.0.0.1');
    expect(err.message).not.toContain(PROD_PASSWORD);
    expect(err.message).not.toContain('orders.prod.internal');
    expect(connections).toBe(0);
  });

  it('refuses a secret bound to the host but another port', async () => {
    const err = await attempt({
      username: 'svc',
      password: PROD_PASSWORD,
      host: '127.0.0.1',
      port: port === 5432 ? 5433 : 5432,
      extra: {},
    });
    expect(err.code).toBe('E_GUARDRAIL');
    expect(err.details).toMatchObject({ field: 'port' });
    expect(connections).toBe(0);
  });

  it('refuses an unbound Secrets Manager secret by default', async () => {
    const err = await attempt({ username: 'svc', password: PROD_PASSWORD, extra: {} });
    expect(err.code).toBe('E_GUARDRAIL');
    expect(err.message).toContain('names no host');
    expect(connections).toBe(0);
  });

  it('connects with a secret bound to this host and port (the listener sees it)', async () => {
    const err = await attempt({
      username: 'svc',
      password: PROD_PASSWORD,
      host: '127.0.0.1',
      port,
      extra: {},
    });
    expect(err.code).not.toBe('E_GUARDRAIL');
    expect(connections).toBeGreaterThan(0);
  });

  it('connects with an unbound secret when the operator allows its store', async () => {
    const err = await attempt(
      { username: 'svc', password: PROD_PASSWORD, extra: {} },
      { allowUnbound: ['aws-secrets-manager'] },
    );
    expect(err.code).not.toBe('E_GUARDRAIL');
    expect(connections).toBeGreaterThan(0);
  });
});
