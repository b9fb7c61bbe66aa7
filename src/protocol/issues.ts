/** Turns zod issues into one short, precise operator message that never echoes values. */
import type { z } from 'zod';

const MAX_ISSUES = 3;
const MAX_LENGTH = 1000;

export function describeIssues(prefix: string, issues: readonly z.core.$ZodIssue[]): string {
  const parts = issues.slice(0, MAX_ISSUES).map((issue) => {
    const path = issue.path.length === 0 ? '(root)' : issue.path.map(String).join('.');
    return `${path}: ${issue.message}`;
  });
  const more = issues.length > MAX_ISSUES ? ` (+${issues.length - MAX_ISSUES} more)` : '';
  const text = `${prefix}: ${parts.join('; ')}${more}`;
  return text.length > MAX_LENGTH ? `${text.slice(0, MAX_LENGTH - 1)}…` : text;
}

/** `value.envelope.id` when it is a plausible string, else null. */
export function recoverCommandId(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return null;
  const envelope = (value as { envelope?: unknown }).envelope;
  if (typeof envelope !== 'object' || envelope === null) return null;
  return envelopeId(envelope);
}

/** `envelope.id` when it is a non-empty string of at most 256 characters, else null. */
export function envelopeId(envelope: unknown): string | null {
  if (typeof envelope !== 'object' || envelope === null) return null;
  const id = (envelope as { id?: unknown }).id;
  return typeof id === 'string' && id.length > 0 && id.length <= 256 ? id : null;
}
