/**
 * The sweeper: periodically asks each driver to revoke what has expired in each known
 * integration (`driver.sweep`), so access ends on time even when no revoke arrives.
 *
 * Integrations are swept one after another (to keep the load on targets low), each with
 * its own timeout signal; the call is raced against the timeout so a driver that ignores
 * the signal cannot stall the sweep. Runs are spaced by `intervalMs` ± `jitterRatio`
 * (default 10 %) so that replicas do not sweep in lockstep. The first run after `start`
 * comes within one interval (`intervalMs` − jitter, never later): a restarted agent
 * sweeps what expired while it was down (the integrations it knew come back from the
 * state journal) within one interval of starting. Nothing here ever throws: a
 * failure is logged and counted in `sweep:finished`.
 */
import type { Logger } from 'pino';
import { LatchkeyError } from '../errors.js';
import type { AgentEvents } from '../events.js';
import type { CallContext, SweepReport } from '../drivers/driver.js';
import type { DriverRegistry } from '../drivers/registry.js';
import type { Integration } from '../protocol/messages.js';
import type { KnownIntegrations } from './known-integrations.js';

export interface SweeperOptions {
  registry: DriverRegistry;
  known: KnownIntegrations;
  /** Time between runs; 0 disables the timer (runOnce still works). */
  intervalMs: number;
  /** Random spread of each interval, 0..1; default 0.1. */
  jitterRatio?: number;
  events: AgentEvents;
  logger: Logger;
  /** Longest time one integration's sweep may take. */
  timeoutMs: number;
}

export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<void> | undefined;
  private controller: AbortController | undefined;
  private started = false;
  private seq = 0;

  constructor(private readonly opts: SweeperOptions) {}

  /** Starts periodic sweeps (the first one within one interval). */
  start(): void {
    if (this.started || this.opts.intervalMs <= 0) return;
    this.started = true;
    this.schedule(true);
  }

  /** Stops the timer, aborts a sweep under way and waits for it to end. */
  async stop(): Promise<void> {
    this.started = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.controller?.abort(new LatchkeyError('E_CANCELLED', 'sweeper stopped'));
    await this.current;
  }

  /** One sweep over every known integration; a run already under way is shared. */
  runOnce(): Promise<void> {
    this.current ??= this.sweepAll().finally(() => {
      this.current = undefined;
    });
    return this.current;
  }

  private schedule(first = false): void {
    const ratio = Math.min(1, Math.max(0, this.opts.jitterRatio ?? 0.1));
    // The first run only ever comes early (never later than one interval after start).
    const spread = first ? -Math.random() * ratio : (Math.random() * 2 - 1) * ratio;
    const delay = Math.max(0, this.opts.intervalMs * (1 + spread));
    this.timer = setTimeout(() => {
      void this.runOnce().finally(() => {
        if (this.started) this.schedule();
      });
    }, delay);
    this.timer.unref();
  }

  private async sweepAll(): Promise<void> {
    const controller = new AbortController();
    this.controller = controller;
    try {
      for (const integration of this.opts.known.list()) {
        if (controller.signal.aborted) break;
        await this.sweepOne(integration, controller.signal);
      }
    } catch (err) {
      this.opts.logger.error({ err }, 'sweep failed');
    } finally {
      this.controller = undefined;
    }
  }

  private async sweepOne(integration: Integration, stopSignal: AbortSignal): Promise<void> {
    const logger = this.opts.logger.child({
      integrationId: integration.id,
      integrationType: integration.type,
      sweep: true,
    });
    let driver;
    try {
      driver = this.opts.registry.get(integration.type);
    } catch (err) {
      logger.error({ err }, 'driver failed to start for sweep');
      return;
    }
    if (!driver?.sweep) return;

    const started = Date.now();
    const timeout = AbortSignal.timeout(this.opts.timeoutMs);
    const signal = AbortSignal.any([stopSignal, timeout]);
    const ctx: CallContext = {
      commandId: `sweep-${integration.id}-${started}-${this.seq++}`,
      integration,
      signal,
      logger,
    };
    let revoked = 0;
    let errors = 0;
    try {
      const aborted = new Promise<never>((_, reject) => {
        const fail = (): void =>
          reject(
            timeout.aborted
              ? new LatchkeyError(
                  'E_TIMEOUT',
                  `sweep did not finish within ${this.opts.timeoutMs} ms`,
                )
              : new LatchkeyError('E_CANCELLED', 'sweep stopped'),
          );
        if (signal.aborted) fail();
        else signal.addEventListener('abort', fail, { once: true });
      });
      const call = Promise.resolve().then(() => driver.sweep?.(ctx));
      call.catch(() => undefined);
      const report: SweepReport | undefined = await Promise.race([call, aborted]);
      revoked = report?.revoked.length ?? 0;
      errors = report?.errors.length ?? 0;
      for (const e of report?.errors ?? []) {
        logger.warn({ item: e.item, code: e.code }, `sweep item failed: ${e.message}`);
      }
      if (revoked > 0) logger.info({ revoked: report?.revoked }, 'sweep revoked expired grants');
      else logger.debug('sweep found nothing expired');
    } catch (err) {
      if (stopSignal.aborted && !timeout.aborted) {
        logger.debug('sweep stopped');
        return; // shutdown, not a failure
      }
      errors += 1;
      logger.error({ err }, 'sweep of integration failed');
    }
    this.opts.events.emit('sweep:finished', {
      integrationId: integration.id,
      integrationType: integration.type,
      revoked,
      errors,
      durationMs: Date.now() - started,
    });
  }
}
