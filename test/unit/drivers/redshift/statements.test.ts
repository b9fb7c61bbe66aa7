/**
 * Redshift-only SQL (CREATE USER, TO ROLE, PASSWORD DISABLE, svv_*, stv_sessions) cannot
 * run on PostgreSQL: these tests drive the SQL core over the Redshift dialect against a
 * small simulated cluster and assert the exact statements produced.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RedshiftDialect, redshiftPasswordHash } from '../../../../src/drivers/redshift/dialect.js';
import { cleanupFlow, grantFlow, revokeFlow, sweepFlow } from '../../../../src/drivers/sql/core.js';
import type { SqlCoreOptions } from '../../../../src/drivers/sql/core.js';
import type { Row, SqlScope, SqlSession } from '../../../../src/drivers/sql/dialect.js';
import { tableId, schemaId } from '../../../../src/drivers/sql/resources.js';
import { deriveUsername } from '../../../../src/drivers/sql/username.js';
import { parseRedshiftConfig } from '../../../../src/drivers/redshift/config.js';
import { CrashSwitch, type CrashPlan } from '../../../helpers/crash.js';

class FakeCluster implements SqlSession {
  statements: { sql: string; values: readonly unknown[] }[] = [];
  users = new Set<string>(['svc']);
  roles = new Set<string>(['analyst']);
  metaUsers = new Map<string, boolean>();
  grants = new Map<string, { username: string; record: string }>();
  sessions = new Map<string, number[]>();
  /** Journal: which grant each user's password was issued for. */
  issued = new Map<string, string | null>();
  /** The md5 hash each user's password was last set to. */
  hashes = new Map<string, string>();
  /** Nested roles: role → roles granted to it (svv_role_grants). */
  nested = new Map<string, string[]>();
  /** Roles holding a system privilege (svv_system_privileges). */
  systemPrivileges = new Map<string, string>();
  /** Roles holding privileges on the journal schema (svv_schema_privileges). */
  journalHolders = new Set<string>();
  /** Functions and procedures (pg_proc, pg_proc_info), by owner. */
  routines: {
    owner: string;
    nspname: string;
    proname: string;
    args: string;
    prosecdef: boolean;
    prokind: string;
  }[] = [];
  /** svv_relation_privileges rows. */
  relationPrivileges: {
    namespace_name: string;
    relation_name: string;
    identity_name: string;
    identity_type: string;
  }[] = [];

  query(sql: string, values: readonly unknown[] = []): Promise<Row[]> {
    this.statements.push({ sql, values });
    return Promise.resolve(this.answer(sql.replace(/\s+/g, ' ').trim(), values));
  }

  private answer(sql: string, v: readonly unknown[]): Row[] {
    const a = typeof v[0] === 'string' ? v[0] : '';
    if (/^SELECT usename FROM pg_user/.test(sql)) return this.users.has(a) ? [{ usename: a }] : [];
    if (/^SELECT usesysid FROM pg_user/.test(sql))
      return this.users.has(a) ? [{ usesysid: 101 }] : [];
    if (/^SELECT locked FROM .*\.users/.test(sql))
      return this.metaUsers.has(a) ? [{ locked: this.metaUsers.get(a) }] : [];
    if (/^INSERT INTO .*\.users/.test(sql)) return (void this.metaUsers.set(a, false), []);
    if (/^UPDATE .*\.users SET locked/.test(sql))
      return (void this.metaUsers.set(a, v[1] === true), []);
    if (/^DELETE FROM .*\.users/.test(sql)) return (void this.metaUsers.delete(a), []);
    if (/^SELECT issued_for FROM .*\.passwords/.test(sql))
      return this.issued.has(a) ? [{ issued_for: this.issued.get(a) ?? null }] : [];
    if (/^INSERT INTO .*\.passwords/.test(sql))
      return (void this.issued.set(a, typeof v[1] === 'string' ? v[1] : null), []);
    if (/^DELETE FROM .*\.passwords/.test(sql)) return (void this.issued.delete(a), []);
    const pw = /^(?:CREATE|ALTER) USER "([^"]+)" PASSWORD '(md5[0-9a-f]{32})'/.exec(sql);
    if (pw) this.hashes.set(pw[1] ?? '', pw[2] ?? '');
    if (/^CREATE USER "([^"]+)"/.test(sql))
      return (void this.users.add(/^CREATE USER "([^"]+)"/.exec(sql)?.[1] ?? ''), []);
    if (/^DROP USER IF EXISTS "([^"]+)"/.test(sql))
      return (void this.users.delete(/"([^"]+)"/.exec(sql)?.[1] ?? ''), []);
    if (/^CREATE ROLE "([^"]+)"/.test(sql))
      return (void this.roles.add(/"([^"]+)"/.exec(sql)?.[1] ?? ''), []);
    if (/^DROP ROLE "([^"]+)" FORCE/.test(sql))
      return (void this.roles.delete(/"([^"]+)"/.exec(sql)?.[1] ?? ''), []);
    if (/^SELECT 1 FROM svv_roles/.test(sql)) return this.roles.has(a) ? [{ '?column?': 1 }] : [];
    if (/^SELECT 1 FROM svv_redshift_/.test(sql)) return [{ '?column?': 1 }];
    if (/^SELECT record FROM .*\.grants WHERE role/.test(sql)) {
      const g = this.grants.get(a);
      return g ? [{ record: g.record }] : [];
    }
    if (/^INSERT INTO .*\.grants/.test(sql))
      return (void this.grants.set(a, { username: String(v[1]), record: String(v[2]) }), []);
    if (/^UPDATE .*\.grants/.test(sql)) {
      const g = this.grants.get(a);
      if (g) g.record = String(v[1]);
      return [];
    }
    if (/^DELETE FROM .*\.grants/.test(sql)) return (void this.grants.delete(a), []);
    if (/^SELECT role, record FROM .*\.grants WHERE username/.test(sql)) {
      return [...this.grants]
        .filter(([, g]) => g.username === a)
        .map(([role, g]) => ({ role, record: g.record }));
    }
    if (/^SELECT role, record FROM .*\.grants/.test(sql))
      return [...this.grants].map(([role, g]) => ({ role, record: g.record }));
    if (/^SELECT role_name, granted_role_name FROM svv_role_grants$/.test(sql))
      return [...this.nested].flatMap(([role, inner]) =>
        inner.map((r) => ({ role_name: role, granted_role_name: r })),
      );
    if (/^SELECT identity_name, system_privilege FROM svv_system_privileges/.test(sql))
      return [...this.systemPrivileges].map(([n, p]) => ({
        identity_name: n,
        system_privilege: p,
      }));
    if (
      /^SELECT DISTINCT identity_name FROM svv_schema_privileges .* namespace_name = \$1$/.test(sql)
    )
      return a === 'lk_meta' ? [...this.journalHolders].map((n) => ({ identity_name: n })) : [];
    if (
      /^SELECT n.nspname, p.proname, oidvectortypes\(p.proargtypes\) AS args, p.prosecdef/.test(sql)
    )
      return this.routines.filter((r) => r.owner === a).map(({ owner: _o, ...r }) => r);
    if (
      /^SELECT DISTINCT namespace_name, relation_name, identity_name, identity_type FROM svv_relation_privileges/.test(
        sql,
      )
    )
      return this.relationPrivileges.filter(
        (r) => !(r.identity_type === 'user' && r.identity_name === a),
      );
    if (/^SELECT process FROM stv_sessions/.test(sql))
      return (this.sessions.get(a) ?? []).map((p) => ({ process: p }));
    if (/^SELECT pg_terminate_backend/.test(sql)) return [{ ok: true }];
    if (/^SELECT database_name FROM svv_redshift_databases/.test(sql))
      return [{ database_name: 'dev' }];
    if (/^SELECT schemaname, tablename FROM pg_tables/.test(sql))
      return [{ schemaname: 'public', tablename: 'mine' }];
    if (/^SELECT nspname FROM pg_namespace/.test(sql)) return [];
    return [];
  }

  /** Statements other than the journal and lock bookkeeping (keeping the journal private included). */
  ddl(): string[] {
    return this.statements
      .map((s) => s.sql.replace(/\s+/g, ' ').trim())
      .filter(
        (s) =>
          !/^(SELECT|INSERT|UPDATE|DELETE|BEGIN|COMMIT|ROLLBACK|LOCK|CREATE SCHEMA IF|CREATE TABLE IF|REVOKE ALL ON (SCHEMA|TABLE) "lk_meta")/.test(
            s,
          ),
      );
  }
}

