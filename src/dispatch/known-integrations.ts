/**
 * The integrations this agent knows about, for sweeps (expiry) and `latchkey check`.
 *
 * Two sources: the local config file (`integrations`, authoritative: a remembered
 * integration never replaces a configured one with the same id) and the integrations
 * named by commands from the control plane (`remember`). With a state directory the
 * remembered ones are kept in `<stateDir>/integrations.json`, written atomically (temp
 * file + rename, mode 0600). Integrations hold only secret *references*, never secrets.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import { IntegrationSchema, type Integration } from '../protocol/messages.js';

export const KNOWN_INTEGRATIONS_FILE = 'integrations.json';

const StateFileSchema = z.object({
  version: z.literal(1),
  integrations: z.array(IntegrationSchema),
});

export interface KnownIntegrationsOptions {
  /** Where to persist remembered integrations; in memory only when absent. */
  stateDir?: string;
  /** Integrations from the local config; they win over remembered ones. */
  initial: Integration[];
  logger: Logger;
}

export class KnownIntegrations {
  private readonly configured = new Map<string, Integration>();
  private readonly remembered = new Map<string, Integration>();
  private writeChain: Promise<void> = Promise.resolve();

  constructor(private readonly opts: KnownIntegrationsOptions) {
    for (const i of opts.initial) this.configured.set(i.id, structuredClone(i));
  }

  private get file(): string | undefined {
    return this.opts.stateDir === undefined
      ? undefined
      : join(this.opts.stateDir, KNOWN_INTEGRATIONS_FILE);
  }

  /** Reads the state file, if any. A missing file is fine; a broken one is logged and ignored. */
  async load(): Promise<void> {
    const file = this.file;
    if (file === undefined) return;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.opts.logger.warn({ err, file }, 'cannot read known integrations; starting without them');
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      this.opts.logger.warn({ file }, 'known integrations file is not JSON; ignoring it');
      return;
    }
    const parsed = StateFileSchema.safeParse(json);
    if (!parsed.success) {
      this.opts.logger.warn(
        { file, issues: parsed.error.issues.map((i) => i.path.join('.')) },
        'known integrations file is malformed; ignoring it',
      );
      return;
    }
    for (const i of parsed.data.integrations) {
      if (!this.configured.has(i.id)) this.remembered.set(i.id, i);
    }
    this.opts.logger.debug({ count: this.remembered.size }, 'known integrations loaded');
  }

  /** Adds or updates an integration seen in a command and persists the set. */
  async remember(integration: Integration): Promise<void> {
    const parsed = IntegrationSchema.parse(integration);
    if (this.configured.has(parsed.id)) return;
    const existing = this.remembered.get(parsed.id);
    if (existing && isDeepStrictEqual(existing, parsed)) return;
    this.remembered.set(parsed.id, parsed);
    await this.persist();
  }

  /** Every known integration: the configured ones first, then the remembered ones. */
  list(): Integration[] {
    return [...this.configured.values(), ...this.remembered.values()].map((i) =>
      structuredClone(i),
    );
  }

  private persist(): Promise<void> {
    const file = this.file;
    const dir = this.opts.stateDir;
    if (file === undefined || dir === undefined) return Promise.resolve();
    const next = this.writeChain.then(async () => {
      const body = JSON.stringify(
        { version: 1, integrations: [...this.remembered.values()] },
        null,
        2,
      );
      const tmp = `${file}.${process.pid}.${randomBytes(8).toString('hex')}.tmp`;
      try {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        // `wx`: never opens or follows a file or symlink planted at the temp name.
        await writeFile(tmp, `${body}\n`, { mode: 0o600, flag: 'wx' });
        await rename(tmp, file);
      } catch (err) {
        this.opts.logger.error({ err, file }, 'cannot persist known integrations');
        await rm(tmp, { force: true }).catch(() => undefined);
      }
    });
    this.writeChain = next;
    return next;
  }
}
