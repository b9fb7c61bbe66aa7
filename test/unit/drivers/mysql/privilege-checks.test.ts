/**
 * `check`'s privilege lines for a MySQL 8 service account (the MySQL 8 fake answers
 * `CURRENT_USER()` and `SHOW GRANTS` as MySQL 8.0 prints them): each missing privilege is
 * named exactly, with the one GRANT statement that fixes it.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { createMysqlOps } from '../../../../src/drivers/mysql/dialect-mysql.js';
import { REQUIRED_PRIVILEGES } from '../../../../src/drivers/mysql/driver.js';
import { privilegeChecks } from '../../../../src/drivers/mysql/privilege-checks.js';
import { FakeMysql8 } from '../../../helpers/mysql.js';

const ACCOUNT = '`latchkey`@`%`';
/** The full RDS for MySQL 8 setup of docs/drivers/mysql.md, as SHOW GRANTS lists it. */
const FULL = [
  `GRANT SELECT, INSERT, UPDATE, DELETE, PROCESS, SHOW DATABASES, SHOW VIEW, CREATE USER ON *.* TO ${ACCOUNT} WITH GRANT OPTION`,
  `GRANT CONNECTION_ADMIN,ROLE_ADMIN ON *.* TO ${ACCOUNT}`,
  `GRANT SELECT, UPDATE ON \`mysql\`.* TO ${ACCOUNT}`,
  `GRANT CREATE, EVENT ON \`latchkey\`.* TO ${ACCOUNT}`,
];

let fake: FakeMysql8;
const ops = createMysqlOps({ accountHost: '%', metaDatabase: 'latchkey' });
const required = [...REQUIRED_PRIVILEGES, ...ops.extraRequiredPrivileges];

beforeEach(() => {
  fake = new FakeMysql8();
  fake.currentUser = 'latchkey@%';
});

describe('MySQL 8 service account privileges', () => {
  it('the documented RDS MySQL 8 setup passes every line', async () => {
    fake.showGrants = FULL;
    const lines = await privilegeChecks(fake, ops, required);
    expect(lines.filter((l) => !l.ok)).toEqual([]);
    expect(lines.map((l) => l.name)).toContain('privilege CONNECTION_ADMIN ON *.*');
    expect(lines.map((l) => l.name)).toContain('privilege ROLE_ADMIN ON *.*');
  });

  it('names CONNECTION_ADMIN and the one GRANT that fixes it', async () => {
    fake.showGrants = [
      FULL[0] ?? '',
      `GRANT ROLE_ADMIN ON *.* TO ${ACCOUNT}`,
      FULL[2] ?? '',
      FULL[3] ?? '',
    ];
    const lines = await privilegeChecks(fake, ops, required);
    expect(lines.filter((l) => !l.ok)).toEqual([
      {
        name: 'privilege CONNECTION_ADMIN ON *.*',
        ok: false,
        detail: `missing: needed to KILL a grantee's open sessions on revoke. Run: GRANT CONNECTION_ADMIN ON *.* TO ${ACCOUNT}`,
      },
    ]);
  });

  it('SUPER stands in for the dynamic privileges (self-managed MySQL)', async () => {
    fake.showGrants = [
      FULL[0] ?? '',
      `GRANT SUPER ON *.* TO ${ACCOUNT}`,
      FULL[2] ?? '',
      FULL[3] ?? '',
    ];
    const lines = await privilegeChecks(fake, ops, required);
    expect(lines.filter((l) => !l.ok)).toEqual([]);
  });

  it('a service account without GRANT OPTION gets one statement for it, and the grantable list', async () => {
    fake.showGrants = [
      `GRANT SELECT, INSERT, UPDATE, DELETE, PROCESS, SHOW DATABASES, SHOW VIEW, CREATE USER ON *.* TO ${ACCOUNT}`,
      FULL[1] ?? '',
      FULL[2] ?? '',
      FULL[3] ?? '',
    ];
    const lines = await privilegeChecks(fake, ops, required);
    const failed = lines.filter((l) => !l.ok);
    expect(failed.map((l) => l.name)).toEqual([
      'privilege GRANT OPTION ON *.*',
      'grantable privileges for read and write',
    ]);
    for (const l of failed) {
      expect(l.detail).toContain(
        `Run: GRANT SELECT, INSERT, UPDATE, DELETE, SHOW VIEW ON *.* TO ${ACCOUNT} WITH GRANT OPTION`,
      );
    }
    expect(fake.log.map((r) => r.sql)).toEqual([
      'SELECT CURRENT_USER() AS cu',
      'SHOW GRANTS',
      'SELECT @@GLOBAL.basedir AS b',
    ]);
  });

  it('on Amazon RDS (no CONNECTION_ADMIN possible) asks for EXECUTE on mysql.rds_kill instead', async () => {
    fake.basedir = '/rdsdbbin/mysql-8.0.40.R2/';
    fake.showGrants = [
      FULL[0] ?? '',
      `GRANT ROLE_ADMIN ON *.* TO ${ACCOUNT}`,
      FULL[2] ?? '',
      FULL[3] ?? '',
    ];
    const missing = (await privilegeChecks(fake, ops, required)).filter((l) => !l.ok);
    expect(missing).toHaveLength(1);
    expect(missing[0]?.name).toBe('privilege CONNECTION_ADMIN ON *.*');
    expect(missing[0]?.detail).toMatch(
      /Run: GRANT EXECUTE ON PROCEDURE mysql\.rds_kill TO `latchkey`@`%`$/,
    );
    fake.showGrants.push(`GRANT EXECUTE ON PROCEDURE \`mysql\`.\`rds_kill\` TO ${ACCOUNT}`);
    const lines = await privilegeChecks(fake, ops, required);
    expect(lines.filter((l) => !l.ok)).toEqual([]);
    expect(lines.find((l) => l.name === 'privilege CONNECTION_ADMIN ON *.*')?.detail).toContain(
      'held through EXECUTE on mysql.rds_kill',
    );
  });
});
