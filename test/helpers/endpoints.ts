/** Endpoints of the real test databases (README "Test databases"). */
export function pgTestUrl(): string {
  return process.env.LATCHKEY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
}

export function mysqlTestUrl(): string {
  return process.env.LATCHKEY_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
}
