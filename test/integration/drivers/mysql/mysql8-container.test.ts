/**
 * The MySQL 8 flavor against a real MySQL 8.4 in a container, only where a Docker engine
 * answers (never required in CI). Without Docker, this file registers one test that runs
 * the MySQL 8 statements by exact text instead (see also test/unit/drivers/mysql).
 */
import { connect } from 'node:net';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mysql from 'mysql2/promise';
import pino from 'pino';
import type { StartedMySqlContainer } from '@testcontainers/mysql';
import { createMysqlDriver } from '../../../../src/drivers/mysql/driver.js';
import { createMysqlOps } from '../../../../src/drivers/mysql/dialect-mysql.js';
import { createMysqlSqlDialect } from '../../../../src/drivers/mysql/sql-dialect.js';
import { grantFlow } from '../../../../src/drivers/sql/core.js';
import { tableId } from '../../../../src/drivers/sql/resources.js';
import { createSealer } from '../../../../src/protocol/seal.js';
import type { Driver } from '../../../../src/drivers/driver.js';
import type { GrantOutput } from '../../../../src/protocol/messages.js';
import { FakeMysql8, MemorySecrets, noAws } from '../../../helpers/mysql.js';

/** True when a Docker engine answers `/_ping` on its socket (DOCKER_HOST unix sockets too). */
async function dockerAvailable(): Promise<boolean> {
  const host = process.env.DOCKER_HOST;
  const path = host?.startsWith('unix://')
    ? host.slice('unix://'.length)
    : host
      ? null
      : '/var/run/docker.sock';
  if (path === null || !existsSync(path)) return false;
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n'));
    socket.on('data', (d) => done(d.toString('utf8').includes('OK')));
  });
}

const DOCKER = await dockerAvailable();

if (!DOCKER) {
  describe('MySQL 8 without a Docker engine', () => {
    it('checks the MySQL 8 grant path by exact statement text instead', async () => {
      const fake = new FakeMysql8();
      fake.schemas.add('sales');
      fake.tables.add('sales.orders');
      const dialect = createMysqlSqlDialect(
        createMysqlOps({ accountHost: '%', metaDatabase: 'latchkey' }),
        {
          accountHost: '%',
          metaDatabase: 'latchkey',
          lockTimeoutSeconds: 5,
        },
      );
      const out = await grantFlow(
        {
          dialect,
          iamAuth: false,
          ownedObjects: 'reassign',
          sealer: createSealer({ allowPlaintext: true }),
          now: () => new Date(),
          access: { host: 'db', port: 3306 },
        },
        {
          session: fake,
          onDatabase: (_d, fn) => fn(fake),
          withLockSession: (fn) => fn(fake),
          signal: new AbortController().signal,
          serviceAccount: 'svc',
          prefix: 'lk_',
        },
        {
          grantId: 'g1',
          grantee: { email: 'a@b.io' },
          resources: [{ type: 'table', id: tableId('sales', null, 'orders') }],
          permission: 'read',
        },
      );
      expect(fake.changes().map((c) => c.sql)).toEqual([
        `CREATE USER \`${out.username}\`@\`%\` IDENTIFIED WITH caching_sha2_password AS ? ATTRIBUTE ?`,
        'CREATE USER IF NOT EXISTS `lk_g_g1`@`%` PASSWORD EXPIRE ACCOUNT LOCK ATTRIBUTE ?',
        'GRANT SELECT, SHOW VIEW ON `sales`.`orders` TO `lk_g_g1`@`%`',
        `GRANT \`lk_g_g1\`@\`%\` TO \`${out.username}\`@\`%\``,
        `SET DEFAULT ROLE ALL TO \`${out.username}\`@\`%\``,
      ]);
    });
  });
} else {
  describe('MySQL 8.4 in a container', () => {
    let container: StartedMySqlContainer;
    let root: mysql.Connection;
    let driver: Driver;
    const secrets = new MemorySecrets({ username: 'lk_svc', password: 'Svc-pass-8-4x', extra: {} });
    const integration = () => ({
      id: 'mysql8',
      type: 'mysql',
      config: {
        host: container.getHost(),
        port: container.getPort(),
        flavor: 'mysql',
        sslMode: 'prefer',
      },
      secret: { store: 'aws-secrets-manager' as const, secretId: 'mysql8' },
    });
    const ctx = () => ({
      commandId: 'c',
      integration: integration(),
      signal: AbortSignal.timeout(60_000),
      logger: pino({ level: 'silent' }),
    });

    beforeAll(async () => {
      const { MySqlContainer } = await import('@testcontainers/mysql');
      container = await new MySqlContainer('mysql:8.4').withRootPassword('root-pass').start();
      root = await mysql.createConnection({ uri: container.getConnectionUri(true) });
      // Bind the secret to the container (unbound Secrets Manager secrets are refused).
      secrets.current = {
        ...secrets.current,
        host: container.getHost(),
        port: container.getPort(),
      };
      await root.query('CREATE DATABASE sales');
      await root.query('CREATE TABLE sales.orders (id INT PRIMARY KEY)');
      await root.query('CREATE TABLE sales.secret (id INT PRIMARY KEY)');
      await root.query("CREATE USER lk_svc@'%' IDENTIFIED BY 'Svc-pass-8-4x'");
      await root.query(
        "GRANT CREATE USER, SHOW DATABASES, PROCESS, SELECT, INSERT, UPDATE, DELETE, SHOW VIEW ON *.* TO lk_svc@'%' WITH GRANT OPTION",
      );
      await root.query("GRANT ROLE_ADMIN, CONNECTION_ADMIN ON *.* TO lk_svc@'%'");
      await root.query("GRANT SELECT, UPDATE ON mysql.* TO lk_svc@'%'");
      driver = createMysqlDriver({
        logger: pino({ level: 'silent' }),
        secrets,
        aws: noAws,
        sealer: createSealer({ allowPlaintext: true }),
        tagPrefix: 'latchkey',
        now: () => new Date(),
      });
    }, 180_000);

    afterAll(async () => {
      await driver?.close();
      await root?.end();
      await container?.stop();
    });

    it('check passes; grant, permitted and refused statements, revoke, cleanup', async () => {
      const check = await driver.check(ctx());
      expect(check.checks.filter((c) => !c.ok)).toEqual([]);
      const out: GrantOutput = await driver.grant(ctx(), {
        grantId: 'g1',
        grantee: { email: 'ann@example.com' },
        resources: [{ type: 'table', id: tableId('sales', null, 'orders') }],
        permission: 'read',
      });
      const c = out.credentials;
      const password = c && 'plaintext' in c ? (c.plaintext.password ?? '') : '';
      const user = await mysql.createConnection({
        host: container.getHost(),
        port: container.getPort(),
        user: out.username,
        password,
      });
      await expect(user.query('SELECT * FROM sales.orders')).resolves.toBeDefined();
      await expect(user.query('SELECT * FROM sales.secret')).rejects.toMatchObject({ errno: 1142 });
      const revoked = await driver.revoke(ctx(), {
        grantId: 'g1',
        grantee: { email: 'ann@example.com' },
        resources: [],
        permission: 'read',
      });
      expect(revoked.sessionsTerminated).toBeGreaterThanOrEqual(1);
      user.destroy();
      const cleaned = await driver.cleanup(ctx(), { usernames: [out.username] });
      expect(cleaned.dropped).toEqual([out.username]);
    }, 120_000);
  });
}
