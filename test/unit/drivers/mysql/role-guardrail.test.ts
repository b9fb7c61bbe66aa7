/**
 * The `role:<name>` guardrail's reading of SHOW GRANTS lines, in the formats MySQL 8 and
 * MariaDB print (MySQL 8 cannot run here; its lines are checked by exact text).
 */
import { describe, expect, it } from 'vitest';
import {
  coversGuardedDatabase,
  dangerousGrantLine,
  parseRoleGrantLine,
} from '../../../../src/drivers/mysql/show-grants.js';
import { guardedDatabases } from '../../../../src/drivers/mysql/sql-dialect.js';

const guarded = guardedDatabases('latchkey');

describe('parseRoleGrantLine', () => {
  it('reads MariaDB and MySQL 8 role grants, with and without admin option', () => {
    expect(parseRoleGrantLine('GRANT `a` TO `b`')).toEqual({
      roles: [{ name: 'a', host: '' }],
      admin: false,
    });
    expect(parseRoleGrantLine('GRANT `a`@`%`,`b c`@`10.%` TO `u`@`%` WITH ADMIN OPTION')).toEqual({
      roles: [
        { name: 'a', host: '%' },
        { name: 'b c', host: '10.%' },
      ],
      admin: true,
    });
    expect(parseRoleGrantLine('GRANT SELECT ON `db`.* TO `b`')).toBeNull();
  });
});

describe('dangerousGrantLine', () => {
  it.each([
    'GRANT USAGE ON *.* TO `r`',
    'GRANT USAGE ON *.* TO `r`@`%`',
    'GRANT SELECT, SHOW VIEW ON `sales`.* TO `r`',
    'GRANT SELECT ON `sales`.`orders` TO `r`@`%`',
    'GRANT EXECUTE ON PROCEDURE `sales`.`p` TO `r`',
    'GRANT SELECT (`a`, `b`) ON `sales`.`t` TO `r`',
    'GRANT `reader` TO `r`',
    'GRANT SELECT ON `my\\_sql`.* TO `r`',
  ])('lets %s pass', (line) => {
    expect(dangerousGrantLine(line, guarded)).toBeNull();
  });

  it.each([
    ['GRANT SUPER ON *.* TO `r`', 'SUPER ON *.*'],
    ['GRANT ALL PRIVILEGES ON *.* TO `r`@`%`', 'ALL PRIVILEGES ON *.*'],
    ['GRANT BACKUP_ADMIN,ROLE_ADMIN ON *.* TO `r`@`%`', 'BACKUP_ADMIN, ROLE_ADMIN ON *.*'],
    ['GRANT SELECT ON *.* TO `r`', 'SELECT ON *.*'],
    ['GRANT SELECT ON `mysql`.* TO `r`', 'ON `mysql`.*'],
    ['GRANT SELECT ON `MySQL`.`user` TO `r`', 'ON `MySQL`.`user`'],
    ['GRANT SELECT ON `my%`.* TO `r`', 'ON `my%`.*'],
    ['GRANT SELECT ON `latch_ey`.* TO `r`', 'ON `latch_ey`.*'],
    ['GRANT DELETE ON `latchkey`.`grants` TO `r`', 'ON `latchkey`.`grants`'],
    ['GRANT EXECUTE ON PROCEDURE `sys`.`p` TO `r`', 'ON PROCEDURE `sys`.`p`'],
    ['GRANT SELECT ON `sales`.* TO `r` WITH GRANT OPTION', 'GRANT OPTION'],
    ["GRANT PROXY ON ''@'%' TO 'r'@'%'", 'PROXY'],
    ['GRANT `dba` TO `r` WITH ADMIN OPTION', 'dba WITH ADMIN OPTION'],
  ])('refuses %s', (line, why) => {
    expect(dangerousGrantLine(line, guarded)).toContain(why);
  });
});

describe('coversGuardedDatabase', () => {
  it('treats _ and % as wildcards unless escaped, without regard to case', () => {
    expect(coversGuardedDatabase('mysq_', guarded)).toBe(true);
    expect(coversGuardedDatabase('%', guarded)).toBe(true);
    expect(coversGuardedDatabase('LATCHKEY', guarded)).toBe(true);
    expect(coversGuardedDatabase('mysq\\_', guarded)).toBe(false);
    expect(coversGuardedDatabase('sales', guarded)).toBe(false);
  });
});
