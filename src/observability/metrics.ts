/**
 * Prometheus metrics, fed only by agent events (the core never touches a metric).
 *
 * The agent uses its own registry (never prom-client's global one), with the default
 * Node.js process metrics collected on it. Every metric is listed in
 * `docs/observability.md`.
 */
import * as prom from 'prom-client';
import type { AgentEvents } from '../events.js';

export interface Metrics {
  registry: prom.Registry;
  /** Unsubscribes from the events (the registry stays readable). */
  stop(): void;
}

/**
 * One value per pair of label values, made on first use: the series of a metric found
 * without building a key (label values are few and bounded: kinds, driver types,
 * outcomes, error codes).
 */
function perLabelPair<T>(make: (a: string, b: string) => T): (a: string, b: string) => T {
  const outer = new Map<string, Map<string, T>>();
  return (a, b) => {
    let inner = outer.get(a);
    if (inner === undefined) {
      inner = new Map();
      outer.set(a, inner);
    }
    let value = inner.get(b);
    if (value === undefined) {
      value = make(a, b);
      inner.set(b, value);
    }
    return value;
  };
}

const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const WAIT_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60];

export function createMetrics(events: AgentEvents): Metrics {
  const registry = new prom.Registry();
  prom.collectDefaultMetrics({ register: registry });
  const registers = [registry];

  // Every finished command counts here. prom-client builds a string key from the labels
  // object at each `inc` (bound children too); so each series is counted in its own cell
  // and handed to prom-client when scraped (`collect`), one `inc` per series.
  type CommandLabels = 'kind' | 'integration_type' | 'outcome' | 'code';
  interface CommandCell {
    labels: prom.LabelValues<CommandLabels>;
    pending: number;
  }
  const commandCells: CommandCell[] = [];
  const commands = new prom.Counter({
    name: 'latchkey_commands_total',
    help: 'Commands finished, by kind, integration type, outcome (ok|error) and error code ("" when ok).',
    labelNames: ['kind', 'integration_type', 'outcome', 'code'] as const,
    registers,
    collect() {
      for (const cell of commandCells) {
        if (cell.pending === 0) continue;
        commands.inc(cell.labels, cell.pending);
        cell.pending = 0;
      }
    },
  });
  const commandCell = perLabelPair((kind, integrationType) =>
    perLabelPair((outcome, code): CommandCell => {
      const cell = {
        labels: { kind, integration_type: integrationType, outcome, code },
        pending: 0,
      };
      commandCells.push(cell);
      return cell;
    }),
  );
  const duration = new prom.Histogram({
    name: 'latchkey_command_duration_seconds',
    help: 'Time a command ran in its driver, in seconds.',
    labelNames: ['kind', 'integration_type'] as const,
    buckets: DURATION_BUCKETS,
    registers,
  });
  // Bound children, one per label set: no labels object nor closure per observation.
  const durationOf = perLabelPair((kind, integrationType) =>
    duration.labels(kind, integrationType),
  );
  // The queue and outbox gauges change with every command: the events only note the
  // latest values, and the gauges take them when scraped (`collect`).
  const latest = { depth: 0, running: 0, outbox: 0 };
  const depth = new prom.Gauge({
    name: 'latchkey_queue_depth',
    help: 'Commands accepted and waiting to start.',
    registers,
    collect() {
      this.set(latest.depth);
    },
  });
  const running = new prom.Gauge({
    name: 'latchkey_queue_running',
    help: 'Commands running in a driver.',
    registers,
    collect() {
      this.set(latest.running);
    },
  });
  const wait = new prom.Histogram({
    name: 'latchkey_queue_wait_seconds',
    help: 'Time from receipt of a command to its start, in seconds.',
    buckets: WAIT_BUCKETS,
    registers,
  });
  const waitChild = wait.labels();
  const connected = new prom.Gauge({
    name: 'latchkey_connected',
    help: '1 while the WebSocket to the control plane is open, else 0.',
    registers,
  });
  const reconnects = new prom.Counter({
    name: 'latchkey_reconnects_total',
    help: 'Reconnections to the control plane scheduled after a lost or failed connection.',
    registers,
  });
  const rejections = new prom.Counter({
    name: 'latchkey_rejections_total',
    help: 'Frames or commands refused before reaching a driver, by error code.',
    labelNames: ['code'] as const,
    registers,
  });
  const refusalLogsSuppressed = new prom.Counter({
    name: 'latchkey_refusal_logs_suppressed_total',
    help: 'Log lines of refusals dropped by the rate limit of the refusal log, by error code (the refusals were still answered and counted).',
    labelNames: ['code'] as const,
    registers,
  });
  const duplicates = new prom.Counter({
    name: 'latchkey_duplicates_total',
    help: 'Commands received again with the same id and content (answered without running).',
    registers,
  });
  const outbox = new prom.Gauge({
    name: 'latchkey_outbox_size',
    help: 'Results waiting for an acknowledgement from the control plane.',
    registers,
    collect() {
      this.set(latest.outbox);
    },
  });
  const stateEnabled = new prom.Gauge({
    name: 'latchkey_state_enabled',
    help: '1 while the state journal is in use; 0 when state is kept in memory only (off, or the state directory is not usable).',
    registers,
  });
  const stateBytes = new prom.Gauge({
    name: 'latchkey_state_journal_bytes',
    help: 'Size of the state journal file in bytes.',
    registers,
  });
  const stateRecords = new prom.Gauge({
    name: 'latchkey_state_journal_records',
    help: 'Live records in the state journal (outbox entries, command ids, integrations).',
    registers,
  });
  const stateFsync = new prom.Histogram({
    name: 'latchkey_state_fsync_seconds',
    help: 'Time of one group commit of the state journal (write + fdatasync).',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const stateWriteFailures = new prom.Counter({
    name: 'latchkey_state_write_failures_total',
    help: 'Failed writes of the state journal (the state stays in memory).',
    registers,
  });
  const stateCompactions = new prom.Counter({
    name: 'latchkey_state_compactions_total',
    help: 'Compactions of the state journal, by outcome (ok|failed).',
    labelNames: ['outcome'] as const,
    registers,
  });
  const readingHeld = new prom.Gauge({
    name: 'latchkey_link_reading_held',
    help: '1 while reading from the control plane is held back (too many commands still to check), else 0.',
    registers,
  });
  const readHolds = new prom.Counter({
    name: 'latchkey_link_read_holds_total',
    help: 'Times reading from the control plane was held back because commands arrived faster than they could be checked.',
    registers,
  });
  const sendHeld = new prom.Gauge({
    name: 'latchkey_link_send_held',
    help: '1 while the control plane does not take what the agent sent (more than the send-buffer bound waits in the socket; reading and results are held), else 0.',
    registers,
  });
  const sendHolds = new prom.Counter({
    name: 'latchkey_link_send_holds_total',
    help: 'Times sending (and reading) was held because the control plane did not take what the agent sent.',
    registers,
  });
  const sweeps = new prom.Counter({
    name: 'latchkey_sweeps_total',
    help: 'Expiry sweeps of one integration, by integration type.',
    labelNames: ['integration_type'] as const,
    registers,
  });
  const sweepRevoked = new prom.Counter({
    name: 'latchkey_sweep_revoked_total',
    help: 'Expired grants revoked by sweeps.',
    registers,
  });
  const sweepErrors = new prom.Counter({
    name: 'latchkey_sweep_errors_total',
    help: 'Errors met by sweeps (per item, or a whole failed sweep of an integration).',
    registers,
  });
  const awsCalls = new prom.Counter({
    name: 'latchkey_aws_calls_total',
    help: 'AWS API calls, by service, operation and outcome (ok|throttled|error).',
    labelNames: ['service', 'operation', 'outcome'] as const,
    registers,
  });
  const resultChunks = new prom.Counter({
    name: 'latchkey_result_chunks_sent_total',
    help: 'result-chunk frames sent (pieces of results too large for one frame; re-sends included).',
    registers,
  });
  const resultsTooLarge = new prom.Counter({
    name: 'latchkey_results_too_large_total',
    help: 'Results too large for one frame answered E_TOO_LARGE because the control plane takes no chunks.',
    registers,
  });
  const listenerErrors = new prom.Counter({
    name: 'latchkey_event_listener_errors_total',
    help: 'Event listeners that threw (a bug in logging or metrics code).',
    registers,
  });
  connected.set(0);
  depth.set(0);
  running.set(0);
  outbox.set(0);
  readingHeld.set(0);
  sendHeld.set(0);

  const offs = [
    events.on('command:finished', (e) => {
      commandCell(e.kind, e.integrationType)(e.outcome, e.code ?? '').pending += 1;
      durationOf(e.kind, e.integrationType).observe(e.durationMs / 1000);
    }),
    events.on('command:started', (e) => waitChild.observe(e.waitMs / 1000)),
    events.on('queue:depth', (e) => {
      latest.depth = e.depth;
      latest.running = e.running;
    }),
    events.on('link:connected', () => connected.set(1)),
    events.on('link:disconnected', () => connected.set(0)),
    events.on('link:reconnect-scheduled', () => reconnects.inc()),
    events.on('command:rejected', (e) => rejections.inc({ code: e.code })),
    events.on('refusal:log-suppressed', (e) => refusalLogsSuppressed.inc({ code: e.code })),
    events.on('command:duplicate', () => duplicates.inc()),
    events.on('outbox:size', (e) => {
      latest.outbox = e.size;
    }),
    events.on('link:chunk-sent', () => resultChunks.inc()),
    events.on('link:result-too-large', () => resultsTooLarge.inc()),
    events.on('state:enabled', (e) => stateEnabled.set(e.enabled ? 1 : 0)),
    events.on('state:size', (e) => {
      stateBytes.set(e.bytes);
      stateRecords.set(e.records);
    }),
    events.on('state:fsync', (e) => stateFsync.observe(e.seconds)),
    events.on('state:write-failed', () => stateWriteFailures.inc()),
    events.on('state:compacted', (e) => stateCompactions.inc({ outcome: e.outcome })),
    events.on('link:reading', (e) => {
      readingHeld.set(e.held ? 1 : 0);
      if (e.held) readHolds.inc();
    }),
    events.on('link:sending', (e) => {
      sendHeld.set(e.held ? 1 : 0);
      if (e.held) sendHolds.inc();
    }),
    events.on('sweep:finished', (e) => {
      sweeps.inc({ integration_type: e.integrationType });
      if (e.revoked > 0) sweepRevoked.inc(e.revoked);
      if (e.errors > 0) sweepErrors.inc(e.errors);
    }),
    events.on('aws:call', (e) =>
      awsCalls.inc({ service: e.service, operation: e.operation, outcome: e.outcome }),
    ),
    events.on('listener-error', () => listenerErrors.inc()),
  ];

  return {
    registry,
    stop: () => {
      for (const off of offs) off();
    },
  };
}
