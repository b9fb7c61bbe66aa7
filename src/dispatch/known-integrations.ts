/**
 * The integrations this agent knows about, for sweeps (expiry) and `latchkey check`.
 *
 * Two sources: the local config file (`integrations`, authoritative: a remembered
 * integration never replaces a configured one with the same id) and the integrations
 * named by commands from the control plane (`remember`). With a state journal the
 * remembered ones survive restarts (keys `i:<integrationId>`), so a restarted agent
 * sweeps them again. Integrations hold only secret *references*, never secrets.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { IntegrationSchema, type Integration } from '../protocol/messages.js';
import type { StateJournal } from '../state/journal.js';

/** What `remember` answers when there is nothing to do. */
const DONE: Promise<void> = Promise.resolve();

/** Journal key prefix of remembered integrations. */
export const INTEGRATION_KEY_PREFIX = 'i:';

export interface KnownIntegrationsOptions {
  /** Where remembered integrations survive a restart; in memory only when absent. */
  journal?: StateJournal;
  /** Integrations from the local config; they win over remembered ones. */
  initial: Integration[];
  logger: Logger;
}

export class KnownIntegrations {
  private readonly configured = new Map<string, Integration>();
  private readonly remembered = new Map<string, Integration>();

  constructor(private readonly opts: KnownIntegrationsOptions) {
    for (const i of opts.initial) this.configured.set(i.id, structuredClone(i));
  }

  /** Reads the remembered integrations from the journal. A malformed record is logged and dropped. */
  async load(): Promise<void> {
    const journal = this.opts.journal;
    if (journal === undefined) return;
    const bad: string[] = [];
    for (const [key, text] of journal.entries(INTEGRATION_KEY_PREFIX)) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const parsed = IntegrationSchema.safeParse(json);
      if (!parsed.success || key !== INTEGRATION_KEY_PREFIX + parsed.data.id) {
        bad.push(key);
        continue;
      }
      if (!this.configured.has(parsed.data.id)) this.remembered.set(parsed.data.id, parsed.data);
    }
    if (bad.length > 0) {
      this.opts.logger.warn({ dropped: bad.length }, 'malformed known-integration records dropped');
      await Promise.all(bad.map((k) => journal.delete(k)));
    }
    this.opts.logger.debug({ count: this.remembered.size }, 'known integrations loaded');
  }

  /** Adds or updates an integration seen in a command; resolves once it is durable. */
  remember(integration: Integration): Promise<void> {
    // Known already, unchanged (every command names its integration): nothing to parse
    // or write. A remembered entry is a parse output, and parsing it again gives it back.
    // Not an async function: this answer, for nearly every command, is one shared promise.
    if (this.configured.has(integration.id)) return DONE;
    const known = this.remembered.get(integration.id);
    if (known && isDeepStrictEqual(known, integration)) return DONE;
    return this.add(integration);
  }

  private async add(integration: Integration): Promise<void> {
    const parsed = IntegrationSchema.parse(integration);
    if (this.configured.has(parsed.id)) return;
    const existing = this.remembered.get(parsed.id);
    if (existing && isDeepStrictEqual(existing, parsed)) return;
    this.remembered.set(parsed.id, parsed);
    await this.opts.journal?.put(INTEGRATION_KEY_PREFIX + parsed.id, parsed);
  }

  /** Every known integration: the configured ones first, then the remembered ones. */
  list(): Integration[] {
    return [...this.configured.values(), ...this.remembered.values()].map((i) =>
      structuredClone(i),
    );
  }
}
