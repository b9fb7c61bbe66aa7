/**
 * Setup file of the `mariadb-modes` test project: points the MySQL test helpers at the
 * private MariaDB started by global-setup-mysql-modes.ts (sql_mode
 * NO_BACKSLASH_ESCAPES,ANSI_QUOTES, event scheduler on).
 */
import { inject } from 'vitest';

process.env.LATCHKEY_TEST_MYSQL_URL = inject('mysqlModesUrl');
process.env.LATCHKEY_TEST_MYSQL_MODES = '1';
