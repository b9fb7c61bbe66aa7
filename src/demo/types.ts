/**
 * A demo scene: one part of `npm run demo`, run against the reference control plane and a
 * real agent process. Scenes print what happens so a person can follow the loop.
 */
import type { CommandKind, Integration, Result } from '../protocol/messages.js';
import type { Sealed } from '../protocol/messages.js';

export interface DemoContext {
  /** A numbered step heading. */
  step(title: string): void;
  /** An indented line under the current step. */
  info(line: string): void;
  /** Sends a signed command through the reference control plane; resolves with its result. */
  send(
    kind: CommandKind,
    integration: Integration,
    params: Record<string, unknown>,
  ): Promise<Result>;
  /** The requester's X25519 public key (base64url) to put in `recipientKey`. */
  recipientKey: string;
  /** Opens credentials sealed to `recipientKey`. */
  open(sealed: Sealed): Record<string, string>;
}

export interface DemoScene {
  name: string;
  run(ctx: DemoContext): Promise<void>;
}