function setup(now = new Date('2030-01-01T00:00:00Z')) {
  const cluster = new FakeCluster();
  const scope: SqlScope = {
    session: cluster,
    onDatabase: (_db, fn) => fn(cluster),
    withLockSession: (fn) => fn(cluster),
    signal: new AbortController().signal,
    serviceAccount: 'svc',
    prefix: 'lk_',
  };
  const opts: SqlCoreOptions = {
    dialect: new RedshiftDialect(),
    iamAuth: false,
    ownedObjects: 'reassign',
    sealer: { seal: (_k, c) => ({ plaintext: { ...c } }) },
    now: () => now,
    access: { host: 'cluster.example', port: 5439, defaultDatabase: 'dev' },
  };
  return { cluster, scope, opts };
}

const email = 'Ann@Example.com';
const user = deriveUsername(email, { prefix: 'lk_', maxLength: 127 });

describe('redshift statements', () => {
  it('grant: CREATE USER with an md5 password, a role per grant, privileges TO ROLE, GRANT ROLE to the user, VALID UNTIL', async () => {
    const { cluster, scope, opts } = setup();
    const out = await grantFlow(opts, scope, {
      grantId: 'g1',
      grantee: { email },
      resources: [{ type: 'table', id: tableId('dev', 'public', 'orders') }],
      permission: 'read',
      expiresAt: '2030-01-02T00:00:00.000Z',
    });
    const password =
      (out.credentials as { plaintext: Record<string, string> }).plaintext.password ?? '';
    const md5 = `md5${createHash('md5')
      .update(password + user)
      .digest('hex')}`;
    expect(cluster.ddl()).toEqual([
      `CREATE USER "${user}" PASSWORD '${md5}' NOCREATEDB NOCREATEUSER`,
      'CREATE ROLE "lk_g_g1"',
      'GRANT USAGE ON SCHEMA "public" TO ROLE "lk_g_g1"',
      'GRANT SELECT ON TABLE "public"."orders" TO ROLE "lk_g_g1"',
      `GRANT ROLE "lk_g_g1" TO "${user}"`,
      `ALTER USER "${user}" VALID UNTIL '2030-01-02 00:00:00.000+00'`,
    ]);
    expect(cluster.statements.some((s) => s.sql.includes(password))).toBe(false);
    expect(out).toMatchObject({
      username: user,
      alreadyGranted: false,
      access: { host: 'cluster.example', port: 5439, database: 'dev' },
    });
    // The lock is taken on the journal's lock table in a transaction.
    expect(cluster.statements.map((s) => s.sql)).toEqual(
      expect.arrayContaining(['BEGIN', 'LOCK "lk_meta".lock', 'COMMIT']),
    );

    cluster.statements = [];
    const again = await grantFlow(opts, scope, {
      grantId: 'g1',
      grantee: { email },
      resources: [{ type: 'table', id: tableId('dev', 'public', 'orders') }],
      permission: 'read',
      expiresAt: '2030-01-02T00:00:00.000Z',
    });
    expect(again.alreadyGranted).toBe(true);
    expect(cluster.ddl().some((s) => s.startsWith('CREATE'))).toBe(false);
    // The password was issued for this very grant: the re-delivery carries a fresh one.
    const fresh =
      (again.credentials as { plaintext: Record<string, string> }).plaintext.password ?? '';
    expect(cluster.ddl()).toContain(
      `ALTER USER "${user}" PASSWORD '${redshiftPasswordHash(fresh, user)}'`,
    );
  });

  it('write on a schema includes default privileges; revoke blocks the login, ends sessions, drops the role', async () => {
    const { cluster, scope, opts } = setup();
    await grantFlow(opts, scope, {
      grantId: 'w1',
      grantee: { email },
      resources: [{ type: 'schema', id: schemaId('dev', 'sales') }],
      permission: 'write',
    });
    expect(cluster.ddl()).toEqual(
      expect.arrayContaining([
        'GRANT USAGE ON SCHEMA "sales" TO ROLE "lk_g_w1"',
        'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "sales" TO ROLE "lk_g_w1"',
        'ALTER DEFAULT PRIVILEGES IN SCHEMA "sales" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ROLE "lk_g_w1"',
        `ALTER USER "${user}" VALID UNTIL 'infinity'`,
      ]),
    );
    cluster.sessions.set(user, [4242, 4243]);
    cluster.statements = [];
    const rev = await revokeFlow(opts, scope, { grantId: 'w1', grantee: { email } });
    expect(rev.sessionsTerminated).toBe(2);
    expect(rev.phases.map((p) => p.phase)).toEqual([
      'lock-login',
      'terminate-sessions',
      'drop-grant-role',
    ]);
    expect(cluster.ddl()).toEqual([
      `ALTER USER "${user}" PASSWORD DISABLE`,
      'ALTER DEFAULT PRIVILEGES IN SCHEMA "sales" REVOKE ALL ON TABLES FROM ROLE "lk_g_w1"',
      'DROP ROLE "lk_g_w1" FORCE',
    ]);
    expect(
      cluster.statements
        .filter((s) => s.sql.startsWith('SELECT pg_terminate_backend'))
        .map((s) => s.values),
    ).toEqual([[4242], [4243]]);
    expect(
      (await revokeFlow(opts, scope, { grantId: 'w1', grantee: { email } })).alreadyRevoked,
    ).toBe(true);
  });

  it('role:<name> grants the role to the grant role; sweep revokes the expired; cleanup moves owned tables', async () => {
    const { cluster, scope, opts } = setup(new Date('2030-01-01T00:00:00Z'));
    await grantFlow(opts, scope, {
      grantId: 'r1',
      grantee: { email },
      resources: [],
      permission: 'role:analyst',
      expiresAt: '2030-01-01T00:00:01.000Z',
    });
    expect(cluster.ddl()).toContain('GRANT ROLE "analyst" TO ROLE "lk_g_r1"');
    const later = { ...opts, now: () => new Date('2030-01-01T00:01:00Z') };
    expect(await sweepFlow(later, scope)).toEqual({ revoked: ['r1'], errors: [] });
    cluster.statements = [];
    // What the grantee left: a SECURITY DEFINER function, a plain procedure, and its table
    // shared with others.
    cluster.routines = [
      { owner: user, nspname: 'public', proname: 'steal', args: '', prosecdef: true, prokind: 'f' },
      {
        owner: user,
        nspname: 'public',
        proname: 'tidy',
        args: 'integer, character varying',
        prosecdef: false,
        prokind: 'p',
      },
      { owner: 'svc', nspname: 'public', proname: 'ours', args: '', prosecdef: true, prokind: 'f' },
    ];
    cluster.relationPrivileges = [
      {
        namespace_name: 'public',
        relation_name: 'mine',
        identity_name: user,
        identity_type: 'user',
      },
      {
        namespace_name: 'public',
        relation_name: 'mine',
        identity_name: 'bob',
        identity_type: 'user',
      },
      {
        namespace_name: 'public',
        relation_name: 'mine',
        identity_name: 'analyst',
        identity_type: 'role',
      },
      {
        namespace_name: 'public',
        relation_name: 'mine',
        identity_name: 'ops',
        identity_type: 'group',
      },
      {
        namespace_name: 'public',
        relation_name: 'mine',
        identity_name: 'public',
        identity_type: 'public',
      },
      {
        namespace_name: 'public',
        relation_name: 'other',
        identity_name: 'bob',
        identity_type: 'user',
      },
    ];
    expect(await cleanupFlow(opts, scope, { usernames: [user, 'svc', 'stranger'] })).toEqual({
      dropped: [user, 'stranger'],
      kept: [{ username: 'svc', reason: expect.any(String) as string, code: 'E_NOT_MANAGED' }],
    });
    // Owned objects go to the powerless holding user, never to the service account; a
    // SECURITY DEFINER function is dropped (Redshift cannot make it SECURITY INVOKER), the
    // rest loses what others held on it first.
    expect(cluster.ddl()).toEqual([
      `ALTER USER "${user}" PASSWORD DISABLE`,
      'CREATE USER "lk_holding" PASSWORD DISABLE NOCREATEDB NOCREATEUSER',
      'DROP FUNCTION "public"."steal"()',
      'REVOKE EXECUTE ON PROCEDURE "public"."tidy"(integer, character varying) FROM PUBLIC',
      'ALTER PROCEDURE "public"."tidy"(integer, character varying) OWNER TO "lk_holding"',
      'REVOKE ALL ON TABLE "public"."mine" FROM PUBLIC',
      'REVOKE ALL ON TABLE "public"."mine" FROM "bob"',
      'REVOKE ALL ON TABLE "public"."mine" FROM ROLE "analyst"',
      'REVOKE ALL ON TABLE "public"."mine" FROM GROUP "ops"',
      'ALTER TABLE "public"."mine" OWNER TO "lk_holding"',
      `DROP USER IF EXISTS "${user}"`,
    ]);
    expect(cluster.ddl().join('\n')).not.toContain('"svc"');
  });

  it('role:<name> refuses nested system roles and roles with system privileges, naming the path', async () => {
    const { cluster, scope, opts } = setup();
    cluster.roles.add('wrapper');
    cluster.roles.add('inner');
    cluster.roles.add('admins');
    cluster.nested.set('wrapper', ['inner']);
    cluster.nested.set('inner', ['sys:superuser']);
    cluster.systemPrivileges.set('admins', 'CREATE USER');
    cluster.roles.add('auditors');
    cluster.roles.add('journal_readers');
    cluster.nested.set('auditors', ['journal_readers']);
    cluster.journalHolders.add('journal_readers');
    for (const [role, words] of [
      ['wrapper', ['"wrapper" \u2192 "inner" \u2192 "sys:superuser"', 'system role']],
      ['admins', ['CREATE USER']],
      [
        'auditors',
        ['"auditors" \u2192 "journal_readers": holds privileges on Latchkey\'s journal'],
      ],
    ] as const) {
      await expect(
        grantFlow(opts, scope, {
          grantId: `x_${role}`,
          grantee: { email },
          resources: [],
          permission: `role:${role}`,
        }),
      ).rejects.toMatchObject({
        code: 'E_GUARDRAIL',
        message: expect.stringContaining(words[0]) as string,
      });
    }
    expect(cluster.ddl()).toEqual([]);
  });

  it('keeps the journal private: PUBLIC loses every privilege on its schema and tables', async () => {
    const { cluster, scope } = setup();
    await new RedshiftDialect().ensureMeta(scope);
    expect(cluster.statements.map((x) => x.sql)).toEqual(
      expect.arrayContaining([
        'REVOKE ALL ON SCHEMA "lk_meta" FROM PUBLIC',
        'REVOKE ALL ON TABLE "lk_meta".lock, "lk_meta".users, "lk_meta".grants, "lk_meta".passwords FROM PUBLIC',
      ]),
    );
  });

  it('refuses system schemas and the journal in any resource form, before any change', async () => {
    const { cluster, scope, opts } = setup();
    for (const id of [
      schemaId('dev', 'pg_catalog'),
      tableId('dev', 'pg_catalog', 'pg_user'),
      tableId('dev', 'information_schema', 'tables'),
      schemaId('dev', 'catalog_history'),
      'schema:dev/pg%5Finternal',
      schemaId('dev', 'lk_meta'),
      tableId('dev', 'lk_meta', 'grants'),
    ]) {
      await expect(
        grantFlow(opts, scope, {
          grantId: 'sys',
          grantee: { email },
          resources: [{ type: id.slice(0, id.indexOf(':')), id }],
          permission: 'read',
        }),
      ).rejects.toMatchObject({ code: 'E_GUARDRAIL' });
    }
    expect(cluster.ddl()).toEqual([]);
  });

  it('refuses a user that exists without the journal marker', async () => {
    const { cluster, scope, opts } = setup();
    cluster.users.add(user);
    await expect(
      grantFlow(opts, scope, {
        grantId: 'x',
        grantee: { email },
        resources: [{ type: 'database', id: 'database:dev' }],
        permission: 'connect',
      }),
    ).rejects.toMatchObject({ code: 'E_NOT_MANAGED' });
    expect(await cleanupFlow(opts, scope, { usernames: [user] })).toMatchObject({
      kept: [{ code: 'E_NOT_MANAGED' }],
    });
  });
});

