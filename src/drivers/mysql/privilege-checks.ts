/**
 * The service account's privileges, as `check` reports them: one line per required
 * privilege, each missing one named exactly (MySQL 8's dynamic privileges by their own name,
 * e.g. `CONNECTION_ADMIN`; MariaDB's `CONNECTION ADMIN`) with the one `GRANT` statement that
 * fixes it, for the account `CURRENT_USER()` names.
 *
 * Read from `SHOW GRANTS` of the current account (and its active role): privileges held
 * through other roles are not seen (docs/drivers/mysql.md, "Service account").
 *
 * On Amazon RDS (`@@basedir` under `/rdsdbbin/`), where `CONNECTION_ADMIN` / `SUPER` cannot
 * be granted (RDS for MySQL 8.0.36+ and 8.4, RDS for MariaDB), ending sessions goes through
 * `CALL mysql.rds_kill(id)`: `EXECUTE` on that procedure (or on `mysql`.* or *.*) satisfies
 * the session-ending requirement, and is the statement named when it is missing.
 */
import type { CheckOutput } from '../../protocol/messages.js';
import type { SqlSession } from '../sql/dialect.js';
import { run, str, type FlavorOps, type RequiredPrivilege } from './dialect.js';
import {
  fixStatement,
  grantLinesOf,
  holds,
  holdsGrantOption,
  holdsGrantable,
  parseShowGrants,
} from './show-grants.js';

/** Privileges that read/write grants pass on: held on *.* WITH GRANT OPTION. */
export const GRANTABLE_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'SHOW VIEW'] as const;

type CheckLine = CheckOutput['checks'][number];

/** The privileges that let `KILL` end another account's session. */
const KILL_PRIVILEGES: ReadonlySet<string> = new Set(['CONNECTION_ADMIN', 'CONNECTION ADMIN']);
/** A SHOW GRANTS line giving EXECUTE on mysql.rds_kill (directly, on `mysql`.*, or on *.*). */
const RDS_KILL_EXECUTE =
  /^GRANT\s+(?:[A-Z_ ]+,\s*)*EXECUTE\b[^`]*\sON\s+(?:PROCEDURE\s+`mysql`\.`rds_kill`|`mysql`\.\*|\*\.\*)\s+TO\s/i;

/**
 * Reads `CURRENT_USER()` and `SHOW GRANTS` on `session` and returns the privilege lines of
 * `check` for `required` (the common list plus the flavor's `extraRequiredPrivileges`).
 */
export async function privilegeChecks(
  session: SqlSession,
  ops: Pick<FlavorOps, 'account'>,
  required: readonly RequiredPrivilege[],
): Promise<CheckLine[]> {
  const who = await run(session, { sql: 'SELECT CURRENT_USER() AS cu' });
  const cu = who[0] === undefined ? '' : str(who[0], 'cu');
  const at = cu.lastIndexOf('@');
  const accountText =
    at < 0 ? '`<service account>`' : ops.account(cu.slice(0, at), cu.slice(at + 1));
  const lines = grantLinesOf(await run(session, { sql: 'SHOW GRANTS' }));
  const grants = parseShowGrants(lines);
  const base = await run(session, { sql: 'SELECT @@GLOBAL.basedir AS b' });
  const onRds = base[0] !== undefined && str(base[0], 'b').startsWith('/rdsdbbin/');
  const checks: CheckLine[] = [];
  for (const req of required) {
    const where = req.on === '*.*' ? '*.*' : `${req.on.database}.*`;
    const name = `privilege ${req.privilege} ON ${where}`;
    const ok = holds(grants, req.privilege, req.on, req.alternatives);
    if (!ok && onRds && KILL_PRIVILEGES.has(req.privilege)) {
      const rdsKill = lines.some((l) => RDS_KILL_EXECUTE.test(l));
      checks.push({
        name,
        ok: rdsKill,
        detail: rdsKill
          ? `held through EXECUTE on mysql.rds_kill (Amazon RDS: ${req.privilege} cannot be granted; sessions are ended with CALL mysql.rds_kill)`
          : `missing: needed ${req.why}; on Amazon RDS ${req.privilege} cannot be granted and sessions are ended with mysql.rds_kill. Run: GRANT EXECUTE ON PROCEDURE mysql.rds_kill TO ${accountText}`,
      });
      continue;
    }
    checks.push({
      name,
      ok,
      detail: ok
        ? `held (${req.why})`
        : `missing: needed ${req.why}. Run: ${fixStatement(req.privilege, req.on, accountText)}`,
    });
  }
  const grantOption = holdsGrantOption(grants, '*.*');
  checks.push({
    name: 'privilege GRANT OPTION ON *.*',
    ok: grantOption,
    detail: grantOption
      ? 'held (to pass privileges on to grant roles)'
      : `missing: needed to pass privileges on to grant roles. Run: GRANT ${GRANTABLE_PRIVILEGES.join(', ')} ON *.* TO ${accountText} WITH GRANT OPTION`,
  });
  const missing = GRANTABLE_PRIVILEGES.filter((p) => !holdsGrantable(grants, p, '*.*'));
  checks.push({
    name: 'grantable privileges for read and write',
    ok: missing.length === 0,
    detail:
      missing.length === 0
        ? `held with GRANT OPTION: ${GRANTABLE_PRIVILEGES.join(', ')}`
        : `missing with GRANT OPTION: ${missing.join(', ')}. Run: GRANT ${missing.join(', ')} ON *.* TO ${accountText} WITH GRANT OPTION`,
  });
  const admin = holdsGrantable(grants, 'ALL PRIVILEGES', '*.*');
  checks.push({
    name: 'optional: admin permission',
    ok: true,
    detail: admin
      ? 'ALL PRIVILEGES held with GRANT OPTION: admin grants will work'
      : `admin grants will fail until the service account holds ALL PRIVILEGES ON *.* WITH GRANT OPTION (read and write are not affected). Run: GRANT ALL PRIVILEGES ON *.* TO ${accountText} WITH GRANT OPTION`,
  });
  return checks;
}
