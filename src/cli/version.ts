/**
 * `latchkey version`, and the version the agent announces in `hello`.
 *
 * The version is read from the package's own `package.json`, found by walking up from
 * this file, so it is right both under `tsx src/…` and from the built `dist/src/…`.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PROTOCOL_VERSION } from '../protocol/messages.js';

const PackageJsonSchema = z.object({ name: z.string(), version: z.string() });

let cached: string | undefined;

export function packageVersion(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i += 1) {
    try {
      const parsed = PackageJsonSchema.safeParse(
        JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')),
      );
      if (parsed.success && parsed.data.name === 'latchkey') {
        cached = parsed.data.version;
        return cached;
      }
    } catch {
      // not here; keep walking up
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  cached = '0.0.0-unknown';
  return cached;
}

export const VERSION_HELP = `Usage: latchkey version

Prints the Latchkey version, the protocol version and the Node.js version.`;

export function versionCommand(argv: readonly string[], out: (line: string) => void): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    out(VERSION_HELP);
    return 0;
  }
  if (argv.includes('--json')) {
    out(
      JSON.stringify({
        version: packageVersion(),
        protocol: PROTOCOL_VERSION,
        node: process.versions.node,
      }),
    );
    return 0;
  }
  out(
    `latchkey ${packageVersion()} (protocol v${PROTOCOL_VERSION}, node ${process.versions.node})`,
  );
  return 0;
}
