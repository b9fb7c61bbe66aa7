import { describe, expect, it } from 'vitest';
import {
  fixStatement,
  holds,
  holdsGrantOption,
  holdsGrantable,
  parseGrantLine,
  parseShowGrants,
} from '../../../../src/drivers/mysql/show-grants.js';

describe('SHOW GRANTS parsing', () => {
  it('reads MariaDB lines (password hash, WITH GRANT OPTION, database-level, role grants)', () => {
    const grants = parseShowGrants([
      "GRANT SELECT, INSERT, UPDATE, DELETE, PROCESS, SHOW DATABASES, CREATE USER, CONNECTION ADMIN ON *.* TO `svc`@`%` IDENTIFIED BY PASSWORD '*8512AF' WITH GRANT OPTION",
      'GRANT UPDATE ON `mysql`.* TO `svc`@`%`',
      'GRANT SELECT (`a`, `b`) ON `db`.`t` TO `svc`@`%`',
      'GRANT `lk_d_x` TO `svc`@`%` WITH ADMIN OPTION',
    ]);
    expect(grants).toHaveLength(3);
    expect(grants[0]).toEqual({
      privileges: [
        'SELECT',
        'INSERT',
        'UPDATE',
        'DELETE',
        'PROCESS',
        'SHOW DATABASES',
        'CREATE USER',
        'CONNECTION ADMIN',
      ],
      on: { kind: 'global' },
      grantOption: true,
    });
    expect(grants[1]).toEqual({
      privileges: ['UPDATE'],
      on: { kind: 'database', database: 'mysql' },
      grantOption: false,
    });
    expect(grants[2]?.privileges).toEqual([]);
    expect(holds(grants, 'CREATE USER', '*.*')).toBe(true);
    expect(holds(grants, 'UPDATE', { database: 'mysql' })).toBe(true);
    expect(holds(grants, 'ROLE_ADMIN', '*.*', ['SUPER'])).toBe(false);
    expect(holdsGrantOption(grants, '*.*')).toBe(true);
    expect(holdsGrantable(grants, 'SELECT', '*.*')).toBe(true);
    expect(holdsGrantable(grants, 'SHOW VIEW', '*.*')).toBe(false);
  });

  it('reads MySQL 8 lines with dynamic privileges and ALL PRIVILEGES', () => {
    const grants = parseShowGrants([
      'GRANT ALL PRIVILEGES ON *.* TO `admin`@`%` WITH GRANT OPTION',
      'GRANT ROLE_ADMIN,CONNECTION_ADMIN ON *.* TO `svc`@`%`',
      'GRANT SELECT ON `a\\_b`.* TO `svc`@`%`',
    ]);
    expect(grants[1]?.privileges).toEqual(['ROLE_ADMIN', 'CONNECTION_ADMIN']);
    expect(grants[2]?.on).toEqual({ kind: 'database', database: 'a_b' });
    expect(holds(grants, 'ROLE_ADMIN', '*.*')).toBe(true);
    expect(holds(grants, 'PROCESS', '*.*')).toBe(true);
    expect(holdsGrantable(grants, 'ALL PRIVILEGES', '*.*')).toBe(true);
  });

  it('keeps ON/TO inside quoted names apart from the keywords', () => {
    const g = parseGrantLine('GRANT SELECT ON `x ON y`.`a TO b` TO `u`@`%`');
    expect(g?.on).toEqual({ kind: 'table', database: 'x ON y', table: 'a TO b' });
  });

  it('writes the fix as a GRANT an operator can run', () => {
    expect(fixStatement('CREATE USER', '*.*', '`svc`@`%`')).toBe(
      'GRANT CREATE USER ON *.* TO `svc`@`%`',
    );
    expect(fixStatement('UPDATE', { database: 'mysql' }, '`svc`@`%`')).toBe(
      'GRANT UPDATE ON `mysql`.* TO `svc`@`%`',
    );
  });
});
