/**
 * Counts and records what a driver sends to its database, for the SQL benchmarks: every
 * call of the client library's query function is one round trip (pg:
 * `Client.prototype.query`, which `Pool.query` also goes through; mysql2:
 * `Connection.prototype.query` / `execute`, under the promise wrapper and the pool). A
 * round trip may carry several statements (a text with `;` between them); those are
 * counted too.
 *
 * The same wrapping records each round trip (text, bound values, which connection, whether
 * it failed), so that a benchmark's direct reference can replay exactly the statements the
 * driver sent (`replaySql`) instead of a hand-written copy that goes stale.
 *
 * The wrapping is installed once per process and counts only while `recording` is set, so
 * the setup and cleanup of a benchmark are not counted.
 */
import mysqlCore from 'mysql2';
import pg from 'pg';

/** One round trip as the driver sent it. */
export interface SqlStep {
  /** Which connection it went on: 0 for the first one seen in the recording, 1 for the next… */
  connection: number;
  /** The database of that connection, when the client says (pg). */
  database: string | undefined;
  text: string;
  /** The bound values (none for a text-only query). */
  values: readonly unknown[] | undefined;
  /** It failed (the driver expected and handled that, or the recorded call would have failed). */
  failed: boolean;
}

export interface SqlTally {
  roundTrips: number;
  statements: number;
  /** The text of each round trip, in order (values not included). */
  texts: string[];
  /** Each round trip in full, in order (for `replaySql`). */
  steps: SqlStep[];
}

interface Recording {
  tally: SqlTally;
  connections: WeakMap<object, number>;
  next: number;
}

let current: Recording | undefined;

function textOf(arg: unknown): string {
  if (typeof arg === 'string') return arg;
  if (typeof arg === 'object' && arg !== null) {
    const o = arg as { text?: unknown; sql?: unknown };
    if (typeof o.text === 'string') return o.text;
    if (typeof o.sql === 'string') return o.sql;
  }
  return '?';
}

function valuesOf(args: readonly unknown[]): readonly unknown[] | undefined {
  const first = args[0];
  if (typeof first === 'object' && first !== null) {
    const v = (first as { values?: unknown }).values;
    if (Array.isArray(v)) return [...(v as unknown[])];
  }
  return Array.isArray(args[1]) ? [...(args[1] as unknown[])] : undefined;
}

/** Statements in a text (`;`-separated, empty parts ignored). */
export function statementsIn(text: string): number {
  return Math.max(1, text.split(';').filter((part) => part.trim().length > 0).length);
}

function note(conn: unknown, args: readonly unknown[]): SqlStep | undefined {
  const rec = current;
  if (!rec) return undefined;
  const text = textOf(args[0]);
  const key = typeof conn === 'object' && conn !== null ? conn : rec;
  let connection = rec.connections.get(key);
  if (connection === undefined) {
    connection = rec.next++;
    rec.connections.set(key, connection);
  }
  rec.tally.roundTrips += 1;
  rec.tally.statements += statementsIn(text);
  rec.tally.texts.push(text.replace(/\s+/g, ' ').trim());
  const db = (conn as { database?: unknown } | null)?.database;
  const step: SqlStep = {
    connection,
    database: typeof db === 'string' ? db : undefined,
    text,
    values: valuesOf(args),
    failed: false,
  };
  rec.tally.steps.push(step);
  return step;
}

type AnyFn = (this: unknown, ...args: unknown[]) => unknown;

