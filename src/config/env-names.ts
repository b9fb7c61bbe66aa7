/**
 * Misspelled `LATCHKEY_*` environment variables: the configuration reads only the names
 * it knows, so `LATCHKEY_SHUTDOWN_GRACE_PERIOD=60s` would be ignored without a word. At
 * start the agent warns about every `LATCHKEY_*` variable it does not know, with the
 * closest known name.
 *
 * Glossary
 * - **known**: a setting's variable (`SETTINGS`), the config-file variable, and the
 *   variables of the tools shipped with the agent (dev control plane, demo, tests).
 * - **secret prefixes**: variables under an allowed env secret prefix (default
 *   `LATCHKEY_SECRET_`) are service-account secrets read by the `env` store: never
 *   reported.
 */
import { CONFIG_FILE_ENV, SETTINGS } from './schema.js';

/** `LATCHKEY_*` variables read outside the agent's configuration. */
const TOOL_VARIABLES = [
  'LATCHKEY_DEVCP_AGENTS',
  'LATCHKEY_SIGNING_PRIVATE_KEY',
  'LATCHKEY_SIGNING_KEY_ID',
  'LATCHKEY_RECIPIENT_PRIVATE_KEY',
  'LATCHKEY_RECIPIENT_PUBLIC_KEY',
];
/** Prefixes of the demo's and the test suite's own variables. */
const TOOL_PREFIXES = ['LATCHKEY_DEMO_', 'LATCHKEY_TEST_'];

export function knownEnvNames(): string[] {
  const names = new Set<string>([CONFIG_FILE_ENV, ...TOOL_VARIABLES]);
  for (const s of SETTINGS) if (s.env !== undefined) names.add(s.env);
  return [...names].sort();
}

/** Levenshtein distance (small strings: the plain dynamic programme is enough). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

export interface UnknownEnvName {
  name: string;
  /** The closest known name, when it is close enough to be a likely misspelling. */
  closest?: string;
}

/**
 * The `LATCHKEY_*` variables of `env` the agent does not know, each with its closest known
 * name (edit distance at most a third of the name's length, or a known name that one of
 * them contains).
 */
export function unknownEnvNames(
  env: NodeJS.ProcessEnv,
  secretPrefixes: readonly string[] = ['LATCHKEY_SECRET_'],
): UnknownEnvName[] {
  const known = knownEnvNames();
  const knownSet = new Set(known);
  const out: UnknownEnvName[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('LATCHKEY_') || knownSet.has(name)) continue;
    if ([...secretPrefixes, ...TOOL_PREFIXES].some((p) => name.startsWith(p))) continue;
    let best: string | undefined;
    let bestDistance = Number.POSITIVE_INFINITY;
    for (const k of known) {
      const d = editDistance(name, k);
      if (d < bestDistance) {
        best = k;
        bestDistance = d;
      }
    }
    const contained = known.find((k) => name.startsWith(k) || k.startsWith(name));
    const closest =
      best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3))
        ? best
        : contained;
    out.push(closest !== undefined ? { name, closest } : { name });
  }
  return out;
}
