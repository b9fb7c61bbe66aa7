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
 * this connector's). Held in memory and, once `attach`ed to the agent's state journal
 * (keys `sp:<database ARN>`), kept across restarts with the time it was recorded, so the
 * TTL runs from the discovery, not from the restart.
 */
import { z } from 'zod';
import type { StateJournal } from '../state/journal.js';
import { normalizeHost } from './host.js';

/** Journal key prefix of discovered pairings. */
export const PAIRING_KEY_PREFIX = 'sp:';

/** A pairing as the journal holds it (parsed again on load: the file is outside the process). */
const StoredPairingSchema = z
  .object({
    databaseArn: z.string().min(1).max(2048),
    secretArn: z.string().min(1).max(2048),
    host: z.string().min(1).max(253),
    port: z.number().int().min(1).max(65535),
    recordedAt: z.iso.datetime(),
  })
  .strict();

/** What a pairing store needs of the state journal. */
export type PairingJournal = Pick<StateJournal, 'entries' | 'put' | 'delete'>;

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
  private journal: PairingJournal | undefined;

  constructor(opts: DiscoveredPairingsOptions = {}) {
    this.ttlMs = opts.ttlMs ?? DEFAULT_DISCOVERED_PAIRING_TTL_MS;
    this.now = opts.now ?? (() => new Date());
  }

  /**
   * Reads the pairings kept in `journal` (live ones only; expired or malformed records are
   * deleted) and keeps every later change there. A pairing recorded meanwhile wins.
   * @returns how many pairings were loaded
   */
  async attach(journal: PairingJournal): Promise<number> {
    const drop: string[] = [];
    let loaded = 0;
    const at = this.now().getTime();
    for (const [key, text] of journal.entries(PAIRING_KEY_PREFIX)) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const parsed = StoredPairingSchema.safeParse(json);
      const recordedAt = parsed.success ? Date.parse(parsed.data.recordedAt) : NaN;
      if (
        !parsed.success ||
        key !== PAIRING_KEY_PREFIX + parsed.data.databaseArn ||
        !this.live(recordedAt, at)
      ) {
        drop.push(key);
        continue;
      }
      if (this.byDatabase.has(parsed.data.databaseArn)) continue;
      this.byDatabase.set(parsed.data.databaseArn, {
        ...parsed.data,
        recordedAt: new Date(recordedAt),
      });
      loaded++;
    }
    this.journal = journal;
    await Promise.all(drop.map((k) => journal.delete(k)));
    return loaded;
  }

  /** Records (or replaces) the pairing of one database, seen now by this agent's discovery. */
  record(p: { databaseArn: string; secretArn: string; host: string; port: number }): void {
    this.byDatabase.delete(p.databaseArn);
    if (this.byDatabase.size >= MAX_PAIRINGS) {
      const oldest = this.byDatabase.keys().next();
      if (oldest.done !== true) this.forget(oldest.value);
    }
    const pairing: DiscoveredPairing = {
      databaseArn: p.databaseArn,
      secretArn: p.secretArn,
      host: p.host,
      port: p.port,
      recordedAt: this.now(),
    };
    this.byDatabase.set(p.databaseArn, pairing);
    // The journal logs and counts its own write failures; memory stays authoritative.
    void this.journal?.put(PAIRING_KEY_PREFIX + p.databaseArn, {
      ...pairing,
      recordedAt: pairing.recordedAt.toISOString(),
    });
  }

  /** Drops the pairing of a database discovery saw without a usable secret tag. */
  forget(databaseArn: string): void {
    if (!this.byDatabase.delete(databaseArn)) return;
    void this.journal?.delete(PAIRING_KEY_PREFIX + databaseArn);
  }

  private live(recordedAt: number, at: number): boolean {
    return Number.isFinite(recordedAt) && recordedAt <= at && at - recordedAt <= this.ttlMs;
  }

  /**
   * The live pairing that lets `secretArn` be used against `host`:`port`, if any (the
   * host compared as binding does: case, trailing dot and IPv6 brackets ignored).
   */
  find(secretArn: string, host: string, port: number): DiscoveredPairing | undefined {
    const at = this.now().getTime();
    const h = normalizeHost(host);
    for (const p of this.byDatabase.values()) {
      if (!this.live(p.recordedAt.getTime(), at)) continue;
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
      .filter((p) => this.live(p.recordedAt.getTime(), at))
      .map((p) => ({ ...p }));
  }
}