function wrap(proto: Record<string, unknown>, name: string): void {
  const original = proto[name] as AnyFn | undefined;
  if (typeof original !== 'function') throw new Error(`no ${name} to count`);
  proto[name] = function counted(this: unknown, ...args: unknown[]): unknown {
    const step = note(this, args);
    if (step === undefined) return original.apply(this, args);
    // A callback (mysql2, pg's callback form) or a promise (pg) says whether it failed.
    const last = args.length - 1;
    const cb = args[last];
    if (typeof cb === 'function') {
      args[last] = function settled(this: unknown, err: unknown, ...rest: unknown[]): unknown {
        if (err) step.failed = true;
        return (cb as AnyFn).call(this, err, ...rest);
      };
    }
    const out = original.apply(this, args);
    if (typeof cb !== 'function' && out instanceof Promise) {
      out.catch(() => {
        step.failed = true;
      });
    }
    return out;
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
  const tally: SqlTally = { roundTrips: 0, statements: 0, texts: [], steps: [] };
  current = { tally, connections: new WeakMap(), next: 0 };
  try {
    await fn();
  } finally {
    current = undefined;
  }
  return tally;
}

/** Every distinct match of `pattern` (global) in the recorded texts and string values. */
export function findInSteps(steps: readonly SqlStep[], pattern: RegExp): string[] {
  const found = new Set<string>();
  const scan = (s: string): void => {
    for (const m of s.matchAll(pattern)) found.add(m[0]);
  };
  for (const step of steps) {
    scan(step.text);
    for (const v of step.values ?? []) if (typeof v === 'string') scan(v);
  }
  return [...found];
}

/** `[recorded, replacement]` pairs: the names and secrets that differ between two pairs. */
export type Substitutions = readonly (readonly [string, string])[];

function substitute(s: string, subs: Substitutions): string {
  let out = s;
  for (const [from, to] of subs) if (from !== to) out = out.split(from).join(to);
  return out;
}

/** The recorded steps with every substitution applied (longest recorded string first). */
export function substituteSteps(steps: readonly SqlStep[], subs: Substitutions): SqlStep[] {
  const ordered = [...subs].sort((a, b) => b[0].length - a[0].length);
  return steps.map((step) => ({
    ...step,
    text: substitute(step.text, ordered),
    values: step.values?.map((v) => (typeof v === 'string' ? substitute(v, ordered) : v)),
  }));
}

/** A plain connection of the direct path (`release` hands it back). */
export interface ReplayConnection {
  query(text: string, values: readonly unknown[] | undefined): Promise<unknown>;
  release(): void;
}

/**
 * Sends `steps` in order, as the driver did: the steps of recorded connection `n` on a
 * connection of the replay's own, taken with `open(n, database)` at its first step and
 * released after its last one (as the driver takes its lock session for each locked
 * part). A step that failed when recorded may fail again (it is sent all the same); any
 * other failure is thrown.
 */
export async function replaySql(
  steps: readonly SqlStep[],
  open: (connection: number, database: string | undefined) => Promise<ReplayConnection>,
): Promise<void> {
  const last = new Map<number, number>();
  steps.forEach((step, i) => last.set(step.connection, i));
  const conns = new Map<number, ReplayConnection>();
  try {
    for (const [i, step] of steps.entries()) {
      let c = conns.get(step.connection);
      if (c === undefined) {
        c = await open(step.connection, step.database);
        conns.set(step.connection, c);
      }
      try {
        await c.query(step.text, step.values);
      } catch (err) {
        if (!step.failed) throw err;
      }
      if (last.get(step.connection) === i) {
        conns.delete(step.connection);
        c.release();
      }
    }
  } finally {
    for (const c of conns.values()) c.release();
  }
}

/**
 * Checks that no recorded name is left in substituted steps (the replay would otherwise
 * touch the recorded grantee's objects, not its own).
 * @throws naming the first leftover
 */
export function assertSubstituted(steps: readonly SqlStep[], recorded: readonly string[]): void {
  for (const step of steps) {
    const all = [step.text, ...(step.values ?? []).filter((v) => typeof v === 'string')];
    for (const name of recorded) {
      if (all.some((s) => s.includes(name))) {
        throw new Error(
          `the replay still names ${JSON.stringify(name)}: ${step.text.slice(0, 80)}`,
        );
      }
    }
  }
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
