/**
 * Typed agent events. The core emits; metrics and logs subscribe from outside
 * (`observability/`). `emit` never throws: a failing listener is reported to the
 * `listener-error` handler and the core goes on.
 */
import type { ErrorCode } from './errors.js';
import type { CommandKind } from './protocol/messages.js';

export interface AgentEventMap {
  /** A frame or command was refused before reaching a driver. */
  'command:rejected': { commandId: string | null; code: ErrorCode };
  /** The log line of a refusal was dropped by the refusal log's rate limit (it was still answered). */
  'refusal:log-suppressed': { code: ErrorCode };
  /** A command entered the queue. */
  'command:accepted': { commandId: string; kind: CommandKind; integrationType: string };
  /** A command id seen again: its stored result was re-sent, or it is still running. */
  'command:duplicate': { commandId: string; state: 'running' | 'done' };
  /** A command started running after `waitMs` in the queue. */
  'command:started': {
    commandId: string;
    kind: CommandKind;
    integrationType: string;
    waitMs: number;
  };
  /** A command ended. */
  'command:finished': {
    commandId: string;
    kind: CommandKind;
    integrationType: string;
    outcome: 'ok' | 'error';
    code?: ErrorCode;
    durationMs: number;
  };
  'queue:depth': { depth: number; running: number };
  'link:connected': { url: string };
  'link:disconnected': { code: number; reason: string };
  'link:reconnect-scheduled': { attempt: number; delayMs: number };
  /** Reading from the control plane held back (backpressure) or restarted. */
  'link:reading': { held: boolean };
  /**
   * Sending to the control plane held (it does not take what was written: more than the
   * send-buffer bound waits in the socket; reading is held too) or released.
   */
  'link:sending': { held: boolean; bufferedBytes: number };
  /** One `result-chunk` frame of a result too large for one frame was written. */
  'link:chunk-sent': { commandId: string };
  /** A result too large for one frame went as `E_TOO_LARGE` (the control plane takes no chunks). */
  'link:result-too-large': { commandId: string; bytes: number };
  'outbox:size': { size: number };
  /** Whether the state journal is in use (false: memory only, by choice or by failure). */
  'state:enabled': { enabled: boolean };
  /** The state journal's file size and live records. */
  'state:size': { bytes: number; records: number };
  /** One group commit: `records` written with one write + fdatasync in `seconds`. */
  'state:fsync': { seconds: number; records: number };
  'state:write-failed': Record<string, never>;
  'state:compacted': { outcome: 'ok' | 'failed' };
  'sweep:finished': {
    integrationId: string;
    integrationType: string;
    revoked: number;
    errors: number;
    durationMs: number;
  };
  'aws:call': { service: string; operation: string; outcome: 'ok' | 'throttled' | 'error' };
  'listener-error': { event: string; error: unknown };
}

export type AgentEventName = keyof AgentEventMap;
type Listener<K extends AgentEventName> = (payload: AgentEventMap[K]) => void;

export class AgentEvents {
  /**
   * Listeners per event, as arrays replaced on change (copy on write): an emit walks its
   * array by index, with no iterator object per emit (several events go out per command),
   * and an `on` or `off` during an emit applies from the next one.
   */
  private readonly listeners = new Map<AgentEventName, readonly Listener<AgentEventName>[]>();

  on<K extends AgentEventName>(event: K, listener: Listener<K>): () => void {
    const l = listener as Listener<AgentEventName>;
    const list = this.listeners.get(event) ?? [];
    if (!list.includes(l)) this.listeners.set(event, [...list, l]);
    return () => {
      const now = this.listeners.get(event);
      if (now === undefined || !now.includes(l)) return;
      const rest = now.filter((x) => x !== l);
      if (rest.length > 0) this.listeners.set(event, rest);
      else this.listeners.delete(event);
    };
  }

  /**
   * Whether `event` has a listener: a hot path builds a payload only when someone takes it
   * (most events have no listener outside metrics and tests).
   */
  listened(event: AgentEventName): boolean {
    return this.listeners.has(event);
  }

  emit<K extends AgentEventName>(event: K, payload: AgentEventMap[K]): void {
    const list = this.listeners.get(event);
    if (list === undefined) return;
    for (let i = 0; i < list.length; i += 1) {
      try {
        list[i]!(payload);
      } catch (error) {
        if (event !== 'listener-error') this.emit('listener-error', { event, error });
      }
    }
  }
}
