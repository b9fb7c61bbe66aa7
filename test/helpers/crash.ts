/**
 * Simulated crashes (kill -9) in the middle of a SQL core flow, on real engines.
 *
 * A `CrashSwitch` wraps the dialect and the sessions of one run. When its plan triggers
 * (a dialect method is about to be called, or a statement is about to be sent), the run
 * "dies": the switch closes every connection of the run for real (so the server rolls back
 * an open transaction and frees its locks, as after a killed process), and from then on
 * every dialect call and statement of that run throws, so nothing after the crash point
 * happens, not even the flow's own undo. A plan may also inject one ordinary error (the
 * flow's undo path then runs, and may itself be crashed).
 */
import type { SqlDialect, SqlSession } from '../../src/drivers/sql/dialect.js';

export class SimulatedCrash extends Error {
  constructor(where: string) {
    super(`simulated crash (kill -9) at ${where}`);
    this.name = 'SimulatedCrash';
  }
}

type MethodName = Exclude<keyof SqlDialect, 'engine' | 'maxUsernameLength' | 'hasSchemas'>;

export interface CrashPlan {
  /** Dies when this dialect method is called by the flow (before it runs). */
  beforeMethod?: MethodName;
  /** Dies when a statement matching this is about to be sent (inside a dialect method). */
  atStatement?: RegExp;
  /** Throws one ordinary error when this dialect method is called (the flow undoes its work). */
  failMethod?: MethodName;
}

/** Pure helpers the core calls even after an error: never intercepted. */
const PURE = new Set(['mapError', 'quoteIdent', 'quoteLiteral']);

export class CrashSwitch {
  dead = false;
  /** Statements sent on the run's sessions (text and bound values), for inspection. */
  readonly statements: { sql: string; values: readonly unknown[] | undefined }[] = [];
  private readonly kills: (() => void)[] = [];
  private failed = false;

  constructor(private readonly plan: CrashPlan) {}

  /** Registers how to close one connection of the run when it dies. */
  onKill(kill: () => void): void {
    this.kills.push(kill);
  }

  /** Kills the run (closes its connections) and returns the error to fail with. */
  die(where: string): SimulatedCrash {
    if (!this.dead) {
      this.dead = true;
      for (const k of this.kills) k();
    }
    return new SimulatedCrash(where);
  }

  session(inner: SqlSession): SqlSession {
    return {
      query: async (sql, values) => {
        if (this.dead) throw new SimulatedCrash('(dead)');
        if (this.plan.atStatement?.test(sql)) throw this.die(sql);
        this.statements.push({ sql, values });
        return inner.query(sql, values);
      },
    };
  }

  dialect(inner: SqlDialect): SqlDialect {
    return new Proxy(inner, {
      get: (target, prop, receiver) => {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function' || typeof prop !== 'string' || PURE.has(prop)) {
          return value;
        }
        const fn = value as (...args: unknown[]) => unknown;
        return (...args: unknown[]): unknown => {
          if (this.dead) return Promise.reject(new SimulatedCrash('(dead)'));
          if (this.plan.failMethod === prop && !this.failed) {
            this.failed = true;
            return Promise.reject(new Error(`injected failure in ${prop}`));
          }
          if (this.plan.beforeMethod === prop) return Promise.reject(this.die(prop));
          return fn.apply(target, args);
        };
      },
    });
  }
}
