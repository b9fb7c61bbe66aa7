/**
 * Secret ↔ database pairings found by this agent's own `aws-discovery`.
 *
 * A database tagged `<prefix>-connector-id=<this connector>` and `<prefix>-secret=<ARN>`
 * names the Secrets Manager secret of its service account. The secret itself is often a
 * plain `{username, password}` under any name, with neither a `host` field nor the
 * `<prefix>-connector-*` tags binding by tag reads. When this agent's discovery reads such
 * a database from AWS (`DescribeDBInstances` / `DescribeDBClusters` / Redshift
 * `DescribeClusters`, never from a command), it records the pairing here: database ARN →
 * (secret ARN, endpoint host, port). The secret-to-target binding (`./binding.ts`) then
 * accepts that secret for exactly that host and port, and for no other, while the pairing
 * is younger than the TTL.
 *
 * One pairing per database: a later discovery of the same database replaces it (the tag
 * may name another secret now) or drops it (the tag is gone, or the database is no longer
 * this connector's). Held in memory: a restarted agent accepts such a secret again once its
 * next discovery has run.
 */
import { normalizeHost } from './host.js';

/** Default lifetime of a recorded pairing: 24 hours. */
export const DEFAULT_DISCOVERED_PAIRING_TTL_MS = 24 * 60 * 60 * 1000;

/** Upper bound of the pairings held (a very large estate still fits; memory stays bounded). */
const MAX_PAIRINGS = 100_000;

/** A TTL as messages say it: `24 h`, else minutes. */
export function describeTtl(ms: number): string {
  const h = ms / 3_600_000;
  return Number.isInteger(h) ? `${h} h` : `${Math.round(ms / 60_000)} min`;
}

export interface DiscoveredPairing {
  /** ARN of the database (RDS instance / cluster, Redshift cluster) carrying the tag. */
  databaseArn: string;
  /** Secrets Manager secret ARN, as the database's `<prefix>-secret` tag names it. */
  secretArn: string;
  /** Endpoint host AWS reported for the database. */
  host: string;
  port: number;
  /** When this agent's discovery saw the tag. */
  recordedAt: Date;
}

export interface DiscoveredPairingsOptions {
  /** How long a recorded pairing is trusted; default `DEFAULT_DISCOVERED_PAIRING_TTL_MS`. */
  ttlMs?: number;
  now?: () => Date;
}

export class DiscoveredPairings {
  private readonly byDatabase = new Map<string, DiscoveredPairing>();
  readonly ttlMs: number;
  private readonly now: () => Date;

  constructor(opts: DiscoveredPairingsOptions = {}) {
    this.ttlMs = opts.ttlMs ?? DEFAULT_DISCOVERED_PAIRING_TTL_MS;
    this.now = opts.now ?? (() => new Date());
  }

  /** Records (or replaces) the pairing of one database, seen now by this agent's discovery. */
  record(p: { databaseArn: string; secretArn: string; host: string; port: number }): void {
    this.byDatabase.delete(p.databaseArn);
    if (this.byDatabase.size >= MAX_PAIRINGS) {
      const oldest = this.byDatabase.keys().next();
      if (oldest.done !== true) this.byDatabase.delete(oldest.value);
    }
    this.byDatabase.set(p.databaseArn, {
      databaseArn: p.databaseArn,
      secretArn: p.secretArn,
      host: p.host,
      port: p.port,
      recordedAt: this.now(),
    });
  }

  /** Drops the pairing of a database discovery saw without a usable secret tag. */
  forget(databaseArn: string): void {
    this.byDatabase.delete(databaseArn);
  }

  /**
   * The live pairing that lets `secretArn` be used against `host`:`port`, if any (the
   * host compared as binding does: case, trailing dot and IPv6 brackets ignored).
   */
  find(secretArn: string, host: string, port: number): DiscoveredPairing | undefined {
    const at = this.now().getTime();
    const h = normalizeHost(host);
    for (const p of this.byDatabase.values()) {
      if (at - p.recordedAt.getTime() > this.ttlMs || p.recordedAt.getTime() > at) continue;
      if (p.secretArn === secretArn && p.port === port && normalizeHost(p.host) === h) {
        return { ...p };
      }
    }
    return undefined;
  }

  /** Every live pairing (for `check`). */
  list(): DiscoveredPairing[] {
    const at = this.now().getTime();
    return [...this.byDatabase.values()]
      .filter((p) => at - p.recordedAt.getTime() <= this.ttlMs && p.recordedAt.getTime() <= at)
      .map((p) => ({ ...p }));
  }
}
