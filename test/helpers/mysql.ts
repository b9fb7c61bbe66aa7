/**
 * MariaDB/MySQL test environment for the mysql driver: a per-file service account with
 * exactly the privileges the driver needs (not root), a per-file database, user prefix
 * (`lk_t<random>_`) and metadata database, and a teardown that drops everything carrying
 * them. Users and roles are server-wide, so nothing here touches another file's objects.
 */
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import pino from 'pino';
import type { AwsClientFactory } from '../../src/aws/types.js';
import type { CallContext, Driver, DriverServices } from '../../src/drivers/driver.js';
import { createMysqlDriver } from '../../src/drivers/mysql/driver.js';
import type { Row, SqlSession } from '../../src/drivers/sql/dialect.js';
import { databaseId, tableId } from '../../src/drivers/sql/resources.js';
import type { GrantOutput, Integration, ResourceRef } from '../../src/protocol/messages.js';
import { createSealer } from '../../src/protocol/seal.js';
import type {
  PendingServiceSecret,
  SecretResolver,
  SecretRotation,
  ServiceSecret,
} from '../../src/secrets/types.js';
import { mysqlTestUrl } from './endpoints.js';

export function mysqlEndpoint(): { host: string; port: number; user: string; password: string } {
  const url = new URL(mysqlTestUrl());
  return {
    host: url.hostname,
    port: url.port ? Number(url.port) : 3306,
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
  };
}

/** A connection as the test server's admin (root). Caller ends it. */
export async function mysqlAdmin(): Promise<mysql.Connection> {
  const e = mysqlEndpoint();
  return mysql.createConnection({
    host: e.host,
    port: e.port,
    user: e.user,
    password: e.password,
    charset: 'utf8mb4_general_ci',
  });
}

/** A fresh connection as `user`. Caller ends it. */
export async function mysqlLogin(user: string, password: string): Promise<mysql.Connection> {
  const e = mysqlEndpoint();
  return mysql.createConnection({
    host: e.host,
    port: e.port,
    user,
    password,
    charset: 'utf8mb4_general_ci',
  });
}

