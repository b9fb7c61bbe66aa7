/**
 * Counts what a driver sends to its database, for the SQL benchmarks: every call of the
 * client library's query function is one round trip (pg: `Client.prototype.query`, which
 * `Pool.query` also goes through; mysql2: `Connection.prototype.query` / `execute`, under
 * the promise wrapper and the pool). A round trip may carry several statements (a text
 * with `;` between them); those are counted too.
 *
 * The wrapping is installed once per process and counts only while `recording` is set, so
 * the setup and cleanup of a benchmark are not counted.
 */
import mysqlCore from 'mysql2';
import pg from 'pg';

export interface SqlTally {
  roundTrips: number;
  statements: number;
  /** The text of each round trip, in order (values not included). */
  texts: string[];
}

let current: SqlTally | undefined;

function textOf(arg: unknown): string {
  if (typeof arg === 'string') return arg;
  if (typeof arg === 'object' && arg !== null) {
    const o = arg as { text?: unknown; sql?: unknown };
    if (typeof o.text === 'string') return o.text;
    if (typeof o.sql === 'string') return o.sql;
  }
  return '?';
}

function note(arg: unknown): void {
  if (!current) return;
  const text = textOf(arg);
  current.roundTrips += 1;
  current.statements += Math.max(
    1,
    text.split(';').filter((part) => part.trim().length > 0).length,
  );
  current.texts.push(text.replace(/\s+/g, ' ').trim());
}

type AnyFn = (this: unknown, ...args: unknown[]) => unknown;

function wrap(proto: Record<string, unknown>, name: string): void {
  const original = proto[name] as AnyFn | undefined;
  if (typeof original !== 'function') throw new Error(`no ${name} to count`);
  proto[name] = function counted(this: unknown, ...args: unknown[]): unknown {
    note(args[0]);
    return original.apply(this, args);
  };
}

let installed = false;

/** Wraps the pg and mysql2 query functions (once). */
export function installSqlCounter(): void {
  if (installed) return;
  installed = true;
  wrap(pg.Client.prototype as unknown as Record<string, unknown>, 'query');
  const core = mysqlCore as unknown as { Connection: { prototype: Record<string, unknown> } };
  wrap(core.Connection.prototype, 'query');
  wrap(core.Connection.prototype, 'execute');
}

/** Runs `fn` and returns what it sent (nothing else may run meanwhile). */
export async function countSql(fn: () => Promise<void>): Promise<SqlTally> {
  installSqlCounter();
  const tally: SqlTally = { roundTrips: 0, statements: 0, texts: [] };
  current = tally;
  try {
    await fn();
  } finally {
    current = undefined;
  }
  return tally;
}

/** `N round trips, M statements` and, indented, the first words of each round trip. */
export function describeTally(label: string, t: SqlTally, detail = true): string[] {
  const lines = [`  ${label}: ${t.roundTrips} round trips, ${t.statements} statements`];
  if (detail) {
    t.texts.forEach((text, i) => {
      lines.push(`      ${String(i + 1).padStart(2)}. ${text.slice(0, 110)}`);
    });
  }
  return lines;
}