describe('redshift: a crash at any point of a grant, then the same grant again', () => {
  const params = (grantId: string, table = 'orders') => ({
    grantId,
    grantee: { email },
    resources: [{ type: 'table', id: tableId('dev', 'public', table) }],
    permission: 'read',
    expiresAt: '2030-01-02T00:00:00.000Z',
  });
  const passwordOf = (out: { credentials?: unknown }): string =>
    (out.credentials as { plaintext: Record<string, string> } | undefined)?.plaintext.password ??
    '';

  /** Runs the grant on the cluster through a switch that kills the run as planned. */
  async function crashed(
    cluster: FakeCluster,
    scope: SqlScope,
    opts: SqlCoreOptions,
    plan: CrashPlan,
    grantId: string,
  ): Promise<void> {
    const sw = new CrashSwitch(plan);
    const session = sw.session(cluster);
    await grantFlow(
      { ...opts, dialect: sw.dialect(opts.dialect) },
      {
        ...scope,
        session,
        withLockSession: (fn) => fn(session),
        onDatabase: (_d, fn) => fn(session),
      },
      params(grantId),
    ).catch(() => undefined);
  }

  const steps: { name: string; plan: CrashPlan }[] = [
    {
      name: 'inside createUser, before the journal mark',
      plan: { atStatement: /^INSERT INTO "lk_meta"\.users/ },
    },
    {
      name: 'inside createUser, after the mark and before CREATE USER',
      plan: { atStatement: /^CREATE USER/ },
    },
    { name: 'after createUser', plan: { beforeMethod: 'getGrantRole' } },
    { name: 'after the grant role was created', plan: { beforeMethod: 'grantPrivileges' } },
    { name: 'after the privileges were granted', plan: { beforeMethod: 'grantRoleToUser' } },
    // A new user's login expiry is its one grant's: set without listing its grants.
    { name: 'after the membership was granted', plan: { beforeMethod: 'setLoginExpiry' } },
    { name: 'after the last step (the result was lost)', plan: {} },
  ];

  for (const step of steps) {
    it(`${step.name}: the re-run carries the password the user has, and is marked`, async () => {
      const { cluster, scope, opts } = setup();
      await crashed(cluster, scope, opts, step.plan, 'g1');
      const out = await grantFlow(opts, scope, params('g1'));
      const password = passwordOf(out);
      expect(password).toMatch(/^.{32}$/);
      expect(cluster.users.has(user)).toBe(true);
      expect(cluster.hashes.get(user)).toBe(redshiftPasswordHash(password, user));
      expect(cluster.metaUsers.get(user)).toBe(false); // marked, not locked
      expect(cluster.issued.get(user)).toBe('g1');
      expect(cluster.statements.some((s) => s.sql.includes(password))).toBe(false);

      // Another grant, delivered twice: no password, no change.
      const o1 = await grantFlow(opts, scope, params('g2', 'customers'));
      const o2 = await grantFlow(opts, scope, params('g2', 'customers'));
      expect(o1.credentials).toBeUndefined();
      expect(o2.credentials).toBeUndefined();
      expect(cluster.hashes.get(user)).toBe(redshiftPasswordHash(password, user));
    });
  }

  it('a crash inside the re-run’s password change (record first, ALTER not) still gets a password next time', async () => {
    const { cluster, scope, opts } = setup();
    await crashed(cluster, scope, opts, {}, 'g1');
    const before = cluster.hashes.get(user);
    await crashed(cluster, scope, opts, { atStatement: /^ALTER USER "[^"]+" PASSWORD 'md5/ }, 'g1');
    expect(cluster.hashes.get(user)).toBe(before);
    expect(cluster.issued.get(user)).toBe('g1');
    const out = await grantFlow(opts, scope, params('g1'));
    expect(cluster.hashes.get(user)).toBe(redshiftPasswordHash(passwordOf(out), user));
  });

  it('someone else’s user of the same name is refused and keeps no mark of ours', async () => {
    const { cluster, scope, opts } = setup();
    // Appears between our check and our CREATE USER.
    const real = cluster.query.bind(cluster);
    cluster.query = (sql, values) => {
      if (sql.startsWith('CREATE USER')) {
        return Promise.reject(Object.assign(new Error('user already exists'), { code: '42710' }));
      }
      return real(sql, values);
    };
    await expect(grantFlow(opts, scope, params('g1'))).rejects.toBeDefined();
    expect(cluster.metaUsers.has(user)).toBe(false);
  });
});

describe('redshift password rules and config', () => {
  it('hashes as md5(password || username) and enforces Redshift rules', () => {
    expect(redshiftPasswordHash('Abcdefg1', 'u')).toBe(
      `md5${createHash('md5').update('Abcdefg1u').digest('hex')}`,
    );
    expect(() => redshiftPasswordHash('short1A', 'u')).toThrow(/8-64/);
    expect(() => redshiftPasswordHash('abcdefgh1', 'u')).toThrow(/upper/);
    expect(() => redshiftPasswordHash('Abcdefg1@', 'u')).toThrow(/cannot contain/);
  });

  it('defaults to port 5439 and database dev; IAM auth needs a cluster', () => {
    const base = { id: 'rs', type: 'redshift', secret: { store: 'env' as const, prefix: 'RS_' } };
    expect(parseRedshiftConfig({ ...base, config: { host: 'c.example' } })).toMatchObject({
      port: 5439,
      database: 'dev',
    });
    expect(() =>
      parseRedshiftConfig({
        ...base,
        config: { host: 'c', authType: 'iam-auth', region: 'eu-west-1', username: 'svc' },
      }),
    ).toThrow(/clusterIdentifier/);
    expect(() =>
      parseRedshiftConfig({ ...base, config: { host: 'c', clusterIdentifier: 'Bad_Name' } }),
    ).toThrow(/redshift config/);
  });
});