export function qi(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

/** A login as `user` for the length of `fn` (a fresh connection, always ended). */
export async function withLogin<T>(
  user: string,
  password: string,
  fn: (c: mysql.Connection) => Promise<T>,
): Promise<T> {
  const c = await mysqlLogin(user, password);
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** The server's errno of a login as `user`, or undefined when it logs in. */
export async function loginErrno(user: string, password: string): Promise<number | undefined> {
  try {
    const c = await mysqlLogin(user, password);
    await c.end();
    return undefined;
  } catch (err) {
    return (err as { errno?: number }).errno;
  }
}

/** `table:<db>/<table>` as a grant names it. */
export function table(database: string, name: string): ResourceRef {
  return { type: 'table', id: tableId(database, null, name) };
}

/** `database:<db>` as a grant names it. */
export function db(name: string): ResourceRef {
  return { type: 'database', id: databaseId(name) };
}

/** The password of a grant result (the fixtures seal in plaintext); throws when there is none. */
export function passwordOf(out: GrantOutput): string {
  const c = out.credentials;
  if (!c || !('plaintext' in c)) throw new Error('expected plaintext credentials');
  const p = c.plaintext.password;
  if (p === undefined) throw new Error('no password');
  return p;
}

export const noAws: AwsClientFactory = {
  client() {
    throw new Error('AWS is not used by these tests');
  },
};

/** In-memory secret store with two-phase rotation, as AWS Secrets Manager behaves. */
export class MemorySecrets implements SecretResolver {
  current: ServiceSecret;
  pending: PendingServiceSecret | null = null;
  invalidations = 0;
  private version = 1;
  readonly rotation: SecretRotation;

  constructor(secret: ServiceSecret) {
    this.current = secret;
    this.rotation = {
      putPendingSecret: (_ref, value) => {
        this.version++;
        this.pending = { ...value, versionId: `v${this.version}` };
        return Promise.resolve({ versionId: `v${this.version}` });
      },
      getPendingSecret: () => Promise.resolve(this.pending),
      promotePendingSecret: (_ref, versionId) => {
        if (this.pending?.versionId === versionId) {
          this.current = { ...this.pending };
          this.pending = null;
        }
        return Promise.resolve();
      },
    };
  }

  resolve(): Promise<ServiceSecret> {
    return Promise.resolve({ ...this.current });
  }

  invalidate(): void {
    this.invalidations++;
  }
}

export interface MysqlFixture {
  suffix: string;
  /** User and role prefix of the driver in this file (`lk_t<suffix>_`). */
  prefix: string;
  /** The sample database. */
  database: string;
  metaDatabase: string;
  serviceUser: string;
  servicePassword: string;
  secrets: MemorySecrets;
  services: DriverServices;
  /** Fake clock of the services; tests move it. */
  clock: { now: Date };
  /** A grantee email unique to this file: `<tag>.<suffix>@example.com`. */
  email(tag: string): string;
  integration(config?: Record<string, unknown>): Integration;
  driver(): Driver;
  ctx(integration?: Integration, signal?: AbortSignal): CallContext;
  admin: mysql.Connection;
  /** Extra databases/users/roles created by tests, dropped in teardown. */
  extraDatabases: string[];
  teardown(): Promise<void>;
}

/** Privileges of the per-file service account: what `check` asks for, and no more. */
export function serviceAccountGrants(
  account: string,
  database: string,
  metaDatabase: string,
): string[] {
  return [
    `GRANT CREATE USER, SHOW DATABASES, PROCESS, CONNECTION ADMIN, SELECT, INSERT, UPDATE, DELETE, SHOW VIEW ON *.* TO ${account} WITH GRANT OPTION`,
    `GRANT SELECT, UPDATE ON ${qi('mysql')}.* TO ${account}`,
    `GRANT CREATE, EVENT ON ${qi(metaDatabase)}.* TO ${account}`,
    `GRANT ALL PRIVILEGES ON ${qi(database)}.* TO ${account} WITH GRANT OPTION`,
  ];
}

export async function createMysqlFixture(): Promise<MysqlFixture> {
  const suffix = randomBytes(3).toString('hex');
  const prefix = `lk_t${suffix}_`;
  const database = `lkt_${suffix}_db`;
  const metaDatabase = `lkt_${suffix}_meta`;
  const serviceUser = `lkt_${suffix}_svc`;
  const servicePassword = `Svc-${randomBytes(12).toString('hex')}`;
  const admin = await mysqlAdmin();
  const svc = `${qi(serviceUser)}@${qi('%')}`;
  await admin.query(`CREATE DATABASE ${qi(database)}`);
  await admin.query(`CREATE TABLE ${qi(database)}.orders (id INT PRIMARY KEY, total INT)`);
  await admin.query(
    `CREATE TABLE ${qi(database)}.customers (id INT PRIMARY KEY, name VARCHAR(50))`,
  );
  await admin.query(`INSERT INTO ${qi(database)}.orders VALUES (1, 10), (2, 20)`);
  await admin.query(`INSERT INTO ${qi(database)}.customers VALUES (1, 'ann')`);
  await admin.query(`CREATE USER ${svc} IDENTIFIED BY ?`, [servicePassword]);
  for (const g of serviceAccountGrants(svc, database, metaDatabase)) await admin.query(g);

  const e = mysqlEndpoint();
  // Bound to the test host, as a Secrets Manager secret must be (src/secrets/binding.ts);
  // no port, so that tests may point the integration at a closed port.
  const secrets = new MemorySecrets({
    username: serviceUser,
    password: servicePassword,
    host: e.host,
    extra: {},
  });
  const clock = { now: new Date() };
  const services: DriverServices = {
    logger: pino({ level: 'silent' }),
    secrets,
    aws: noAws,
    sealer: createSealer({ allowPlaintext: true }),
    tagPrefix: 'latchkey',
    now: () => clock.now,
  };
  const drivers: Driver[] = [];
  const extraDatabases: string[] = [];
  const fixture: MysqlFixture = {
    suffix,
    prefix,
    database,
    metaDatabase,
    serviceUser,
    servicePassword,
    secrets,
    services,
    clock,
    admin,
    extraDatabases,
    email(tag) {
      return `${tag}.${suffix}@example.com`;
    },
    integration(config = {}) {
      return {
        id: `mysql-${suffix}`,
        type: 'mysql',
        config: {
          host: e.host,
          port: e.port,
          userPrefix: prefix,
          metaDatabase,
          lockTimeoutSeconds: 20,
          ...config,
        },
        secret: { store: 'aws-secrets-manager', secretId: `test/${suffix}` },
      };
    },
    driver() {
      const d = createMysqlDriver(services);
      drivers.push(d);
      return d;
    },
    ctx(integration, signal) {
      return {
        commandId: `cmd-${randomBytes(4).toString('hex')}`,
        integration: integration ?? fixture.integration(),
        signal: signal ?? AbortSignal.timeout(30_000),
        logger: services.logger,
      };
    },
    async teardown() {
      await Promise.all(drivers.map((d) => d.close()));
      const [rows] = await admin.query(
        'SELECT User AS u, Host AS h FROM mysql.global_priv WHERE User LIKE ? OR User LIKE ?',
        [`${prefix.replace(/_/g, '\\_')}%`, `lkt\\_${suffix}\\_%`],
      );
      for (const r of rows as { u: string; h: string }[]) {
        if (r.h === '') await admin.query(`DROP ROLE IF EXISTS ${qi(r.u)}`).catch(() => undefined);
        else await admin.query(`DROP USER IF EXISTS ${qi(r.u)}@${qi(r.h)}`).catch(() => undefined);
      }
      for (const db of [database, metaDatabase, ...extraDatabases]) {
        await admin.query(`DROP DATABASE IF EXISTS ${qi(db)}`);
      }
      await admin.end();
    },
  };
  return fixture;
}

// ---------------------------------------------------------------------------------------
// A fake MySQL 8 server at the statement level, for exact-text tests of the MySQL dialect
// (which MariaDB cannot run): it records every statement and keeps just enough state
// (accounts, attributes, role edges, locks, sessions) to answer the driver's own queries.

export interface FakeAccount {
  locked: boolean;
  attribute: string | null;
  role: boolean;
}

export interface Recorded {
  sql: string;
  values: readonly unknown[] | undefined;
}

const ACCOUNT = /`((?:[^`]|``)*)`@`((?:[^`]|``)*)`/g;

function accounts(sql: string): { user: string; host: string }[] {
  return [...sql.matchAll(ACCOUNT)].map((m) => ({
    user: (m[1] ?? '').replace(/``/g, '`'),
    host: (m[2] ?? '').replace(/``/g, '`'),
  }));
}

/** What MySQL does with `ALTER USER … ATTRIBUTE`: a JSON merge patch (null removes a key). */
function mergePatch(current: string | null, patch: string): string {
  const base = current === null ? {} : (JSON.parse(current) as Record<string, unknown>);
  for (const [k, val] of Object.entries(JSON.parse(patch) as Record<string, unknown>)) {
    if (val === null) delete base[k];
    else base[k] = val;
  }
  return JSON.stringify(base);
}

export class FakeMysql8 implements SqlSession {
  readonly log: Recorded[] = [];
  readonly accounts = new Map<string, FakeAccount>();
  /** role → users (`user@host`) it is granted to. */
  readonly edges = new Map<string, Set<string>>();
  readonly schemas = new Set<string>();
  readonly tables = new Set<string>();
  processes: { id: number; user: string }[] = [];
  lockFree = true;
  /** Views, routines, triggers and events and their DEFINER (`user@host`). */
  definerObjects: { kind: string; db: string; name: string; definer: string }[] = [];
  /** Statements the fake refuses with a server errno (e.g. a missing privilege). */
  refuse: { pattern: RegExp; errno: number } | null = null;
  /** The session's account, as `CURRENT_USER()` answers. */
  currentUser = 'latchkey_svc@%';
  /** What `SHOW GRANTS` answers, one line per row (MySQL 8 names the column after the account). */
  showGrants: string[] = [];
  /**
   * As on RDS for MySQL 8.0.36+ / 8.4, where CONNECTION_ADMIN cannot be granted: `KILL` of
   * another account's session fails with 1095 and only `CALL mysql.rds_kill(?)` ends it.
   */
  killDenied = false;
  /** `@@basedir`: `/rdsdbbin/…` on Amazon RDS. */
  basedir = '/usr/';

  key(user: string, host: string): string {
    return `${user}@${host}`;
  }

  /** Statements other than the driver's reads (what changes the server). */
  changes(): Recorded[] {
    return this.log.filter((r) => !/^(SELECT|SHOW)\b/.test(r.sql));
  }

  query(sql: string, values?: readonly unknown[]): Promise<Row[]> {
    this.log.push({ sql, values });
    if (this.refuse?.pattern.test(sql)) {
      const errno = this.refuse.errno;
      return Promise.reject(Object.assign(new Error(`refused (${errno})`), { errno }));
    }
    return Promise.resolve(this.answer(sql, values ?? []));
  }

  private answer(sql: string, v: readonly unknown[]): Row[] {
    const s = (i: number): string => String(v[i]);
    if (sql.startsWith('SELECT GET_LOCK')) return [{ got: this.lockFree ? 1 : 0 }];
    if (sql.startsWith('SELECT RELEASE_LOCK')) return [{ released: 1 }];
    if (sql === 'SELECT CURRENT_USER() AS cu') return [{ cu: this.currentUser }];
    if (sql === 'SELECT @@GLOBAL.basedir AS b') return [{ b: this.basedir }];
    if (sql === 'SHOW GRANTS') {
      const column = `Grants for ${this.currentUser}`;
      return this.showGrants.map((line) => ({ [column]: line }));
    }
    if (sql.includes('FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?')) {
      return this.schemas.has(s(0)) ? [{ name: s(0) }] : [];
    }
    if (sql.includes('FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?')) {
      return this.tables.has(`${s(0)}.${s(1)}`) ? [{ name: s(1) }] : [];
    }
    if (sql.startsWith('SELECT User AS name, account_locked AS locked FROM mysql.user')) {
      const a = this.accounts.get(this.key(s(0), s(1)));
      return a && !a.role ? [{ name: s(0), locked: a.locked ? 'Y' : 'N' }] : [];
    }
    if (
      sql.startsWith(
        'SELECT ATTRIBUTE AS attribute FROM INFORMATION_SCHEMA.USER_ATTRIBUTES WHERE USER = ? AND HOST = ?',
      )
    ) {
      const a = this.accounts.get(this.key(s(0), s(1)));
      return a ? [{ attribute: a.attribute }] : [];
    }
    if (sql.includes("FROM INFORMATION_SCHEMA.USER_ATTRIBUTES WHERE USER = ? AND HOST = '%'")) {
      const a = this.accounts.get(this.key(s(0), '%'));
      return a ? [{ role: s(0), attribute: a.attribute }] : [];
    }
    if (sql.includes("FROM INFORMATION_SCHEMA.USER_ATTRIBUTES WHERE HOST = '%' AND USER LIKE ?")) {
      const prefix = s(0).replace(/%$/, '').replace(/\\(.)/g, '$1');
      return [...this.accounts.entries()]
        .filter(([k]) => k.endsWith('@%') && k.startsWith(prefix))
        .map(([k, a]) => ({ role: k.slice(0, -2), attribute: a.attribute }));
    }
    if (sql.includes('FROM information_schema.PROCESSLIST WHERE USER = ?')) {
      return this.processes.filter((p) => p.user === s(0)).map((p) => ({ id: p.id }));
    }
    if (sql.includes('FROM information_schema.VIEWS')) {
      return this.definerObjects
        .filter((o) => v.includes(o.definer))
        .map(({ kind, db, name }) => ({ kind, db, name }));
    }
    if (sql.startsWith('SELECT')) return [];
    if (sql === 'KILL CONNECTION ?' && this.killDenied) {
      throw Object.assign(new Error(`You are not owner of thread ${s(0)}`), {
        errno: 1095,
        code: 'ER_KILL_DENIED_ERROR',
      });
    }
    if (sql === 'CALL mysql.rds_kill(?)') {
      this.processes = this.processes.filter((p) => p.id !== Number(v[0]));
      return [];
    }
    this.apply(sql, v);
    return [];
  }

  private apply(sql: string, v: readonly unknown[]): void {
    const acc = accounts(sql);
    const first = acc[0];
    if (sql.startsWith('CREATE USER') && first) {
      const k = this.key(first.user, first.host);
      if (this.accounts.has(k) && !sql.startsWith('CREATE USER IF NOT EXISTS')) {
        throw Object.assign(new Error('Operation CREATE USER failed'), { errno: 1396 });
      }
      if (!this.accounts.has(k)) {
        const role = sql.includes('PASSWORD EXPIRE ACCOUNT LOCK');
        this.accounts.set(k, { locked: role, attribute: String(v[v.length - 1]), role });
      }
    } else if (sql.startsWith('ALTER USER') && first) {
      const a = this.accounts.get(this.key(first.user, first.host));
      if (!a) throw Object.assign(new Error('no such user'), { errno: 1396 });
      if (sql.endsWith('ACCOUNT LOCK')) a.locked = true;
      if (sql.endsWith('ACCOUNT UNLOCK')) a.locked = false;
      if (sql.endsWith('ATTRIBUTE ?'))
        a.attribute = mergePatch(a.attribute, String(v[v.length - 1]));
    } else if (sql.startsWith('DROP USER IF EXISTS') && first) {
      this.accounts.delete(this.key(first.user, first.host));
      this.edges.delete(this.key(first.user, first.host));
    } else if (sql.startsWith('GRANT') && !sql.includes(' ON ') && acc.length === 2 && first) {
      const to = acc[1];
      if (to) {
        const set = this.edges.get(this.key(first.user, first.host)) ?? new Set<string>();
        set.add(this.key(to.user, to.host));
        this.edges.set(this.key(first.user, first.host), set);
      }
    } else if (/^DROP (VIEW|PROCEDURE|FUNCTION|TRIGGER|EVENT) IF EXISTS /.test(sql)) {
      const [, db, name] = /`((?:[^`]|``)*)`\.`((?:[^`]|``)*)`$/.exec(sql) ?? [];
      this.definerObjects = this.definerObjects.filter((o) => !(o.db === db && o.name === name));
    } else if (sql === 'KILL CONNECTION ?') {
      this.processes = this.processes.filter((p) => p.id !== Number(v[0]));
    }
  }
}
